// Reading the Deno KV log: pages by position, events by id; one stream's
// events through _kv_stream_read.ts.
import type { EventRecord, LogHead, ReadOptions, StoreStats } from "../runtime/log/event_store.ts";
import { compileKindFilter, type KindFilter } from "../runtime/log/kind_pattern.ts";
import { retryLocked } from "../internal/kv_retry.ts";
import {
  assertStream,
  formatPosition,
  isEventId,
  parsePosition,
  positionInId,
} from "../runtime/log/event_rules.ts";
import { isBackward, readLimit } from "../runtime/log/append_rules.ts";
import { decodePage, type StoredEvent, toRecord } from "./_page.ts";
import { payloadOf } from "./_kv_blobs.ts";
import { readStream } from "./_kv_stream_read.ts";
import { PageList } from "./_kv_pages.ts";
import {
  corrupt,
  type IdEntry,
  IDS,
  isCorrupt,
  type KvState,
  PAGE,
  PAGE_BATCH,
  retryLockedIterable,
} from "./_kv_state.ts";

/**
 * Reads the log in position order, optionally filtered. The options are
 * checked at once, and a mistake rejects the first `next()`; the events come
 * from one generator, with no layer per event in between.
 */
export function read(s: KvState, options: ReadOptions): AsyncIterableIterator<EventRecord> {
  let matches: KindFilter;
  let limit: number;
  let backward: boolean;
  let from: number | undefined;
  try {
    s.assertOpen();
    matches = compileKindFilter(options.kinds);
    limit = readLimit(options.limit);
    backward = isBackward(options.direction);
    from = options.from === undefined ? undefined : parsePosition(options.from, "from");
    if (options.stream !== undefined) assertStream(options.stream);
  } catch (error) {
    return refused(error);
  }
  if (options.stream !== undefined) {
    return readStream(s, options.stream, from, backward, matches, limit);
  }
  return scan(s, from ?? (backward ? Infinity : 1), backward, matches, limit);
}

// deno-lint-ignore require-yield
async function* refused(error: unknown): AsyncIterableIterator<EventRecord> {
  throw error;
}

/**
 * Yields records page by page from a position, forward or backward, at most
 * `limit` matching ones. An iterator rather than a generator: it builds a
 * page's records at once and hands them out with one resolved promise each,
 * where a generator's yield and an await per event cost a third of a replay.
 */
export function scan(
  s: KvState,
  from: number,
  backward: boolean,
  matches: KindFilter = () => true,
  limit = Infinity,
): AsyncIterableIterator<EventRecord> {
  return new PageScan(s, from, backward, matches, limit);
}

class PageScan implements AsyncIterableIterator<EventRecord> {
  #s: KvState;
  #from: number;
  #backward: boolean;
  #matches: KindFilter;
  #limit: number;
  #pages: PageList | undefined;
  #records: EventRecord[] = [];
  #next = 0;
  #done = false;
  #filling: Promise<IteratorResult<EventRecord>> | undefined;

  constructor(s: KvState, from: number, backward: boolean, matches: KindFilter, limit: number) {
    this.#s = s;
    this.#from = from;
    this.#backward = backward;
    this.#matches = matches;
    this.#limit = limit;
    if (limit === 0) this.#done = true;
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<EventRecord> {
    return this;
  }

  next(): Promise<IteratorResult<EventRecord>> {
    if (this.#filling !== undefined) return this.#filling.then(() => this.next());
    if (this.#next < this.#records.length) {
      return Promise.resolve({ done: false, value: this.#records[this.#next++] });
    }
    if (this.#done) return Promise.resolve({ done: true, value: undefined });
    this.#filling = this.#fill().finally(() => this.#filling = undefined);
    return this.#filling;
  }

  return(): Promise<IteratorResult<EventRecord>> {
    this.#done = true;
    this.#records = [];
    return Promise.resolve({ done: true, value: undefined });
  }

  async #fill(): Promise<IteratorResult<EventRecord>> {
    try {
      this.#pages ??= await this.#open();
      while (!this.#done) {
        const page = await this.#pages.next();
        if (page.done) break;
        this.#records = await this.#recordsOf(page.value.key[2] as number, page.value.value);
        this.#next = 0;
        if (this.#records.length > 0) return { done: false, value: this.#records[this.#next++] };
      }
    } catch (error) {
      this.#done = true;
      throw error;
    }
    this.#done = true;
    return { done: true, value: undefined };
  }

  async #open(): Promise<PageList> {
    const s = this.#s;
    const from = this.#from;
    const limited = this.#limit !== Infinity;
    if (this.#backward) {
      return new PageList(
        s.kv,
        {
          prefix: PAGE,
          end: [...PAGE, from === Infinity ? Number.MAX_SAFE_INTEGER : from + 1],
        },
        true,
        limited,
      );
    }
    let start = from;
    if (from > 1) {
      const page = await pageAt(s, from);
      if (page !== undefined) start = page.start;
    }
    return new PageList(s.kv, { prefix: PAGE, start: [...PAGE, start] }, false, limited);
  }

  async #recordsOf(pageStart: number, value: Uint8Array): Promise<EventRecord[]> {
    let events: StoredEvent[];
    try {
      events = decodePage(value);
    } catch {
      throw corrupt(`page ${pageStart} is unreadable`);
    }
    const records: EventRecord[] = [];
    const backward = this.#backward;
    const from = this.#from;
    for (let n = 0; n < events.length && this.#limit > 0; n++) {
      const i = backward ? events.length - 1 - n : n;
      const at = pageStart + i;
      if (backward ? at > from : at < from) continue;
      const stored = events[i];
      if (!this.#matches(stored.k)) continue;
      const payload = stored.b === undefined ? stored.p : await payloadOf(this.#s.kv, stored);
      records.push(toRecord(stored, at, payload));
      if (--this.#limit === 0) this.#done = true;
    }
    return records;
  }
}

/** The page holding a position (the last page starting at or before it). */
async function pageAt(
  s: KvState,
  position: number,
): Promise<{ start: number; events: StoredEvent[] } | undefined> {
  const found = await retryLocked(async () => {
    const pages = s.kv.list<Uint8Array>({ prefix: PAGE, end: [...PAGE, position + 1] }, {
      reverse: true,
      limit: 1,
    });
    for await (const page of pages) return page;
    return undefined;
  });
  if (found === undefined) return undefined;
  const start = found.key[2] as number;
  try {
    return { start, events: decodePage(found.value) };
  } catch {
    throw corrupt(`page ${start} is unreadable`);
  }
}

/** The event with this id, or `null`. */
export async function get(s: KvState, id: string): Promise<EventRecord | null> {
  if (!isEventId(id)) return null;
  const at = positionInId(id);
  const recent = s.recent.at(at);
  if (recent?.id === id) return recent;
  const found = await eventAt(s, at);
  if (found?.id === id) return found;
  const imported = await retryLocked(() => s.kv.get<IdEntry>([...IDS, id]));
  if (imported.value === null) return null;
  const event = await eventAt(s, imported.value.p);
  return event?.id === id ? event : null;
}

/**
 * The digest an event had in the export it was imported from (its own
 * digest unless it was imported at another place in the chain), or
 * `undefined` when it is not stored.
 */
export async function exportedDigest(s: KvState, id: string): Promise<string | undefined> {
  const event = await get(s, id);
  if (event === null) return undefined;
  const entry = await retryLocked(() => s.kv.get<IdEntry>([...IDS, id]));
  return entry.value?.d ?? event.digest;
}

/** The stored digest of the event at a position, without reading its payload. */
export async function digestAt(s: KvState, position: number): Promise<string | undefined> {
  if (position < 1) return undefined;
  const recent = s.recent.at(position);
  if (recent !== undefined) return recent.digest;
  try {
    const page = await pageAt(s, position);
    return page?.events[position - page.start]?.d;
  } catch (error) {
    // An unreadable page has nothing to chain to; a failed read of the database is no answer.
    if (isCorrupt(error)) return undefined;
    throw error;
  }
}

/** The position and digest of the last event, including other processes' appends. */
export async function head(s: KvState): Promise<LogHead | null> {
  let page: { start: number; events: StoredEvent[] } | undefined;
  try {
    page = await pageAt(s, Number.MAX_SAFE_INTEGER - 1);
  } catch (error) {
    throw isCorrupt(error) ? corrupt("the last page of the log is unreadable") : error;
  }
  const last = page?.events[page.events.length - 1];
  if (page === undefined || last === undefined) return null;
  return { position: formatPosition(page.start + page.events.length - 1), digest: last.d };
}

/**
 * The ids among `ids` that are stored, without reading payloads: each page
 * is read once, and ids stored elsewhere are found by one read of the id
 * range they span. Positions at or past `s.end.next` hold nothing this
 * process may build on: a commit checks the next page key anyway.
 */
export async function storedAmong(s: KvState, ids: readonly string[]): Promise<Set<string>> {
  const found = new Set<string>();
  const rest: string[] = [];
  const byPosition = ids.map((id) => ({ id, at: positionInId(id) })).sort((a, b) => a.at - b.at);
  let page: { start: number; events: StoredEvent[] } | undefined;
  for (const { id, at } of byPosition) {
    if (s.recent.at(at)?.id === id) {
      found.add(id);
      continue;
    }
    if (at >= 1 && at < s.end.next) {
      if (page === undefined || at < page.start || at >= page.start + page.events.length) {
        page = await pageAt(s, at);
      }
      if (page?.events[at - page.start]?.i === id) {
        found.add(id);
        continue;
      }
    }
    rest.push(id);
  }
  if (rest.length === 0) return found;
  // Ids sort by time, as do an export's records: one range read usually finds
  // those of a batch (imported at other positions), however large the vault,
  // where a getMany per 10 ids got slower as the vault grew.
  const sorted = [...rest].sort();
  const wanted = new Set(rest);
  let listed = 0;
  const entries = s.kv.list<IdEntry>({
    start: [...IDS, sorted[0]],
    end: [...IDS, `${sorted[sorted.length - 1]}\0`],
  }, { batchSize: 500 });
  for await (const entry of retryLockedIterable(entries)) {
    const id = entry.key[2] as string;
    if (wanted.delete(id)) found.add(id);
    // Other imports' ids in the same range: look the remaining ones up directly.
    if (++listed > 4 * rest.length) return await getEach(s, [...wanted], found);
  }
  return found;
}

async function getEach(s: KvState, ids: string[], found: Set<string>): Promise<Set<string>> {
  const chunks: string[][] = [];
  for (let i = 0; i < ids.length; i += 10) chunks.push(ids.slice(i, i + 10));
  await Promise.all(chunks.map(async (chunk) => {
    const entries = await retryLocked(() =>
      s.kv.getMany<IdEntry[]>(chunk.map((id) => [...IDS, id]))
    );
    entries.forEach((entry, i) => {
      if (entry.value !== null) found.add(chunk[i]);
    });
  }));
  return found;
}

/** Whether an event with this id is stored, without reading its payload. */
export async function has(s: KvState, id: string): Promise<boolean> {
  const at = positionInId(id);
  if (s.recent.at(at)?.id === id) return true;
  if (at >= 1) {
    const page = await pageAt(s, at);
    if (page?.events[at - page.start]?.i === id) return true;
  }
  const imported = await retryLocked(() => s.kv.get<IdEntry>([...IDS, id]));
  return imported.value !== null;
}

async function eventAt(s: KvState, position: number): Promise<EventRecord | null> {
  if (position < 1) return null;
  const page = await pageAt(s, position);
  const stored = page?.events[position - page.start];
  if (page === undefined || stored === undefined) return null;
  return toRecord(stored, position, await payloadOf(s.kv, stored));
}

/** The position after the last stored event. */
export async function end(s: KvState): Promise<number> {
  const page = await pageAt(s, Number.MAX_SAFE_INTEGER - 1);
  return page === undefined ? 1 : page.start + page.events.length;
}

/** Counts events, streams and kinds by scanning the log. */
export async function stats(s: KvState): Promise<StoreStats> {
  s.assertOpen();
  const kinds: Record<string, number> = {};
  const streams = new Set<string>();
  let events = 0;
  let first: number | null = null;
  let last: number | null = null;
  let head: string | null = null;
  const pages = s.kv.list<Uint8Array>({ prefix: PAGE }, { batchSize: PAGE_BATCH });
  for await (const page of retryLockedIterable(pages)) {
    let stored: StoredEvent[];
    try {
      stored = decodePage(page.value);
    } catch {
      throw corrupt(`page ${page.key[2] as number} is unreadable`);
    }
    for (const event of stored) {
      kinds[event.k] = (kinds[event.k] ?? 0) + 1;
      streams.add(event.s);
      first ??= event.t;
      last = event.t;
    }
    events += stored.length;
    head = formatPosition((page.key[2] as number) + stored.length - 1);
  }
  return { events, streams: streams.size, head, firstTimestamp: first, lastTimestamp: last, kinds };
}
