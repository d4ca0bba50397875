// Tools described by a remote plugin (a tools/list answer), shared by the stdio, http and mcp
// transports. Definitions are checked by the registry when the host registers them.
import type { ToolAnnotations } from "../runtime/tool_registry.ts";
import type { Tool, ToolContext } from "./tool.ts";
import { ToolTimeoutError } from "./errors.ts";

/** Runs one call of a remote tool, by its remote name. */
export type RemoteCall = (remoteName: string, input: unknown, ctx: ToolContext) => Promise<unknown>;

const HINTS = ["readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint"] as const;
const SEMVER = /^\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.+-]+)?$/;

/** Whether a value is a plain object. */
export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * A value for a one-line message: strings as they are, other values as JSON; control characters
 * escaped, at most `max` characters.
 */
export function preview(value: unknown, max = 80): string {
  let text: string;
  try {
    text = typeof value === "string" ? value : JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  text = text.replace(
    // deno-lint-ignore no-control-regex
    /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

/**
 * A signal that aborts with a `TimeoutError` after `ms`, and a function to stop its timer
 * (`AbortSignal.timeout` keeps a process alive until it fires).
 */
export function deadline(ms: number): { signal: AbortSignal; clear(): void } {
  const controller = new AbortController();
  const timer = setTimeout(
    () => controller.abort(new DOMException("The operation timed out", "TimeoutError")),
    ms,
  );
  return { signal: controller.signal, clear: () => clearTimeout(timer) };
}

/**
 * What to quote of a process's stderr in an error: its last line that mentions an error (Deno
 * and Node put the message before the source excerpt), else its last line; `""` when empty.
 */
export function stderrHint(tail: string): string {
  // deno-lint-ignore no-control-regex
  const plain = tail.replace(/\u001b\[[0-9;]*[A-Za-z]/g, ""); // colours
  const lines = plain.split("\n").map((line) => line.trim()).filter(Boolean);
  const line = lines.findLast((line) => /error/i.test(line)) ?? lines.at(-1);
  return line === undefined ? "" : ` (stderr: "${preview(line, 200)}")`;
}

/** Whether a call's signal was aborted by the registry's timeout (not by the caller). */
export function timedOut(signal: AbortSignal): boolean {
  return signal.aborted && signal.reason instanceof ToolTimeoutError;
}

/**
 * A remote tool name as a Toka tool word: camelCase to snake_case, lower case, other characters
 * to `_` (`getWeather` → `get_weather`). The remote name is still what the plugin is called with.
 */
function localName(remote: string): string {
  return remote.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toLowerCase().replace(/[^a-z0-9_.-]/g, "_");
}

/**
 * Turns a `tools/list` answer (`{ tools: [...] }`) into tool definitions whose `execute` calls
 * `call`. Throws an Error naming what is wrong with the answer's shape; schemas are checked when
 * the tools are registered.
 */
export function remoteTools(answer: unknown, call: RemoteCall, version?: string): Tool[] {
  const fallback = version !== undefined && SEMVER.test(version) ? version : "0.0.0";
  if (!isObject(answer) || !Array.isArray(answer.tools)) {
    throw new Error(`tools/list answered ${preview(answer)}, not { "tools": [...] }`);
  }
  return answer.tools.map((raw: unknown, i: number): Tool => {
    if (!isObject(raw) || typeof raw.name !== "string" || raw.name === "") {
      throw new Error(`tools/list entry ${i} has no name: ${preview(raw)}`);
    }
    const remote = raw.name;
    const description = typeof raw.description === "string" && raw.description.trim() !== ""
      ? raw.description
      : `The "${remote.slice(0, 60)}" tool`;
    const annotations: ToolAnnotations = {};
    if (isObject(raw.annotations)) {
      for (const hint of HINTS) {
        if (typeof raw.annotations[hint] === "boolean") annotations[hint] = raw.annotations[hint];
      }
    }
    return {
      name: localName(remote),
      description,
      version: typeof raw.version === "string" && SEMVER.test(raw.version) ? raw.version : fallback,
      inputSchema: schema(raw.inputSchema) ?? (raw.inputSchema as Record<string, unknown>),
      ...(raw.outputSchema !== undefined &&
        {
          outputSchema: schema(raw.outputSchema) ?? (raw.outputSchema as Record<string, unknown>),
        }),
      ...(Object.keys(annotations).length > 0 && { annotations }),
      execute: (input: unknown, ctx: ToolContext) => call(remote, input, ctx),
    };
  });
}

// Drops "$schema": remote servers name draft 2020-12 or draft-07, and the registry's Ajv
// compiles the keywords they share; any keyword it does not know is still refused.
function schema(value: unknown): Record<string, unknown> | undefined {
  if (!isObject(value)) return undefined;
  const { $schema: _, ...rest } = value;
  return rest;
}
