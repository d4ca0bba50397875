/**
 * What a tool is, and {@linkcode defineTool} to check a definition.
 *
 * @module
 */

import type { EventRecord } from "../runtime/log/event_store.ts";
import type { TokenClaims } from "../runtime/token_authority.ts";
import type { ToolAnnotations } from "../runtime/tool_registry.ts";
import { isValidPermission, MAX_PERMISSION_LENGTH } from "../internal/permissions.ts";
import { compileSchema } from "./_schema.ts";
import { checkToolName } from "./_tool_name.ts";

/** What a tool's `execute` receives besides its input. */
export interface ToolContext {
  /** Aborted when the call times out or the caller aborts; stop work when it fires. */
  signal: AbortSignal;
  /** The caller's verified token claims. */
  claims: TokenClaims;
  /** A unique id of this call, also in the call's events. */
  callId: string;
  /** The event the caller was handling (`ToolCallOptions.cause`), if it gave one. */
  cause?: EventRecord;
}

/**
 * A tool: a described, schema-checked function that agents call through a
 * registry.
 *
 * @typeParam I The input type; must match `inputSchema`.
 * @typeParam O The output type; must match `outputSchema` when given.
 */
export interface Tool<I = unknown, O = unknown> {
  /**
   * Unique name: words of a-z, 0-9, `_` or `-`, each starting with a letter, separated by `.`,
   * e.g. `"echo"` or `"fs.read"`; at most 52 characters, so the default permission
   * `tool:<name>:invoke` fits in 64. MCP clients and model APIs see it with `_` for `.`
   * (`wireName`: `fs_read`); no two tools of a registry may share that name.
   */
  name: string;
  /** One-line description for people and models. */
  description: string;
  /** Semantic version, e.g. `"1.0.0"`. */
  version: string;
  /** JSON Schema (draft-07) of the input; must be `type: "object"`. */
  inputSchema: Record<string, unknown>;
  /** JSON Schema of the output; the registry checks results against it. */
  outputSchema?: Record<string, unknown>;
  /** MCP-style behaviour hints. */
  annotations?: ToolAnnotations;
  /**
   * Permissions the caller's token must grant, at least one, each
   * `resource:action[:target]` of at most 64 characters; `["tool:<name>:invoke"]` by default.
   */
  permissions?: string[];
  /** Milliseconds a call may take; 30000 by default. */
  timeoutMs?: number;
  /**
   * Whether the call's `tool.invoked` event records the input itself besides its digest; false
   * by default, as an input may hold what the log should not keep (a prompt, a secret).
   */
  recordInput?: boolean;
  /**
   * `false` opts the tool out of the agents' tool journal: an agent's call is
   * not served from the log when its event is handled again, but runs again.
   * For read-only tools whose output is not worth recording (a clock, a
   * cache read). Journaled by default.
   */
  journal?: boolean;
  /**
   * Runs the tool on input that already matches `inputSchema`.
   *
   * @param input The validated input.
   * @param ctx The abort signal, the caller's claims and the call id.
   * @returns The output, or a promise of it.
   */
  execute(input: I, ctx: ToolContext): O | Promise<O>;
}

// From semver.org.
const SEMVER =
  /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$/;
// setTimeout's largest delay.
const MAX_TIMEOUT_MS = 2_147_483_647;

// JSON-style quoting: a control character in a value shows as an escape, never raw.
function quote(value: unknown): string {
  return typeof value === "string" ? JSON.stringify(value.slice(0, 100)) : String(value);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Checks a tool definition and returns it with its defaults filled in
 * (`permissions`, `timeoutMs`), frozen.
 *
 * @typeParam I The input type.
 * @typeParam O The output type.
 * @param tool The definition.
 * @returns The same tool, with `permissions` and `timeoutMs` set.
 * @throws {TypeError} When the name, description, version, a schema,
 * `permissions`, `journal` or `execute` is invalid; schemas are compiled with Ajv.
 * @throws {RangeError} When `timeoutMs` is not a positive integer up to 2^31 - 1.
 *
 * @example Define a tool
 * ```ts
 * import { defineTool } from "@toka/runtime/toolkit";
 *
 * const upper = defineTool({
 *   name: "upper",
 *   description: "Upper-cases a text",
 *   version: "1.0.0",
 *   inputSchema: {
 *     type: "object",
 *     properties: { text: { type: "string" } },
 *     required: ["text"],
 *   },
 *   execute: (input: { text: string }) => input.text.toUpperCase(),
 * });
 * console.log(upper.permissions); // ["tool:upper:invoke"]
 * ```
 */
export function defineTool<I, O>(
  tool: Tool<I, O>,
): Tool<I, O> & { permissions: string[]; timeoutMs: number } {
  if (!isObject(tool)) throw new TypeError("A tool definition must be an object");
  const { name, description, version, inputSchema, outputSchema, annotations } = tool;
  checkToolName(name);
  if (typeof description !== "string" || description.trim() === "") {
    throw new TypeError(`Tool "${name}" needs a non-empty description`);
  }
  if (typeof version !== "string" || !SEMVER.test(version)) {
    throw new TypeError(
      `Invalid version ${quote(version)} for tool "${name}": use semver, e.g. "1.0.0"`,
    );
  }
  if (!isObject(inputSchema) || inputSchema.type !== "object") {
    throw new TypeError(`The input schema of tool "${name}" must have type "object"`);
  }
  compileSchema(inputSchema, `input schema for tool "${name}"`);
  if (outputSchema !== undefined) {
    if (!isObject(outputSchema)) {
      throw new TypeError(`The output schema of tool "${name}" must be an object`);
    }
    compileSchema(outputSchema, `output schema for tool "${name}"`);
  }
  if (annotations !== undefined && !isObject(annotations)) {
    throw new TypeError(`The annotations of tool "${name}" must be an object`);
  }
  const permissions = tool.permissions ?? [`tool:${name}:invoke`];
  if (!Array.isArray(permissions) || permissions.length === 0) {
    throw new TypeError(`The permissions of tool "${name}" must be a non-empty list`);
  }
  for (const permission of permissions) {
    if (!isValidPermission(permission)) {
      throw new TypeError(
        `Invalid permission ${
          quote(permission)
        } of tool "${name}": expected "resource:action[:target]" of at most ${MAX_PERMISSION_LENGTH} characters`,
      );
    }
  }
  const timeoutMs = tool.timeoutMs ?? 30_000;
  if (!Number.isInteger(timeoutMs) || timeoutMs <= 0 || timeoutMs > MAX_TIMEOUT_MS) {
    throw new RangeError(
      `Invalid timeout ${
        quote(timeoutMs)
      } for tool "${name}": use a positive integer of milliseconds`,
    );
  }
  if (tool.recordInput !== undefined && typeof tool.recordInput !== "boolean") {
    throw new TypeError(`The recordInput of tool "${name}" must be true or false`);
  }
  if (tool.journal !== undefined && typeof tool.journal !== "boolean") {
    throw new TypeError(`The journal option of tool "${name}" must be true or false`);
  }
  if (typeof tool.execute !== "function") {
    throw new TypeError(`Tool "${name}" needs an execute function`);
  }
  // Calling through `tool` keeps `this` for tools that are class instances.
  return Object.freeze({
    ...tool,
    permissions: [...permissions],
    timeoutMs,
    execute: (input: I, ctx: ToolContext) => tool.execute(input, ctx),
  });
}
