/**
 * Loading plugins: {@linkcode loadPlugins} reaches each plugin of a manifest, lists its tools and
 * registers them, prefixed with the plugin's name, into a {@linkcode ToolRegistry}.
 *
 * @module
 */

import { TokaError } from "../runtime/errors.ts";
import type { ToolRegistry } from "./registry.ts";
import type { Tool, ToolContext } from "./tool.ts";
import { parsePluginManifest, type PluginSpec } from "./plugin_manifest.ts";
import { deadline, isObject, preview, remoteTools } from "./_plugin_remote.ts";
import { intOption } from "../internal/int_option.ts";
import { moduleTools } from "./_plugin_module.ts";
import { StdioConnection } from "./_plugin_stdio.ts";
import { HttpConnection } from "./_plugin_http.ts";

/**
 * Options of {@linkcode loadPlugins}.
 *
 * @example
 * ```ts
 * import type { LoadPluginsOptions } from "@toka/runtime/toolkit";
 *
 * const options: LoadPluginsOptions = {
 *   restartDelayMs: 250,
 *   startTimeoutMs: 10_000,
 *   onError: (error) => console.warn(error.message), // skip plugins that cannot be loaded
 * };
 * console.log(options.restartDelayMs); // 250
 * ```
 */
export interface LoadPluginsOptions {
  /**
   * Milliseconds before restarting a `stdio` or `mcp` (stdio) plugin process that died; doubled
   * for each death in a row, reset by an answer. 100 by default.
   */
  restartDelayMs?: number;
  /** The longest delay between restarts, in milliseconds; 5000 by default. */
  maxRestartDelayMs?: number;
  /**
   * Milliseconds to reach each plugin and list its tools (starting its process, connecting);
   * 30000 by default.
   */
  startTimeoutMs?: number;
  /**
   * Called with the error of each plugin that cannot be loaded, which is then skipped. Without
   * it, such a plugin makes `loadPlugins` reject (after closing the others).
   */
  onError?: (error: PluginLoadError) => void;
}

/**
 * A loaded plugin, as {@linkcode PluginHost.plugins} lists it.
 *
 * @example
 * ```ts
 * import type { LoadedPlugin } from "@toka/runtime/toolkit";
 *
 * const plugin: LoadedPlugin = { name: "weather", type: "stdio", tools: ["weather.forecast"] };
 * console.log(plugin.tools.length); // 1
 * ```
 */
export interface LoadedPlugin {
  /** The plugin's name, the prefix of its tools. */
  name: string;
  /** Its transport type. */
  type: PluginSpec["transport"]["type"];
  /** The registered tool names, prefixed, sorted. */
  tools: string[];
}

/**
 * The loaded plugins. Closing it unregisters their tools and stops their processes and
 * connections; `await using` closes it too.
 *
 * @example
 * ```ts
 * import { loadPlugins, ToolRegistry } from "@toka/runtime/toolkit";
 *
 * const registry = new ToolRegistry();
 * const host = await loadPlugins(registry, []); // no plugins: nothing started
 * console.log(host.plugins); // []
 * await host.close();
 * ```
 */
export interface PluginHost extends AsyncDisposable {
  /** The plugins loaded, in the order given. */
  readonly plugins: readonly LoadedPlugin[];
  /** Unregisters the plugins' tools, kills their processes and closes their connections. */
  close(): Promise<void>;
}

/**
 * A plugin could not be loaded: unreachable, its process failed, it listed no or invalid tools,
 * or a tool name is taken. The message names the plugin, where it was declared and why.
 *
 * @example
 * ```ts
 * import { PluginLoadError } from "@toka/runtime/toolkit";
 *
 * const error = new PluginLoadError("weather", "plugins.json", "command \"wx\" not found");
 * console.log(error.message); // Cannot load plugin "weather" (plugins.json): command "wx" not found
 * ```
 */
export class PluginLoadError extends TokaError {
  /** The plugin's name. */
  readonly plugin: string;
  /** Where the plugin was declared, when known. */
  readonly source?: string;

  /**
   * Creates the error.
   *
   * @param plugin The plugin's name.
   * @param source Where it was declared, or `undefined`.
   * @param reason Why it cannot be loaded, one line.
   * @param options The cause.
   */
  constructor(plugin: string, source: string | undefined, reason: string, options?: ErrorOptions) {
    super(
      "plugin_load",
      `Cannot load plugin ${JSON.stringify(plugin)}${source ? ` (${source})` : ""}: ${reason}`,
      options,
    );
    this.name = "PluginLoadError";
    this.plugin = plugin;
    this.source = source;
  }
}

interface Opened {
  tools: Tool[];
  close(): Promise<void>;
}

const DEFAULT_TIMEOUT_MS = 30_000;

/**
 * Loads plugins and registers their tools into a registry, each named `<plugin>.<tool>` and
 * gated, validated and recorded like any tool (permission `tool:<plugin>.<tool>:invoke`). Every
 * plugin is reached once now, to list its tools (a `stdio` or `mcp` command is started here);
 * a process that dies later is restarted, with backoff, by the next call. A call that fails in
 * the plugin (its process died, it hung past `timeoutMs`, answered garbage or an error) rejects
 * with a `ToolExecutionError` (a timeout: `ToolTimeoutError`; output not matching the tool's
 * `outputSchema`: `ToolOutputError`), and the next call tries again.
 *
 * @param registry Where to register the tools.
 * @param specs The plugins, e.g. from {@linkcode readPluginManifest}.
 * @param options Restart delays, and what to do with a plugin that cannot be loaded.
 * @returns The host; close it to unregister the tools and stop the plugins.
 * @throws {TypeError} When a spec is invalid (the same one-line errors as a manifest) or two
 * share a name.
 * @throws {PluginLoadError} When a plugin cannot be loaded and `onError` is not given; the
 * plugins already loaded are closed and nothing stays registered.
 *
 * @example Load a module plugin
 * ```ts
 * import { loadPlugins, ToolRegistry } from "@toka/runtime/toolkit";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/greet.ts`, `
 *   export const hello = {
 *     name: "hello", description: "Greets", version: "1.0.0",
 *     inputSchema: { type: "object", properties: { who: { type: "string" } } },
 *     execute: ({ who }) => ({ text: "Hello " + who }),
 *   };`);
 * const registry = new ToolRegistry();
 * await using host = await loadPlugins(registry, [
 *   { name: "greet", transport: { type: "module", module: `${dir}/greet.ts` } },
 * ]);
 * console.log(host.plugins[0].tools); // ["greet.hello"]
 * console.log(await registry.call("greet.hello", { who: "Ada" })); // { text: "Hello Ada" }
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function loadPlugins(
  registry: ToolRegistry,
  specs: PluginSpec[],
  options: LoadPluginsOptions = {},
): Promise<PluginHost> {
  if (typeof registry?.register !== "function" || typeof registry.unregister !== "function") {
    throw new TypeError("Invalid registry: expected a ToolRegistry");
  }
  const checked = checkSpecs(specs);
  const restart = {
    restartDelayMs: delayOption(options.restartDelayMs, 100, "restartDelayMs"),
    maxRestartDelayMs: delayOption(options.maxRestartDelayMs, 5000, "maxRestartDelayMs"),
  };
  const startTimeoutMs = delayOption(options.startTimeoutMs, 30_000, "startTimeoutMs") || 1;
  const host = new Host(registry);
  const results = await Promise.allSettled(
    checked.map((spec) => open(spec, restart, startTimeoutMs)),
  );
  const failures: PluginLoadError[] = [];
  for (const [i, result] of results.entries()) {
    const spec = checked[i];
    if (result.status === "rejected") {
      failures.push(loadError(spec, result.reason, startTimeoutMs));
      continue;
    }
    try {
      host.add(spec, result.value);
    } catch (error) {
      await result.value.close();
      failures.push(loadError(spec, error, startTimeoutMs));
    }
  }
  if (failures.length > 0 && options.onError === undefined) {
    await host.close();
    throw failures[0];
  }
  for (const failure of failures) options.onError?.(failure);
  return host;
}

class Host implements PluginHost {
  #registry: ToolRegistry;
  #plugins: LoadedPlugin[] = [];
  #closers: (() => Promise<void>)[] = [];
  #closing?: Promise<void>;

  constructor(registry: ToolRegistry) {
    this.#registry = registry;
  }

  get plugins(): readonly LoadedPlugin[] {
    return structuredClone(this.#plugins);
  }

  // Registers a plugin's tools, all or none.
  add(spec: PluginSpec, opened: Opened): void {
    const wanted = spec.tools && new Set(spec.tools);
    const offered = opened.tools.map((tool) => tool.name);
    const missing = spec.tools?.find((name) => !offered.includes(name));
    if (missing !== undefined) {
      throw new Error(
        `it has no tool ${JSON.stringify(missing)} (it offers ${
          offered.map((name) => JSON.stringify(name)).join(", ") || "none"
        })`,
      );
    }
    const registered: string[] = [];
    try {
      for (const tool of opened.tools) {
        if (wanted && !wanted.has(tool.name)) continue;
        const name = `${spec.name}.${tool.name}`;
        const own = `tool:${tool.name}:invoke`;
        this.#registry.register({
          ...tool,
          name,
          // Gated like a built-in by its prefixed name; permissions the tool declares besides
          // the default of its bare name are required too.
          permissions: [
            `tool:${name}:invoke`,
            ...(Array.isArray(tool.permissions) ? tool.permissions : []).filter((p) => p !== own),
          ],
          timeoutMs: spec.timeoutMs ?? tool.timeoutMs ?? DEFAULT_TIMEOUT_MS,
          execute: (input: unknown, ctx: ToolContext) => tool.execute(input, ctx),
        });
        registered.push(name);
      }
    } catch (error) {
      for (const name of registered) this.#registry.unregister(name);
      throw error;
    }
    this.#plugins.push({ name: spec.name, type: spec.transport.type, tools: registered.sort() });
    this.#closers.push(async () => {
      for (const name of registered) this.#registry.unregister(name);
      await opened.close();
    });
  }

  close(): Promise<void> {
    this.#closing ??= Promise.allSettled(this.#closers.map((close) => close())).then(() => {});
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

// The same checks as a manifest, so a spec built in code gets the same one-line errors.
function checkSpecs(specs: PluginSpec[]): PluginSpec[] {
  if (!Array.isArray(specs)) {
    throw new TypeError("Invalid plugins: expected a list of plugin specs");
  }
  const names = new Set<string>();
  return specs.map((spec, i) => {
    if (!isObject(spec) || typeof spec.name !== "string") {
      throw new TypeError(`Invalid plugin ${i}: expected { name, transport }`);
    }
    if (names.has(spec.name)) {
      throw new TypeError(`Invalid plugins: two are named ${JSON.stringify(spec.name)}`);
    }
    names.add(spec.name);
    const { name, source, ...plugin } = spec;
    const [checked] = parsePluginManifest({ plugins: { [name]: plugin } }, source ?? "plugins");
    return { ...checked, source };
  });
}

function delayOption(value: number | undefined, fallback: number, name: string): number {
  return intOption(name, value, fallback, 0, 2_147_483_647, {
    message: (v) => `Invalid ${name} ${preview(v)}: use an integer of milliseconds`,
  });
}

function loadError(spec: PluginSpec, error: unknown, startTimeoutMs: number): PluginLoadError {
  if (error instanceof PluginLoadError) return error;
  const reason = error instanceof DOMException && error.name === "TimeoutError"
    ? `its tools were not listed within ${startTimeoutMs} ms`
    : error instanceof Error
    ? error.message.split("\n")[0]
    : preview(error);
  return new PluginLoadError(spec.name, spec.source, reason, { cause: error });
}

async function open(
  spec: PluginSpec,
  restart: { restartDelayMs: number; maxRestartDelayMs: number },
  startTimeoutMs: number,
): Promise<Opened> {
  const time = deadline(startTimeoutMs);
  try {
    return await reach(spec, restart, startTimeoutMs, time.signal);
  } finally {
    time.clear();
  }
}

async function reach(
  spec: PluginSpec,
  restart: { restartDelayMs: number; maxRestartDelayMs: number },
  startTimeoutMs: number,
  signal: AbortSignal,
): Promise<Opened> {
  const transport = spec.transport;
  switch (transport.type) {
    case "module":
      return { tools: await moduleTools(transport.module), close: () => Promise.resolve() };
    case "stdio":
    case "http": {
      const connection = transport.type === "stdio"
        ? new StdioConnection({ ...transport, ...restart })
        : new HttpConnection(transport.url, transport.headers);
      try {
        const answer = await connection.request("tools/list", undefined, signal);
        const tools = remoteTools(
          answer,
          (remote, input, ctx) =>
            connection.request("tools/call", { name: remote, arguments: input }, ctx.signal),
        );
        return { tools, close: () => connection.close() };
      } catch (error) {
        await connection.close();
        throw error;
      }
    }
    case "mcp": {
      // The MCP SDK is loaded only by those who use it.
      const { openMcp } = await import("./_plugin_mcp.ts");
      return await openMcp(transport, restart, signal, startTimeoutMs);
    }
    default:
      throw new TypeError(
        `Unknown plugin transport ${preview((transport as { type: unknown }).type)}`,
      );
  }
}
