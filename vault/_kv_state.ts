// The state every part of the Deno KV event store shares (writer, index,
// reader, subscriptions, verify and import): one object, passed explicitly,
// made of small classes that each own one piece of it.
import { isDeno, type Kv, type KvEntry, type KvListIterator } from "../internal/platform.ts";
import type {
  AppendEffect,
  AppendGuard,
  AppendResult,
  EventRecord,
  ExpectedVersion,
} from "../runtime/log/event_store.ts";
import { TokaError } from "../runtime/errors.ts";
import { retryLocked } from "../internal/kv_retry.ts";
import { deepFreeze, type PreparedInput } from "../runtime/log/event_rules.ts";
import type { ImportLink } from "../runtime/log/import_rules.ts";
import { type StoredEvent, toRecord } from "./_page.ts";

// Key layout, all under ["vault"]:
//   ["vault", "layout"]                    the layout version of everything below (LAYOUT)
//   ["vault", "ev", firstPosition]         a page: JSON array of the events of one commit (≤ 60 KiB)
//   ["vault", "si", stream, firstVersion]  stream index entry: positions and page starts, written in bulk
//   ["vault", "ix"]                        index watermark: every position below it is in the stream index
//   ["vault", "id", id]                    { p: position, d?: exported digest } of an imported event
//                                          stored at another position or with another digest
//   ["vault", "blob", hex]                 a large payload's size and chunk count, written last
//   ["vault", "bc", hex, n]                its chunks (60 KiB each)
export const LAYOUT_KEY = ["vault", "layout"] as const;
export const PAGE = ["vault", "ev"] as const;
export const INDEX = ["vault", "si"] as const;
export const WATERMARK = ["vault", "ix"] as const;
export const IDS = ["vault", "id"] as const;
export const BLOB = ["vault", "blob"] as const;
export const CHUNK = ["vault", "bc"] as const;
/**
 * Pages per KV read when listing pages (each up to 60 KiB): @deno/kv on Node
 * lists 100 such pages at a time several times slower than 5 or 8
 * (bench/node_vault.ts), while Deno replays faster with 100 (2.65x a raw
 * `kv.list` against 1.96x with 8, bench/read_ratios.ts).
 */
export const PAGE_BATCH: number = isDeno() ? 100 : 8;

/**
 * The version of the key layout and page format above. A store records it
 * with its first commit and checks it at open: a newer one is refused, so a
 * later change of format comes with a migration from this one.
 */
export const LAYOUT = 2;

/** Layout 1 (before chained digests): events carried a digest of their payload and parents only. */
export const LAYOUT_UNCHAINED = 1;

/** Cached events of this process, for `get`, parent digests and subscribers. */
const RECENT_EVENTS = 8192;
/** Beyond this many known streams, those whose last event is indexed are forgotten. */
const STREAM_CACHE = 10_000;

/** An append waiting for the next group commit. */
export interface Pending {
  stream: string;
  prepared: PreparedInput[];
  /** The stored digests of each event's parents. */
  parentDigests: string[][];
  blobs: (string | undefined)[];
  expected: ExpectedVersion | undefined;
  imported?: EventRecord;
  /** The import it belongs to: once one of its records is refused, the later ones are too. */
  group?: ImportGroup;
  /** The condition the append is committed under. */
  guard?: AppendGuard;
  /** What commits with it. */
  effect?: AppendEffect;
  resolve(result: AppendResult): void;
  reject(error: unknown): void;
}

/** An import in progress, as the writer sees it. */
export interface ImportGroup {
  /** Why a record of the import was refused, once one was. */
  refused?: unknown;
}

/** An imported event's id entry. */
export interface IdEntry {
  /** Its position here. */
  p: number;
  /** Its digest in the export, when it differs from the one here. */
  d?: string;
}

/** What the store knows of a stream: its version and the position of its last event. */
interface StreamState {
  version: number;
  position: number;
}

/** A stream index entry: the positions and page starts of consecutive versions. */
export interface IndexEntry {
  p: number[];
  g: number[];
}

/** Stream, version and page of each event from `start` on, for the bulk index. */
interface Tail {
  start: number;
  streams: string[];
  versions: number[];
  pages: number[];
}

/** An event of the unindexed tail. */
export interface TailItem {
  stream: string;
  version: number;
  position: number;
  page: number;
}

/** Options of the shared state, as given to `KvEventStore.open`. */
/** Checks a commit may hold on a Deno KV server over KV Connect (denokv's limit). */
export const REMOTE_CHECKS = 10;

/** Throws a RangeError unless `checks` is undefined or a whole number from 2 to 100. */
export function assertCommitChecks(checks: number | undefined): void {
  if (checks !== undefined && !(Number.isInteger(checks) && checks >= 2 && checks <= 100)) {
    throw new RangeError(`Invalid commitChecks ${checks}: expected a whole number from 2 to 100`);
  }
}

export interface KvStateOptions {
  clock?: () => number;
  randomBytes?: (bytes: Uint8Array) => Uint8Array;
  closeKv?: boolean;
  commitChecks?: number;
}

/**
 * The end of the log as this process knows it: where the next commit starts,
 * the digest it chains to and whether it still writes the layout key. Moved
 * only forward, by commits and by catching up with other processes.
 */
export class LogEnd {
  #next: number;
  #lastDigest: string | null = null;
  #layoutPending: boolean;

  constructor(next: number, layoutPending: boolean) {
    this.#next = next;
    this.#layoutPending = layoutPending;
  }

  /** The position the next commit starts at. */
  get next(): number {
    return this.#next;
  }

  /** The digest of the event at `next - 1`, which the next commit chains to. */
  get lastDigest(): string | null {
    return this.#lastDigest;
  }

  /** Whether the layout key still has to be written (with the next commit). */
  get layoutPending(): boolean {
    return this.#layoutPending;
  }

  /** Notes a commit of this process, which wrote the layout key if it was pending. */
  committed(next: number, lastDigest: string | null): void {
    this.#layoutPending = false;
    this.#next = next;
    this.#lastDigest = lastDigest;
  }

  /** Notes a page found at `start` (of `count` events; 0 when unreadable). */
  learned(start: number, count: number, lastDigest: string | null): void {
    this.#lastDigest = lastDigest;
    this.#next = Math.max(this.#next, start + Math.max(1, count));
  }

  /** Sets the digest the next commit chains to, once read at open. */
  chainTo(lastDigest: string | null): void {
    this.#lastDigest = lastDigest;
  }
}

/** What the store knows of each stream: its version and the position of its last event. */
export class StreamVersions {
  #streams = new Map<string, StreamState>();

  /** Whether the stream's version is known. */
  has(stream: string): boolean {
    return this.#streams.has(stream);
  }

  /** The stream's version, if known. */
  version(stream: string): number | undefined {
    return this.#streams.get(stream)?.version;
  }

  /** Notes the version and position of a stream's latest event. */
  track(stream: string, version: number, position: number): void {
    const state = this.#streams.get(stream);
    if (state === undefined) this.#streams.set(stream, { version, position });
    else {
      state.version = version;
      state.position = position;
    }
  }

  /** Beyond the cache size, forgets streams whose last event is below the watermark. */
  forgetIndexed(watermark: number): void {
    if (this.#streams.size <= STREAM_CACHE) return;
    // Streams whose last event is indexed can be looked up again when needed.
    for (const [stream, state] of this.#streams) {
      if (state.position < watermark) this.#streams.delete(stream);
    }
  }
}

/** Events this process wrote or saw, by position, for `get`, parent digests and subscribers. */
export class RecentEvents {
  #records: EventRecord[] = [];
  #start = 1;

  /** The position the next remembered record is at. */
  get end(): number {
    return this.#start + this.#records.length;
  }

  /** The recent record at a position, if still held. */
  at(position: number): EventRecord | undefined {
    return this.#records[position - this.#start];
  }

  /** Keeps (and freezes) the record at position `end`; the oldest half goes when full. */
  push(record: EventRecord): void {
    Object.freeze(record);
    this.#records.push(record);
    if (this.#records.length > RECENT_EVENTS * 2) {
      this.#records = this.#records.slice(RECENT_EVENTS);
      this.#start += RECENT_EVENTS;
    }
  }

  /** Forgets every record; the next one is at `start`. */
  reset(start: number): void {
    this.#records = [];
    this.#start = start;
  }
}

/**
 * The index watermark as this process knows it (every position below it is
 * in the stream index) and the unindexed tail after it that this process
 * wrote or read: stream, version and page of each event.
 */
export class IndexTail {
  #watermark: number;
  #tail: Tail;

  constructor(watermark: number) {
    this.#watermark = watermark;
    this.#tail = { start: watermark, streams: [], versions: [], pages: [] };
  }

  /** Every position below it is in the stream index, as far as this process knows. */
  get watermark(): number {
    return this.#watermark;
  }

  /** How many events the tail holds. */
  get length(): number {
    return this.#tail.streams.length;
  }

  /** Notes an event; the tail starts over unless `position` follows its last one. */
  note(stream: string, version: number, position: number, page: number): void {
    if (position !== this.#tail.start + this.#tail.streams.length) {
      this.#tail = { start: position, streams: [], versions: [], pages: [] };
    }
    this.#tail.streams.push(stream);
    this.#tail.versions.push(version);
    this.#tail.pages.push(page);
  }

  /**
   * The noted events from `from` to `upTo` (exclusive), or `undefined` unless
   * all are noted. Read lazily from the tail as it is now: notes made
   * meanwhile only append to it or start a new one.
   */
  between(from: number, upTo: number): Iterable<TailItem> | undefined {
    const tail = this.#tail;
    if (from < tail.start || upTo > tail.start + tail.streams.length) return undefined;
    return (function* () {
      for (let position = from; position < upTo; position++) {
        const i = position - tail.start;
        yield {
          stream: tail.streams[i],
          version: tail.versions[i],
          position,
          page: tail.pages[i],
        };
      }
    })();
  }

  /**
   * The positions and page starts of a stream's noted events and where the
   * noted tail starts, when it reaches from the watermark to `end` (so that
   * the stream index and `end` on cover the rest); `undefined` otherwise.
   */
  ofStream(
    stream: string,
    end: number,
  ): { start: number; positions: number[]; pages: number[] } | undefined {
    const tail = this.#tail;
    if (tail.start > this.#watermark || tail.start + tail.streams.length !== end) return undefined;
    const positions: number[] = [];
    const pages: number[] = [];
    for (let i = 0; i < tail.streams.length; i++) {
      if (tail.streams[i] !== stream) continue;
      positions.push(tail.start + i);
      pages.push(tail.pages[i]);
    }
    return { start: tail.start, positions, pages };
  }

  /** Moves the watermark forward and forgets what it covers; false when it was not ahead. */
  advance(watermark: number): boolean {
    if (watermark <= this.#watermark) return false;
    this.#watermark = watermark;
    const tail = this.#tail;
    const drop = Math.min(watermark - tail.start, tail.streams.length);
    if (drop > 0) {
      this.#tail = {
        start: tail.start + drop,
        streams: tail.streams.slice(drop),
        versions: tail.versions.slice(drop),
        pages: tail.pages.slice(drop),
      };
    }
    return true;
  }
}

/** Appends waiting for the next group commit, and the drain that commits them: the writer's. */
export class AppendQueue {
  #pending: Pending[] = [];
  #draining: Promise<void> | null = null;

  /** How many appends wait. */
  get length(): number {
    return this.#pending.length;
  }

  /** The waiting append at `index`, oldest first. */
  at(index: number): Pending {
    return this.#pending[index];
  }

  /** Removes and returns the `count` oldest appends. */
  take(count: number): Pending[] {
    return this.#pending.splice(0, count);
  }

  /**
   * Queues an append and starts `drain` unless one runs. The drain calls
   * `drainEnded()` in the same turn as it finds the queue empty, so that an
   * append queued after that starts a new one.
   */
  push(pending: Pending, drain: () => Promise<void>): void {
    this.#pending.push(pending);
    this.#draining ??= drain();
  }

  /** Notes that the running drain ended. */
  drainEnded(): void {
    this.#draining = null;
  }

  /** Resolves once no drain runs. */
  async idle(): Promise<void> {
    while (this.#draining !== null) await this.#draining;
  }
}

/** A task run in the background, one at a time (the index rounds). */
export class BackgroundTask {
  #running: Promise<void> | null = null;

  /** Starts `task` unless one runs; `task` handles its own failure. */
  start(task: () => Promise<void>): void {
    this.#running ??= task().finally(() => this.#running = null);
  }

  /** Resolves when the running task, if any, has ended. */
  async settled(): Promise<void> {
    await this.#running;
  }
}

/** What the store reads at open, before its state exists. */
export interface KvStateStart {
  /** The stored index watermark, where the log's end is looked for. */
  watermark: number;
  /** Whether the layout key is to be written with the first commit. */
  layoutPending: boolean;
}

/**
 * The state the parts of the store share, one owner per piece: the log's end
 * ({@linkcode LogEnd}), stream versions, recent events and the unindexed tail
 * change together through `committed`, `learned` and `caughtUp` (writer and
 * catch-up) and `advanceWatermark` (index); the append queue is the writer's,
 * the index round the index's, the waiters the subscriptions', the import
 * chain the import's and the open/closing/closed state `KvEventStore`'s.
 */
export class KvState {
  readonly kv: Kv;
  readonly clock: () => number;
  readonly randomBytes: (bytes: Uint8Array) => Uint8Array;
  /** Guards with a check of their own one commit may hold: the page check and one spare aside. */
  readonly commitGuards: number;
  readonly closeKv: boolean;
  readonly end: LogEnd;
  readonly streams: StreamVersions = new StreamVersions();
  readonly recent: RecentEvents = new RecentEvents();
  readonly tail: IndexTail;
  readonly queue: AppendQueue = new AppendQueue();
  readonly indexing: BackgroundTask = new BackgroundTask();
  #waiters = new Set<() => void>();
  #lastImported: ImportLink | undefined;
  #closing = false;
  #closed = false;
  #committed = false;

  constructor(kv: Kv, options: KvStateOptions, start: KvStateStart) {
    this.kv = kv;
    this.clock = options.clock ?? Date.now;
    this.randomBytes = options.randomBytes ?? ((b) => crypto.getRandomValues(b));
    this.commitGuards = (options.commitChecks ?? REMOTE_CHECKS) - 2;
    this.closeKv = options.closeKv ?? false;
    this.end = new LogEnd(start.watermark, start.layoutPending);
    this.tail = new IndexTail(start.watermark);
  }

  /** Whether `close()` was called: appends, reads and subscriptions stop. */
  get closing(): boolean {
    return this.#closing;
  }

  /** Whether the queue was committed after `close()`: nothing more is queued. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Whether this process committed events (appended or imported) to the log. */
  get wroteEvents(): boolean {
    return this.#committed;
  }

  /** Notes that `close()` was called and wakes every subscription. */
  markClosing(): void {
    this.#closing = true;
    this.wake();
  }

  /** Notes that the queue is committed and nothing more may be queued. */
  markClosed(): void {
    this.#closed = true;
  }

  assertOpen(): void {
    if (this.#closing) throw new TypeError("The event store is closed");
  }

  /** Calls `wake` at the next commit or catch-up; returns what stops that. */
  onWake(wake: () => void): () => void {
    this.#waiters.add(wake);
    return () => this.#waiters.delete(wake);
  }

  /** Wakes every subscription waiting for news. */
  wake(): void {
    for (const wake of [...this.#waiters]) wake();
  }

  /** The last record an import went through, for the next import call to chain to. */
  get lastImported(): ImportLink | undefined {
    return this.#lastImported;
  }

  /** Notes the last record an import went through. */
  imported(link: ImportLink): void {
    this.#lastImported = link;
  }

  /**
   * Notes a commit of this process: the log's new end and digest, and its
   * records (from `base` on, in pages starting at `pageStarts`) for `get`,
   * parent digests, subscribers and the index.
   */
  committed(
    next: number,
    lastDigest: string | null,
    records: readonly EventRecord[],
    base: number,
    pageStarts: readonly number[],
  ): void {
    this.#committed = true;
    this.end.committed(next, lastDigest);
    for (const record of records) {
      const at = this.recent.end;
      this.tail.note(record.stream, record.version, at, pageStarts[at - base]);
      this.streams.track(record.stream, record.version, at);
      this.recent.push(record);
    }
    this.wake();
  }

  /** Notes a page read while catching up (`events` empty when it is unreadable). */
  learned(start: number, events: readonly StoredEvent[]): void {
    events.forEach((stored, i) => {
      const at = start + i;
      this.streams.track(stored.s, stored.v, at);
      this.tail.note(stored.s, stored.v, at, start);
      // Kept as recent events (inline payloads only), so that a read of the
      // latest events needs no page read; they stay contiguous.
      if (this.recent.end !== at) this.recent.reset(at);
      if (stored.b === undefined) this.recent.push(toRecord(stored, at, deepFreeze(stored.p)));
      else this.recent.reset(at + 1);
    });
    // The next commit chains to the last event; after a damaged page, to nothing.
    this.end.learned(start, events.length, events.length > 0 ? events[events.length - 1].d : null);
  }

  /** Notes that catching up reached the end: recent events end there too. */
  caughtUp(): void {
    if (this.recent.end !== this.end.next) this.recent.reset(this.end.next);
    this.wake();
  }

  /** Moves the known watermark forward and forgets what it covers. */
  advanceWatermark(watermark: number): void {
    if (this.tail.advance(watermark)) this.streams.forgetIndexed(watermark);
  }
}

/** A list that hits "database is locked" is resumed from its cursor. */
export async function* retryLockedIterable<T>(
  iterator: KvListIterator<T>,
): AsyncIterableIterator<KvEntry<T>> {
  for (;;) {
    const entry = await retryLocked(() => iterator.next());
    if (entry.done) return;
    yield entry.value;
  }
}

/** The error of a damaged vault: a missing page, chunk or index entry. */
export function corrupt(detail: string): TokaError {
  return new TokaError("vault_corrupt", `The vault is damaged: ${detail}`);
}

/** Whether `error` says the vault's bytes are damaged (not that a read failed). */
export function isCorrupt(error: unknown): boolean {
  return error instanceof TokaError && error.code === "vault_corrupt";
}
