/**
 * The root of Toka's domain errors. Caller mistakes throw the built-in
 * `TypeError` or `RangeError`; conditions a caller is expected to catch and
 * handle throw a subclass of {@linkcode TokaError} with a stable `code`.
 *
 * @module
 */

/**
 * Base class of every domain error Toka throws. Match on {@linkcode TokaError.code}
 * rather than on the message, which is for people.
 *
 * @example Catch any Toka domain error
 * ```ts
 * import { TokaError } from "@toka/runtime/runtime";
 *
 * try {
 *   throw new TokaError("example", "Something expected went wrong");
 * } catch (error) {
 *   if (error instanceof TokaError) console.log(error.code);
 * }
 * ```
 */
export class TokaError extends Error {
  /** A stable, machine-readable identifier of the condition, e.g. `"version_conflict"`. */
  readonly code: string;

  /**
   * Creates a domain error.
   *
   * @param code A stable identifier of the condition.
   * @param message A one-line, human-readable description without secrets.
   * @param options Standard error options, e.g. a `cause`.
   */
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "TokaError";
    this.code = code;
  }
}

/**
 * Thrown when an append's expected version does not match the stream's current
 * version. Nothing of the failed append is stored.
 *
 * @example Retry an append after a conflict
 * ```ts
 * import { VersionConflictError } from "@toka/runtime/runtime";
 *
 * const error = new VersionConflictError("orders/1", 3, 4);
 * console.log(error.message); // Cannot append to stream "orders/1": expected version 3, found 4
 * ```
 */
export class VersionConflictError extends TokaError {
  /** The stream the append was aimed at. */
  readonly stream: string;
  /** What the caller expected: a version number or one of `"no_stream"`, `"exists"`. */
  readonly expected: number | string;
  /** The stream's current version (0 when the stream does not exist). */
  readonly actual: number;

  /**
   * Creates a version conflict error.
   *
   * @param stream The stream name.
   * @param expected The expected version the caller gave.
   * @param actual The stream's current version.
   */
  constructor(stream: string, expected: number | string, actual: number) {
    super(
      "version_conflict",
      `Cannot append to stream "${stream}": expected version ${
        typeof expected === "number" ? expected : `"${expected}"`
      }, found ${actual}`,
    );
    this.name = "VersionConflictError";
    this.stream = stream;
    this.expected = expected;
    this.actual = actual;
  }
}

/**
 * Thrown when a capability token does not grant the permission an operation needs.
 *
 * @example
 * ```ts
 * import { CapabilityDeniedError } from "@toka/runtime/runtime";
 *
 * const error = new CapabilityDeniedError("tool:shell:invoke", "agent/planner");
 * console.log(error.code); // "capability_denied"
 * ```
 */
export class CapabilityDeniedError extends TokaError {
  /** The permission that was required, e.g. `"tool:echo:invoke"`. */
  readonly permission: string;

  /**
   * Creates a capability denial.
   *
   * @param permission The permission the operation required.
   * @param subject The token subject that lacked it, if known.
   */
  constructor(permission: string, subject?: string) {
    super(
      "capability_denied",
      subject === undefined
        ? `Permission ${JSON.stringify(permission)} is not granted`
        : `Permission ${JSON.stringify(permission)} is not granted to ${JSON.stringify(subject)}`,
    );
    this.name = "CapabilityDeniedError";
    this.permission = permission;
  }
}

/**
 * Thrown by `EventStore.append` when the append's guard no longer
 * holds at commit: nothing of that append was stored.
 *
 * @example
 * ```ts
 * import { GuardFailedError } from "@toka/runtime/runtime";
 *
 * const error = new GuardFailedError("agent/worker");
 * console.log(error.code); // "guard_failed"
 * ```
 */
export class GuardFailedError extends TokaError {
  /** The stream the append was refused on. */
  readonly stream: string;

  /**
   * Creates a guard-failed error.
   *
   * @param stream The stream of the refused append.
   */
  constructor(stream: string) {
    super(
      "guard_failed",
      `Cannot append to stream ${JSON.stringify(stream)}: its guard no longer holds`,
    );
    this.name = "GuardFailedError";
    this.stream = stream;
  }
}

/**
 * Thrown by an agent's `ctx.emit` (and `ctx.tools.call`) once another process
 * has taken over its lease: what it would emit is not appended, so the new
 * holder's work is not duplicated in the log.
 *
 * @example
 * ```ts
 * import { LeaseLostError } from "@toka/runtime/runtime";
 *
 * const error = new LeaseLostError("worker");
 * console.log(error.code); // "lease_lost"
 * ```
 */
export class LeaseLostError extends TokaError {
  /** The agent whose lease was lost. */
  readonly agent: string;

  /**
   * Creates a lease-lost error.
   *
   * @param agent The agent's name.
   */
  constructor(agent: string) {
    super(
      "lease_lost",
      `Agent "${agent}" lost its lease to another process: nothing it emits is appended`,
    );
    this.name = "LeaseLostError";
    this.agent = agent;
  }
}

/**
 * Thrown by an emit caused by another event when the new event would be deeper
 * in its causal chain than `maxCausalDepth` allows (100 by default): a handler
 * that triggers itself, directly or through others, stops here instead of
 * running forever. Nothing is appended. An agent's runner records it once as
 * `agent.failed` without retrying; raise the limit (`maxCausalDepth` of
 * `createRuntime` or `Runtime.create`, `runtime.maxCausalDepth` in `toka.json`)
 * when a chain that deep is meant.
 *
 * @example
 * ```ts
 * import { CausalDepthError } from "@toka/runtime/runtime";
 *
 * const error = new CausalDepthError("job.done", "01J0000000000000000000000A", 101, 100);
 * console.log(error.code); // "causal_depth"
 * ```
 */
export class CausalDepthError extends TokaError {
  /** The kind of the refused event. */
  readonly kind: string;
  /** The id of the event that caused it. */
  readonly causeId: string;
  /** The depth the refused event would have had. */
  readonly depth: number;
  /** The limit it was over. */
  readonly limit: number;

  /**
   * Creates a causal depth error.
   *
   * @param kind The kind of the refused event.
   * @param causeId The id of the event that caused it.
   * @param depth The depth it would have had.
   * @param limit The limit (`maxCausalDepth`).
   */
  constructor(kind: string, causeId: string, depth: number, limit: number) {
    super(
      "causal_depth",
      `Cannot emit ${JSON.stringify(kind)} caused by event ${
        JSON.stringify(causeId)
      }: causal depth ${depth} is over the limit of ${limit} (maxCausalDepth)`,
    );
    this.name = "CausalDepthError";
    this.kind = kind;
    this.causeId = causeId;
    this.depth = depth;
    this.limit = limit;
  }
}

/** Why a retry was refused: see {@linkcode RetryRefusedError}. */
export type RetryRefusal = "unknown_agent" | "unknown_event" | "not_failed" | "already_requested";

/**
 * Thrown by `runtime.retry` (and `toka agent retry`) when the retry cannot be
 * asked for: no such agent, no such event, an event the agent has not given
 * up on (or that a retry already handled), or one whose retry is already
 * requested and not yet handled. Nothing is appended.
 *
 * @example
 * ```ts
 * import { RetryRefusedError } from "@toka/runtime/runtime";
 *
 * const error = new RetryRefusedError("unknown_agent", 'Cannot retry for agent "x": no such agent');
 * console.log(error.code, error.reason); // retry_refused unknown_agent
 * ```
 */
export class RetryRefusedError extends TokaError {
  /** Why the retry was refused. */
  readonly reason: RetryRefusal;

  /**
   * Creates a retry refusal.
   *
   * @param reason Why the retry was refused.
   * @param message The one-line explanation.
   */
  constructor(reason: RetryRefusal, message: string) {
    super("retry_refused", message);
    this.name = "RetryRefusedError";
    this.reason = reason;
  }
}

/**
 * Thrown by an agent's `ctx.step` (and `ctx.tools.call`) when an event handled
 * again makes another step at an index than the attempt that recorded it: a
 * step of another name, or a tool call with another input. Handlers must make
 * the same steps in the same order on every attempt; what varies goes inside a step.
 *
 * @example
 * ```ts
 * import { NonDeterminismError } from "@toka/runtime/runtime";
 *
 * const error = new NonDeterminismError("0190a3e1", 1, 'step "fetch"', 'step "parse"');
 * console.log(error.message);
 * // Event "0190a3e1" is handled unlike before: step 1 was step "fetch", now step "parse"
 * ```
 */
export class NonDeterminismError extends TokaError {
  /** The id of the event being handled. */
  readonly eventId: string;
  /** The step's index among the steps (and journaled tool calls) of the handling. */
  readonly index: number;
  /** What the log recorded at that index, e.g. `step "fetch"`. */
  readonly recorded: string;
  /** What the handler asked for now. */
  readonly current: string;

  /**
   * Creates the error.
   *
   * @param eventId The id of the event being handled.
   * @param index The step's index.
   * @param recorded What was recorded at that index, e.g. `step "fetch"`.
   * @param current What the handler asked for now, e.g. `step "parse"`.
   */
  constructor(eventId: string, index: number, recorded: string, current: string) {
    super(
      "non_determinism",
      `Event "${eventId}" is handled unlike before: step ${index} was ${recorded}, now ${current}`,
    );
    this.name = "NonDeterminismError";
    this.eventId = eventId;
    this.index = index;
    this.recorded = recorded;
    this.current = current;
  }
}
