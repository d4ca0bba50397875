import type {
  AppendOptions,
  AppendResult,
  EventInput,
  EventRecord,
  EventStore,
  ImportResult,
  ReadOptions,
  StoreStats,
  SubscribeOptions,
  VerifyReport,
} from "../runtime/event_store.ts";
import { compileKindFilter } from "../runtime/kind_pattern.ts";
import {
  assertRecord,
  assertStream,
  eventDigest,
  formatPosition,
  makeEventId,
  parsePosition,
  type PreparedInput,
  prepareInput,
  prepareInputs,
} from "./_event.ts";
import { checkExpectedVersion, digestMismatch, readLimit, startAfter } from "./_append.ts";
import { verifyLog } from "./_verify.ts";

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
   * @param options The expected version.
   * @returns The stream's new version, the last position and the stored events.
   * @throws {VersionConflictError} When the expected version does not match.
   * @throws {TypeError} When a stream name, kind, payload or parent is invalid.
   * @throws {RangeError} When a payload exceeds the maximum size.
   */
  append(stream: string, events: EventInput[], options: AppendOptions = {}): Promise<AppendResult> {
    try {
      this.#assertOpen();
      const prepared = prepareInputs(stream, events);
      const current = this.#streams.get(stream)?.length ?? 0;
      checkExpectedVersion(stream, options.expectedVersion, current);
      return Promise.resolve(this.#store(stream, prepared, current));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  #store(
    stream: string,
    prepared: PreparedInput[],
    current: number,
    imported?: EventRecord,
  ): AppendResult {
    // Everything is checked and built before anything is stored.
    const records = prepared.map((p, i) => {
      const position = this.#events.length + i + 1;
      const timestamp = imported?.timestamp ?? this.#clock();
      const record: EventRecord = {
        id: imported?.id ?? makeEventId(timestamp, position, this.#randomBytes(new Uint8Array(4))),
        position: formatPosition(position),
        stream,
        version: current + i + 1,
        kind: p.kind,
        payload: deepFreeze(JSON.parse(p.canonical)),
        parents: p.parents,
        digest: eventDigest(p.canonical, p.parents.map((id) => this.#parentDigest(stream, id))),
        timestamp,
        meta: p.meta,
      };
      if (p.intent !== undefined) record.intent = p.intent;
      return record;
    });
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
    const backward = options.direction === "backward";
    if (options.stream !== undefined) assertStream(options.stream);
    const from = options.from === undefined ? undefined : parsePosition(options.from, "from");
    const indexes = options.stream === undefined
      ? undefined
      : (this.#streams.get(options.stream) ?? []);
    const count = indexes?.length ?? this.#events.length;
    for (let i = 0; i < count && remaining > 0; i++) {
      const index = indexes === undefined
        ? (backward ? count - 1 - i : i)
        : indexes[backward ? count - 1 - i : i];
      const record = this.#events[index];
      if (record === undefined) break;
      if (from !== undefined && (backward ? index + 1 > from : index + 1 < from)) continue;
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
   * Returns the position of the last event.
   *
   * @returns The position, or `null` for an empty log.
   */
  head(): Promise<string | null> {
    const n = this.#events.length;
    return Promise.resolve(n === 0 ? null : formatPosition(n));
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
   * Recomputes every digest and parent link.
   *
   * @returns The problems found, by event id.
   */
  verify(): Promise<VerifyReport> {
    return verifyLog(this.read());
  }

  /**
   * Stores exported records, keeping their ids, timestamps and metadata.
   *
   * @param records Records as returned by `read()` of any store.
   * @returns How many were imported and how many were already stored.
   * @throws {TypeError} When a record is malformed or its digest does not match.
   */
  async importEvents(
    records: Iterable<EventRecord> | AsyncIterable<EventRecord>,
  ): Promise<ImportResult> {
    this.#assertOpen();
    let imported = 0;
    let skipped = 0;
    let index = 0;
    for await (const record of records) {
      assertRecord(record, index);
      if (this.#byId.has(record.id)) skipped++;
      else {
        const prepared = prepareInput(record.stream, record, index);
        const digest = eventDigest(
          prepared.canonical,
          prepared.parents.map((id) => this.#parentDigest(record.stream, id)),
        );
        if (digest !== record.digest) throw digestMismatch(index, record.id);
        this.#store(
          record.stream,
          [prepared],
          this.#streams.get(record.stream)?.length ?? 0,
          record,
        );
        imported++;
      }
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

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === "object") {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}
