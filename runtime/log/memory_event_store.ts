import type {
  AppendEffect,
  AppendOptions,
  AppendResult,
  EventInput,
  EventRecord,
  EventStore,
  ImportResult,
  LogHead,
  ReadOptions,
  StoreStats,
  SubscribeOptions,
  VerifyOptions,
  VerifyReport,
} from "./event_store.ts";
import { compileKindFilter } from "./kind_pattern.ts";
import {
  assertRecord,
  assertStream,
  assertTimestamp,
  deepFreeze,
  formatPosition,
  makeEventId,
  parsePosition,
  type PreparedInput,
  prepareInput,
  prepareInputs,
  recordDigest,
} from "./event_rules.ts";
import {
  assertEffect,
  assertGuard,
  checkExpectedVersion,
  checkHolds,
  digestMismatch,
  isBackward,
  readLimit,
  startAfter,
} from "./append_rules.ts";
import { canonicalOf, ChainVerifier } from "./chain_verify.ts";
import {
  exportedDigest,
  type ImportLink,
  previousInExport,
  streamConflict,
} from "./import_rules.ts";

/** Options of {@linkcode MemoryEventStore}. */
export interface MemoryEventStoreOptions {
  /** Milliseconds since the epoch for event timestamps; `Date.now` by default. */
  clock?: () => number;
  /** Fills random bytes for event ids; `crypto.getRandomValues` by default. */
  randomBytes?: (bytes: Uint8Array) => Uint8Array;
}

/**
 * An {@linkcode EventStore} held in memory: fast, throwaway, and bound by the
 * same contract as the Deno KV store. Use it in tests and for a runtime that
 * needs no durability.
 *
 * @example
 * ```ts
 * import { MemoryEventStore } from "@toka/runtime/vault";
 *
 * const store = new MemoryEventStore();
 * await store.append("orders/1", [{ kind: "order.placed", payload: { total: 12 } }]);
 * for await (const event of store.readStream("orders/1")) console.log(event.kind);
 * await store.close();
 * ```
 */
export class MemoryEventStore implements EventStore, AsyncDisposable {
  #events: EventRecord[] = [];
  #streams = new Map<string, number[]>();
  #byId = new Map<string, number>();
  /** Exported digests of imported events stored with another one (at another position). */
  #exported = new Map<string, string>();
  #lastImported: ImportLink | undefined;
  #waiters = new Set<() => void>();
  #clock: () => number;
  #randomBytes: (bytes: Uint8Array) => Uint8Array;
  #closed = false;

  /**
   * Creates an empty store.
   *
   * @param options The clock and random source.
   */
  constructor(options: MemoryEventStoreOptions = {}) {
    this.#clock = options.clock ?? Date.now;
    this.#randomBytes = options.randomBytes ?? ((b) => crypto.getRandomValues(b));
  }

  /**
   * Appends events to one stream atomically.
   *
   * @param stream The stream name.
   * @param events The events to append, at least one.
   * @param options The expected version, a guard and an effect to make with it.
   * @returns The stream's new version, the last position and the stored events.
   * @throws {VersionConflictError} When the expected version does not match.
   * @throws {GuardFailedError} When the guard's `holds()` returns false.
   * @throws {TypeError} When a stream name, kind, payload, parent, guard or effect is invalid.
   * @throws {RangeError} When a payload exceeds the maximum size.
   */
  append(stream: string, events: EventInput[], options: AppendOptions = {}): Promise<AppendResult> {
    try {
      this.#assertOpen();
      assertGuard(options.guard, true);
      assertEffect(options.effect, true);
      const prepared = prepareInputs(stream, events);
      const current = this.#streams.get(stream)?.length ?? 0;
      checkExpectedVersion(stream, options.expectedVersion, current);
      // Stored synchronously below: nothing can change what the guard saw.
      checkHolds(stream, options.guard);
      return Promise.resolve(this.#store(stream, prepared, current, undefined, options.effect));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  #store(
    stream: string,
    prepared: PreparedInput[],
    current: number,
    imported?: EventRecord,
    effect?: AppendEffect,
  ): AppendResult {
    // Everything is checked and built before anything is stored.
    const now = imported?.timestamp ?? this.#clock();
    assertTimestamp(now);
    let previous = this.#events[this.#events.length - 1]?.digest ?? null;
    const records = prepared.map((p, i) => {
      const position = this.#events.length + i + 1;
      const record: EventRecord = {
        id: imported?.id ?? makeEventId(now, position, this.#randomBytes(new Uint8Array(4))),
        position: formatPosition(position),
        stream,
        version: current + i + 1,
        kind: p.kind,
        payload: deepFreeze(JSON.parse(p.canonical)),
        parents: p.parents,
        digest: "",
        timestamp: now,
        meta: p.meta,
      };
      if (p.intent !== undefined) record.intent = p.intent;
      record.digest = recordDigest(
        { ...record, position, canonicalPayload: p.canonical },
        p.parents.map((id) => this.#parentDigest(stream, id)),
        previous,
      );
      previous = record.digest;
      return record;
    });
    if (imported !== undefined && records[0].digest !== imported.digest) {
      this.#exported.set(imported.id, imported.digest);
    }
    // Last before storing: an effect that throws stores nothing.
    effect?.apply?.(records);
    let indexes = this.#streams.get(stream);
    if (indexes === undefined) this.#streams.set(stream, indexes = []);
    for (const record of records) {
      this.#byId.set(record.id, this.#events.length);
      indexes.push(this.#events.length);
      this.#events.push(Object.freeze(record));
    }
    for (const wake of this.#waiters) wake();
    this.#waiters.clear();
    const last = records[records.length - 1];
    return { version: last.version, position: last.position, events: records };
  }

  #parentDigest(stream: string, id: string): string {
    const index = this.#byId.get(id);
    if (index === undefined) {
      throw new TypeError(
        `Invalid parent of an event in stream "${stream}": "${id}" is not stored`,
      );
    }
    return this.#events[index].digest;
  }

  /**
   * Reads the log in position order, optionally filtered.
   *
   * @param options Start position, stream, kinds, limit and direction.
   * @returns The matching events.
   * @throws {TypeError} When an option is invalid.
   */
  async *read(options: ReadOptions = {}): AsyncIterableIterator<EventRecord> {
    this.#assertOpen();
    const matches = compileKindFilter(options.kinds);
    let remaining = readLimit(options.limit);
    const backward = isBackward(options.direction);
    if (options.stream !== undefined) assertStream(options.stream);
    const from = options.from === undefined ? undefined : parsePosition(options.from, "from");
    const indexes = options.stream === undefined
      ? undefined
      : (this.#streams.get(options.stream) ?? []);
    const count = indexes?.length ?? this.#events.length;
    // Both the log and a stream's indexes are in position order: start at
    // `from` instead of skipping up to it.
    let start = 0;
    if (from !== undefined) {
      const before = indexes === undefined
        ? Math.max(0, Math.min(count, from - 1))
        : countBelow(indexes, from - 1);
      const through = indexes === undefined ? Math.min(count, from) : countBelow(indexes, from);
      start = backward ? count - through : before;
    }
    for (let i = start; i < count && remaining > 0; i++) {
      const index = indexes === undefined
        ? (backward ? count - 1 - i : i)
        : indexes[backward ? count - 1 - i : i];
      const record = this.#events[index];
      if (record === undefined) break;
      if (!matches(record.kind)) continue;
      remaining--;
      yield record;
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

  /**
   * Returns the event with this id.
   *
   * @param id The event id.
   * @returns The event, or `null`.
   */
  get(id: string): Promise<EventRecord | null> {
    const index = this.#byId.get(id);
    return Promise.resolve(index === undefined ? null : this.#events[index]);
  }

  /**
   * Returns the position and chain digest of the last event.
   *
   * @returns The head, or `null` for an empty log.
   */
  head(): Promise<LogHead | null> {
    const last = this.#events[this.#events.length - 1];
    return Promise.resolve(
      last === undefined ? null : { position: last.position, digest: last.digest },
    );
  }

  /**
   * Counts events, streams and kinds.
   *
   * @returns The counts and the first and last timestamps.
   */
  stats(): Promise<StoreStats> {
    const kinds: Record<string, number> = {};
    for (const event of this.#events) kinds[event.kind] = (kinds[event.kind] ?? 0) + 1;
    const n = this.#events.length;
    return Promise.resolve({
      events: n,
      streams: this.#streams.size,
      head: n === 0 ? null : formatPosition(n),
      firstTimestamp: this.#events[0]?.timestamp ?? null,
      lastTimestamp: this.#events[n - 1]?.timestamp ?? null,
      kinds,
    });
  }

  /**
   * Delivers stored events after a position, then new ones as they are appended.
   *
   * @param options Where to start, which kinds, and a signal that ends it.
   * @returns The events, with no gap and no duplicate.
   * @throws {TypeError} When `after` is not a position.
   */
  async *subscribe(options: SubscribeOptions = {}): AsyncIterableIterator<EventRecord> {
    this.#assertOpen();
    const matches = compileKindFilter(options.kinds);
    const signal = options.signal;
    let next = await startAfter(options.after, () => this.#events.length);
    while (!this.#closed && !signal?.aborted) {
      while (next < this.#events.length) {
        const record = this.#events[next++];
        if (matches(record.kind)) yield record;
        if (this.#closed || signal?.aborted) return;
      }
      await new Promise<void>((resolve) => {
        const wake = () => {
          signal?.removeEventListener("abort", wake);
          this.#waiters.delete(wake);
          resolve();
        };
        this.#waiters.add(wake);
        signal?.addEventListener("abort", wake, { once: true });
      });
    }
  }

  /**
   * Recomputes the digest chain and every parent link.
   *
   * @param options A head kept earlier, which the log must still hold; a signal; a progress callback.
   * @returns The problems found, by event id.
   * @throws {TypeError} When `expectHead` is not a head.
   */
  async verify(options: VerifyOptions = {}): Promise<VerifyReport> {
    const verifier = new ChainVerifier(
      (id) => {
        const index = this.#byId.get(id);
        return Promise.resolve(
          index === undefined
            ? undefined
            : { position: index + 1, digest: this.#events[index].digest },
        );
      },
      options.expectHead,
      options,
    );
    for (const [i, record] of this.#events.entries()) {
      await verifier.check(record, i + 1, canonicalOf(record.payload));
    }
    return verifier.finish(this.#events.length + 1);
  }

  /**
   * Stores exported records in order, keeping their ids, versions,
   * timestamps and metadata, and their positions and digests when the log
   * is empty or ends just before them. Each record's digest is checked
   * against the export's chain first; a record of a stream that has other
   * events here is refused. Records whose id is stored are skipped, so
   * importing the same export twice adds nothing.
   *
   * @param records Records as returned by `read()` of any store, from the start of the log.
   * @returns How many were imported and how many were already stored.
   * @throws {TypeError} When a record is malformed, its digest does not match or its stream has other events here.
   */
  async importEvents(
    records: Iterable<EventRecord> | AsyncIterable<EventRecord>,
  ): Promise<ImportResult> {
    this.#assertOpen();
    let imported = 0;
    let skipped = 0;
    let index = 0;
    // The chain goes on from the previous import call (e.g. the next batch of one export).
    let last = this.#lastImported;
    for await (const record of records) {
      assertRecord(record, index);
      if (this.#byId.has(record.id)) skipped++;
      else {
        const prepared = prepareInput(record.stream, record, index);
        const previous = await previousInExport(
          record,
          index,
          last,
          (position) => Promise.resolve(this.#events[position - 1]?.digest),
        );
        const parents = prepared.parents.map((id) =>
          this.#exported.get(id) ?? this.#parentDigest(record.stream, id)
        );
        if (exportedDigest(record, prepared, parents, previous) !== record.digest) {
          throw digestMismatch(index, record.id);
        }
        const current = this.#streams.get(record.stream)?.length ?? 0;
        if (record.version !== current + 1) throw streamConflict(index, record, current);
        this.#store(record.stream, [prepared], current, record);
        imported++;
      }
      this.#lastImported = last = { position: Number(record.position), digest: record.digest };
      index++;
    }
    return { imported, skipped };
  }

  /**
   * Ends every subscription; the store is unusable afterwards.
   *
   * @returns When closed.
   */
  close(): Promise<void> {
    this.#closed = true;
    for (const wake of this.#waiters) wake();
    this.#waiters.clear();
    return Promise.resolve();
  }

  /**
   * Closes the store, for `await using store = new MemoryEventStore()`.
   *
   * @returns When closed, as {@linkcode MemoryEventStore.close}.
   */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #assertOpen(): void {
    if (this.#closed) throw new TypeError("The event store is closed");
  }
}

/** How many of the sorted indexes are below `index`. */
function countBelow(indexes: number[], index: number): number {
  let low = 0;
  let high = indexes.length;
  while (low < high) {
    const mid = (low + high) >> 1;
    if (indexes[mid] < index) low = mid + 1;
    else high = mid;
  }
  return low;
}
