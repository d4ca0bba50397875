/**
 * The `schedule`, `schedule.list` and `schedule.cancel` built-in tools: durable
 * timers that emit an event once at a future time, and the poller that fires them.
 *
 * @module
 */

import type { Kv } from "../internal/platform.ts";
import { getLogger } from "@logtape/logtape";
import type { EmitInput } from "../runtime/bus/subscription.ts";
import type { EventRecord, EventStore } from "../runtime/log/event_store.ts";
import { assertKind, assertStream } from "../internal/ids.ts";
import { ToolInputError } from "./errors.ts";
import { defineTool, type Tool, type ToolContext } from "./tool.ts";
import { createHash } from "node:crypto";
import {
  firedEvent,
  type FireEvent,
  KvTimerStore,
  MemoryTimerStore,
  skippedEvent,
  type Timer,
  type TimerInfo,
  type TimerStore,
} from "./_schedule_store.ts";
import { schedulerLimits } from "./_schedule_limits.ts";
import { canonicalJson, JsonValueError } from "../internal/canonical_json.ts";
import { MAX_PAYLOAD_DEPTH } from "../runtime/log/event_limits.ts";
import type { TokenAuthority } from "../runtime/token_authority.ts";

const logger = getLogger(["toka", "toolkit", "schedule"]);

/** Options of the {@linkcode Scheduler} constructor. */
export interface SchedulerOptions {
  /**
   * Appends a fired event and delivers it; `createRuntime` passes its bus's `emit`. It must
   * pass `guard` on to the vault's append: that is what makes a timer fire once.
   */
  emit: (input: EmitInput) => Promise<unknown>;
  /**
   * The vault. With `kv` (its Deno KV: a file or a remote KV), timers are kept there, survive
   * restarts and fire once across processes; without it they live in this process only.
   */
  vault?: EventStore;
  /**
   * The vault's Deno KV, as `vaultKv(vault)` from `@toka/runtime/vault` hands it out: timers
   * are kept in it, beside the log. Needs `vault`.
   */
  kv?: Kv;
  /** Milliseconds since the epoch, for due times; `Date.now` by default. */
  clock?: () => number;
  /**
   * Who says whether a token was revoked (`isRevoked`; `createRuntime` passes its token
   * authority): at fire time, a timer whose scheduling token, or a token that one was
   * attenuated from, was revoked is skipped and a `schedule.skipped` event recorded instead.
   * Without it, every timer fires.
   */
  authority?: Pick<TokenAuthority, "isRevoked">;
  /** The longest wait between two looks for due timers, in ms (1000; 10 to 60000). */
  pollIntervalMs?: number;
  /** The furthest in the future a timer may be due, in ms (365 days; at most 10 years). */
  maxDelayMs?: number;
  /** The most timers pending at once, in the vault or in memory (1000; at most 100000). */
  maxPending?: number;
  /**
   * The most timers pending at once of one subject (the scheduling token's `sub`), so that
   * one cannot fill `maxPending` and lock every other out (100; at most 100000).
   */
  maxPendingPerSubject?: number;
  /** The largest payload, as UTF-8 JSON, in bytes (16 KiB; at most 32 KiB). */
  maxPayloadBytes?: number;
  /**
   * How long a timer claimed by another process may stay unchanged before this one takes it
   * over, in ms (10000): the time to notice that a process died while firing it.
   */
  claimTimeoutMs?: number;
}

/** The input of `schedule`: the event to emit, and when (`at` or `delayMs`, one of them). */
export interface ScheduleInput {
  /** The event's kind, e.g. `"reminder.due"`. */
  kind: string;
  /** The event's JSON payload; `null` when omitted. */
  payload?: unknown;
  /** The stream to append the event to; `"schedule"` by default. */
  stream?: string;
  /** When to emit it: an ISO 8601 time with a zone, e.g. `"2030-01-01T09:00:00Z"`. */
  at?: string;
  /** When to emit it: this many milliseconds from now. */
  delayMs?: number;
}

/** A pending timer, as `schedule` and `schedule.list` describe it. */
export interface ScheduledTimer {
  /** The timer's id, for `schedule.cancel`; also `meta.scheduleId` of the fired event. */
  id: string;
  /** The kind of the event it emits. */
  kind: string;
  /** The stream it appends to. */
  stream: string;
  /** When it is due, ISO 8601 in UTC. */
  due: string;
}

/** The output of `schedule.list`. */
export interface ScheduleListOutput {
  /** The caller's pending timers, earliest first. */
  timers: ScheduledTimer[];
}

/** The input of `schedule.cancel`. */
export interface ScheduleCancelInput {
  /** The id `schedule` returned. */
  id: string;
}

/** The output of `schedule.cancel`. */
export interface ScheduleCancelOutput {
  /** The id given. */
  id: string;
  /** True when the timer was pending and will not fire. */
  cancelled: boolean;
  /**
   * `"cancelled"`; `"not_found"` when no pending timer of the caller has this id (it fired,
   * was cancelled or never existed); `"firing"` when it is being fired right now.
   */
  status: "cancelled" | "not_found" | "firing";
}

// A time this far in the past is a mistake, not a race with the clock.
const PAST_GRACE_MS = 60_000;
const DEFAULT_STREAM = "schedule";
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:\d{2})$/i;
const encoder = new TextEncoder();

function describe(timer: TimerInfo): ScheduledTimer {
  return {
    id: timer.id,
    kind: timer.kind,
    stream: timer.stream,
    due: new Date(timer.due).toISOString(),
  };
}

const TIMER_SCHEMA = {
  type: "object",
  properties: {
    id: { type: "string" },
    kind: { type: "string" },
    stream: { type: "string" },
    due: { type: "string" },
  },
  required: ["id", "kind", "stream", "due"],
};

/**
 * Durable timers for agents: the `schedule` tool stores a timer that emits an event once at a
 * future time, `schedule.list` and `schedule.cancel` manage the caller's timers, and a poller
 * fires due timers while the scheduler runs (`start()` to `stop()`; `createRuntime({ schedule })`
 * ties both to the runtime's own `start()` and `stop()`).
 *
 * On a vault with Deno KV (a file or a remote KV over KV Connect) the timers are kept in that KV,
 * so a timer due while no process ran fires when one starts again, and it fires once, also when
 * several processes share the vault or one dies while firing: the event's append and the timer
 * are fenced by KV checks, no `kv.enqueue` is needed. Without a KV the timers live in memory.
 *
 * The fired event has the given kind, payload and stream (`"schedule"` by default), the event
 * whose handler called `schedule` as parent (`ctx.tools.call` passes it), and
 * `meta.scheduleId` and `meta.scheduledBy` (the caller's token subject). While handling an
 * event, the same call (caller, input and event) is one timer: a handler run again after an
 * error or a restart gets that timer back, also after it fired or was cancelled (for 30 days).
 * A caller lists and cancels only the timers it scheduled. Bad input is a `ToolInputError`
 * naming the field.
 *
 * @example Schedule an event, list it, let it fire
 * ```ts
 * import { EventBus } from "@toka/runtime/runtime";
 * import { Scheduler, ToolRegistry } from "@toka/runtime/toolkit";
 *
 * const bus = new EventBus();
 * const scheduler = new Scheduler({ emit: (input) => bus.emit(input) });
 * const tools = new ToolRegistry({ tools: scheduler.tools });
 * const fired = bus.subscribe(["reminder.due"]);
 * await tools.call("schedule", { kind: "reminder.due", payload: { text: "Stand up" }, delayMs: 10 });
 * console.log((await tools.call("schedule.list", {}) as { timers: unknown[] }).timers.length); // 1
 * scheduler.start();
 * for await (const event of fired) {
 *   console.log(event.payload); // { text: "Stand up" }
 *   break;
 * }
 * await scheduler.stop();
 * ```
 */
export class Scheduler implements AsyncDisposable {
  /** The tools `schedule`, `schedule.cancel` and `schedule.list`, ready to register. */
  readonly tools: Tool[];
  #store: TimerStore;
  #emit: (input: EmitInput) => Promise<unknown>;
  #clock: () => number;
  #pollMs: number;
  #maxDelayMs: number;
  #maxPending: number;
  #maxPerSubject: number;
  #maxPayloadBytes: number;
  #event: FireEvent;
  #running = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #wakeAt = Infinity;
  // The earliest due time scheduled while a pass ran: the pass may have missed it.
  #missed = Infinity;
  #polling: Promise<number> = Promise.resolve(0);
  #loop: Promise<void> = Promise.resolve();

  /**
   * Creates a scheduler; it does not fire anything before `start()`.
   *
   * @param options Where fired events go, the vault, the clock and the limits.
   * @throws {TypeError} When `emit` is not a function, or `kv` is given without `vault`.
   * @throws {RangeError} When a limit is not an integer in range.
   */
  constructor(options: SchedulerOptions) {
    if (typeof options?.emit !== "function") {
      throw new TypeError("Invalid schedule options: emit must be a function");
    }
    this.#emit = options.emit;
    this.#clock = options.clock ?? Date.now;
    // An authority without isRevoked (one that revokes nothing) skips nothing.
    const isRevoked = options.authority?.isRevoked?.bind(options.authority);
    this.#event = async (timer) => {
      for (const jti of isRevoked === undefined ? [] : timer.tokenIds ?? []) {
        if (await isRevoked!(jti)) {
          logger.info("Skipped timer {id} of {sub}: its token was revoked", {
            id: timer.id,
            sub: timer.scheduledBy,
          });
          return skippedEvent(timer, "token_revoked");
        }
      }
      return firedEvent(timer);
    };
    const limits = schedulerLimits(options);
    this.#pollMs = limits.pollMs;
    this.#maxDelayMs = limits.maxDelayMs;
    this.#maxPending = limits.maxPending;
    this.#maxPerSubject = limits.maxPerSubject;
    this.#maxPayloadBytes = limits.maxPayloadBytes;
    const { vault, kv } = options;
    this.#store = kv === undefined || vault === undefined
      ? new MemoryTimerStore()
      : new KvTimerStore(kv, vault, limits.claimMs);
    this.tools = this.#makeTools();
  }

  /**
   * Checks a scheduler's limits without making one, so that a caller refuses bad options
   * before opening what the scheduler would use.
   *
   * @param options The limits, and `kv` with its `vault`; `emit` is not needed.
   * @throws {TypeError} When `kv` is given without `vault`.
   * @throws {RangeError} When a limit is not an integer in range.
   *
   * @example
   * ```ts
   * import { Scheduler } from "@toka/runtime/toolkit";
   *
   * Scheduler.checkOptions({ maxPending: 10 });
   * ```
   */
  static checkOptions(options: Omit<SchedulerOptions, "emit">): void {
    schedulerLimits(options);
  }

  /** True between `start()` and `stop()`. */
  get running(): boolean {
    return this.#running;
  }

  /**
   * Starts the poller: it fires the timers already due, then wakes up at the next due time,
   * and at least every `pollIntervalMs` for timers other processes add. Does nothing when
   * running.
   *
   * @example
   * ```ts
   * import { Scheduler } from "@toka/runtime/toolkit";
   *
   * const scheduler = new Scheduler({ emit: () => Promise.resolve() });
   * scheduler.start();
   * console.log(scheduler.running); // true
   * await scheduler.stop();
   * ```
   */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#wake(0);
  }

  /**
   * Stops the poller and waits for a firing in progress; no timer or KV operation is left
   * running. Timers stay pending. Does nothing when stopped.
   *
   * @returns When the poller has stopped.
   *
   * @example
   * ```ts
   * import { Scheduler } from "@toka/runtime/toolkit";
   *
   * const scheduler = new Scheduler({ emit: () => Promise.resolve() });
   * scheduler.start();
   * await scheduler.stop();
   * console.log(scheduler.running); // false
   * ```
   */
  async stop(): Promise<void> {
    this.#running = false;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#wakeAt = Infinity;
    await this.#loop;
    await this.#polling.catch(() => {});
  }

  /**
   * Stops the poller, as {@linkcode Scheduler.stop}, at the end of an `await using` block.
   *
   * @returns When the poller has stopped.
   */
  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  /**
   * Fires every timer due by the clock now, earliest first, and returns how many this call
   * fired. The poller calls it; call it yourself with an injected clock, e.g. in tests.
   *
   * @returns The number of events this call emitted (fired timers, and `schedule.skipped`).
   * @throws {Error} What the vault or `emit` threw for the first timer that could not fire,
   *   after trying the others; the timers that could not fire stay pending.
   *
   * @example Fire with an injected clock
   * ```ts
   * import { EventBus } from "@toka/runtime/runtime";
   * import { Scheduler, ToolRegistry } from "@toka/runtime/toolkit";
   *
   * let now = Date.parse("2030-01-01T00:00:00Z");
   * const bus = new EventBus();
   * const scheduler = new Scheduler({ emit: (input) => bus.emit(input), clock: () => now });
   * const tools = new ToolRegistry({ tools: scheduler.tools });
   * await tools.call("schedule", { kind: "tick", at: "2030-01-01T00:01:00Z" });
   * console.log(await scheduler.poll()); // 0
   * now += 60_000;
   * console.log(await scheduler.poll()); // 1
   * ```
   */
  poll(): Promise<number> {
    // One pass at a time: the poller and a caller never fire concurrently here.
    const next = this.#polling.catch(() => 0).then(() => this.#pollOnce());
    this.#polling = next;
    return next;
  }

  async #pollOnce(): Promise<number> {
    let fired = 0;
    const failures: unknown[] = [];
    for (;;) {
      const ids = await this.#store.due(this.#clock(), 100);
      let progress = false;
      for (const id of ids) {
        try {
          if (await this.#store.fire(id, this.#emit, this.#event)) {
            fired++;
            progress = true;
          }
        } catch (error) {
          // It stays pending; the timers due after it still fire.
          failures.push(error);
        }
      }
      // Due timers left are failing or claimed by another process: the next pass looks again.
      if (ids.length < 100 || !progress) break;
    }
    if (failures.length > 0) throw failures[0];
    return fired;
  }

  #wake(delayMs: number): void {
    if (!this.#running) return;
    clearTimeout(this.#timer);
    this.#wakeAt = this.#clock() + delayMs;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#wakeAt = Infinity;
      this.#loop = this.#tick();
    }, delayMs);
  }

  async #tick(): Promise<void> {
    try {
      await this.poll();
    } catch (error) {
      logger.warn("Cannot fire due timers, trying again later: {message}", {
        message: error instanceof Error ? error.message : String(error),
      });
    }
    if (!this.#running) return;
    let delay = this.#pollMs;
    try {
      const next = await this.#store.nextDue();
      // A due timer still pending is claimed elsewhere: look again after the interval.
      if (next !== undefined && next > this.#clock()) {
        delay = Math.min(delay, next - this.#clock());
      }
    } catch {
      // The vault is unreachable for now: poll again after the interval.
    }
    delay = Math.max(0, Math.min(delay, this.#missed - this.#clock()));
    this.#missed = Infinity;
    if (this.#running && this.#timer === undefined) this.#wake(delay);
  }

  #input(input: ScheduleInput): { due: number; stream: string; payloadJson: string } {
    const bad = (field: string, problem: string): never => {
      throw new ToolInputError("schedule", `/${field} ${problem}`);
    };
    try {
      assertKind(input.kind);
    } catch {
      bad("kind", 'must be dotted segments of letters, digits, _ or -, e.g. "reminder.due"');
    }
    const stream = input.stream ?? DEFAULT_STREAM;
    try {
      assertStream(stream);
    } catch {
      bad("stream", "must be 1 to 256 letters, digits and the characters _ - . : @ /");
    }
    // The log's own rule for payloads, so that a timer never fails to fire on it.
    try {
      canonicalJson(input.payload ?? null, MAX_PAYLOAD_DEPTH);
    } catch (error) {
      if (!(error instanceof JsonValueError)) throw error;
      bad("payload", error.path === "$" ? error.problem : `${error.problem} (at ${error.path})`);
    }
    const payloadJson = JSON.stringify(input.payload ?? null);
    const bytes = encoder.encode(payloadJson).length;
    if (bytes > this.#maxPayloadBytes) {
      bad("payload", `has ${bytes} bytes as JSON, more than the limit of ${this.#maxPayloadBytes}`);
    }
    const now = this.#clock();
    let due: number;
    if ((input.at === undefined) === (input.delayMs === undefined)) {
      return bad("at", "or /delayMs is required, not both");
    } else if (input.at !== undefined) {
      due = ISO_TIME.test(input.at) ? Date.parse(input.at) : NaN;
      if (Number.isNaN(due)) {
        bad("at", 'must be an ISO 8601 time with a zone, e.g. "2030-01-01T09:00:00Z"');
      }
      if (due < now - PAST_GRACE_MS) bad("at", `is in the past (${input.at})`);
      due = Math.max(due, now);
    } else {
      due = now + input.delayMs!;
    }
    if (due - now > this.#maxDelayMs) {
      bad(input.at !== undefined ? "at" : "delayMs", `is more than ${this.#maxDelayMs} ms ahead`);
    }
    return { due, stream, payloadJson };
  }

  async #schedule(input: ScheduleInput, ctx: ToolContext): Promise<ScheduledTimer> {
    const { due, stream, payloadJson } = this.#input(input);
    const cause: EventRecord | undefined = ctx.cause;
    const scheduledBy = ctx.claims.sub;
    const timer: Timer = {
      // While handling an event, the same call gets the same id: when the handler runs
      // again (a retry, or a restart before its checkpoint) it finds that timer.
      id: cause === undefined ? crypto.randomUUID() : createHash("sha256")
        .update(JSON.stringify([
          scheduledBy,
          cause.id,
          input.kind,
          stream,
          payloadJson,
          input.at ?? null,
          input.delayMs ?? null,
        ]))
        .digest("hex").slice(0, 32),
      kind: input.kind,
      payloadJson,
      stream,
      due,
      scheduledAt: this.#clock(),
      scheduledBy,
      tokenIds: [...(ctx.claims.ancestors ?? []), ctx.claims.jti],
      ...(cause !== undefined && {
        cause: cause.id,
        correlationId: cause.meta.correlationId ?? cause.id,
        // Fired, it is one deeper than its cause, as an emit would be.
        causalDepth: causalDepthOf(cause) + 1,
      }),
    };
    const stored = await this.#store.add(timer, {
      maxPending: this.#maxPending,
      maxPerSubject: this.#maxPerSubject,
    });
    if (stored === "full") {
      throw new RangeError(
        `Cannot schedule "${input.kind}": ${this.#maxPending} timers are pending, the limit`,
      );
    }
    if (stored === "subject_full") {
      throw new RangeError(
        `Cannot schedule "${input.kind}": ${
          JSON.stringify(scheduledBy)
        } has ${this.#maxPerSubject} timers pending, the limit per subject`,
      );
    }
    // Wake up earlier than planned for a timer due before the next look.
    if (this.#running && this.#timer !== undefined && stored.due < this.#wakeAt) {
      this.#wake(Math.max(0, stored.due - this.#clock()));
    } else if (this.#running && this.#timer === undefined) {
      this.#missed = Math.min(this.#missed, stored.due);
    }
    return describe(stored);
  }

  #makeTools(): Tool[] {
    const schedule = defineTool<ScheduleInput, ScheduledTimer>({
      name: "schedule",
      description:
        "Emits an event once at a future time (at: ISO 8601 time, or delayMs), durably: it fires after a restart too",
      version: "1.0.0",
      inputSchema: {
        type: "object",
        properties: {
          kind: { type: "string", minLength: 1, maxLength: 128 },
          payload: {},
          stream: { type: "string", minLength: 1, maxLength: 256 },
          at: { type: "string", maxLength: 64 },
          delayMs: { type: "integer", minimum: 0, maximum: this.#maxDelayMs },
        },
        required: ["kind"],
        additionalProperties: false,
      },
      outputSchema: TIMER_SCHEMA,
      annotations: { readOnlyHint: false, idempotentHint: false, openWorldHint: false },
      execute: (input, ctx) => this.#schedule(input, ctx),
    });
    const list = defineTool<Record<string, never>, ScheduleListOutput>({
      name: "schedule.list",
      description: "Lists the caller's pending timers, earliest first",
      version: "1.0.0",
      inputSchema: { type: "object", additionalProperties: false },
      outputSchema: {
        type: "object",
        properties: { timers: { type: "array", items: TIMER_SCHEMA } },
        required: ["timers"],
      },
      annotations: { readOnlyHint: true, idempotentHint: true, openWorldHint: false },
      execute: async (_input, ctx) => ({
        timers: (await this.#store.list())
          .filter((timer) => timer.scheduledBy === ctx.claims.sub)
          .map(describe),
      }),
    });
    const cancel = defineTool<ScheduleCancelInput, ScheduleCancelOutput>({
      name: "schedule.cancel",
      description: "Cancels one of the caller's pending timers by id",
      version: "1.0.0",
      inputSchema: {
        type: "object",
        properties: { id: { type: "string", minLength: 1, maxLength: 64 } },
        required: ["id"],
        additionalProperties: false,
      },
      outputSchema: {
        type: "object",
        properties: {
          id: { type: "string" },
          cancelled: { type: "boolean" },
          status: { type: "string", enum: ["cancelled", "not_found", "firing"] },
        },
        required: ["id", "cancelled", "status"],
      },
      annotations: { readOnlyHint: false, idempotentHint: true, openWorldHint: false },
      execute: async ({ id }, ctx) => {
        const status = await this.#store.cancel(id, ctx.claims.sub);
        return { id, cancelled: status === "cancelled", status };
      },
    });
    return [schedule, cancel, list] as Tool[];
  }
}

// The depth of an event in its causal chain (meta.causalDepth; 0 for a root).
function causalDepthOf(event: EventRecord): number {
  const depth = Number(event.meta.causalDepth ?? 0);
  return Number.isSafeInteger(depth) && depth > 0 ? depth : 0;
}
