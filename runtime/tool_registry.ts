/**
 * The tool registry contract the runtime consumes, and the no-op registry it
 * uses when no toolkit is attached.
 *
 * @module
 */

import { TokaError } from "./errors.ts";
import type { EventRecord } from "./log/event_store.ts";

/** MCP-style hints about a tool's behaviour. */
export interface ToolAnnotations {
  /** The tool does not change its environment. */
  readOnlyHint?: boolean;
  /** The tool may destroy or overwrite data. */
  destructiveHint?: boolean;
  /** Calling it twice with the same input has no further effect. */
  idempotentHint?: boolean;
  /** The tool reaches outside the process (network, other systems). */
  openWorldHint?: boolean;
}

/** What a registry tells about a tool, without its implementation. */
export interface ToolInfo {
  /** Unique name, e.g. `"echo"`. */
  name: string;
  /** One-line description for people and models. */
  description: string;
  /** Semantic version of the tool. */
  version: string;
  /** JSON Schema of the input; always `type: "object"`. */
  inputSchema: Record<string, unknown>;
  /** JSON Schema of the output, if declared. */
  outputSchema?: Record<string, unknown>;
  /** MCP-style behaviour hints. */
  annotations?: ToolAnnotations;
  /** Permissions a caller's token must grant, e.g. `["tool:echo:invoke"]`. */
  permissions: string[];
  /** Milliseconds a call may take before it is aborted. */
  timeoutMs: number;
  /**
   * `false` when the tool opted out of the agents' tool journal (a read-only
   * tool whose output is not worth recording): its calls run again when an
   * event is handled again. Absent: journaled.
   */
  journal?: false;
}

/**
 * A call's outcome as a registry hands it to {@linkcode ToolCallOptions.recordOutcome}:
 * `tool.completed` with the output, or `tool.failed`.
 */
export interface ToolOutcome {
  /** `"tool.completed"` or `"tool.failed"`. */
  kind: "tool.completed" | "tool.failed";
  /** What happened. */
  payload: {
    /** The tool name. */
    tool: string;
    /** A unique id shared by the events of one call. */
    callId: string;
    /** `"sha256:<hex>"` of the canonical JSON input, when serialisable. */
    inputDigest?: string;
    /** Milliseconds from invocation to completion or failure. */
    durationMs: number;
    /** The output (`tool.completed`). */
    output?: unknown;
    /** Why it failed (`tool.failed`): a `TokaError` code or an error name, and the message. */
    error?: { code: string; message: string };
  };
}

/**
 * A read-only call's `tool.invoked` as a registry hands it to
 * {@linkcode ToolCallOptions.recordOutcome}, to be recorded with the outcome.
 */
export interface ToolInvocation {
  /** `"tool.invoked"`. */
  kind: "tool.invoked";
  /** What was called. */
  payload: {
    /** The tool name. */
    tool: string;
    /** A unique id shared by the events of one call. */
    callId: string;
    /** `"sha256:<hex>"` of the canonical JSON input, when serialisable. */
    inputDigest?: string;
    /** The input itself, for a tool defined with `recordInput: true`. */
    input?: unknown;
  };
}

/** Options of {@linkcode ToolRegistry.call}. */
export interface ToolCallOptions {
  /** The caller's capability token; checked when the registry has an authority. */
  token?: string;
  /** Aborts the call. */
  signal?: AbortSignal;
  /**
   * The event being handled when the call is made: the registry's events
   * (`tool.invoked`, …) are recorded as caused by it. Agents pass it for you.
   */
  cause?: EventRecord;
  /**
   * Records the call's outcome in place of the registry's own recorder, with
   * the output in `tool.completed`: agents pass it to journal their calls
   * under their lease. The call fails when it throws. For a tool annotated
   * `readOnlyHint: true` the registry may leave its `tool.invoked` unrecorded
   * until the call has run and pass it as `invoked`: record it before the
   * outcome, in the same append (a read-only call then costs one append).
   */
  recordOutcome?: (outcome: ToolOutcome, invoked?: ToolInvocation) => Promise<unknown>;
}

/** The surface of a tool registry, as the runtime and agents see it. */
export interface ToolRegistry {
  /** Returns the tool's description, or `undefined`. */
  get(name: string): ToolInfo | undefined;
  /** Lists every registered tool, sorted by name. */
  list(): ToolInfo[];
  /**
   * Validates the input, checks the caller's capability and runs the tool.
   *
   * @throws {ToolNotFoundError} When no tool has this name.
   */
  call(name: string, input: unknown, options?: ToolCallOptions): Promise<unknown>;
}

/**
 * Thrown when a tool is called by a name no registered tool has.
 *
 * @example
 * ```ts
 * import { ToolNotFoundError } from "@toka/runtime/runtime";
 *
 * console.log(new ToolNotFoundError("echo").message); // No tool named "echo" is registered
 * ```
 */
export class ToolNotFoundError extends TokaError {
  /** The name that was asked for. */
  readonly tool: string;

  /**
   * Creates the error.
   *
   * @param tool The tool name that was not found.
   */
  constructor(tool: string) {
    // The name comes from the caller: quoted with JSON escapes, so no control character shows.
    super(
      "tool_not_found",
      `No tool named ${JSON.stringify(String(tool).slice(0, 100))} is registered`,
    );
    this.name = "ToolNotFoundError";
    this.tool = tool;
  }
}

/**
 * The registry the runtime exposes when no toolkit is attached: it has no
 * tools, and every call fails with {@linkcode ToolNotFoundError}.
 *
 * @example
 * ```ts
 * import { NoopToolRegistry } from "@toka/runtime/runtime";
 *
 * const tools = new NoopToolRegistry();
 * console.log(tools.list()); // []
 * ```
 */
export class NoopToolRegistry implements ToolRegistry {
  /**
   * Always `undefined`: there are no tools.
   *
   * @param _name The tool name.
   * @returns `undefined`.
   */
  get(_name: string): ToolInfo | undefined {
    return undefined;
  }

  /**
   * Always empty.
   *
   * @returns An empty list.
   */
  list(): ToolInfo[] {
    return [];
  }

  /**
   * Always rejects: there are no tools.
   *
   * @param name The tool name.
   * @param _input Ignored.
   * @param _options Ignored.
   * @returns Never resolves successfully.
   * @throws {ToolNotFoundError} Always.
   */
  call(name: string, _input: unknown, _options?: ToolCallOptions): Promise<unknown> {
    return Promise.reject(new ToolNotFoundError(name));
  }
}
