// Reading one stream of the Deno KV log. Where its events are comes from three
// places, walked lazily in the direction read: the bulk stream index (below
// the unindexed tail), the tail this process wrote or caught up with (in
// memory), and pages other processes wrote since (listed from KV). So a read
// of a stream's latest events reads their pages and one empty list, never the
// whole index or tail.
import type { EventRecord } from "../runtime/log/event_store.ts";
import type { KindFilter } from "../runtime/log/kind_pattern.ts";
import { retryLocked } from "../internal/kv_retry.ts";
import { decodePage, type StoredEvent, toRecord } from "./_page.ts";
import { payloadOf } from "./_kv_blobs.ts";
import { PageList } from "./_kv_pages.ts";
import {
  corrupt,
  INDEX,
  type IndexEntry,
  type KvState,
  PAGE,
  retryLockedIterable,
  WATERMARK,
} from "./_kv_state.ts";

/** An event of the stream: its position, its page's start and, when already read, that page. */
type Spot = [position: number, page: number, events?: StoredEvent[]];

/** Index entries per KV read: each holds up to 1,000 versions (about 10 KiB). */
const INDEX_BATCH = 4;

/** Pages read at once (the KV limit of a getMany is 10 keys). */
const READ_AHEAD = 10;
/** Events looked ahead at most, to find the pages to read at once. */
const LOOK_AHEAD = 4096;

/** Reads one stream's events from a position, forward or backward, at most `limit`. */
export async function* readStream(
  s: KvState,
  stream: string,
  from: number | undefined,
  backward: boolean,
  matches: KindFilter,
  limit: number,
): AsyncIterableIterator<EventRecord> {
  const found = spots(s, stream, from, backward, limit !== Infinity);
  let pages = new Map<number, StoredEvent[]>();
  for (let more = limit > 0; more;) {
    // The next events, up to the limit, until READ_AHEAD pages are to be read: one getMany.
    const batch: Spot[] = [];
    const wanted: number[] = [];
    const last = pages;
    while (batch.length < Math.min(limit, LOOK_AHEAD)) {
      const next = await found.next();
      if (next.done) {
        more = false;
        break;
      }
      const [at, start, read] = next.value;
      batch.push(next.value);
      if (read !== undefined || s.recent.at(at)?.stream === stream) continue;
      if (!last.has(start) && !wanted.includes(start)) {
        wanted.push(start);
        if (wanted.length === READ_AHEAD) break;
      }
    }
    pages = await readPages(s, wanted);
    // Pages read for earlier events that these events are in too.
    for (const [, start] of batch) {
      const kept = last.get(start);
      if (kept !== undefined) pages.set(start, kept);
    }
    for (const [at, start, read] of batch) {
      const recent = s.recent.at(at);
      if (recent !== undefined && recent.stream === stream) {
        if (!matches(recent.kind)) continue;
        yield recent;
      } else {
        const stored = (read ?? pages.get(start))?.[at - start];
        if (stored === undefined || stored.s !== stream) {
          throw corrupt(`the stream index of "${stream}" is inconsistent at ${at}`);
        }
        if (!matches(stored.k)) continue;
        yield toRecord(
          stored,
          at,
          stored.b === undefined ? stored.p : await payloadOf(s.kv, stored),
        );
      }
      if (--limit === 0) {
        await found.return?.(undefined);
        return;
      }
    }
  }
}

/** The pages at `starts`, read in one getMany. */
async function readPages(s: KvState, starts: number[]): Promise<Map<number, StoredEvent[]>> {
  const pages = new Map<number, StoredEvent[]>();
  if (starts.length === 0) return pages;
  const entries = await retryLocked(() =>
    s.kv.getMany<Uint8Array[]>(starts.map((start) => [...PAGE, start]))
  );
  entries.forEach((entry, i) => {
    if (entry.value === null) throw corrupt(`page ${starts[i]} is missing`);
    try {
      pages.set(starts[i], decodePage(entry.value));
    } catch {
      throw corrupt(`page ${starts[i]} is unreadable`);
    }
  });
  return pages;
}

/** The stream's events in read order, from the index, the known tail and newer pages. */
async function* spots(
  s: KvState,
  stream: string,
  from: number | undefined,
  backward: boolean,
  limited: boolean,
): AsyncIterableIterator<Spot> {
  // Taken at once: the writer changes these together, between awaits.
  const next = s.end.next;
  const known = s.tail.ofStream(stream, next);
  // Without the tail in memory, the whole unindexed tail is listed.
  const indexed = known?.start ??
    (await retryLocked(() => s.kv.get<number>(WATERMARK))).value ?? 1;
  const listedFrom = known === undefined ? indexed : next;
  const inRange = (at: number) => from === undefined || (backward ? at <= from : at >= from);
  const positions = known?.positions ?? [];
  const pages = known?.pages ?? [];
  if (backward) {
    yield* listed(s, stream, listedFrom, from, true, limited);
    for (let i = positions.length - 1; i >= 0; i--) {
      if (inRange(positions[i])) yield [positions[i], pages[i]];
    }
    yield* fromIndex(s, stream, indexed, from, true);
  } else {
    yield* fromIndex(s, stream, indexed, from, false);
    for (let i = 0; i < positions.length; i++) {
      if (inRange(positions[i])) yield [positions[i], pages[i]];
    }
    yield* listed(s, stream, listedFrom, from, false, limited);
  }
}

/** The stream's events in pages from `start` on, read from KV (in growing batches when `limited`). */
async function* listed(
  s: KvState,
  stream: string,
  start: number,
  from: number | undefined,
  backward: boolean,
  limited: boolean,
): AsyncIterableIterator<Spot> {
  if (backward && from !== undefined && from < start) return;
  const pages = backward
    ? new PageList(
      s.kv,
      {
        start: [...PAGE, start],
        end: [...PAGE, from === undefined ? Number.MAX_SAFE_INTEGER : from + 1],
      },
      true,
      limited,
    )
    : new PageList(s.kv, { prefix: PAGE, start: [...PAGE, start] }, false, limited);
  for await (const page of pages) {
    const pageStart = page.key[2] as number;
    let events: StoredEvent[];
    try {
      events = decodePage(page.value);
    } catch {
      throw corrupt(`page ${pageStart} is unreadable`);
    }
    for (let n = 0; n < events.length; n++) {
      const i = backward ? events.length - 1 - n : n;
      const at = pageStart + i;
      if (events[i].s !== stream) continue;
      if (from !== undefined && (backward ? at > from : at < from)) continue;
      yield [at, pageStart, events];
    }
  }
}

/** The stream's events below `below`, from its bulk index entries. */
async function* fromIndex(
  s: KvState,
  stream: string,
  below: number,
  from: number | undefined,
  backward: boolean,
): AsyncIterableIterator<Spot> {
  if (!backward && from !== undefined && from >= below) return;
  const entries = s.kv.list<IndexEntry>({ prefix: [...INDEX, stream] }, {
    reverse: backward,
    batchSize: INDEX_BATCH,
  });
  for await (const { value } of retryLockedIterable(entries)) {
    const { p, g } = value;
    if (backward) {
      for (let i = p.length - 1; i >= 0; i--) {
        if (p[i] < below && (from === undefined || p[i] <= from)) yield [p[i], g[i]];
      }
    } else {
      for (let i = 0; i < p.length; i++) {
        if (p[i] >= below) return;
        if (from === undefined || p[i] >= from) yield [p[i], g[i]];
      }
    }
  }
}
