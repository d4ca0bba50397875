/**
 * A tool's name on a wire: what MCP clients and model APIs see.
 *
 * @module
 */

import { checkToolName } from "./_tool_name.ts";

/**
 * The name a tool goes by wherever it leaves Toka (the `tools/list` of `toka mcp serve`, the
 * function definitions handed to a model API): its dots become `_`, so `fs.read` is `fs_read`.
 * The Claude and OpenAI APIs, to which MCP clients pass the names they are given, accept only
 * `^[a-zA-Z0-9_-]{1,64}$`; a wire name matches it and has at most 52 characters, so it still
 * fits behind a client's prefix such as `mcp__toka__`. Inside Toka the dotted name stays the
 * tool's identity (permissions, events, `toka tool`); `ToolRegistry.register` refuses a tool
 * whose wire name another tool already has, so a wire name leads back to one tool.
 *
 * @param name A tool name, e.g. `"fs.read"`.
 * @returns Its wire name, e.g. `"fs_read"`.
 * @throws {TypeError} When `name` is not a valid tool name.
 *
 * @example
 * ```ts
 * import { wireName } from "@toka/runtime/toolkit";
 *
 * console.log(wireName("weather.forecast")); // "weather_forecast"
 * console.log(wireName("echo")); // "echo"
 * ```
 */
export function wireName(name: string): string {
  checkToolName(name);
  return name.replaceAll(".", "_");
}
