/**
 * The event bus: every event the runtime sees goes through it. With a vault
 * attached an event is appended before any subscriber sees it, and a slow
 * subscriber catches up from the vault instead of losing events.
 *
 * @module
 */

import { assertEffect, checkExpectedVersion, checkHolds } from "../log/append_rules.ts";
import type {
  AppendOptions,
  EventInput,
  EventRecord,
  EventStore,
  ExpectedVersion,
} from "../log/event_store.ts";
import { compileKindFilter, type KindFilter } from "../log/kind_pattern.ts";
import { MAX_META_ENTRIES } from "../log/event_rules.ts";
import { assertKind, assertStream, IdMaker, PositionMaker } from "../../internal/ids.ts";
import {
  parentContext,
  setEventAttributes,
  setFailed,
  type Span,
  SpanKind,
  traceparent,
  tracer,
} from "../../internal/tracing.ts";
import { Subscriber } from "./_subscriber.ts";
import { CausalDepthError } from "../errors.ts";
import { intOption } from "../../internal/int_option.ts";
import type {
  BusSubscribeOptions,
  EmitInput,
  EventHandler,
  EventStream,
  Subscription,
} from "./subscription.ts";

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
  /**
   * How deep a causal chain may go (100, at most 1,000,000): an event emitted
   * with a cause is one deeper than it (`meta.causalDepth`), and an emit
   * deeper than this is refused with a {@linkcode CausalDepthError}.
   */
  maxCausalDepth?: number;
}

/** The most `maxCausalDepth` may be. */
const MAX_CAUSAL_DEPTH = 1_000_000;

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
  #maxDepth: number;
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
   * @param options The vault, buffer size, clock, default stream and causal depth limit.
   * @throws {RangeError} When `bufferSize` is not a whole number ≥ 1, or
   *   `maxCausalDepth` not one from 1 to 1,000,000.
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
    this.#maxDepth = maxCausalDepth(options.maxCausalDepth);
  }

  /** The vault events are appended to, if any. */
  get store(): EventStore | undefined {
    return this.#store;
  }

  /**
   * Emits an event: appends it to the vault (if any), then delivers it.
   *
   * @param input The event and its stream.
   * @param cause The event being handled, if any: it becomes a parent, its
   *   correlation id (or its id) becomes the new event's `meta.correlationId`,
   *   and the new event is one deeper in the causal chain (`meta.causalDepth`).
   * @returns The stored event; delivery is asynchronous.
   * @throws {TypeError} When the kind, stream, cause or another field is invalid.
   * @throws {CausalDepthError} When the event would be deeper than `maxCausalDepth`.
   * @throws {VersionConflictError} When `expectedVersion` does not match.
   * @throws {GuardFailedError} When `guard` no longer holds at commit.
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
      if (cause !== undefined) ({ parents, meta } = caused(input, cause, this.#maxDepth));
      if (tracer() !== undefined) return this.#traced(input, stream, parents, meta, cause);
      return this.#emit(input, stream, parents, meta);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  // An emit in its producer span, whose context the event carries as
  // `meta.traceparent` (covered by the digest) to every handling of it.
  async #traced(
    input: EmitInput,
    stream: string,
    parents: string[] | undefined,
    meta: EventInput["meta"],
    cause: EventRecord | undefined,
  ): Promise<EventRecord> {
    // Checked before the span is named after them.
    assertKind(input.kind);
    assertStream(stream);
    const [span, traced] = producer(input.kind, meta, cause);
    try {
      const record = await this.#emit(input, stream, parents, traced);
      setEventAttributes(span, record);
      return record;
    } catch (error) {
      span.setAttribute("toka.stream", stream);
      setFailed(span, error);
      throw error;
    } finally {
      span.end();
    }
  }

  #emit(
    input: EmitInput,
    stream: string,
    parents: string[] | undefined,
    meta: EventInput["meta"],
  ): Promise<EventRecord> {
    try {
      if (this.#store !== undefined) {
        const event: EventInput = { kind: input.kind, payload: input.payload, parents, meta };
        if (input.intent !== undefined) event.intent = input.intent;
        return this.#append(this.#store, stream, event, input);
      }
      if (input.guard !== undefined) checkHolds(stream, input.guard);
      assertEffect(input.effect, true);
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
      input.effect?.apply?.([record]);
      this.#dispatch(record);
      return Promise.resolve(record);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Emits several events to one stream as one append: with a vault they are
   * stored in one commit (all or none), then delivered in order. Without a
   * vault it is the same as emitting them one by one.
   *
   * @param inputs The events, all for the same stream; only the first may carry
   *   `expectedVersion` or `guard`, which then hold for the whole batch.
   * @param cause The event being handled, if any (as for {@linkcode EventBus.emit}).
   * @returns The stored events, in order.
   * @throws {TypeError} When the list is empty, spans streams, or an event is invalid.
   * @throws {CausalDepthError} When the events would be deeper than `maxCausalDepth`.
   * @throws {VersionConflictError} When `expectedVersion` does not match.
   * @throws {GuardFailedError} When `guard` no longer holds at commit.
   *
   * @example
   * ```ts
   * import { EventBus } from "@toka/runtime/runtime";
   *
   * const bus = new EventBus();
   * const events = await bus.emitBatch([
   *   { kind: "task.created", stream: "tasks" },
   *   { kind: "task.started", stream: "tasks" },
   * ]);
   * console.log(events.map((event) => event.version)); // [1, 2]
   * ```
   */
  async emitBatch(inputs: readonly EmitInput[], cause?: EventRecord): Promise<EventRecord[]> {
    if (!Array.isArray(inputs) || inputs.length === 0) {
      throw new TypeError("Invalid events: expected a non-empty array of events");
    }
    const store = this.#store;
    if (store === undefined) {
      const records: EventRecord[] = [];
      for (const input of inputs) records.push(await this.emit(input, cause));
      return records;
    }
    const first = inputs[0];
    if (first === null || typeof first !== "object") {
      throw new TypeError(`Invalid event ${JSON.stringify(first)}: expected an object with a kind`);
    }
    const stream = first.stream ?? this.#stream;
    const events = inputs.map((input, index) => {
      if (input === null || typeof input !== "object") {
        throw new TypeError(
          `Invalid event ${JSON.stringify(input)}: expected an object with a kind`,
        );
      }
      if ((input.stream ?? this.#stream) !== stream) {
        throw new TypeError(
          `Cannot emit a batch across streams "${stream}" and "${input.stream ?? this.#stream}"`,
        );
      }
      if (index > 0 && (input.expectedVersion !== undefined || input.guard !== undefined)) {
        throw new TypeError(
          `Invalid event ${index} of a batch: only the first may carry expectedVersion or guard`,
        );
      }
      const { parents, meta } = cause === undefined ? input : caused(input, cause, this.#maxDepth);
      const event: EventInput = { kind: input.kind, payload: input.payload, parents, meta };
      if (input.intent !== undefined) event.intent = input.intent;
      return event;
    });
    const options = first.guard === undefined
      ? { expectedVersion: first.expectedVersion }
      : { expectedVersion: first.expectedVersion, guard: first.guard };
    const spans: Span[] = [];
    if (tracer() !== undefined) {
      assertStream(stream);
      for (const event of events) {
        assertKind(event.kind);
        let span: Span;
        [span, event.meta] = producer(event.kind, event.meta, cause);
        spans.push(span);
      }
    }
    try {
      const { events: stored } = await store.append(stream, events, options);
      for (let i = 0; i < spans.length; i++) setEventAttributes(spans[i], stored[i]);
      for (const record of stored) this.#dispatch(record);
      return stored;
    } catch (error) {
      for (const span of spans) span.setAttribute("toka.stream", stream), setFailed(span, error);
      throw error;
    } finally {
      for (const span of spans) span.end();
    }
  }

  async #append(
    store: EventStore,
    stream: string,
    event: EventInput,
    { expectedVersion, guard, effect }: EmitInput,
  ): Promise<EventRecord> {
    const options: AppendOptions = { expectedVersion };
    if (guard !== undefined) options.guard = guard;
    if (effect !== undefined) options.effect = effect;
    const { events } = await store.append(stream, [event], options);
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
    checkExpectedVersion(stream, expected, counter.version);
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

function maxCausalDepth(value: unknown): number {
  return intOption("maxCausalDepth", value, 100, 1, MAX_CAUSAL_DEPTH);
}

// Starts the producer span of an emit: a child of the handling in progress, else
// of the trace the event's meta or its cause names. Returns the meta with the
// span's traceparent, unless the meta has no room left for it.
function producer(
  kind: string,
  meta: EventInput["meta"],
  cause: EventRecord | undefined,
): [Span, EventInput["meta"]] {
  const parent = parentContext(meta?.traceparent ?? cause?.meta?.traceparent);
  // The attributes are set at the end, all at once (toka.stream, the id and position).
  const span = tracer()!.startSpan(`emit ${kind}`, { kind: SpanKind.PRODUCER }, parent);
  const value = traceparent(span);
  if (value === undefined) return [span, meta];
  const room = meta === undefined || meta.traceparent !== undefined ||
    Object.keys(meta).length < MAX_META_ENTRIES;
  return [span, room ? { ...meta, traceparent: value } : meta];
}

// The cause becomes a parent and lends its correlation id; the event is one
// deeper than it. Kept in meta (covered by the digest), so that knowing an
// event's depth costs no read of its ancestors. An agent.failed or agent.state
// may go one past the limit: they record what handling an event at the limit did.
function caused(
  input: EmitInput,
  cause: EventRecord,
  limit: number,
): { parents: string[] | undefined; meta: EventInput["meta"] } {
  if (
    cause === null || typeof cause !== "object" || typeof cause.id !== "string" ||
    cause.meta === null || typeof cause.meta !== "object"
  ) {
    throw new TypeError("Invalid cause: expected the event record being handled");
  }
  const above = Number(cause.meta.causalDepth ?? 0);
  const depth = (Number.isSafeInteger(above) && above > 0 ? above : 0) + 1;
  const record = input.kind === "agent.failed" || input.kind === "agent.state";
  if (depth > limit && (!record || depth > limit + 1)) {
    throw new CausalDepthError(input.kind, cause.id, depth, limit);
  }
  const parents = input.parents;
  return {
    parents: parents === undefined
      ? [cause.id]
      : parents.includes(cause.id)
      ? parents
      : [cause.id, ...parents],
    meta: {
      ...input.meta,
      correlationId: cause.meta.correlationId ?? cause.id,
      causationId: cause.id,
      causalDepth: String(depth),
    },
  };
}
