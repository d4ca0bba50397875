/**
 * The event bus: every event the runtime sees goes through it. With a vault
 * attached an event is appended before any subscriber sees it, and a slow
 * subscriber catches up from the vault instead of losing events.
 *
 * @module
 */

import { getLogger } from "@logtape/logtape";
import { VersionConflictError } from "./errors.ts";
import type { EventInput, EventRecord, EventStore, ExpectedVersion } from "./event_store.ts";
import { compileKindFilter, type KindFilter } from "./kind_pattern.ts";
import { assertKind, assertStream, formatPosition, IdMaker, PositionMaker } from "./_ids.ts";

/** What {@linkcode EventBus.emit} takes: an event, and where to append it. */
export interface EmitInput<P = unknown> extends EventInput<P> {
  /** The stream to append to; the bus's default stream (`"runtime"`) when omitted. */
  stream?: string;
  /** The version the stream must be at; `"any"` when omitted. */
  expectedVersion?: ExpectedVersion;
}

/** What a subscription handler gets besides the event. */
export interface HandlerContext {
  /**
   * Emits an event caused by the one being handled: it gets that event as a
   * parent and shares its correlation id.
   */
  emit(input: EmitInput): Promise<EventRecord>;
}

/** A subscription handler. Events reach it one at a time, in log order. */
export type EventHandler = (
  event: EventRecord,
  context: HandlerContext,
) => void | Promise<void>;

/** Options of the {@linkcode EventBus} constructor. */
export interface EventBusOptions {
  /** The vault: events are appended there before delivery. Without one, events live in memory only. */
  store?: EventStore;
  /** Events each subscriber may have waiting (1000). */
  bufferSize?: number;
  /** Milliseconds since the epoch for events made without a vault; `Date.now` by default. */
  clock?: () => number;
  /** The stream of events emitted without one (`"runtime"`). */
  defaultStream?: string;
}

/** Options of {@linkcode EventBus.subscribe}. */
export interface BusSubscribeOptions {
  /**
   * Replay stored events strictly after this position first (a vault is
   * required); by default only events emitted after subscribing are delivered.
   */
  after?: string;
  /** Closes the subscription when aborted. */
  signal?: AbortSignal;
}

/** A live subscription to the bus. */
export interface Subscription {
  /** The kind patterns it receives. */
  readonly patterns: readonly string[];
  /** Events lost because the buffer was full and no vault was attached. */
  readonly dropped: number;
  /** Events read back from the vault: replayed with `after`, or caught up after an overflow. */
  readonly replayed: number;
  /** True once closed. */
  readonly closed: boolean;
  /** Resolves when every event delivered so far has been handled (or taken by the iterator). */
  idle(): Promise<void>;
  /** Stops delivery; waits for the event being handled, drops the rest. */
  close(): Promise<void>;
}

/** A subscription consumed with `for await`. Leaving the loop closes it. */
export interface EventStream extends Subscription, AsyncIterableIterator<EventRecord> {}

const logger = getLogger(["toka", "runtime", "bus"]);
// Shared and frozen, like the vault's records, to spare two allocations per emit.
const NO_PARENTS: string[] = Object.freeze([]) as unknown as string[];
const NO_META: Record<string, string> = Object.freeze({});

/**
 * Delivers events to subscribers by kind pattern (`"task.*"`, `"*"`), through
 * a handler or an async iterator, each with its own bounded buffer.
 *
 * Overflow: with a vault, a subscriber whose buffer is full stops buffering
 * and, once it has handled what it holds, reads the missed events back from
 * the vault, so it never loses one. Without a vault, the oldest waiting event
 * is dropped and counted in {@linkcode Subscription.dropped} (logged once per
 * subscription), like a broadcast channel.
 *
 * Without a vault, events are not validated beyond kind and stream, `digest`
 * is empty, positions count from 1 in each bus, and a synchronous burst of
 * emits shares one clock reading (re-read every 256 events).
 *
 * @example Handler and iterator forms
 * ```ts
 * import { EventBus } from "@toka/runtime/runtime";
 *
 * const bus = new EventBus();
 * const seen: string[] = [];
 * bus.subscribe(["task.*"], (event, ctx) => {
 *   seen.push(event.kind);
 *   if (event.kind === "task.created") return ctx.emit({ kind: "task.done" }).then(() => {});
 * });
 * const stream = bus.subscribe(["task.done"]);
 * await bus.emit({ kind: "task.created", payload: { id: 1 } });
 * for await (const event of stream) {
 *   console.log(event.kind, event.parents.length); // task.done 1
 *   break;
 * }
 * await bus.close();
 * ```
 */
export class EventBus {
  #store: EventStore | undefined;
  #capacity: number;
  #clock: () => number;
  #stream: string;
  #subscribers: Subscriber[] = [];
  #ids = new IdMaker();
  #positions = new PositionMaker();
  #count = 0;
  #versions = new Map<string, { version: number }>();
  // The last kind checked and the last stream's counter: a run of emits
  // usually repeats both, and comparing strings costs less than hashing them.
  #lastKind: string | undefined;
  #lastStream: string | undefined;
  #lastCounter: { version: number } = { version: 0 };
  #tick: number | undefined;
  #ticks = 0;
  #untick = () => this.#tick = undefined;

  /**
   * Creates a bus.
   *
   * @param options The vault, buffer size, clock and default stream.
   * @throws {RangeError} When `bufferSize` is not a whole number ≥ 1.
   * @throws {TypeError} When `defaultStream` is not a valid stream name.
   */
  constructor(options: EventBusOptions = {}) {
    const capacity = options.bufferSize ?? 1000;
    if (!Number.isSafeInteger(capacity) || capacity < 1) {
      throw new RangeError(
        `Invalid buffer size ${JSON.stringify(capacity)}: expected a whole number ≥ 1`,
      );
    }
    this.#store = options.store;
    this.#capacity = capacity;
    this.#clock = options.clock ?? Date.now;
    this.#stream = options.defaultStream ?? "runtime";
    assertStream(this.#stream);
  }

  /** The vault events are appended to, if any. */
  get store(): EventStore | undefined {
    return this.#store;
  }

  /**
   * Emits an event: appends it to the vault (if any), then delivers it.
   *
   * @param input The event and its stream.
   * @param cause The event being handled, if any: it becomes a parent, and its
   *   correlation id (or its id) becomes the new event's `meta.correlationId`.
   * @returns The stored event; delivery is asynchronous.
   * @throws {TypeError} When the kind, stream, cause or another field is invalid.
   * @throws {VersionConflictError} When `expectedVersion` does not match.
   *
   * @example
   * ```ts
   * import { EventBus } from "@toka/runtime/runtime";
   *
   * const bus = new EventBus();
   * const event = await bus.emit({ kind: "task.created", payload: { id: 1 } });
   * console.log(event.position); // 0000000000000001
   * ```
   */
  emit(input: EmitInput, cause?: EventRecord): Promise<EventRecord> {
    try {
      if (input === null || typeof input !== "object") {
        throw new TypeError(
          `Invalid event ${JSON.stringify(input)}: expected an object with a kind`,
        );
      }
      const stream = input.stream ?? this.#stream;
      let parents = input.parents;
      let meta = input.meta;
      if (cause !== undefined) {
        if (
          cause === null || typeof cause !== "object" || typeof cause.id !== "string" ||
          cause.meta === null || typeof cause.meta !== "object"
        ) {
          throw new TypeError("Invalid cause: expected the event record being handled");
        }
        parents = parents === undefined
          ? [cause.id]
          : parents.includes(cause.id)
          ? parents
          : [cause.id, ...parents];
        meta = {
          ...meta,
          correlationId: cause.meta.correlationId ?? cause.id,
          causationId: cause.id,
        };
      }
      if (this.#store !== undefined) {
        const event: EventInput = { kind: input.kind, payload: input.payload, parents, meta };
        if (input.intent !== undefined) event.intent = input.intent;
        return this.#append(this.#store, stream, event, input.expectedVersion);
      }
      const kind = input.kind;
      if (kind !== this.#lastKind) {
        assertKind(kind);
        this.#lastKind = kind;
      }
      // The common case inline: same stream as the last emit, no expected version.
      const version = stream === this.#lastStream && input.expectedVersion === undefined
        ? ++this.#lastCounter.version
        : this.#nextVersion(stream, input.expectedVersion);
      const n = ++this.#count;
      let timestamp = this.#tick;
      if (timestamp === undefined || ++this.#ticks >= 256) timestamp = this.#readClock();
      const record: EventRecord = {
        id: this.#ids.next(timestamp, n),
        position: this.#positions.format(n),
        stream,
        version,
        kind,
        payload: input.payload ?? null,
        parents: parents ?? NO_PARENTS,
        digest: "",
        timestamp,
        meta: meta ?? NO_META,
      };
      if (input.intent !== undefined) record.intent = input.intent;
      this.#dispatch(record);
      return Promise.resolve(record);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  async #append(
    store: EventStore,
    stream: string,
    event: EventInput,
    expectedVersion: ExpectedVersion | undefined,
  ): Promise<EventRecord> {
    const { events } = await store.append(stream, [event], { expectedVersion });
    this.#dispatch(events[0]);
    return events[0];
  }

  // Reading the clock costs more than the rest of an in-memory emit, so a
  // synchronous burst of emits shares one reading (re-read every 256 emits).
  #readClock(): number {
    if (this.#tick === undefined) queueMicrotask(this.#untick);
    this.#ticks = 0;
    return this.#tick = this.#clock();
  }

  #nextVersion(stream: string, expected: ExpectedVersion | undefined): number {
    let counter = this.#lastCounter;
    if (stream !== this.#lastStream) {
      if (stream !== this.#stream) assertStream(stream);
      counter = this.#versions.get(stream) ?? { version: 0 };
      this.#versions.set(stream, counter);
      this.#lastStream = stream;
      this.#lastCounter = counter;
    }
    if (expected === undefined) return ++counter.version;
    const current = counter.version;
    if (expected !== undefined && expected !== "any") {
      const ok = expected === "no_stream"
        ? current === 0
        : expected === "exists"
        ? current > 0
        : typeof expected === "number"
        ? current === expected
        : undefined;
      if (ok === undefined) {
        throw new TypeError(
          `Invalid expected version ${
            JSON.stringify(expected)
          }: use a number ≥ 0, "any", "no_stream" or "exists"`,
        );
      }
      if (!ok) throw new VersionConflictError(stream, expected, current);
    }
    return ++counter.version;
  }

  #dispatch(record: EventRecord): void {
    const subscribers = this.#subscribers;
    for (let i = 0; i < subscribers.length; i++) subscribers[i].offer(record);
  }

  /**
   * Subscribes a handler. Events reach it one at a time in log order; an
   * error it throws is logged and the next event is delivered.
   *
   * @param patterns Kind patterns, e.g. `["task.*"]` or `"*"`.
   * @param handler Called for each matching event.
   * @param options Replay position and abort signal.
   * @returns The subscription.
   * @throws {TypeError} When a pattern is invalid, or `after` is given without a vault.
   */
  subscribe(
    patterns: string | readonly string[],
    handler: EventHandler,
    options?: BusSubscribeOptions,
  ): Subscription;
  /**
   * Subscribes an async iterator. Leaving the `for await` loop closes it.
   *
   * @param patterns Kind patterns, e.g. `["task.*"]` or `"*"`.
   * @param options Replay position and abort signal.
   * @returns The subscription, to iterate.
   * @throws {TypeError} When a pattern is invalid, or `after` is given without a vault.
   */
  subscribe(patterns: string | readonly string[], options?: BusSubscribeOptions): EventStream;
  subscribe(
    patterns: string | readonly string[],
    handlerOrOptions?: EventHandler | BusSubscribeOptions,
    maybeOptions?: BusSubscribeOptions,
  ): Subscription | EventStream {
    const list = typeof patterns === "string" ? [patterns] : [...patterns];
    if (!Array.isArray(patterns) && typeof patterns !== "string") {
      throw new TypeError(`Invalid kind patterns ${JSON.stringify(patterns)}: expected a list`);
    }
    const filter = cached(compileKindFilter(list.length === 0 ? ["*"] : list));
    const handler = typeof handlerOrOptions === "function" ? handlerOrOptions : undefined;
    const options = (handler ? maybeOptions : handlerOrOptions as BusSubscribeOptions) ?? {};
    if (options.after !== undefined && this.#store === undefined) {
      throw new TypeError("Cannot replay events: no vault is attached to the bus");
    }
    if (options.after !== undefined && !/^[0-9]{16}$/.test(options.after)) {
      throw new TypeError(`Invalid position ${JSON.stringify(options.after)}: expected 16 digits`);
    }
    const subscriber = new Subscriber(
      Object.freeze(list),
      filter,
      this.#capacity,
      this.#store,
      handler,
      (s) => {
        this.#subscribers = this.#subscribers.filter((x) => x !== s);
      },
      (input, cause) => this.emit(input, cause),
      options,
    );
    this.#subscribers = [...this.#subscribers, subscriber];
    return subscriber;
  }

  /**
   * Resolves when every subscriber has handled every event delivered so far.
   *
   * @returns When idle.
   */
  async idle(): Promise<void> {
    // Handlers may emit while we wait, so check again until nothing moved.
    for (let round = 0; round < 1000; round++) {
      const before = this.#count;
      await Promise.all(this.#subscribers.map((s) => s.idle()));
      if (before === this.#count && this.#subscribers.every((s) => s.isIdle)) return;
    }
  }

  /**
   * Closes every subscription, after the events being handled.
   *
   * @returns When closed.
   */
  async close(): Promise<void> {
    await Promise.all(this.#subscribers.map((s) => s.close()));
  }
}

// Kinds repeat, so remember each answer instead of running the globs again.
function cached(filter: KindFilter): KindFilter {
  const known = new Map<string, boolean>();
  return (kind) => {
    let match = known.get(kind);
    if (match === undefined) {
      match = filter(kind);
      if (known.size >= 1024) known.clear();
      known.set(kind, match);
    }
    return match;
  };
}

const MIN_RING = 16;
// A ring this large is dropped once empty, so a burst does not pin memory.
const MAX_IDLE_RING = 1024;
const emptyRing = (): (EventRecord | undefined)[] => new Array(MIN_RING).fill(undefined);

class Subscriber implements EventStream {
  readonly patterns: readonly string[];
  dropped = 0;
  replayed = 0;
  closed = false;
  #filter: KindFilter;
  #capacity: number;
  #store: EventStore | undefined;
  #handler: EventHandler | undefined;
  #remove: (s: Subscriber) => void;
  #emit: (input: EmitInput, cause?: EventRecord) => Promise<EventRecord>;
  #context: HandlerContext;
  #current: EventRecord | undefined;
  // A ring of a power-of-two size that grows up to the capacity: no
  // allocation per event, and no copy once it has grown.
  #ring: (EventRecord | undefined)[] = emptyRing();
  #mask = MIN_RING - 1;
  #head = 0;
  #size = 0;
  #lastKind: string | undefined;
  #lastMatch = false;
  #last: string | undefined;
  #catchingUp = false;
  #missed = false;
  #scheduled = false;
  #running: Promise<void> | undefined;
  #draining = false;
  #wake: (() => void) | undefined;
  #idleWaiters: (() => void)[] = [];
  #iterator: AsyncGenerator<EventRecord> | undefined;
  #signal: AbortSignal | undefined;
  #onAbort = () => void this.close();

  constructor(
    patterns: readonly string[],
    filter: KindFilter,
    capacity: number,
    store: EventStore | undefined,
    handler: EventHandler | undefined,
    remove: (s: Subscriber) => void,
    emit: (input: EmitInput, cause?: EventRecord) => Promise<EventRecord>,
    options: BusSubscribeOptions,
  ) {
    this.patterns = patterns;
    this.#filter = filter;
    this.#capacity = capacity;
    this.#store = store;
    this.#handler = handler;
    this.#remove = remove;
    this.#emit = emit;
    this.#context = { emit: (input) => this.#emit(input, this.#current) };
    if (options.after !== undefined) {
      this.#last = options.after;
      this.#catchingUp = true;
      this.#schedule();
    }
    this.#signal = options.signal;
    if (this.#signal?.aborted) void this.close();
    else this.#signal?.addEventListener("abort", this.#onAbort, { once: true });
  }

  get isIdle(): boolean {
    return this.#size === 0 && !this.#catchingUp && !this.#draining;
  }

  offer(record: EventRecord): void {
    if (this.closed) return;
    const kind = record.kind;
    if (kind !== this.#lastKind) {
      this.#lastMatch = this.#filter(kind);
      this.#lastKind = kind;
    }
    if (!this.#lastMatch) return;
    if (this.#store !== undefined) {
      if (this.#last !== undefined && record.position <= this.#last) return;
      if (this.#catchingUp) {
        this.#missed = true;
        return;
      }
      if (this.#size >= this.#capacity) {
        // Stop buffering; the vault holds everything from here on.
        this.#catchingUp = true;
        this.#missed = true;
        return;
      }
      this.#last = record.position;
    } else if (this.#size >= this.#capacity) {
      this.#ring[this.#head] = undefined;
      this.#head = (this.#head + 1) & this.#mask;
      this.#size--;
      if (this.dropped++ === 0) {
        logger.warn(
          "Subscription to {patterns} dropped events: its buffer of {capacity} is full and no vault is attached",
          { patterns: this.patterns.join(","), capacity: this.#capacity },
        );
      }
    }
    if (this.#size === this.#ring.length) this.#grow();
    this.#ring[(this.#head + this.#size) & this.#mask] = record;
    this.#size++;
    this.#schedule();
  }

  #schedule(): void {
    if (this.#handler === undefined) {
      const wake = this.#wake;
      this.#wake = undefined;
      wake?.();
    } else if (!this.#scheduled && !this.#draining) {
      this.#scheduled = true;
      this.#running = this.#later();
    }
  }

  #grow(): void {
    const ring = this.#ring;
    const next: (EventRecord | undefined)[] = new Array(ring.length * 2).fill(undefined);
    for (let i = 0; i < this.#size; i++) next[i] = ring[(this.#head + i) & this.#mask];
    this.#ring = next;
    this.#mask = next.length - 1;
    this.#head = 0;
  }

  #take(): EventRecord {
    const head = this.#head;
    const record = this.#ring[head] as EventRecord;
    this.#ring[head] = undefined;
    this.#head = (head + 1) & this.#mask;
    if (--this.#size === 0 && this.#ring.length > MAX_IDLE_RING) this.#reset();
    return record;
  }

  #reset(): void {
    this.#ring = emptyRing();
    this.#mask = MIN_RING - 1;
    this.#head = 0;
    this.#size = 0;
  }

  // Starts draining on the next microtask. An async function rather than a
  // queueMicrotask callback: V8 then allocates less for each await in #drain.
  async #later(): Promise<void> {
    await undefined;
    this.#scheduled = false;
    if (!this.#draining) await this.#drain();
  }

  async #drain(): Promise<void> {
    this.#draining = true;
    try {
      while (!this.closed) {
        if (this.#size > 0) await this.#pump();
        else if (this.#catchingUp) await this.#catchUpAll();
        else break;
      }
    } finally {
      this.#draining = false;
      this.#notifyIdle();
    }
  }

  // The hot path of delivery, kept small: V8 saves and restores fewer
  // registers at each await. The event being handled lives in this call's
  // closure rather than in a field: the subscriber is long-lived (old
  // generation), and storing each new record into it costs a GC write barrier.
  async #pump(): Promise<void> {
    const handler = this.#handler as EventHandler;
    let current: EventRecord | undefined;
    const context: HandlerContext = { emit: (input) => this.#emit(input, current) };
    while (this.#size > 0 && !this.closed) {
      const event = this.#take();
      current = event;
      try {
        const result = handler(event, context);
        if (result !== undefined && typeof result.then === "function") await result;
      } catch (error) {
        this.#failed(event, error);
      }
    }
  }

  async #catchUpAll(): Promise<void> {
    for await (const event of this.#catchUp()) await this.#deliver(event);
  }

  async #deliver(event: EventRecord): Promise<void> {
    this.#current = event;
    try {
      await (this.#handler as EventHandler)(event, this.#context);
    } catch (error) {
      this.#failed(event, error);
    }
  }

  #failed(event: EventRecord, error: unknown): void {
    logger.error("Subscriber to {patterns} failed on event {id} ({kind}): {message}", {
      patterns: this.patterns.join(","),
      id: event.id,
      kind: event.kind,
      message: error instanceof Error ? error.message : String(error),
    });
  }

  async *#catchUp(): AsyncGenerator<EventRecord> {
    const store = this.#store as EventStore;
    try {
      while (!this.closed) {
        this.#missed = false;
        const from = this.#last === undefined ? undefined : formatPosition(Number(this.#last) + 1);
        for await (const event of store.read({ from, kinds: [...this.patterns] })) {
          if (this.closed) return;
          if (this.#last !== undefined && event.position <= this.#last) continue;
          this.#last = event.position;
          this.replayed++;
          yield event;
        }
        // Nothing was emitted during the read: live delivery resumes with no gap.
        if (!this.#missed) {
          this.#catchingUp = false;
          return;
        }
      }
    } catch (error) {
      logger.error("Subscriber to {patterns} could not catch up from the vault: {message}", {
        patterns: this.patterns.join(","),
        message: error instanceof Error ? error.message : String(error),
      });
      void this.close();
    }
  }

  #notifyIdle(): void {
    if (!this.isIdle && !this.closed) return;
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const resolve of waiters) resolve();
  }

  idle(): Promise<void> {
    if (this.isIdle || this.closed) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  async close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.#signal?.removeEventListener("abort", this.#onAbort);
      this.#reset();
      this.#remove(this);
      const wake = this.#wake;
      this.#wake = undefined;
      wake?.();
    }
    await this.#running;
    this.#notifyIdle();
  }

  async *#iterate(): AsyncGenerator<EventRecord> {
    try {
      while (!this.closed) {
        if (this.#size > 0) yield this.#take();
        else if (this.#catchingUp) yield* this.#catchUp();
        else {
          this.#notifyIdle();
          await new Promise<void>((resolve) => this.#wake = resolve);
        }
      }
    } finally {
      await this.close();
    }
  }

  next(): Promise<IteratorResult<EventRecord>> {
    if (this.#handler !== undefined) {
      return Promise.reject(new TypeError("A handler subscription cannot be iterated"));
    }
    this.#iterator ??= this.#iterate();
    return this.#iterator.next();
  }

  async return(): Promise<IteratorResult<EventRecord>> {
    // Close first: a generator waiting for an event only sees `return` once woken.
    await this.close();
    await this.#iterator?.return(undefined);
    return { value: undefined, done: true };
  }

  [Symbol.asyncIterator](): EventStream {
    return this;
  }
}
