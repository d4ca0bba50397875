/**
 * Plugin manifests: what plugins to load and how to reach them, checked
 * against `toolkit/plugins.schema.json` (shipped in the package).
 *
 * @module
 */

import { readFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import manifestSchema from "./plugins.schema.json" with { type: "json" };
import { resolveSpec } from "./_plugin_spec.ts";

/**
 * A TS/JS module whose exports are tools made with `defineTool`, run in this process.
 *
 * @example
 * ```ts
 * import type { ModuleTransport } from "@toka/runtime/toolkit";
 *
 * const transport: ModuleTransport = { type: "module", module: "./weather_tools.ts" };
 * console.log(transport.type); // module
 * ```
 */
export interface ModuleTransport {
  /** The transport's tag. */
  type: "module";
  /** A path (relative to the manifest's folder) or a URL; after parsing, an absolute URL. */
  module: string;
}

/**
 * A child process speaking JSON-RPC 2.0 over stdin and stdout, one message per line:
 * `tools/list` returns `{ tools: [{ name, description, inputSchema, outputSchema? }] }` and
 * `tools/call` with `{ name, arguments }` returns the tool's output.
 *
 * @example
 * ```ts
 * import type { StdioTransport } from "@toka/runtime/toolkit";
 *
 * const transport: StdioTransport = {
 *   type: "stdio",
 *   command: "deno",
 *   args: ["run", "weather_stdio.ts"],
 *   env: { WEATHER_UNITS: "metric" },
 * };
 * console.log(transport.command); // deno
 * ```
 */
export interface StdioTransport {
  /** The transport's tag. */
  type: "stdio";
  /** The program to run, looked up on `PATH` when it has no `/`. */
  command: string;
  /** Its arguments. */
  args?: string[];
  /** Environment variables it gets besides `PATH`, `HOME` and a few others (never all of ours). */
  env?: Record<string, string>;
  /** Its working folder; the manifest's folder by default. After parsing, an absolute path. */
  cwd?: string;
}

/**
 * A JSON-RPC 2.0 endpoint (`tools/list`, `tools/call`) reached by HTTP POST.
 *
 * @example
 * ```ts
 * import type { HttpTransport } from "@toka/runtime/toolkit";
 *
 * const transport: HttpTransport = { type: "http", url: "http://127.0.0.1:8787/rpc" };
 * console.log(new URL(transport.url).port); // 8787
 * ```
 */
export interface HttpTransport {
  /** The transport's tag. */
  type: "http";
  /** The endpoint, `http://` or `https://`. */
  url: string;
  /** Headers sent with every request, e.g. `authorization`; never logged nor shown in errors. */
  headers?: Record<string, string>;
}

/**
 * Every tool of an MCP server, through the `@modelcontextprotocol/sdk` client: a `command`
 * started over stdio, or a Streamable HTTP `url`.
 *
 * @example
 * ```ts
 * import type { McpTransport } from "@toka/runtime/toolkit";
 *
 * const overStdio: McpTransport = { type: "mcp", command: "deno", args: ["run", "notes_mcp.ts"] };
 * const overHttp: McpTransport = { type: "mcp", url: "https://example.com/mcp" };
 * console.log(overStdio.command, overHttp.url); // deno https://example.com/mcp
 * ```
 */
export interface McpTransport {
  /** The transport's tag. */
  type: "mcp";
  /** The server program to run over stdio (exclusive with `url`). */
  command?: string;
  /** Its arguments. */
  args?: string[];
  /** Environment variables it gets besides `PATH`, `HOME` and a few others. */
  env?: Record<string, string>;
  /** Its working folder; the manifest's folder by default. */
  cwd?: string;
  /** The server's Streamable HTTP endpoint (exclusive with `command`). */
  url?: string;
  /** Headers sent with every HTTP request. */
  headers?: Record<string, string>;
}

/**
 * How a plugin is reached, tagged by `type`.
 *
 * @example
 * ```ts
 * import type { PluginTransport } from "@toka/runtime/toolkit";
 *
 * const describe = (t: PluginTransport) => t.type === "http" ? t.url : t.type;
 * console.log(describe({ type: "module", module: "./tools.ts" })); // module
 * ```
 */
export type PluginTransport = ModuleTransport | StdioTransport | HttpTransport | McpTransport;

/**
 * One plugin: its name (the prefix of its tools) and how to reach it.
 *
 * @example
 * ```ts
 * import type { PluginSpec } from "@toka/runtime/toolkit";
 *
 * const spec: PluginSpec = {
 *   name: "weather",
 *   transport: { type: "stdio", command: "deno", args: ["run", "weather_stdio.ts"] },
 *   timeoutMs: 10_000,
 *   tools: ["forecast"],
 * };
 * console.log(`${spec.name}.${spec.tools![0]}`); // weather.forecast
 * ```
 */
export interface PluginSpec {
  /** The plugin's name, the prefix of its tools: `weather` registers `weather.forecast`. */
  name: string;
  /** How to reach it. */
  transport: PluginTransport;
  /** Milliseconds each call may take; 30000 by default. */
  timeoutMs?: number;
  /** Register only these of its tools (unprefixed names); all by default. */
  tools?: string[];
  /** Where it was declared (a manifest path), for error messages. */
  source?: string;
}

let validate: ValidateFunction | undefined;

/**
 * Checks a plugin manifest, `{ "$schema"?, "plugins": { <name>: { transport, timeoutMs?,
 * tools? } } }`, against the schema shipped in the package (`toolkit/plugins.schema.json`) and
 * returns its plugins. Relative module paths and `cwd`s resolve against the folder of `source`,
 * which is also the default `cwd` of `stdio` and `mcp` commands. For the `plugins` field of
 * `toka.json`, pass `{ plugins: config.plugins }`.
 *
 * @param value The parsed JSON.
 * @param source Where it came from (a file path), named in errors and used to resolve paths.
 * @returns The plugins, in manifest order, with paths resolved and `source` set.
 * @throws {TypeError} When the manifest is invalid; one line naming `source` and the field,
 * e.g. `Invalid plugin manifest "plugins.json": plugins.weather.transport.type must be one of
 * "module", "stdio", "http", "mcp"`.
 *
 * @example Parse a manifest
 * ```ts
 * import { parsePluginManifest } from "@toka/runtime/toolkit";
 *
 * const specs = parsePluginManifest({
 *   plugins: { weather: { transport: { type: "http", url: "http://127.0.0.1:8080/rpc" } } },
 * }, "plugins.json");
 * console.log(specs[0].name, specs[0].transport.type); // weather http
 * try {
 *   parsePluginManifest({ plugins: { weather: { transport: { type: "ftp" } } } }, "plugins.json");
 * } catch (error) {
 *   console.log((error as Error).message);
 *   // Invalid plugin manifest "plugins.json": plugins.weather.transport.type must be one of "module", "stdio", "http", "mcp"
 * }
 * ```
 */
export function parsePluginManifest(value: unknown, source: string): PluginSpec[] {
  if (typeof source !== "string" || source === "") {
    throw new TypeError("Invalid plugin manifest source: expected a non-empty path or name");
  }
  validate ??= new Ajv({ logger: false }).compile(manifestSchema);
  if (!validate(value)) {
    throw new TypeError(
      `Invalid plugin manifest ${JSON.stringify(source)}: ${describe(validate.errors)}`,
    );
  }
  const base = dirname(resolve(source));
  const plugins = (value as { plugins: Record<string, Omit<PluginSpec, "name">> }).plugins;
  return Object.entries(plugins).map(([name, plugin]) =>
    resolveSpec({ ...structuredClone(plugin), name, source }, base)
  );
}

/**
 * Reads and checks a plugin manifest file (see {@linkcode parsePluginManifest}).
 *
 * @param path The manifest file, e.g. `plugins.json`.
 * @returns Its plugins, with paths resolved against the file's folder.
 * @throws {TypeError} When the file cannot be read, is not JSON or is not a valid manifest; one
 * line naming the file.
 *
 * @example Read a manifest file
 * ```ts
 * import { readPluginManifest } from "@toka/runtime/toolkit";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/plugins.json`, JSON.stringify({
 *   plugins: { tools: { transport: { type: "module", module: "./tools.ts" } } },
 * }));
 * const [spec] = await readPluginManifest(`${dir}/plugins.json`);
 * console.log(spec.transport); // { type: "module", module: "file:///…/tools.ts" }
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function readPluginManifest(path: string): Promise<PluginSpec[]> {
  if (typeof path !== "string" || path === "") {
    throw new TypeError("Invalid plugin manifest path: expected a non-empty path");
  }
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    const reason = (error as { code?: string }).code === "ENOENT"
      ? "no such file"
      : (error as Error).message;
    throw new TypeError(`Cannot read plugin manifest ${JSON.stringify(path)}: ${reason}`, {
      cause: error,
    });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new TypeError(
      `Invalid plugin manifest ${JSON.stringify(path)}: not JSON (${(error as Error).message})`,
      { cause: error },
    );
  }
  return parsePluginManifest(value, path);
}

// One line for the first problem: the field as a dotted path, then what is wrong with it.
function describe(errors: ErrorObject[] | null | undefined): string {
  // A propertyNames or oneOf error says more than the sub-errors Ajv lists before it.
  const error = errors?.find((e) => e.keyword === "propertyNames" || e.keyword === "oneOf") ??
    errors?.[0];
  if (error === undefined) return "the manifest is not valid";
  const segments = error.instancePath.split("/").slice(1).map((s) =>
    s.replaceAll("~1", "/").replaceAll("~0", "~")
  );
  const field = segments.length === 0
    ? "the manifest"
    : segments.map((s, i) => /^\d+$/.test(s) ? `[${s}]` : `${i ? "." : ""}${segment(s)}`).join("");
  const params = error.params as Record<string, unknown>;
  switch (error.keyword) {
    case "enum":
      return `${field} must be one of ${
        (params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(", ")
      }`;
    case "const":
      return `${field} must be ${JSON.stringify(params.allowedValue)}`;
    case "required":
      return `${field} needs "${params.missingProperty}"`;
    case "additionalProperties":
      return `${field} has an unknown field ${
        JSON.stringify(String(params.additionalProperty).slice(0, 100))
      }`;
    case "propertyNames":
      return `${field} has an invalid plugin name ${
        JSON.stringify(String(params.propertyName).slice(0, 100))
      }: use 1 to 32 characters a-z, 0-9, "_" or "-", starting with a letter`;
    case "oneOf":
    case "not":
      return `${field} needs either "command" (stdio) or "url" (Streamable HTTP), not both`;
    case "uniqueItems":
      return `${field} must not list the same name twice`;
    case "pattern":
      return field.endsWith(".url")
        ? `${field} must be an http:// or https:// URL`
        : `${field} must match ${params.pattern}`;
    case "type":
      return `${field} must be ${/^[aeiou]/.test(String(params.type)) ? "an" : "a"} ${params.type}`;
    default:
      return `${field} ${error.message ?? "is not valid"}`;
  }
}

// A path segment as it would be written in JS: names plainly, other keys quoted.
function segment(key: string): string {
  return /^[A-Za-z_$][\w$-]*$/.test(key) ? key : JSON.stringify(key.slice(0, 100));
}
