/**
 * The domain errors a {@linkcode ToolRegistry} call may throw, besides
 * `ToolNotFoundError` and `CapabilityDeniedError` from the runtime.
 *
 * @module
 */

import { TokaError } from "../runtime/errors.ts";

/**
 * Thrown when a call's input does not match the tool's input schema. The
 * message names the first problem, e.g. `/text must be string`.
 *
 * @example
 * ```ts
 * import { ToolInputError } from "@toka/runtime/toolkit";
 *
 * const error = new ToolInputError("echo", "/text must be string");
 * console.log(error.message); // Invalid input for tool "echo": /text must be string
 * ```
 */
export class ToolInputError extends TokaError {
  /** The tool that was called. */
  readonly tool: string;
  /** The first problem found, as a JSON pointer followed by what is wrong. */
  readonly problem: string;

  /**
   * Creates the error.
   *
   * @param tool The tool name.
   * @param problem The first problem found in the input.
   */
  constructor(tool: string, problem: string) {
    super("tool_input", `Invalid input for tool "${tool}": ${problem}`);
    this.name = "ToolInputError";
    this.tool = tool;
    this.problem = problem;
  }
}

/**
 * Thrown when a tool returns output that does not match its output schema.
 *
 * @example
 * ```ts
 * import { ToolOutputError } from "@toka/runtime/toolkit";
 *
 * const error = new ToolOutputError("hash", "/digest must be string");
 * console.log(error.code); // "tool_output"
 * ```
 */
export class ToolOutputError extends TokaError {
  /** The tool that was called. */
  readonly tool: string;
  /** The first problem found, as a JSON pointer followed by what is wrong. */
  readonly problem: string;

  /**
   * Creates the error.
   *
   * @param tool The tool name.
   * @param problem The first problem found in the output.
   */
  constructor(tool: string, problem: string) {
    super("tool_output", `Invalid output from tool "${tool}": ${problem}`);
    this.name = "ToolOutputError";
    this.tool = tool;
    this.problem = problem;
  }
}

/**
 * Thrown when a tool call takes longer than the tool's `timeoutMs`. The
 * tool's `ctx.signal` is aborted with this error as its reason.
 *
 * @example
 * ```ts
 * import { ToolTimeoutError } from "@toka/runtime/toolkit";
 *
 * console.log(new ToolTimeoutError("slow", 20).message); // Tool "slow" timed out after 20 ms
 * ```
 */
export class ToolTimeoutError extends TokaError {
  /** The tool that was called. */
  readonly tool: string;
  /** The timeout that elapsed, in milliseconds. */
  readonly timeoutMs: number;

  /**
   * Creates the error.
   *
   * @param tool The tool name.
   * @param timeoutMs The timeout that elapsed.
   */
  constructor(tool: string, timeoutMs: number) {
    super("tool_timeout", `Tool "${tool}" timed out after ${timeoutMs} ms`);
    this.name = "ToolTimeoutError";
    this.tool = tool;
    this.timeoutMs = timeoutMs;
  }
}

/**
 * Thrown when a tool's `execute` throws or rejects. The original error is the
 * `cause`; its message is repeated in this one.
 *
 * @example
 * ```ts
 * import { ToolExecutionError } from "@toka/runtime/toolkit";
 *
 * const error = new ToolExecutionError("fetch", new Error("Connection refused"));
 * console.log(error.message); // Tool "fetch" failed: Connection refused
 * ```
 */
export class ToolExecutionError extends TokaError {
  /** The tool that was called. */
  readonly tool: string;

  /**
   * Creates the error.
   *
   * @param tool The tool name.
   * @param cause What the tool threw.
   */
  constructor(tool: string, cause: unknown) {
    super(
      "tool_failed",
      `Tool "${tool}" failed: ${cause instanceof Error ? cause.message : String(cause)}`,
      { cause },
    );
    this.name = "ToolExecutionError";
    this.tool = tool;
  }
}
