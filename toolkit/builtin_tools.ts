/**
 * Small built-in tools: `echo`, `hash` and `now`.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { defineTool, type Tool } from "./tool.ts";

/**
 * `echo`: returns its input text. Read-only and idempotent.
 *
 * @example
 * ```ts
 * import { echoTool, ToolRegistry } from "@toka/runtime/toolkit";
 *
 * const tools = new ToolRegistry({ tools: [echoTool] });
 * console.log(await tools.call("echo", { text: "hi" })); // { text: "hi" }
 * ```
 */
export const echoTool: Tool<{ text: string }, { text: string }> = defineTool({
  name: "echo",
  description: "Returns the text it is given",
  version: "1.0.0",
  inputSchema: {
    type: "object",
    properties: { text: { type: "string" } },
    required: ["text"],
    additionalProperties: false,
  },
  outputSchema: {
    type: "object",
    properties: { text: { type: "string" } },
    required: ["text"],
  },
  annotations: { readOnlyHint: true, idempotentHint: true, openWorldHint: false },
  execute: (input: { text: string }) => ({ text: input.text }),
});

/**
 * `hash`: the SHA-256 digest of a UTF-8 text, as `"sha256:<hex>"`. Read-only
 * and idempotent.
 *
 * @example
 * ```ts
 * import { hashTool, ToolRegistry } from "@toka/runtime/toolkit";
 *
 * const tools = new ToolRegistry({ tools: [hashTool] });
 * console.log(await tools.call("hash", { text: "" }));
 * // { digest: "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" }
 * ```
 */
export const hashTool: Tool<{ text: string }, { digest: string }> = defineTool({
  name: "hash",
  description: "Returns the SHA-256 digest of a text",
  version: "1.0.0",
  inputSchema: {
    type: "object",
    properties: { text: { type: "string" } },
    required: ["text"],
    additionalProperties: false,
  },
  outputSchema: {
    type: "object",
    properties: { digest: { type: "string", pattern: "^sha256:[0-9a-f]{64}$" } },
    required: ["digest"],
  },
  annotations: { readOnlyHint: true, idempotentHint: true, openWorldHint: false },
  execute: (input: { text: string }) => ({
    digest: `sha256:${createHash("sha256").update(input.text, "utf8").digest("hex")}`,
  }),
});

/** The output of the `now` tool. */
export interface NowOutput {
  /** Milliseconds since the epoch. */
  epochMs: number;
  /** The same instant in ISO 8601, UTC. */
  iso: string;
}

/**
 * Creates `now`: the current time from a clock. Read-only, not idempotent.
 *
 * @param clock Milliseconds since the epoch; `Date.now` by default.
 * @returns The tool.
 *
 * @example
 * ```ts
 * import { createNowTool, ToolRegistry } from "@toka/runtime/toolkit";
 *
 * const tools = new ToolRegistry({ tools: [createNowTool(() => 0)] });
 * console.log(await tools.call("now", {})); // { epochMs: 0, iso: "1970-01-01T00:00:00.000Z" }
 * ```
 */
export function createNowTool(
  clock: () => number = Date.now,
): Tool<Record<string, never>, NowOutput> {
  return defineTool({
    name: "now",
    description: "Returns the current time",
    version: "1.0.0",
    inputSchema: { type: "object", additionalProperties: false },
    outputSchema: {
      type: "object",
      properties: { epochMs: { type: "number" }, iso: { type: "string" } },
      required: ["epochMs", "iso"],
    },
    annotations: { readOnlyHint: true, idempotentHint: false, openWorldHint: false },
    execute: () => {
      const epochMs = clock();
      return { epochMs, iso: new Date(epochMs).toISOString() };
    },
  });
}

/**
 * Every built-in tool: `echo`, `hash` and `now`.
 *
 * @param options `clock` for `now`; `Date.now` by default.
 * @returns The tools, ready to register.
 *
 * @example
 * ```ts
 * import { builtinTools, ToolRegistry } from "@toka/runtime/toolkit";
 *
 * const tools = new ToolRegistry({ tools: builtinTools() });
 * console.log(tools.list().length); // 3
 * ```
 */
export function builtinTools(options: { clock?: () => number } = {}): Tool[] {
  return [echoTool, hashTool, createNowTool(options.clock)] as Tool[];
}
