import { TokaError } from "../runtime/errors.ts";
import type {
  AppendOptions,
  AppendResult,
  EventInput,
  EventRecord,
  EventStore,
  ExpectedVersion,
  ImportResult,
  ReadOptions,
  StoreStats,
  SubscribeOptions,
  VerifyProblem,
  VerifyReport,
} from "../runtime/event_store.ts";
import { compileKindFilter, type KindFilter } from "../runtime/kind_pattern.ts";
import {
  assertRecord,
  assertStream,
  eventDigest,
  formatPosition,
  isEventId,
  makeEventId,
  parsePosition,
  positionInId,
  type PreparedInput,
  prepareInput,
  prepareInputs,
  sha256Hex,
} from "./_event.ts";
import {
  assertExpectedVersion,
  checkExpectedVersion,
  digestMismatch,
  readLimit,
  startAfter,
} from "./_append.ts";
import {
  decodePage,
  encodePage,
  encodeStored,
  packPages,
  type StoredEvent,
  toRecord,
} from "./_page.ts";
import { retryLocked } from "../runtime/_kv_retry.ts";
import { verifyLog } from "./_verify.ts";
import { INLINE_PAYLOAD_BYTES } from "./limits.ts";

// Key layout, all under ["vault"]:
//   ["vault", "ev", firstPosition]         a page: JSON array of the events of one commit (≤ 60 KiB)
//   ["vault", "si", stream, firstVersion]  stream index entry: positions and page starts, written in bulk
//   ["vault", "ix"]                        index watermark: every position below it is in the stream index
//   ["vault", "id", id]                    position of an imported event whose id does not encode it
//   ["vault", "blob", hex]                 a large payload's size and chunk count, written last
//   ["vault", "bc", hex, n]                its chunks (60 KiB each)
const PAGE = ["vault", "ev"] as const;
const INDEX = ["vault", "si"] as const;
const WATERMARK = ["vault", "ix"] as const;
const IDS = ["vault", "id"] as const;
const BLOB = ["vault", "blob"] as const;
const CHUNK = ["vault", "bc"] as const;

const COMMIT_BYTES = 740 * 1024;
const COMMIT_MUTATIONS = 900;
const CHUNK_BYTES = 60 * 1024;
const CHUNKS_PER_COMMIT = 12;
const INDEX_EVERY = 2048;
const INDEX_ENTRY_VERSIONS = 1000;
const RECENT_EVENTS = 8192;
const STREAM_CACHE = 10_000;
/** What an imported event's append resolves to when its id was stored meanwhile. */
const ALREADY_STORED: AppendResult = Object.freeze({ version: 0, position: "", events: [] });
const POLL_MIN_MS = 20;
const POLL_MAX_MS = 500;

interface Pending {
  stream: string;
  prepared: PreparedInput[];
  digests: string[];
  blobs: (string | undefined)[];
  expected: ExpectedVersion | undefined;
  imported?: EventRecord;
  resolve(result: AppendResult): void;
  reject(error: unknown): void;
}

interface StreamState {
  version: number;
  position: number;
}

interface IndexEntry {
  p: number[];
  g: number[];
}

/** Options of {@linkcode KvEventStore.open}. */
export interface KvEventStoreOptions {
  /** Milliseconds since the epoch for event timestamps; `Date.now` by default. */
  clock?: () => number;
  /** Fills random bytes for event ids; `crypto.getRandomValues` by default. */
  randomBytes?: (bytes: Uint8Array) => Uint8Array;
  /** Close the `Deno.Kv` when the store closes; false by default, since the caller opened it. */
  closeKv?: boolean;
}

/**
 * The Deno KV event store: durable, shared by processes on one KV file, and
 * the same code against a remote KV over KV Connect.
 *
 * Concurrent appends are group-committed: every append queued while a commit
 * is in flight joins the next one, which packs their events into a few KV
 * values and is guarded by a single check, so the remote limits (10 checks,
 * 1,000 mutations, 800 KiB per commit) hold for any number of streams.
 *
 * @example
 * ```ts
 * import { KvEventStore } from "@toka/runtime/vault";
 *
 * const kv = await Deno.openKv(":memory:");
 * const store = await KvEventStore.open(kv);
 * await store.append("agent/planner", [{ kind: "task.created", payload: { title: "Plan" } }]);
 * console.log(await store.head()); // "0000000000000001"
 * await store.close();
 * kv.close();
 * ```
 */
export class KvEventStore implements EventStore {
  /** The Deno KV database behind the store. */
  readonly kv: Deno.Kv;
  #clock: () => number;
  #randomBytes: (bytes: Uint8Array) => Uint8Array;
  #closeKv: boolean;
  #next = 1;
  #watermark = 1;
  #streams = new Map<string, StreamState>();
  /** Stream, version and page of each event from `start` on, for the bulk index. */
  #tail = { start: 1, streams: [] as string[], versions: [] as number[], pages: [] as number[] };
  #recent: EventRecord[] = [];
  #recentStart = 1;
  #queue: Pending[] = [];
  #writing: Promise<void> | null = null;
  #indexing: Promise<void> | null = null;
  #waiters = new Set<() => void>();
  #closing = false;
  #closed = false;

  private constructor(kv: Deno.Kv, options: KvEventStoreOptions) {
    this.kv = kv;
    this.#clock = options.clock ?? Date.now;
    this.#randomBytes = options.randomBytes ?? ((b) => crypto.getRandomValues(b));
    this.#closeKv = options.closeKv ?? false;
  }

  /**
   * Opens the event store in a Deno KV database the caller opened.
   *
   * @param kv The database; the store uses keys under `["vault"]`.
   * @param options Clock, random source, and whether `close()` closes the database.
   * @returns The store, ready for appends.
   * @throws {Error} When the database cannot be read.
   */
  static async open(kv: Deno.Kv, options: KvEventStoreOptions = {}): Promise<KvEventStore> {
    const store = new KvEventStore(kv, options);
    const watermark = await retryLocked(() => kv.get<number>(WATERMARK));
    store.#watermark = watermark.value ?? 1;
    store.#next = store.#watermark;
    await store.#catchUp();
    return store;
  }

  /**
   * Appends events to one stream atomically.
   *
   * @param stream The stream name.
   * @param events The events to append, at least one.
   * @param options The expected version.
   * @returns The stream's new version, the last position and the stored events.
   * @throws {VersionConflictError} When the expected version does not match; nothing is stored.
   * @throws {TypeError} When a stream name, kind, payload or parent is invalid.
   * @throws {RangeError} When an event or the whole append exceeds its maximum size.
   */
  append(stream: string, events: EventInput[], options: AppendOptions = {}): Promise<AppendResult> {
    let prepared: PreparedInput[];
    try {
      this.#assertOpen();
      assertExpectedVersion(options.expectedVersion);
      prepared = prepareInputs(stream, events);
    } catch (error) {
      return Promise.reject(error);
    }
    // Fast path: inline payloads whose parents are recent; otherwise blobs or reads first.
    const digests: string[] = [];
    for (const p of prepared) {
      if (p.bytes > INLINE_PAYLOAD_BYTES) break;
      const parents: string[] = [];
      for (const id of p.parents) {
        const digest = this.#recentDigest(id);
        if (digest === undefined) break;
        parents.push(digest);
      }
      if (parents.length < p.parents.length) break;
      digests.push(eventDigest(p.canonical, parents));
    }
    if (digests.length === prepared.length) {
      return this.#enqueue(stream, prepared, digests, [], options.expectedVersion);
    }
    return this.#prepareSlow(stream, prepared).then(({ digests, blobs }) =>
      this.#enqueue(stream, prepared, digests, blobs, options.expectedVersion)
    );
  }

  async #prepareSlow(
    stream: string,
    prepared: PreparedInput[],
  ): Promise<{ digests: string[]; blobs: (string | undefined)[] }> {
    const digests: string[] = [];
    const blobs: (string | undefined)[] = [];
    for (const [i, p] of prepared.entries()) {
      const parentDigests = await Promise.all(
        p.parents.map((id) => this.#parentDigest(stream, i, id)),
      );
      digests.push(eventDigest(p.canonical, parentDigests));
      blobs.push(p.bytes > INLINE_PAYLOAD_BYTES ? await this.#storeBlob(p.canonical) : undefined);
    }
    return { digests, blobs };
  }

  /** The digest of a recent event, found by the position its id encodes. */
  #recentDigest(id: string): string | undefined {
    const record = this.#recent[positionInId(id) - this.#recentStart];
    return record?.id === id ? record.digest : undefined;
  }

  async #parentDigest(stream: string, index: number, id: string): Promise<string> {
    const digest = this.#recentDigest(id) ?? (await this.get(id))?.digest;
    if (digest === undefined) {
      throw new TypeError(
        `Invalid parent of event ${index} in stream "${stream}": "${id}" is not stored`,
      );
    }
    return digest;
  }

  #enqueue(
    stream: string,
    prepared: PreparedInput[],
    digests: string[],
    blobs: (string | undefined)[],
    expected: ExpectedVersion | undefined,
    imported?: EventRecord,
  ): Promise<AppendResult> {
    if (this.#closed) return Promise.reject(new TypeError("The event store is closed"));
    return new Promise((resolve, reject) => {
      this.#queue.push({ stream, prepared, digests, blobs, expected, imported, resolve, reject });
      this.#writing ??= this.#drain();
    });
  }

  async #drain(): Promise<void> {
    // Callers are released in commit order, so appends resolve in position order.
    let settle: (() => void) | undefined;
    let released: { settle: () => void; timer: ReturnType<typeof setTimeout> } | undefined;
    const releaseEarlier = () => {
      if (released === undefined) return;
      clearTimeout(released.timer);
      const earlier = released.settle;
      released = undefined;
      earlier();
    };
    try {
      // Let appends issued in the same turn join the commit. A commit is
      // dispatched before the callers of the previous one are released (in a
      // macrotask), so their next appends are prepared while it runs.
      for (let i = 0; i < 3; i++) await null;
      while (this.#queue.length > 0) {
        const committing = this.#commit(this.#takeBatch());
        if (settle !== undefined) {
          releaseEarlier();
          const previous = settle;
          const timer = setTimeout(() => {
            released = undefined;
            previous();
          }, 0);
          released = { settle: previous, timer };
        }
        settle = await committing;
      }
    } finally {
      releaseEarlier();
      settle?.();
      this.#writing = null;
    }
  }

  /** Takes queued appends while the commit stays within the remote KV limits. */
  #takeBatch(): Pending[] {
    let size = 0;
    let mutations = 0;
    let count = 0;
    while (count < this.#queue.length) {
      const pending = this.#queue[count];
      let pendingSize = 0;
      for (const p of pending.prepared) pendingSize += p.size + 1;
      // At most a page per event, plus an id entry per imported event.
      const pendingMutations = pending.prepared.length + (pending.imported === undefined ? 0 : 1);
      if (
        count > 0 &&
        (size + pendingSize > COMMIT_BYTES || mutations + pendingMutations > COMMIT_MUTATIONS)
      ) break;
      size += pendingSize;
      mutations += pendingMutations;
      count++;
    }
    return this.#queue.splice(0, count);
  }

  /** Commits a batch and returns what settles its callers. */
  async #commit(batch: Pending[]): Promise<() => void> {
    try {
      let caughtUp = false;
      for (;;) {
        if (batch.some((pending) => !this.#streams.has(pending.stream))) {
          await this.#loadStreams(batch);
        }
        // An imported event may have been stored since it was queued (a
        // concurrent import, here or in another process): the check on the
        // next page makes this read consistent with the commit below.
        const alreadyStored = new Set<string>();
        for (const pending of batch) {
          const id = pending.imported?.id;
          if (id !== undefined && await this.#has(id)) alreadyStored.add(id);
        }
        const base = this.#next;
        const timestamp = this.#clock();
        const versions = new Map<string, number>();
        const rejected: [Pending, unknown][] = [];
        const accepted: [Pending, StoredEvent[]][] = [];
        const encoded: { json: string; size: number }[] = [];
        const ids: [string, number][] = [];
        let position = base;
        let eventCount = 0;
        for (const pending of batch) eventCount += pending.prepared.length;
        const random = this.#randomBytes(new Uint8Array(eventCount * 4));
        const skipped: Pending[] = [];
        const seen = new Set<string>();
        for (const pending of batch) {
          const imported = pending.imported?.id;
          if (imported !== undefined) {
            if (alreadyStored.has(imported) || seen.has(imported)) {
              skipped.push(pending);
              continue;
            }
            seen.add(imported);
          }
          const current = versions.get(pending.stream) ??
            this.#streams.get(pending.stream)?.version ?? 0;
          try {
            checkExpectedVersion(pending.stream, pending.expected, current);
          } catch (error) {
            rejected.push([pending, error]);
            continue;
          }
          const stored = pending.prepared.map((p, i): StoredEvent => {
            const at = position++;
            const t = pending.imported?.timestamp ?? timestamp;
            const id = pending.imported?.id ?? makeEventId(t, at, random, (at - base) * 4);
            if (pending.imported !== undefined && positionInId(id) !== at) ids.push([id, at]);
            const event = {
              i: id,
              s: pending.stream,
              v: current + i + 1,
              k: p.kind,
              b: pending.blobs[i],
              d: pending.digests[i],
              t,
              a: p.parents,
              n: p.intent,
              m: p.meta,
            };
            encoded.push({
              json: encodeStored(event, event.b === undefined ? p.canonical : undefined),
              size: p.size,
            });
            return event;
          });
          versions.set(pending.stream, current + stored.length);
          accepted.push([pending, stored]);
        }
        if (rejected.length > 0 && !caughtUp) {
          // The versions known here may be stale: another process may have
          // appended. Confirm a conflict against the log before reporting it.
          await this.#catchUp();
          caughtUp = true;
          continue;
        }
        if (accepted.length > 0) {
          const op = this.kv.atomic().check({ key: [...PAGE, base], versionstamp: null });
          const pageStarts: number[] = [];
          let start = base;
          for (const page of packPages(encoded)) {
            op.set([...PAGE, start], encodePage(page));
            for (let i = 0; i < page.length; i++) pageStarts.push(start);
            start += page.length;
          }
          for (const [id, at] of ids) op.set([...IDS, id], at);
          const committing = retryLocked(() => op.commit());
          // Built while the KV thread commits: the records callers and subscribers get.
          let at = base;
          const results = accepted.map(([pending, stored]) =>
            stored.map((event, i) => toRecord(event, at++, ownPayload(pending.prepared[i])))
          );
          const result = await committing;
          if (!result.ok) {
            // Another process appended first: learn what it wrote, then decide again.
            await this.#catchUp();
            caughtUp = true;
            continue;
          }
          this.#next = position;
          for (const records of results) {
            for (const record of records) {
              const at = this.#recentStart + this.#recent.length;
              this.#noteTail(record.stream, record.version, at, pageStarts[at - base]);
              this.#remember(record, record.version);
            }
          }
          this.#wake();
          if (this.#next - this.#watermark >= INDEX_EVERY) this.#indexInBackground();
          return () => {
            accepted.forEach(([pending], n) => {
              const records = results[n];
              const last = records[records.length - 1];
              pending.resolve({ version: last.version, position: last.position, events: records });
            });
            for (const [pending, error] of rejected) pending.reject(error);
            for (const pending of skipped) pending.resolve(ALREADY_STORED);
          };
        }
        return () => {
          for (const [pending, error] of rejected) pending.reject(error);
          for (const pending of skipped) pending.resolve(ALREADY_STORED);
        };
      }
    } catch (error) {
      return () => {
        for (const pending of batch) pending.reject(error);
      };
    }
  }

  /** Makes sure the current version of every stream in the batch is known. */
  async #loadStreams(batch: Pending[]): Promise<void> {
    const unknown = new Set<string>();
    for (const pending of batch) {
      if (!this.#streams.has(pending.stream)) unknown.add(pending.stream);
    }
    if (unknown.size === 0) return;
    await Promise.all([...unknown].map(async (stream) => {
      const last = await retryLocked(async () => {
        for await (
          const entry of this.kv.list<IndexEntry>({ prefix: [...INDEX, stream] }, {
            reverse: true,
            limit: 1,
          })
        ) return entry;
        return undefined;
      });
      if (this.#streams.has(stream)) return;
      if (last === undefined) this.#streams.set(stream, { version: 0, position: 0 });
      else {
        const first = last.key[last.key.length - 1] as number;
        const { p } = last.value;
        this.#streams.set(stream, { version: first + p.length - 1, position: p[p.length - 1] });
      }
    }));
  }

  #remember(record: EventRecord, version: number): void {
    this.#track(record.stream, version, this.#recentStart + this.#recent.length);
    Object.freeze(record);
    this.#recent.push(record);
    if (this.#recent.length > RECENT_EVENTS * 2) {
      this.#recent = this.#recent.slice(RECENT_EVENTS);
      this.#recentStart += RECENT_EVENTS;
    }
  }

  /**
   * Learns the stream versions of every page after the last known position,
   * e.g. written by another process. Payloads are not read, and an unreadable
   * page is passed over (`verify()` reports it), so a damaged vault still opens.
   * Subscribers read those events from KV.
   */
  async #catchUp(): Promise<void> {
    const pages = this.kv.list<Uint8Array>({ prefix: PAGE, start: [...PAGE, this.#next] });
    for await (const page of retryLockedIterable(pages)) {
      const start = page.key[2] as number;
      let events: StoredEvent[] = [];
      try {
        events = decodePage(page.value);
      } catch {
        // Damaged: its events cannot be known; the log goes on after it.
      }
      events.forEach((stored, i) => {
        this.#track(stored.s, stored.v, start + i);
        this.#noteTail(stored.s, stored.v, start + i, start);
      });
      this.#next = Math.max(this.#next, start + Math.max(1, events.length));
    }
    this.#recent = [];
    this.#recentStart = this.#next;
    this.#wake();
  }

  #track(stream: string, version: number, position: number): void {
    const state = this.#streams.get(stream);
    if (state === undefined) this.#streams.set(stream, { version, position });
    else {
      state.version = version;
      state.position = position;
    }
  }

  #indexInBackground(): void {
    this.#indexing ??= this.#index(this.#next).catch(() => {
      // A failed index round is repeated by the next one; readers scan the unindexed tail.
    }).finally(() => this.#indexing = null);
  }

  /** Writes stream index entries for every event below `upTo`, in bulk. */
  async #index(upTo: number): Promise<void> {
    for (;;) {
      const mark = await retryLocked(() => this.kv.get<number>(WATERMARK));
      const from = mark.value ?? 1;
      this.#advanceWatermark(from);
      if (from >= upTo) return;
      const entries = new Map<string, { first: number; entry: IndexEntry }[]>();
      let mutations = 0;
      let bytes = 0;
      let end = from;
      for await (const { stream, version, position, page } of this.#tailItems(from, upTo)) {
        // The watermark must stay at a page start; stop at one once a commit is full.
        if (position === page && (mutations >= 400 || bytes >= 400 * 1024)) break;
        let list = entries.get(stream);
        if (list === undefined) entries.set(stream, list = []);
        let last = list[list.length - 1];
        if (
          last === undefined || last.entry.p.length >= INDEX_ENTRY_VERSIONS ||
          last.first + last.entry.p.length !== version
        ) {
          list.push(last = { first: version, entry: { p: [], g: [] } });
          mutations++;
          bytes += stream.length + 64;
        }
        last.entry.p.push(position);
        last.entry.g.push(page);
        bytes += 36;
        end = position + 1;
      }
      if (end === from) return;
      const op = this.kv.atomic().check(mark).set(WATERMARK, end);
      for (const [stream, list] of entries) {
        for (const { first, entry } of list) op.set([...INDEX, stream, first], entry);
      }
      const result = await retryLocked(() => op.commit());
      if (result.ok) this.#advanceWatermark(end);
    }
  }

  /**
   * The stream, version and page of every event from `from` to `upTo`
   * (exclusive, ending on a page boundary): from memory when this process
   * wrote or read them all, otherwise from the stored pages.
   */
  async *#tailItems(
    from: number,
    upTo: number,
  ): AsyncIterableIterator<{ stream: string; version: number; position: number; page: number }> {
    const tail = this.#tail;
    if (from >= tail.start && upTo <= tail.start + tail.streams.length) {
      for (let position = from; position < upTo; position++) {
        const i = position - tail.start;
        yield { stream: tail.streams[i], version: tail.versions[i], position, page: tail.pages[i] };
      }
      return;
    }
    const pages = this.kv.list<Uint8Array>({ prefix: PAGE, start: [...PAGE, from] }, {
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

  /** Notes an event in the unindexed tail; `position` must follow the tail's last one. */
  #noteTail(stream: string, version: number, position: number, page: number): void {
    const tail = this.#tail;
    if (position !== tail.start + tail.streams.length) {
      this.#tail = { start: position, streams: [], versions: [], pages: [] };
    }
    this.#tail.streams.push(stream);
    this.#tail.versions.push(version);
    this.#tail.pages.push(page);
  }

  #advanceWatermark(watermark: number): void {
    if (watermark <= this.#watermark) return;
    this.#watermark = watermark;
    const drop = Math.min(watermark - this.#tail.start, this.#tail.streams.length);
    if (drop > 0) {
      this.#tail = {
        start: this.#tail.start + drop,
        streams: this.#tail.streams.slice(drop),
        versions: this.#tail.versions.slice(drop),
        pages: this.#tail.pages.slice(drop),
      };
    }
    if (this.#streams.size <= STREAM_CACHE) return;
    // Streams whose last event is indexed can be looked up again when needed.
    for (const [stream, state] of this.#streams) {
      if (state.position < watermark) this.#streams.delete(stream);
    }
  }

  /**
   * Reads the log in position order, optionally filtered.
   *
   * @param options Start position, stream, kinds, limit and direction.
   * @returns The matching events, read page by page in constant memory.
   * @throws {TypeError} When an option is invalid.
   */
  async *read(options: ReadOptions = {}): AsyncIterableIterator<EventRecord> {
    this.#assertOpen();
    const matches = compileKindFilter(options.kinds);
    let remaining = readLimit(options.limit);
    if (options.direction !== undefined && !["forward", "backward"].includes(options.direction)) {
      throw new TypeError(
        `Invalid direction ${JSON.stringify(options.direction)}: use "forward" or "backward"`,
      );
    }
    const backward = options.direction === "backward";
    const from = options.from === undefined ? undefined : parsePosition(options.from, "from");
    if (remaining === 0) return;
    if (options.stream !== undefined) {
      assertStream(options.stream);
      yield* this.#readStream(options.stream, from, backward, matches, remaining);
      return;
    }
    for await (const record of this.#scan(from ?? (backward ? Infinity : 1), backward)) {
      if (!matches(record.kind)) continue;
      yield record;
      if (--remaining === 0) return;
    }
  }

  /**
   * Reads one stream in version order.
   *
   * @param stream The stream name.
   * @returns The stream's events.
   * @throws {TypeError} When the stream name is invalid.
   */
  async *readStream(stream: string): AsyncIterableIterator<EventRecord> {
    assertStream(stream);
    yield* this.read({ stream });
  }

  async *#readStream(
    stream: string,
    from: number | undefined,
    backward: boolean,
    matches: KindFilter,
    limit: number,
  ): AsyncIterableIterator<EventRecord> {
    const mark = await retryLocked(() => this.kv.get<number>(WATERMARK));
    const watermark = mark.value ?? 1;
    const positions: number[] = [];
    const pageStarts: number[] = [];
    const entries = this.kv.list<IndexEntry>({ prefix: [...INDEX, stream] });
    for await (const { value } of retryLockedIterable(entries)) {
      for (let i = 0; i < value.p.length; i++) {
        if (value.p[i] >= watermark) break;
        positions.push(value.p[i]);
        pageStarts.push(value.g[i]);
      }
    }
    // The unindexed tail is scanned; it is at most a few thousand events.
    const tail = this.kv.list<Uint8Array>({ prefix: PAGE, start: [...PAGE, watermark] });
    for await (const page of retryLockedIterable(tail)) {
      const start = page.key[2] as number;
      const events = decodePage(page.value);
      for (let i = 0; i < events.length; i++) {
        if (events[i].s === stream) {
          positions.push(start + i);
          pageStarts.push(start);
        }
      }
    }
    let page: { start: number; events: StoredEvent[] } | undefined;
    for (let n = 0; n < positions.length && limit > 0; n++) {
      const k = backward ? positions.length - 1 - n : n;
      const at = positions[k];
      if (from !== undefined && (backward ? at > from : at < from)) continue;
      if (page?.start !== pageStarts[k]) {
        const entry = await retryLocked(() => this.kv.get<Uint8Array>([...PAGE, pageStarts[k]]));
        if (entry.value === null) throw corrupt(`page ${pageStarts[k]} is missing`);
        page = { start: pageStarts[k], events: decodePage(entry.value) };
      }
      const stored = page.events[at - page.start];
      if (stored === undefined || stored.s !== stream) {
        throw corrupt(`the stream index of "${stream}" is inconsistent at ${at}`);
      }
      if (!matches(stored.k)) continue;
      limit--;
      yield toRecord(stored, at, await this.#payloadOf(stored));
    }
  }

  /** Yields records page by page from a position, forward or backward. */
  async *#scan(from: number, backward: boolean): AsyncIterableIterator<EventRecord> {
    let start = from;
    if (!backward && from > 1) {
      const page = await this.#pageAt(from);
      if (page !== undefined) start = page.start;
    }
    const pages = backward
      ? this.kv.list<Uint8Array>({
        prefix: PAGE,
        end: [...PAGE, from === Infinity ? Number.MAX_SAFE_INTEGER : from + 1],
      }, { reverse: true, batchSize: 100 })
      : this.kv.list<Uint8Array>({ prefix: PAGE, start: [...PAGE, start] }, { batchSize: 100 });
    for await (const page of retryLockedIterable(pages)) {
      const pageStart = page.key[2] as number;
      const events = decodePage(page.value);
      for (let n = 0; n < events.length; n++) {
        const i = backward ? events.length - 1 - n : n;
        const at = pageStart + i;
        if (backward ? at > from : at < from) continue;
        yield toRecord(events[i], at, await this.#payloadOf(events[i]));
      }
    }
  }

  async #pageAt(position: number): Promise<{ start: number; events: StoredEvent[] } | undefined> {
    const found = await retryLocked(async () => {
      const pages = this.kv.list<Uint8Array>({ prefix: PAGE, end: [...PAGE, position + 1] }, {
        reverse: true,
        limit: 1,
      });
      for await (const page of pages) return page;
      return undefined;
    });
    if (found === undefined) return undefined;
    return { start: found.key[2] as number, events: decodePage(found.value) };
  }

  /**
   * Returns the event with this id.
   *
   * @param id The event id.
   * @returns The event, or `null` when no event has this id.
   */
  async get(id: string): Promise<EventRecord | null> {
    if (!isEventId(id)) return null;
    const at = positionInId(id);
    const recent = this.#recent[at - this.#recentStart];
    if (recent?.id === id) return recent;
    const found = await this.#eventAt(at);
    if (found?.id === id) return found;
    const imported = await retryLocked(() => this.kv.get<number>([...IDS, id]));
    if (imported.value === null) return null;
    const event = await this.#eventAt(imported.value);
    return event?.id === id ? event : null;
  }

  /** Whether an event with this id is stored, without reading its payload. */
  async #has(id: string): Promise<boolean> {
    const at = positionInId(id);
    if (this.#recent[at - this.#recentStart]?.id === id) return true;
    if (at >= 1) {
      const page = await this.#pageAt(at);
      if (page?.events[at - page.start]?.i === id) return true;
    }
    const imported = await retryLocked(() => this.kv.get<number>([...IDS, id]));
    return imported.value !== null;
  }

  async #eventAt(position: number): Promise<EventRecord | null> {
    if (position < 1) return null;
    const page = await this.#pageAt(position);
    const stored = page?.events[position - page.start];
    if (page === undefined || stored === undefined) return null;
    return toRecord(stored, position, await this.#payloadOf(stored));
  }

  /**
   * Returns the position of the last event, including other processes' appends.
   *
   * @returns The position, or `null` for an empty log.
   */
  async head(): Promise<string | null> {
    const end = await this.#end();
    return end > 1 ? formatPosition(end - 1) : null;
  }

  /** The position after the last stored event. */
  async #end(): Promise<number> {
    const page = await this.#pageAt(Number.MAX_SAFE_INTEGER - 1);
    return page === undefined ? 1 : page.start + page.events.length;
  }

  /**
   * Counts events, streams and kinds by scanning the log.
   *
   * @returns The counts and the first and last timestamps.
   */
  async stats(): Promise<StoreStats> {
    this.#assertOpen();
    const kinds: Record<string, number> = {};
    const streams = new Set<string>();
    let events = 0;
    let first: number | null = null;
    let last: number | null = null;
    let head: string | null = null;
    const pages = this.kv.list<Uint8Array>({ prefix: PAGE }, { batchSize: 100 });
    for await (const page of retryLockedIterable(pages)) {
      const stored = decodePage(page.value);
      for (const event of stored) {
        kinds[event.k] = (kinds[event.k] ?? 0) + 1;
        streams.add(event.s);
        first ??= event.t;
        last = event.t;
      }
      events += stored.length;
      head = formatPosition((page.key[2] as number) + stored.length - 1);
    }
    return {
      events,
      streams: streams.size,
      head,
      firstTimestamp: first,
      lastTimestamp: last,
      kinds,
    };
  }

  /**
   * Delivers stored events after a position, then new ones as they are
   * appended by this or any other process, with no gap and no duplicate.
   * Other processes' appends are found by polling with backoff (20–500 ms).
   *
   * @param options Where to start, which kinds, and a signal that ends it.
   * @returns The events in position order.
   * @throws {TypeError} When `after` is not a position.
   */
  async *subscribe(options: SubscribeOptions = {}): AsyncIterableIterator<EventRecord> {
    this.#assertOpen();
    const matches = compileKindFilter(options.kinds);
    const signal = options.signal;
    let cursor = await startAfter(options.after, async () => (await this.#end()) - 1);
    const ended = () => this.#closing || signal?.aborted === true;
    try {
      while (!ended()) {
        // Served from memory while possible: events this process wrote or has seen.
        let record: EventRecord | undefined;
        let served = false;
        while (
          cursor + 1 < this.#next && !ended() &&
          (record = this.#recent[cursor + 1 - this.#recentStart]) !== undefined
        ) {
          cursor++;
          served = true;
          if (matches(record.kind)) yield record;
        }
        if (ended()) return;
        if (served && cursor + 1 >= this.#next) {
          // Caught up with this process; the wait polls for other processes' appends.
          await this.#waitForNews(cursor, signal);
          continue;
        }
        let progressed = false;
        for await (const record of this.#scan(cursor + 1, false)) {
          cursor = Number(record.position);
          progressed = true;
          if (matches(record.kind)) yield record;
          if (ended()) return;
        }
        if (!progressed) await this.#waitForNews(cursor, signal);
      }
    } catch (error) {
      if (this.#closed) return;
      throw error;
    }
  }

  async #waitForNews(cursor: number, signal: AbortSignal | undefined): Promise<void> {
    let delay = POLL_MIN_MS;
    while (!this.#closing && !signal?.aborted && this.#next <= cursor + 1) {
      if (await this.#sleep(delay, signal)) return;
      if (this.#closing || signal?.aborted) return;
      if ((await this.#end()) > cursor + 1) return;
      delay = Math.min(delay * 2, POLL_MAX_MS);
    }
  }

  /** Resolves true when woken by a local commit, false after `ms`. */
  #sleep(ms: number, signal: AbortSignal | undefined): Promise<boolean> {
    return new Promise((resolve) => {
      const done = (woken: boolean) => {
        clearTimeout(timer);
        this.#waiters.delete(wake);
        signal?.removeEventListener("abort", wake);
        resolve(woken);
      };
      const wake = () => done(true);
      const timer = setTimeout(() => done(false), ms);
      this.#waiters.add(wake);
      signal?.addEventListener("abort", wake, { once: true });
    });
  }

  #wake(): void {
    for (const wake of [...this.#waiters]) wake();
  }

  /**
   * Recomputes every digest and parent link, and checks positions, versions
   * and large payloads.
   *
   * @returns The problems found, by event id.
   */
  async verify(): Promise<VerifyReport> {
    this.#assertOpen();
    const problems: VerifyProblem[] = [];
    const report = await verifyLog(this.#scanTolerant(problems));
    const all = [...problems, ...report.problems].sort((a, b) =>
      a.position < b.position ? -1 : a.position > b.position ? 1 : 0
    );
    return { ok: all.length === 0, checked: report.checked, problems: all };
  }

  async *#scanTolerant(problems: VerifyProblem[]): AsyncIterableIterator<EventRecord> {
    let expected = 1;
    const pages = this.kv.list<Uint8Array>({ prefix: PAGE }, { batchSize: 100 });
    for await (const page of retryLockedIterable(pages)) {
      const start = page.key[2] as number;
      let events: StoredEvent[];
      try {
        events = decodePage(page.value);
      } catch {
        problems.push({ id: "?", position: formatPosition(start), reason: "page is unreadable" });
        continue;
      }
      if (start !== expected) {
        problems.push({
          id: events[0]?.i ?? "?",
          position: formatPosition(start),
          reason: `gap in positions: expected ${expected}`,
        });
      }
      expected = start + events.length;
      for (const [i, stored] of events.entries()) {
        let payload: unknown;
        try {
          payload = await this.#payloadOf(stored);
        } catch (error) {
          problems.push({
            id: stored.i,
            position: formatPosition(start + i),
            reason: (error as Error).message,
          });
          payload = undefined;
        }
        yield toRecord(stored, start + i, payload);
      }
    }
  }

  /**
   * Stores exported records, keeping their ids, timestamps, metadata and
   * parents; records whose id is already stored are skipped, so importing the
   * same export twice adds nothing. Records are imported in order; on a bad
   * record the import stops there, and what was imported stays.
   *
   * @param records Records as returned by `read()` of any store.
   * @returns How many were imported and how many were already stored.
   * @throws {TypeError} When a record is malformed, its parent is missing or its digest does not match.
   */
  async importEvents(
    records: Iterable<EventRecord> | AsyncIterable<EventRecord>,
  ): Promise<ImportResult> {
    this.#assertOpen();
    const result: ImportResult = { imported: 0, skipped: 0 };
    const seen = new Map<string, string>();
    let chunk: { record: EventRecord; index: number }[] = [];
    const flush = async () => {
      const existing = await Promise.all(chunk.map(({ record }) => this.get(record.id)));
      const appends: Promise<AppendResult>[] = [];
      const ready: [EventRecord, PreparedInput, string, string | undefined][] = [];
      for (const [n, { record, index }] of chunk.entries()) {
        if (existing[n] !== null || seen.has(record.id)) {
          result.skipped++;
          continue;
        }
        const prepared = prepareInput(record.stream, record, index);
        const parents = await Promise.all(
          prepared.parents.map((id) =>
            seen.get(id) ?? this.#parentDigest(record.stream, index, id)
          ),
        );
        const digest = eventDigest(prepared.canonical, parents);
        if (digest !== record.digest) throw digestMismatch(index, record.id);
        seen.set(record.id, digest);
        const blob = prepared.bytes > INLINE_PAYLOAD_BYTES
          ? await this.#storeBlob(prepared.canonical)
          : undefined;
        ready.push([record, prepared, digest, blob]);
      }
      for (const [record, prepared, digest, blob] of ready) {
        appends.push(this.#enqueue(record.stream, [prepared], [digest], [blob], "any", record));
      }
      for (const appended of await Promise.all(appends)) {
        if (appended === ALREADY_STORED) result.skipped++;
        else result.imported++;
      }
      chunk = [];
    };
    let index = 0;
    for await (const record of records) {
      assertRecord(record, index);
      chunk.push({ record, index: index++ });
      if (chunk.length >= 200) await flush();
    }
    await flush();
    return result;
  }

  async #storeBlob(canonical: string): Promise<string> {
    const bytes = new TextEncoder().encode(canonical);
    const hex = sha256Hex(bytes);
    const meta = await retryLocked(() => this.kv.get([...BLOB, hex]));
    if (meta.value !== null) return hex;
    const chunks = Math.ceil(bytes.length / CHUNK_BYTES);
    for (let first = 0; first < chunks; first += CHUNKS_PER_COMMIT) {
      const op = this.kv.atomic();
      for (let n = first; n < Math.min(chunks, first + CHUNKS_PER_COMMIT); n++) {
        op.set([...CHUNK, hex, n], bytes.subarray(n * CHUNK_BYTES, (n + 1) * CHUNK_BYTES));
      }
      await retryLocked(() => op.commit());
    }
    // Written last: its presence means every chunk is there.
    await retryLocked(() => this.kv.set([...BLOB, hex], { size: bytes.length, chunks }));
    return hex;
  }

  async #payloadOf(stored: StoredEvent): Promise<unknown> {
    if (stored.b === undefined) return stored.p;
    const hex = stored.b;
    const meta = await retryLocked(() =>
      this.kv.get<{ size: number; chunks: number }>([...BLOB, hex])
    );
    if (meta.value === null) throw corrupt(`payload ${hex} is missing`);
    const bytes = new Uint8Array(meta.value.size);
    for (let first = 0; first < meta.value.chunks; first += 10) {
      const keys: Deno.KvKey[] = [];
      for (let n = first; n < Math.min(meta.value.chunks, first + 10); n++) {
        keys.push([...CHUNK, hex, n]);
      }
      const chunks = await retryLocked(() => this.kv.getMany<Uint8Array[]>(keys));
      for (const [n, chunk] of chunks.entries()) {
        if (chunk.value === null) throw corrupt(`payload ${hex} is missing a chunk`);
        bytes.set(chunk.value, (first + n) * CHUNK_BYTES);
      }
    }
    if (sha256Hex(bytes) !== hex) throw corrupt(`payload ${hex} does not match its digest`);
    return JSON.parse(new TextDecoder().decode(bytes));
  }

  /**
   * Commits queued appends, writes the rest of the stream index, ends every
   * subscription and, when opened by {@linkcode openVault}, closes the database.
   *
   * @returns When everything is flushed.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closing = true;
    this.#wake();
    while (this.#writing !== null) await this.#writing;
    this.#closed = true;
    await this.#indexing;
    try {
      await this.#index(this.#next);
    } catch {
      // The next process to open the store indexes what is left.
    }
    if (this.#closeKv) this.kv.close();
  }

  #assertOpen(): void {
    if (this.#closing) throw new TypeError("The event store is closed");
  }
}

function corrupt(detail: string): TokaError {
  return new TokaError("vault_corrupt", `The vault is damaged: ${detail}`);
}

async function* retryLockedIterable<T>(
  iterator: Deno.KvListIterator<T>,
): AsyncIterableIterator<Deno.KvEntry<T>> {
  // A list that hits "database is locked" is resumed from its cursor.
  for (;;) {
    const entry = await retryLocked(() => iterator.next());
    if (entry.done) return;
    yield entry.value;
  }
}

/** A frozen copy of the payload, so that neither the caller nor a reader can change what others see. */
function ownPayload(prepared: PreparedInput): unknown {
  const payload = prepared.payload;
  return payload === null || typeof payload !== "object"
    ? payload
    : deepFreeze(JSON.parse(prepared.canonical));
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === "object" && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
