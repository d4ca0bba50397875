import type { AtomicCheck } from "../../internal/platform.ts";
/**
 * The event model and the {@linkcode EventStore} contract that the runtime
 * consumes and the vault implements.
 *
 * @module
 */

/** A JSON value: what an event payload must be. */
export type JsonValue =
  | null
  | boolean
  | number
  | string
  | JsonValue[]
  | { [key: string]: JsonValue };

/** An event as stored and returned by an {@linkcode EventStore}. */
export interface EventRecord<P = unknown> {
  /** Unique, time-ordered id (26 characters, Crockford base32). */
  id: string;
  /** Global position, strictly increasing in commit order; 16 zero-padded decimal digits. */
  position: string;
  /** Stream name, e.g. `"agent/planner"`; order is total within a stream. */
  stream: string;
  /** 1-based version within its stream. */
  version: number;
  /** Dotted kind, e.g. `"tool.completed"`. */
  kind: string;
  /** The JSON payload. */
  payload: P;
  /** Ids of causal parents. */
  parents: string[];
  /**
   * `"sha256:<hex>"` over the canonical record (every other field), its
   * parents' digests (sorted) and the digest of the event before it in
   * position order: a chain, so that no edit, removal or reordering of any
   * event passes `verify()`.
   */
  digest: string;
  /** Why the event happened, in words, if the producer said. */
  intent?: string;
  /** Milliseconds since the epoch, from the store's injected clock. */
  timestamp: number;
  /** String metadata: correlation id, causation id, actor. */
  meta: Record<string, string>;
}

/** What a producer gives to {@linkcode EventStore.append} for one event. */
export interface EventInput<P = unknown> {
  /** Dotted kind: segments of letters, digits, `_` or `-`, joined by dots. */
  kind: string;
  /** A JSON value; `null` when omitted. */
  payload?: P;
  /** Ids of causal parents; each must already be stored. */
  parents?: string[];
  /** Why the event happened, in words. */
  intent?: string;
  /** String metadata such as `correlationId`, `causationId`, `actor`. */
  meta?: Record<string, string>;
}

/**
 * The version a stream must be at for an append to proceed:
 * a number (0 for a stream that does not exist yet), `"any"` (no check),
 * `"no_stream"` (the stream must not exist) or `"exists"` (it must exist).
 */
export type ExpectedVersion = number | "any" | "no_stream" | "exists";

/**
 * A condition an append is committed under, evaluated by the store atomically
 * with its commit: when it no longer holds, nothing of the append is stored
 * and it fails with a `GuardFailedError` (other appends committed with it
 * still land). Give `check` or `holds`, or both: a Deno KV store adds `check`
 * to its commit (a KV key's versionstamp, in the store's own KV) and calls
 * `holds` only when there is no `check`; the in-memory store calls `holds`
 * (and cannot evaluate a `check` alone). A lease store makes one for a lease
 * it stores (`LeaseStore.guard`), to fence a lease holder's appends.
 */
export interface AppendGuard {
  /** The KV key whose versionstamp (`null`: absent) must be unchanged at commit. */
  readonly check?: AtomicCheck;
  /** Called synchronously at commit: false fails the append. */
  readonly holds?: () => boolean;
}

/** A write that an {@linkcode AppendEffect} makes in a Deno KV store's own database. */
export interface KvWrite {
  /** The key. */
  readonly key: AtomicCheck["key"];
  /** The value, as Deno KV stores it. */
  readonly value: unknown;
}

/**
 * Records a store beside the log keeps in step with an append, committed with
 * it, all or none: the vault's checkpoint store writes an agent's checkpoint
 * and state index this way with its `agent.state` event. Give `writes` or
 * `apply`, or both: a Deno KV store adds `writes` to its commit (keys in its
 * own KV; at most 4 of them, together at most `bytes`) and
 * calls `apply` after its commit only when there is no `writes`; the in-memory
 * store calls `apply` synchronously as it stores the events (and cannot make
 * `writes` alone).
 */
export interface AppendEffect {
  /** The writes, made from the events as they will be stored (positions known). */
  readonly writes?: (events: readonly EventRecord[]) => readonly KvWrite[];
  /** The most bytes of keys and values `writes` returns, counted against the commit's limit. */
  readonly bytes?: number;
  /** Called with the stored events, synchronously as they are stored. */
  readonly apply?: (events: readonly EventRecord[]) => void;
}

/** Options of {@linkcode EventStore.append}. */
export interface AppendOptions {
  /** The stream version required before the append; `"any"` when omitted. */
  expectedVersion?: ExpectedVersion;
  /**
   * Commit the append only while this guard holds, checked atomically with
   * the commit; `GuardFailedError` otherwise.
   */
  guard?: AppendGuard;
  /** Records to keep in step with the append, committed with it (see {@linkcode AppendEffect}). */
  effect?: AppendEffect;
}

/** What {@linkcode EventStore.append} returns. */
export interface AppendResult {
  /** The stream's version after the append. */
  version: number;
  /** The global position of the last appended event. */
  position: string;
  /** The stored events, in order. */
  events: EventRecord[];
}

/** Options of {@linkcode EventStore.read}. */
export interface ReadOptions {
  /** Only events at or after this position (at or before, reading backward). */
  from?: string;
  /** Only events of this stream. */
  stream?: string;
  /** Only events whose kind matches one of these patterns (`*` matches any run of characters). */
  kinds?: string[];
  /** At most this many events. */
  limit?: number;
  /** `"forward"` (oldest first, the default) or `"backward"`. */
  direction?: "forward" | "backward";
}

/** Options of {@linkcode EventStore.subscribe}. */
export interface SubscribeOptions {
  /**
   * Deliver events strictly after this position; omit to start at the
   * beginning of the log, or pass `"$end"` to receive only new events.
   */
  after?: string;
  /** Only events whose kind matches one of these patterns. */
  kinds?: string[];
  /** Ends the subscription; the iterator then finishes. */
  signal?: AbortSignal;
}

/**
 * The last event of a log: its position and chain digest. Kept (or published)
 * and later passed to {@linkcode EventStore.verify} as `expectHead`, it proves
 * that nothing before it was rewritten or cut off since.
 */
export interface LogHead {
  /** Position of the last event; 16 zero-padded decimal digits. */
  position: string;
  /** Its chain digest, `"sha256:<hex>"`. */
  digest: string;
}

/** Options of {@linkcode EventStore.verify}. */
export interface VerifyOptions {
  /** A head kept earlier: the log must still hold that event with that digest. */
  expectHead?: LogHead;
  /** Stops the verification: it then rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Called with the number of events checked so far, every 1,000 events. */
  onProgress?: (checked: number) => void;
}

/** One problem found by {@linkcode EventStore.verify}. */
export interface VerifyProblem {
  /** The id of the event at fault; absent where no event can be read (missing or unreadable). */
  id?: string;
  /** Its position, or the first position of what is missing or unreadable. */
  position: string;
  /** What is wrong, in one line. */
  reason: string;
}

/** What {@linkcode EventStore.verify} returns. */
export interface VerifyReport {
  /** True when no problem was found. */
  ok: boolean;
  /** How many events were checked. */
  checked: number;
  /** The problems found, in log order (at most 1,000, then a count of the rest). */
  problems: VerifyProblem[];
}

/** What {@linkcode EventStore.stats} returns. */
export interface StoreStats {
  /** Number of events in the log. */
  events: number;
  /** Number of distinct streams. */
  streams: number;
  /** Position of the last event, or `null` for an empty log. */
  head: string | null;
  /** Timestamp of the first event, or `null`. */
  firstTimestamp: number | null;
  /** Timestamp of the last event, or `null`. */
  lastTimestamp: number | null;
  /** Number of events per kind. */
  kinds: Record<string, number>;
}

/** What {@linkcode EventStore.importEvents} returns. */
export interface ImportResult {
  /** Events newly stored. */
  imported: number;
  /** Events skipped because an event with the same id was already stored. */
  skipped: number;
}

/**
 * A durable, append-only, verifiable event log. The vault provides a Deno KV
 * implementation and an in-memory one; both pass one contract suite.
 */
export interface EventStore {
  /**
   * Appends events to one stream atomically.
   *
   * @throws {VersionConflictError} When `expectedVersion` does not match; nothing is stored.
   * @throws {TypeError} When a stream name, kind, payload or parent is invalid.
   * @throws {RangeError} When an event exceeds the maximum size.
   */
  append(stream: string, events: EventInput[], options?: AppendOptions): Promise<AppendResult>;
  /** Reads the log in position order, optionally filtered. */
  read(options?: ReadOptions): AsyncIterableIterator<EventRecord>;
  /** Reads one stream in version order. */
  readStream(stream: string): AsyncIterableIterator<EventRecord>;
  /** Returns the event with this id, or `null`. */
  get(id: string): Promise<EventRecord | null>;
  /** Returns the position and chain digest of the last event, or `null` for an empty log. */
  head(): Promise<LogHead | null>;
  /** Counts events, streams and kinds. */
  stats(): Promise<StoreStats>;
  /** Catches up from the log, then follows new events live, with no gap and no duplicate. */
  subscribe(options?: SubscribeOptions): AsyncIterableIterator<EventRecord>;
  /**
   * Recomputes the digest chain and every parent link (and, where the store
   * has them, checks its indexes) and reports the first broken events by id
   * or position; with `expectHead`, also proves nothing before that head changed.
   *
   * @throws {TypeError} When `expectHead` is not a head.
   */
  verify(options?: VerifyOptions): Promise<VerifyReport>;
  /** Stores exported records, keeping their ids; records whose id is already stored are skipped. */
  importEvents(records: Iterable<EventRecord> | AsyncIterable<EventRecord>): Promise<ImportResult>;
  /** Flushes pending work and releases resources; the store is unusable afterwards. */
  close(): Promise<void>;
}
