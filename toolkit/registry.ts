/**
 * The toolkit's tool registry: registers tools and runs calls with input
 * validation, capability checks, timeouts, abort and event recording.
 *
 * @module
 */

import { canonicalJson, jsonDigest } from "../internal/canonical_json.ts";
import type { ValidateFunction } from "ajv";
import { TokaError } from "../runtime/errors.ts";
import type { EventRecord } from "../runtime/log/event_store.ts";
import {
  AllowAllAuthority,
  type TokenAuthority,
  type TokenClaims,
} from "../runtime/token_authority.ts";
import {
  type ToolCallOptions,
  type ToolInfo,
  type ToolInvocation,
  ToolNotFoundError,
  type ToolOutcome,
  type ToolRegistry as ToolRegistryContract,
} from "../runtime/tool_registry.ts";
import { compileSchema, firstProblem } from "./_schema.ts";
import { defineTool, type Tool, type ToolContext } from "./tool.ts";
import { wireName } from "./wire_name.ts";
import { type Attributes, inSpan, SpanKind, tracer } from "../internal/tracing.ts";
import { ToolExecutionError, ToolInputError, ToolOutputError, ToolTimeoutError } from "./errors.ts";

/**
 * The payload of the `tool.invoked`, `tool.completed`, `tool.failed` and
 * `tool.denied` events. It never holds a token, nor the input itself (only its digest) unless
 * the tool asks for it with `recordInput`.
 */
export interface ToolEventPayload {
  /** The tool name. */
  tool: string;
  /** A unique id shared by the events of one call. */
  callId: string;
  /** `"sha256:<hex>"` of the canonical JSON input (`tool.invoked` only, when serialisable). */
  inputDigest?: string;
  /** The input itself (`tool.invoked` only), for a tool defined with `recordInput: true`. */
  input?: unknown;
  /** Milliseconds from invocation to completion or failure (not on `tool.invoked`). */
  durationMs?: number;
  /**
   * The output (`tool.completed` of a call an agent journals, see
   * `ToolCallOptions.recordOutcome`): served back when its event is handled again.
   */
  output?: unknown;
  /**
   * Why the call failed or was refused (`tool.failed`, `tool.denied`): a `TokaError` code or an
   * error name, and the message (at most 300 characters on `tool.denied`).
   */
  error?: { code: string; message: string };
}

/** An event the registry records. */
export interface ToolEvent {
  /**
   * `"tool.invoked"`, then `"tool.completed"` or `"tool.failed"`; or `"tool.denied"` alone
   * when the caller's token was refused.
   */
  kind: "tool.invoked" | "tool.completed" | "tool.failed" | "tool.denied";
  /** What happened. */
  payload: ToolEventPayload;
}

/** Options of the {@linkcode ToolRegistry} constructor. */
export interface ToolRegistryOptions {
  /** Checks callers' tokens; an {@linkcode AllowAllAuthority} by default. */
  authority?: TokenAuthority;
  /**
   * Records the registry's events, with the caller's `cause` if it gave one;
   * the runtime wires this to its event bus. A call waits for it, and fails
   * when it throws.
   */
  record?: (event: ToolEvent, cause?: EventRecord) => unknown | Promise<unknown>;
  /**
   * Records several events at once, in order, with the caller's `cause`: as one
   * vault append, so they are stored together or not at all. The registry uses it
   * for a tool annotated `readOnlyHint: true`, whose `tool.invoked` need not be
   * stored before it runs (it changes nothing): both events are recorded once it
   * has run, before the call returns, in one append instead of two. Without it,
   * `record` is called for each event, in order.
   */
  recordBatch?: (events: ToolEvent[], cause?: EventRecord) => unknown | Promise<unknown>;
  /** Milliseconds since the epoch, for durations; `Date.now` by default. */
  clock?: () => number;
  /**
   * Starts a call's timeout: calls `fire` after `ms` milliseconds and returns what
   * cancels it; `setTimeout` by default (a test's fake timer fires at will).
   */
  startTimer?: (fire: () => void, ms: number) => () => void;
  /** Tools to register at once. */
  tools?: Tool[];
}

interface Entry {
  tool: Tool;
  wire: string;
  info: ToolInfo;
  validateInput: ValidateFunction;
  validateOutput?: ValidateFunction;
}

/**
 * A registry of tools. `call` checks the caller's token for every permission
 * the tool requires, validates the input against the tool's schema, runs the
 * tool with a timeout and the caller's abort signal, validates the output and
 * records `tool.invoked`, then `tool.completed` or `tool.failed`. The token
 * is checked first: a refused call does no other work (the input is not read,
 * hashed nor validated) and records one small `tool.denied` event.
 *
 * @example Register and call a tool
 * ```ts
 * import { echoTool, ToolRegistry } from "@toka/runtime/toolkit";
 *
 * const tools = new ToolRegistry({ tools: [echoTool] });
 * console.log(await tools.call("echo", { text: "hi" })); // { text: "hi" }
 * ```
 */
export class ToolRegistry implements ToolRegistryContract {
  #tools = new Map<string, Entry>();
  // Wire name to tool name: each wire name leads back to one tool.
  #wire = new Map<string, string>();
  #authority: TokenAuthority;
  #record: (event: ToolEvent, cause?: EventRecord) => unknown | Promise<unknown>;
  #recordBatch?: (events: ToolEvent[], cause?: EventRecord) => unknown | Promise<unknown>;
  #clock: () => number;
  #startTimer: (fire: () => void, ms: number) => () => void;

  /**
   * Creates a registry.
   *
   * @param options The authority, event recorder, clock and initial tools.
   * @throws {TypeError} When an initial tool is invalid or two share a name.
   */
  constructor(options: ToolRegistryOptions = {}) {
    this.#authority = options.authority ?? new AllowAllAuthority();
    this.#record = options.record ?? (() => {});
    this.#recordBatch = options.recordBatch;
    this.#clock = options.clock ?? Date.now;
    this.#startTimer = options.startTimer ?? startTimer;
    for (const tool of options.tools ?? []) this.register(tool);
  }

  /**
   * Adds a tool, checking its definition and compiling its schemas once.
   *
   * @param tool The tool.
   * @returns What the registry tells about the tool.
   * @throws {TypeError} When the definition is invalid, the name is taken, or another tool
   * has the same {@linkcode wireName} (`a.b_c` and `a_b.c` are both `a_b_c`).
   * @throws {RangeError} When the timeout is out of range.
   *
   * @example
   * ```ts
   * import { echoTool, ToolRegistry } from "@toka/runtime/toolkit";
   *
   * const tools = new ToolRegistry();
   * console.log(tools.register(echoTool).permissions); // ["tool:echo:invoke"]
   * ```
   */
  register(tool: Tool): ToolInfo {
    const defined = defineTool(tool);
    if (this.#tools.has(defined.name)) {
      throw new TypeError(`A tool named "${defined.name}" is already registered`);
    }
    const wire = wireName(defined.name);
    const other = this.#wire.get(wire);
    if (other !== undefined) {
      throw new TypeError(
        `Cannot register tool "${defined.name}": tool "${other}" has the same wire name "${wire}"`,
      );
    }
    const { name, description, version, inputSchema, outputSchema, annotations } = defined;
    const info: ToolInfo = {
      name,
      description,
      version,
      inputSchema,
      ...(outputSchema && { outputSchema }),
      ...(annotations && { annotations: { ...annotations } }),
      permissions: defined.permissions,
      timeoutMs: defined.timeoutMs,
      ...(defined.journal === false && { journal: false as const }),
    };
    this.#tools.set(name, {
      tool: defined,
      wire,
      info,
      validateInput: compileSchema(inputSchema, `input schema for tool "${name}"`),
      validateOutput: outputSchema &&
        compileSchema(outputSchema, `output schema for tool "${name}"`),
    });
    this.#wire.set(wire, name);
    return structuredClone(info);
  }

  /**
   * Removes a tool. Calls already running finish.
   *
   * @param name The tool name.
   * @returns True when a tool was removed.
   *
   * @example
   * ```ts
   * import { echoTool, ToolRegistry } from "@toka/runtime/toolkit";
   *
   * const tools = new ToolRegistry({ tools: [echoTool] });
   * console.log(tools.unregister("echo")); // true
   * ```
   */
  unregister(name: string): boolean {
    const entry = this.#tools.get(name);
    if (entry === undefined) return false;
    this.#wire.delete(entry.wire);
    return this.#tools.delete(name);
  }

  /**
   * Finds the tool that goes by a wire name, the name MCP clients and model APIs see.
   *
   * @param wire A wire name, e.g. `"fs_read"`.
   * @returns The tool's name, e.g. `"fs.read"`, or `undefined` when no tool goes by it.
   *
   * @example
   * ```ts
   * import { createFsTools, ToolRegistry } from "@toka/runtime/toolkit";
   *
   * const tools = new ToolRegistry({ tools: createFsTools({ root: "./data" }) });
   * console.log(tools.fromWireName("fs_read")); // "fs.read"
   * console.log(tools.fromWireName("fs.read")); // undefined: a wire name has no dots
   * ```
   */
  fromWireName(wire: string): string | undefined {
    return this.#wire.get(wire);
  }

  /**
   * Describes a tool, without its implementation.
   *
   * @param name The tool name.
   * @returns A copy of the tool's description, or `undefined`.
   *
   * @example
   * ```ts
   * import { echoTool, ToolRegistry } from "@toka/runtime/toolkit";
   *
   * const tools = new ToolRegistry({ tools: [echoTool] });
   * console.log(tools.get("echo")?.annotations?.readOnlyHint); // true
   * ```
   */
  get(name: string): ToolInfo | undefined {
    const entry = this.#tools.get(name);
    return entry && structuredClone(entry.info);
  }

  /**
   * Lists every tool, sorted by name.
   *
   * @returns Copies of the tools' descriptions.
   *
   * @example
   * ```ts
   * import { builtinTools, ToolRegistry } from "@toka/runtime/toolkit";
   *
   * const tools = new ToolRegistry({ tools: builtinTools() });
   * console.log(tools.list().map((tool) => tool.name)); // ["echo", "hash", "now"]
   * ```
   */
  list(): ToolInfo[] {
    return [...this.#tools.keys()].sort().map((name) => this.get(name)!);
  }

  /**
   * Calls a tool.
   *
   * @param name The tool name.
   * @param input The input; must match the tool's input schema.
   * @param options The caller's token and abort signal.
   * @returns The tool's output.
   * @throws {ToolNotFoundError} When no tool has this name (no event is recorded).
   * @throws {CapabilityDeniedError} When the token lacks a required permission, or
   * another `TokaError` from the authority when the token is not valid; checked first,
   * recorded as one `tool.denied` event, and nothing else is done.
   * @throws {ToolInputError} When the input does not match the schema, or the tool refuses it.
   * @throws {ToolTimeoutError} When the tool runs longer than its timeout.
   * @throws {ToolExecutionError} When the tool throws.
   * @throws {ToolOutputError} When the output does not match the output schema.
   * @throws {unknown} The signal's reason when the caller aborts.
   *
   * @example Call with a signal
   * ```ts
   * import { echoTool, ToolRegistry } from "@toka/runtime/toolkit";
   *
   * const tools = new ToolRegistry({ tools: [echoTool] });
   * const signal = new AbortController().signal;
   * console.log(await tools.call("echo", { text: "hi" }, { signal })); // { text: "hi" }
   * ```
   */
  call(name: string, input: unknown, options: ToolCallOptions = {}): Promise<unknown> {
    const entry = this.#tools.get(name);
    if (entry === undefined) return Promise.reject(new ToolNotFoundError(name));
    const callId = crypto.randomUUID();
    if (tracer() === undefined) return this.#call(entry, name, callId, input, options);
    // GenAI conventions' execute_tool span; the input and output stay out of it.
    const attributes: Attributes = {
      "gen_ai.operation.name": "execute_tool",
      "gen_ai.tool.name": name,
      "gen_ai.tool.call.id": callId,
    };
    if (options.cause !== undefined) attributes["toka.event.id"] = options.cause.id;
    return inSpan(
      `execute_tool ${name}`,
      SpanKind.INTERNAL,
      attributes,
      undefined,
      () => this.#call(entry, name, callId, input, options),
    );
  }

  async #call(
    entry: Entry,
    name: string,
    callId: string,
    input: unknown,
    options: ToolCallOptions,
  ): Promise<unknown> {
    const started = this.#clock();
    const cause = options.cause;
    // Authorise before touching the input: a refused call costs the caller's
    // token check and one small event, whatever it sent.
    let claims!: TokenClaims;
    try {
      // defineTool guarantees at least one permission, so claims gets set.
      for (const permission of entry.info.permissions) {
        claims = await this.#authority.authorize(options.token, permission);
      }
    } catch (error) {
      await this.#record({
        kind: "tool.denied",
        payload: { tool: name, callId, error: errorInfo(error, 300) },
      }, cause);
      throw error;
    }
    const inputDigest = digest(input);
    const invoked: ToolEvent = {
      kind: "tool.invoked",
      payload: {
        tool: name,
        callId,
        ...(inputDigest && { inputDigest }),
        ...(inputDigest && entry.tool.recordInput === true && { input }),
      },
    };
    // A tool with effects has its invocation stored before it runs; a read-only
    // one's is stored with its outcome, in one batch: the recorder's, or the
    // caller's journal's (which records both under its agent's lease).
    const journal = options.recordOutcome;
    const readOnly = entry.info.annotations?.readOnlyHint === true;
    const deferred = readOnly && (journal !== undefined || this.#recordBatch !== undefined);
    if (!deferred) await this.#record(invoked, cause);
    let output: unknown;
    let outcome: ToolEvent;
    let failure: { error: unknown } | undefined;
    try {
      if (!entry.validateInput(input)) {
        throw new ToolInputError(name, firstProblem(entry.validateInput.errors));
      }
      output = await this.#run(entry, input, claims, callId, options.signal, cause);
      if (entry.validateOutput && !entry.validateOutput(output)) {
        throw new ToolOutputError(name, firstProblem(entry.validateOutput.errors));
      }
      const durationMs = this.#clock() - started;
      outcome = {
        kind: "tool.completed",
        payload: journal === undefined
          ? { tool: name, callId, durationMs }
          : { tool: name, callId, ...(inputDigest && { inputDigest }), durationMs, output },
      };
    } catch (error) {
      failure = { error };
      outcome = {
        kind: "tool.failed",
        payload: {
          tool: name,
          callId,
          durationMs: this.#clock() - started,
          error: errorInfo(error),
        },
      };
    }
    if (journal !== undefined) {
      await journal(outcome as ToolOutcome, deferred ? invoked as ToolInvocation : undefined);
    } else if (deferred) await this.#recordBatch!([invoked, outcome], cause);
    else await this.#record(outcome, cause);
    if (failure !== undefined) throw failure.error;
    return output;
  }

  // Runs the tool until it settles, times out or the caller aborts; either of
  // the last two aborts ctx.signal and rejects at once, even when the tool
  // ignores its signal. No timer or listener outlives the call.
  async #run(
    entry: Entry,
    input: unknown,
    claims: TokenClaims,
    callId: string,
    callerSignal: AbortSignal | undefined,
    cause: EventRecord | undefined,
  ): Promise<unknown> {
    callerSignal?.throwIfAborted();
    const { name, timeoutMs } = entry.info;
    const controller = new AbortController();
    let rejectStopped!: (reason: unknown) => void;
    const stopped = new Promise<never>((_, reject) => rejectStopped = reject);
    const stop = (reason: unknown) => {
      controller.abort(reason);
      rejectStopped(reason);
    };
    const onCallerAbort = () => stop(callerSignal!.reason);
    const cancelTimer = this.#startTimer(
      () => stop(new ToolTimeoutError(name, timeoutMs)),
      timeoutMs,
    );
    callerSignal?.addEventListener("abort", onCallerAbort, { once: true });
    const ctx: ToolContext = {
      signal: controller.signal,
      claims,
      callId,
      ...(cause !== undefined && { cause }),
    };
    try {
      const running = (async () => await entry.tool.execute(input, ctx))().catch(
        (error: unknown) => {
          // A tool's own input checks, beyond the schema, fail as the schema's do.
          throw error instanceof ToolInputError ? error : new ToolExecutionError(name, error);
        },
      );
      return await Promise.race([running, stopped]);
    } finally {
      cancelTimer();
      callerSignal?.removeEventListener("abort", onCallerAbort);
    }
  }
}

function errorInfo(error: unknown, maxLength = Infinity): { code: string; message: string } {
  const code = error instanceof TokaError
    ? error.code
    : error instanceof Error
    ? error.name
    : "unknown";
  const message = error instanceof Error ? error.message : String(error);
  return {
    code,
    message: message.length > maxLength ? `${message.slice(0, maxLength)}…` : message,
  };
}

function startTimer(fire: () => void, ms: number): () => void {
  const timer = setTimeout(fire, ms);
  return () => clearTimeout(timer);
}

// The input's digest, so the log can prove what was asked without storing
// inputs that may hold secrets: the same canonical JSON and digest as events'.
function digest(input: unknown): string | undefined {
  try {
    return jsonDigest(canonicalJson(input, Infinity));
  } catch {
    return undefined; // Not JSON, e.g. circular (past the stack) or a lone surrogate.
  }
}
