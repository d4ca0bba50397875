/**
 * Agents: named consumers of the event log with an ordered mailbox, a
 * durable checkpoint and their own capability token.
 *
 * @module
 */

import type { EventRecord, JsonValue } from "../log/event_store.ts";
import type { EmitInput } from "../bus/subscription.ts";
import type { ToolInfo } from "../tool_registry.ts";
import type { AgentStorageOptions, StorageAdapter } from "../storage/storage.ts";
import { compileKindFilter } from "../log/kind_pattern.ts";

/** The tools an agent may call, with its own token. */
export interface AgentTools {
  /**
   * Calls a tool with the agent's token and abort signal. While handling an
   * event, the call is the next of its steps (see `AgentContext.step`): its
   * output is recorded in `tool.completed`, and when the event is delivered
   * again the recorded output is returned without calling the tool, unless
   * the tool opted out (`journal: false`). The token is renewed
   * first when little of its life is left (10% of it, at least 60 s); a call
   * refused because the token expired or its secret was rotated out is made
   * once more with a fresh token.
   *
   * @throws {ToolNotFoundError} When no tool has this name.
   * @throws {CapabilityDeniedError} When the agent's token does not grant the tool.
   * @throws {NonDeterminismError} When an earlier attempt recorded another step, or
   * this tool with another input, at this call's index.
   */
  call(name: string, input: unknown, options?: { signal?: AbortSignal }): Promise<unknown>;
  /** Lists the tools of the runtime's registry. */
  list(): ToolInfo[];
}

/**
 * The part of a LogTape logger an agent gets in its context. It is a real
 * LogTape `Logger`; call `getLogger()` from `@logtape/logtape` for the rest.
 */
export interface AgentLogger {
  /** The category, `["toka", "agent", name]`. */
  readonly category: readonly string[];
  /** Logs at debug level; `{name}` placeholders are filled from `properties`. */
  debug(message: string, properties?: Record<string, unknown>): void;
  /** Logs at info level. */
  info(message: string, properties?: Record<string, unknown>): void;
  /** Logs at warning level. */
  warn(message: string, properties?: Record<string, unknown>): void;
  /** Logs at error level. */
  error(message: string, properties?: Record<string, unknown>): void;
}

/**
 * An agent's state: one JSON value, kept with its checkpoint. Each change is
 * recorded as an `agent.state` event caused by the event being handled, so
 * the state the agent had at any position can be read back
 * (`runtime.stateAt`).
 */
export interface AgentState {
  /**
   * The agent's state: the value set while handling this event, else the one
   * recorded last; `undefined` before the first. A copy: change it, then
   * `set` it.
   *
   * @returns The state, typed as the caller says (it is not checked).
   */
  get<T extends JsonValue = JsonValue>(): T | undefined;
  /**
   * Sets the state, while handling an event only. When the handler returns,
   * the value is recorded as an `agent.state` event caused by that event, in
   * one commit with the agent's checkpoint: a crash never keeps one without
   * the other, and a process that lost the agent's lease records neither. A
   * failed attempt's value is dropped; setting the state it already has
   * records nothing.
   *
   * @param value A JSON value of at most 4 MiB less 1 KiB as JSON.
   * @throws {TypeError} When the value is not JSON, or no event is being handled.
   * @throws {RangeError} When the value is too large.
   */
  set(value: JsonValue): void;
}

/** What an agent's `init`, `handle` and `stop` receive. */
export interface AgentContext {
  /** The agent's name. */
  readonly name: string;
  /**
   * The agent's capability token (`sub: "agent/<name>"`); never log it. It is
   * renewed before it expires: read it again rather than keeping it.
   */
  readonly token: string;
  /** Aborted when the runtime stops or the agent is unregistered: finish or give up soon. */
  readonly signal: AbortSignal;
  /** A LogTape logger with category `["toka", "agent", name]`. */
  readonly logger: AgentLogger;
  /** The runtime's tools, called with the agent's token. */
  readonly tools: AgentTools;
  /**
   * Emits an event to the stream `agent/<name>` unless another is given, with
   * `meta.actor` set to `agent/<name>`. While handling an event, the new
   * event gets it as parent and shares its correlation id, and emitting is
   * idempotent: when the event is delivered again (after a crash or a retry),
   * the n-th emit of the same kind returns the event already stored.
   */
  emit(input: EmitInput): Promise<EventRecord>;
  /** The agent's state, kept with its checkpoint (see {@linkcode AgentState}). */
  readonly state: AgentState;
  /**
   * Runs `fn` as a durable step of the event being handled and returns its
   * result: `fn` runs at most once per (agent, event, step index) to success.
   * The result is recorded as a `step.completed` event (payload `name`,
   * `index`, `result`; caused by the handled event) under the agent's lease;
   * when the event is delivered again (a retry, a crash, another process
   * taking over), the n-th step returns the recorded result without calling
   * `fn`. A throwing `fn` is recorded as `step.failed` and runs again at the
   * next attempt. Tool calls made while handling are steps too, numbered in
   * the same sequence. Outside handling (`init`, `stop`) `fn` just runs.
   *
   * @param name The step's name, 1 to 200 characters: the same on every attempt.
   * @param fn The work; its result must be JSON (or undefined) within the payload limit.
   * @returns The result, recorded or served from the log.
   * @throws {NonDeterminismError} When an earlier attempt recorded another step at this index.
   * @throws {TypeError} When the name or `fn` is invalid, or the result is not JSON.
   * @throws {RangeError} When the result is over the payload limit (put it in `storage("vault")`).
   * @throws {LeaseLostError} When another process took over the agent.
   */
  step<T>(name: string, fn: () => T | Promise<T>): Promise<T>;
  /**
   * The agent's own namespace of the runtime's storage (`agents/<name>/` of
   * it): `"local"`, `"vault"` or another scheme given to the runtime;
   * `undefined` for a scheme without an adapter. With `prefix`, a shared
   * folder instead, which, with auth attached, the token must grant with a
   * permission `storage:<scheme>:<prefix>` (or one for a folder above it);
   * each operation is then checked, and refused with a `CapabilityDeniedError`.
   *
   * @throws {TypeError} When `prefix` is not a folder a permission can name.
   */
  storage(scheme: string, options?: AgentStorageOptions): StorageAdapter | undefined;
}

/** An agent: what {@linkcode defineAgent} takes and returns. */
export interface Agent {
  /** Unique name: 1 to 64 letters, digits, `_` or `-`. */
  readonly name: string;
  /** Kind patterns of the events it handles, e.g. `["task.*"]`. */
  readonly subscribe: readonly string[];
  /** Permissions its token grants, e.g. `["tool:echo:invoke"]`; none by default. */
  readonly permissions?: readonly string[];
  /** Called once per start, before the first event. */
  init?(ctx: AgentContext): void | Promise<void>;
  /** Handles one event; the next waits until it settles. Throwing retries it. */
  handle(event: EventRecord, ctx: AgentContext): void | Promise<void>;
  /** Called once per stop, after the last event it handles. */
  stop?(ctx: AgentContext): void | Promise<void>;
}

const NAME_RE = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * Whether `name` is a valid agent name: 1 to 64 letters, digits, `_` or `-`.
 *
 * @param name A name.
 * @returns True when an agent may have it.
 */
export function isAgentName(name: unknown): name is string {
  return typeof name === "string" && NAME_RE.test(name);
}

/**
 * Checks an agent definition and returns it frozen.
 *
 * @param definition The name, kind patterns, handler and optional hooks.
 * @returns The agent, to pass to `runtime.register()`.
 * @throws {TypeError} When the name, patterns, permissions or a hook is invalid.
 *
 * @example
 * ```ts
 * import { defineAgent } from "@toka/runtime/runtime";
 *
 * const greeter = defineAgent({
 *   name: "greeter",
 *   subscribe: ["user.joined"],
 *   async handle(event, ctx) {
 *     await ctx.emit({ kind: "user.greeted", payload: event.payload });
 *   },
 * });
 * console.log(greeter.name); // greeter
 * ```
 */
export function defineAgent(definition: Agent): Agent {
  if (definition === null || typeof definition !== "object") {
    throw new TypeError(`Invalid agent ${JSON.stringify(definition)}: expected an object`);
  }
  const { name, subscribe, permissions, init, handle, stop } = definition;
  if (!isAgentName(name)) {
    throw new TypeError(
      `Invalid agent name ${JSON.stringify(name)}: use 1 to 64 letters, digits, _ or -`,
    );
  }
  if (!Array.isArray(subscribe) || subscribe.length === 0) {
    throw new TypeError(
      `Invalid subscriptions of agent "${name}": expected a non-empty list of kind patterns`,
    );
  }
  compileKindFilter(subscribe);
  if (
    permissions !== undefined &&
    (!Array.isArray(permissions) ||
      permissions.some((p) => typeof p !== "string" || p.length === 0))
  ) {
    throw new TypeError(
      `Invalid permissions of agent "${name}": expected a list of non-empty strings`,
    );
  }
  if (typeof handle !== "function") {
    throw new TypeError(`Invalid agent "${name}": handle must be a function`);
  }
  for (const [hook, fn] of [["init", init], ["stop", stop]] as const) {
    if (fn !== undefined && typeof fn !== "function") {
      throw new TypeError(`Invalid agent "${name}": ${hook} must be a function`);
    }
  }
  return Object.freeze({
    ...definition,
    subscribe: Object.freeze([...subscribe]),
    ...(permissions && { permissions: Object.freeze([...permissions]) }),
  });
}
