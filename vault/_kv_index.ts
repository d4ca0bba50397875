// The stream index and its watermark: stream versions learned from the log,
// and index entries written in bulk behind the writer.
import { retryLocked } from "../internal/kv_retry.ts";
import type { KvKey } from "../internal/platform.ts";
import { decodePage, type StoredEvent } from "./_page.ts";
import {
  INDEX,
  type IndexEntry,
  type KvState,
  PAGE,
  type Pending,
  retryLockedIterable,
  type TailItem,
  WATERMARK,
} from "./_kv_state.ts";

/** Index entries are written once this many events are past the watermark. */
export const INDEX_EVERY = 2048;
const INDEX_ENTRY_VERSIONS = 1000;

/** Makes sure the current version of every stream in the batch is known. */
export async function loadStreams(s: KvState, batch: Pending[]): Promise<void> {
  const unknown = new Set<string>();
  for (const pending of batch) {
    if (!s.streams.has(pending.stream)) unknown.add(pending.stream);
  }
  if (unknown.size === 0) return;
  await Promise.all([...unknown].map(async (stream) => {
    const last = await retryLocked(async () => {
      for await (
        const entry of s.kv.list<IndexEntry>({ prefix: [...INDEX, stream] }, {
          reverse: true,
          limit: 1,
        })
      ) return entry;
      return undefined;
    });
    if (s.streams.has(stream)) return;
    if (last === undefined) s.streams.track(stream, 0, 0);
    else {
      const first = last.key[last.key.length - 1] as number;
      const { p } = last.value;
      s.streams.track(stream, first + p.length - 1, p[p.length - 1]);
    }
  }));
}

/**
 * Learns the stream versions of every page after the last known position,
 * e.g. written by another process. Payloads are not read, and an unreadable
 * page is passed over (`verify()` reports it), so a damaged vault still opens.
 * Events with inline payloads are kept as recent events, for reads and subscribers.
 */
export async function catchUp(s: KvState): Promise<void> {
  const pages = s.kv.list<Uint8Array>({ prefix: PAGE, start: [...PAGE, s.end.next] });
  for await (const page of retryLockedIterable(pages)) {
    const start = page.key[2] as number;
    let events: StoredEvent[] = [];
    try {
      events = decodePage(page.value);
    } catch {
      // Damaged: its events cannot be known; the log goes on after it.
    }
    s.learned(start, events);
  }
  s.caughtUp();
}

/**
 * Re-reads the stored watermark when this process holds unindexed events, so
 * that a process that does not index (one that only follows the log) drops
 * those another process has indexed instead of holding them as long as it runs.
 */
export async function refreshWatermark(s: KvState): Promise<void> {
  if (s.tail.length === 0) return;
  const mark = await retryLocked(() => s.kv.get<number>(WATERMARK));
  if (mark.value !== null) s.advanceWatermark(mark.value);
}

/** Starts an index round unless one is running. */
export function indexInBackground(s: KvState): void {
  s.indexing.start(() =>
    index(s, s.end.next).catch(() => {
      // A failed index round is repeated by the next one; readers scan the unindexed tail.
    })
  );
}

/** Writes stream index entries for every event below `upTo`, in bulk. */
export async function index(s: KvState, upTo: number): Promise<void> {
  for (;;) {
    const mark = await retryLocked(() => s.kv.get<number>(WATERMARK));
    const from = mark.value ?? 1;
    s.advanceWatermark(from);
    if (from >= upTo) return;
    const entries = new IndexEntries();
    let end = from;
    for await (const { stream, version, position, page } of tailItems(s, from, upTo)) {
      // The watermark must stay at a page start; stop at one once a commit is full.
      if (position === page && (entries.mutations >= 400 || entries.bytes >= 400 * 1024)) break;
      entries.add(stream, version, position, page);
      end = position + 1;
    }
    if (end === from) return;
    const op = s.kv.atomic().check(mark).set(WATERMARK, end);
    for (const [key, entry] of entries.take()) op.set(key, entry);
    const result = await retryLocked(() => op.commit());
    if (result.ok) s.advanceWatermark(end);
  }
}

/**
 * Stream index entries being built, each for up to 1,000 consecutive
 * versions of a stream, with the mutations and bytes they take in a commit.
 */
export class IndexEntries {
  #streams = new Map<string, { first: number; entry: IndexEntry }[]>();
  /** KV writes the entries take. */
  mutations = 0;
  /** Their size, about. */
  bytes = 0;

  /** Adds an event: its stream, version, position and page start. */
  add(stream: string, version: number, position: number, page: number): void {
    let list = this.#streams.get(stream);
    if (list === undefined) this.#streams.set(stream, list = []);
    let last = list[list.length - 1];
    if (
      last === undefined || last.entry.p.length >= INDEX_ENTRY_VERSIONS ||
      last.first + last.entry.p.length !== version
    ) {
      list.push(last = { first: version, entry: { p: [], g: [] } });
      this.mutations++;
      this.bytes += stream.length + 64;
    }
    last.entry.p.push(position);
    last.entry.g.push(page);
    this.bytes += 36;
  }

  /**
   * The entries as KV writes, which are then forgotten; with `full`, only the
   * entries no later event can extend (the last of each stream stays, unless full).
   */
  take(full = false): [KvKey, IndexEntry][] {
    const writes: [KvKey, IndexEntry][] = [];
    for (const [stream, list] of this.#streams) {
      const keep = full && list[list.length - 1].entry.p.length < INDEX_ENTRY_VERSIONS ? 1 : 0;
      for (const { first, entry } of list.splice(0, list.length - keep)) {
        writes.push([[...INDEX, stream, first], entry]);
        this.mutations--;
        this.bytes -= stream.length + 64 + 36 * entry.p.length;
      }
      if (list.length === 0) this.#streams.delete(stream);
    }
    return writes;
  }
}

/**
 * The stream, version and page of every event from `from` to `upTo`
 * (exclusive, ending on a page boundary): from memory when this process
 * wrote or read them all, otherwise from the stored pages.
 */
async function* tailItems(
  s: KvState,
  from: number,
  upTo: number,
): AsyncIterableIterator<TailItem> {
  const known = s.tail.between(from, upTo);
  if (known !== undefined) {
    yield* known;
    return;
  }
  const pages = s.kv.list<Uint8Array>({ prefix: PAGE, start: [...PAGE, from] }, {
    batchSize: 100,
  });
  for await (const page of retryLockedIterable(pages)) {
    const start = page.key[2] as number;
    if (start >= upTo) return;
    for (const [i, stored] of decodePage(page.value).entries()) {
      yield { stream: stored.s, version: stored.v, position: start + i, page: start };
    }
  }
}
