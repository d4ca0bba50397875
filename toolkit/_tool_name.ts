// The rule of a tool's name, shared by defineTool and wireName.
import { MAX_PERMISSION_LENGTH } from "../internal/permissions.ts";

/** The longest tool name: the default permission "tool:<name>:invoke" must fit in 64. */
const MAX_TOOL_NAME_LENGTH = MAX_PERMISSION_LENGTH - "tool::invoke".length;

// Dot-separated words, each starting with a letter: "echo", "fs.read", "weather.forecast".
const NAME = /^[a-z][a-z0-9_-]*(?:\.[a-z][a-z0-9_-]*)*$/;

/** Throws a one-line TypeError when `name` is not a valid tool name. */
export function checkToolName(name: unknown): asserts name is string {
  if (typeof name !== "string" || name.length > MAX_TOOL_NAME_LENGTH || !NAME.test(name)) {
    const shown = typeof name === "string" ? JSON.stringify(name.slice(0, 100)) : String(name);
    throw new TypeError(
      `Invalid tool name ${shown}: use 1 to ${MAX_TOOL_NAME_LENGTH} characters a-z, 0-9, "_" or "-", starting with a letter, in words separated by "."`,
    );
  }
}
