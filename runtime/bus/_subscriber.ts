// One subscription to the bus: a bounded ring of events for a handler or an
// async iterator, that catches up from the vault after an overflow.
import { AsyncLocalStorage } from "node:async_hooks";
import { getLogger } from "@logtape/logtape";
import type { EventRecord, EventStore } from "../log/event_store.ts";
import type { KindFilter } from "../log/kind_pattern.ts";
import type {
  BusSubscribeOptions,
  EmitInput,
  EventHandler,
  EventStream,
  HandlerContext,
} from "./subscription.ts";
import { formatPosition } from "../../internal/ids.ts";
import { errorMessage } from "../../internal/error_message.ts";

const logger = getLogger(["toka", "runtime", "bus"]);

const MIN_RING = 16;
// A ring this large is dropped once empty, so a burst does not pin memory.
const MAX_IDLE_RING = 1024;
const emptyRing = (): (EventRecord | undefined)[] => new Array(MIN_RING).fill(undefined);
// The subscriber whose handler runs here (set once per drain, not per event):
// its close() called from its own handler must not wait for that handler.
const draining = new AsyncLocalStorage<Subscriber>();

export class Subscriber implements EventStream {
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
      this.#running = draining.run(this, () => this.#later());
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
      message: errorMessage(error),
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
        message: errorMessage(error),
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
    // From its own handler (or what it started), the drain in hand ends once
    // that handler returns: waiting for it here would wait for ourselves.
    if (draining.getStore() !== this) await this.#running;
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
