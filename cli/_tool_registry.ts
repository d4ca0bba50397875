// The one place the CLI builds a tool registry: `toka tool` and `toka mcp serve`
// (and, through the `program` engineer's config loader, toka.json's settings).
import {
  builtinTools,
  createFsTools,
  createHttpFetchTool,
  createModelChatTool,
  loadPlugins,
  type ModelChatOptions,
  type PluginSpec,
  type Tool,
  type ToolEvent,
  ToolRegistry,
  type ToolRegistryOptions,
} from "../toolkit/mod.ts";
import type { TokenAuthority } from "../runtime/token_authority.ts";
import type { EventInput, EventStore } from "../runtime/log/event_store.ts";

/** Where the fs tools work when no root is set: the runtime's own `storageRoot` default. */
export const DEFAULT_TOOL_ROOT = "./.toka/storage";

/** The stream the CLI records `tool.*` events in, as `createRuntime()` does. */
const TOOL_STREAM = "toolkit";

/** What the CLI's registry holds besides the built-ins `echo`, `hash` and `now`. */
export interface CliToolSettings {
  /** The root of `fs.read|write|list|delete`; {@linkcode DEFAULT_TOOL_ROOT} by default. */
  storageRoot?: string;
  /** What the fs tools never reach: the vault's files and folder, the config, the trust file. */
  protectedPaths?: string[];
  /** Hosts `http.fetch` may reach; `http.fetch` is registered only when this is given. */
  httpAllow?: string[];
  /** Hosts `http.fetch` may reach on loopback or private addresses (with `httpAllow`). */
  httpAllowPrivate?: string[];
  /** The model and endpoint of `model.chat`; `model.chat` is registered only when this is given. */
  model?: Pick<ModelChatOptions, "model" | "baseUrl" | "apiKeyEnv" | "recordPrompt" | "env">;
  /**
   * Plugins whose tools to register, prefixed with their names: the specs of a manifest
   * (`parsePluginManifest({ plugins }, source)` of toka.json's `plugins` field).
   */
  plugins?: PluginSpec[];
  /**
   * Modules whose exported tools to register (toka.json's `agents`, as `toka run`
   * imports them); their agents are not run here.
   */
  modules?: string[];
  /** One line saying what an untrusted config was refused; given to `warn`. */
  withheld?: string;
}

/** Options of {@linkcode buildCliTools}: who checks tokens and where calls are recorded. */
export interface CliToolsOptions {
  /** Checks callers' tokens; every call is allowed without one (listing and describing). */
  authority?: TokenAuthority;
  /** Records the registry's `tool.*` events; nothing is recorded without it. */
  record?: ToolRegistryOptions["record"];
  /** Records several of them at once, e.g. as one vault append. */
  recordBatch?: ToolRegistryOptions["recordBatch"];
  /** Where a `withheld` notice goes (stderr); dropped without it. */
  warn?: (line: string) => void;
}

/** The CLI's registry and what it started for it (plugins); close it when done. */
export interface CliTools extends AsyncDisposable {
  /** The registry: built-ins, fs and http per the settings, then plugins. */
  readonly registry: ToolRegistry;
  /** Stops what the registry started (plugin processes); the registry is unusable after it. */
  close(): Promise<void>;
}

/**
 * Builds the CLI's tool registry: `echo`, `hash`, `now`, the fs tools under
 * `settings.storageRoot`, `http.fetch` when `settings.httpAllow` is given, `model.chat` when
 * `settings.model` is, and
 * the tools the `settings.modules` export (imported as `toka run` imports
 * them) and those of `settings.plugins` (each plugin is reached once to list
 * its tools: a `stdio` or `mcp` command is started). It writes nothing: the fs
 * root is made on the first write.
 *
 * @param settings What to register besides the built-ins.
 * @param options The token authority and the event recorders.
 * @returns The registry and its closer, which stops the plugins.
 * @throws {TypeError} When a setting is invalid (e.g. an empty root, a bad host or plugin spec).
 * @throws {PluginLoadError} When a plugin cannot be loaded; nothing stays running.
 * @throws {TokaError} (`module_unusable`) When a module cannot be imported or exports
 *   nothing usable.
 */
export async function buildCliTools(
  settings: CliToolSettings = {},
  options: CliToolsOptions = {},
): Promise<CliTools> {
  if (settings.withheld !== undefined) options.warn?.(`note: ${settings.withheld}\n`);
  const tools: Tool[] = [
    ...builtinTools(),
    ...createFsTools({
      root: settings.storageRoot ?? DEFAULT_TOOL_ROOT,
      protectedPaths: settings.protectedPaths,
    }),
  ];
  if (settings.modules !== undefined && settings.modules.length > 0) {
    // The loader of `toka run`, so both see the same tools; loaded only when needed.
    const { loadModules } = await import("./run.ts");
    tools.push(...(await loadModules(settings.modules)).tools);
  }
  if (settings.httpAllow !== undefined) {
    tools.push(
      createHttpFetchTool({
        allow: settings.httpAllow,
        allowPrivate: settings.httpAllowPrivate,
      }) as Tool,
    );
  }
  if (settings.model !== undefined) tools.push(createModelChatTool(settings.model) as Tool);
  const registry = new ToolRegistry({
    authority: options.authority,
    record: options.record,
    recordBatch: options.recordBatch,
    tools,
  });
  const plugins = settings.plugins ?? [];
  const host = plugins.length === 0 ? undefined : await loadPlugins(registry, plugins);
  const close = async (): Promise<void> => await host?.close();
  return { registry, close, [Symbol.asyncDispose]: close };
}

/**
 * The recorders that append the registry's `tool.*` events to
 * {@linkcode TOOL_STREAM} of a store, tagged with where the calls came from
 * (`meta.source`): one event, or several in one append.
 *
 * @param store The vault.
 * @param source Where the calls come from, e.g. `"cli"` or `"mcp"`.
 * @returns `record` and `recordBatch` for {@linkcode buildCliTools}.
 */
export function storeRecorders(
  store: EventStore,
  source: string,
): Required<Pick<CliToolsOptions, "record" | "recordBatch">> {
  const meta = { source };
  const input = (event: ToolEvent): EventInput => ({
    kind: event.kind,
    payload: event.payload,
    meta,
  });
  return {
    record: async (event) => {
      await store.append(TOOL_STREAM, [input(event)]);
    },
    recordBatch: async (events) => {
      await store.append(TOOL_STREAM, events.map(input));
    },
  };
}
