/**
 * Toka: a runtime that hosts agents in one process and makes everything they
 * see and do an event in a durable, verifiable log on Deno KV. This entry point
 * is the whole local stack: {@linkcode createRuntime} wires the vault, the
 * toolkit with its built-in tools and capability-token auth into one runtime.
 * Each feature is also its own entry point: `@toka/runtime/runtime`,
 * `@toka/runtime/vault`, `@toka/runtime/toolkit` and `@toka/runtime/auth`.
 *
 * @example
 * ```ts
 * import { createRuntime, defineAgent } from "@toka/runtime";
 *
 * const runtime = await createRuntime({ db: ":memory:" });
 * runtime.register(defineAgent({
 *   name: "greeter",
 *   subscribe: ["user.joined"],
 *   permissions: ["tool:echo:invoke"],
 *   async handle(event, ctx) {
 *     const reply = await ctx.tools.call("echo", { text: `Hello ${event.payload}` });
 *     await ctx.emit({ kind: "user.greeted", payload: reply });
 *   },
 * }));
 * await runtime.start();
 * await runtime.emit({ kind: "user.joined", payload: "Ada" });
 * await runtime.close();
 * ```
 *
 * @module
 */

import { KvTokenAuthority, MASTER_KEY_ENV, masterKeyFromEnv } from "./auth/mod.ts";
import {
  createKvStorage,
  Runtime,
  type RuntimeConfig,
  type TokenAuthority,
} from "./runtime/mod.ts";
import {
  builtinTools,
  createFsTools,
  createHttpFetchTool,
  createModelChatTool,
  type FsToolsOptions,
  type HttpFetchOptions,
  loadPlugins,
  type ModelChatOptions,
  type PluginHost,
  type PluginSpec,
  readPluginManifest,
  Scheduler,
  type SchedulerOptions,
  type Tool,
  ToolRegistry,
} from "./toolkit/mod.ts";
import { openVault, vaultKv } from "./vault/mod.ts";
import { resolveVaultLocation } from "./vault/open_vault.ts";
import { checkProtectedPaths, vaultFiles } from "./internal/protected_paths.ts";
import { isNotCapable, notCapable } from "./internal/platform.ts";

/** The `auth` section of {@linkcode CreateRuntimeOptions}: how to open the secret pool. */
export interface CreateRuntimeAuthOptions {
  /**
   * The first secret when the pool does not exist yet: base64url text or bytes, at least
   * 32 bytes; random by default. Never logged.
   */
  initialSecret?: string | Uint8Array;
  /** How long a retired secret still verifies, counted from its retirement (300). */
  retiredTtlSecs?: number;
  /**
   * Key that wraps the secrets at rest: base64url of 32 bytes or the bytes. `TOKA_MASTER_KEY`
   * by default (none when unset); `null` keeps the secrets unwrapped without reading it.
   */
  masterKey?: string | Uint8Array | null;
}

/** Options of {@linkcode createRuntime}: a {@linkcode RuntimeConfig} plus where the stack lives. */
export interface CreateRuntimeOptions extends Omit<RuntimeConfig, "auth" | "hooks"> {
  /**
   * A ready {@linkcode TokenAuthority}, or the options of the {@linkcode KvTokenAuthority}
   * to open on the vault's KV (the default when the vault has one).
   */
  auth?: TokenAuthority | CreateRuntimeAuthOptions;
  /**
   * Where to open the vault when `vault` is not given: a file path, `:memory:`
   * or an `https://` URL of a remote Deno KV. `TOKA_DB`, then `./.toka/toka.kv`,
   * by default.
   */
  db?: string;
  /** Tools to register besides the built-in ones (`echo`, `hash`, `now`). */
  extraTools?: Tool[];
  /**
   * Registers the file tools `fs.read`, `fs.write`, `fs.list` and `fs.delete` (see
   * {@linkcode createFsTools}); their `root` is `storageRoot` by default. Not registered
   * without it.
   */
  fs?: Partial<FsToolsOptions>;
  /**
   * Registers `http.fetch` (see {@linkcode createHttpFetchTool}) with these allowlists and
   * limits; `http: {}` registers it refusing every host. Not registered without it.
   */
  http?: HttpFetchOptions;
  /**
   * Registers `model.chat` (see {@linkcode createModelChatTool}) for this model and endpoint,
   * e.g. `{ baseUrl: "http://localhost:11434/v1", model: "llama3.2" }`; the key is read from
   * the variable `apiKeyEnv` names (`OPENAI_API_KEY`) at each call. Not registered without it.
   */
  model?: ModelChatOptions;
  /**
   * Registers `schedule`, `schedule.list` and `schedule.cancel` (see {@linkcode Scheduler})
   * with these limits; their timers live in the vault's KV and fire while the runtime runs,
   * from `start()` to `stop()`. `schedule: {}` for the defaults. Not registered without it.
   */
  schedule?: Omit<SchedulerOptions, "emit" | "vault" | "kv" | "clock">;
  /**
   * Plugins whose tools to register (see {@linkcode loadPlugins}): specs, or the path of a
   * manifest file. Loaded before the runtime is returned; `close()` stops them.
   */
  plugins?: PluginSpec[] | string;
}

/** A runtime with every feature wired, that also owns what {@linkcode createRuntime} opened. */
export interface TokaRuntime extends Runtime {
  /** Stops the runtime and closes the vault if `createRuntime` opened it; `await using` calls it. */
  close(): Promise<void>;
}

/**
 * Creates a runtime with every feature wired: the vault (the embedded Deno KV
 * store by default), capability-token auth with its secret pool in the same
 * KV, a tool registry holding the built-in tools whose calls are checked
 * against each agent's token and recorded as events, and `storage("vault")`
 * in the same KV (unless `storage.vault` is given).
 *
 * @param options Runtime settings, plus where to open the vault and extra tools.
 * @returns The runtime; call `close()` when done with it.
 * @throws {TypeError} When the vault cannot be opened or an option is invalid.
 * @throws {RangeError} When an auth option is out of range.
 * @throws {Deno.errors.NotCapable} When `TOKA_MASTER_KEY` cannot be read (no `--allow-env`)
 *   and `auth.masterKey` is not given: the secrets are never stored raw by accident.
 * @throws {SecretPoolError} When the secret pool is wrapped and the master key is wrong or
 *   missing, or a master key is given and the pool holds a raw secret.
 * @throws {PluginLoadError} When a plugin cannot be loaded (nothing stays open).
 *
 * @example
 * ```ts
 * import { createRuntime } from "@toka/runtime";
 *
 * const runtime = await createRuntime({ db: ":memory:" });
 * console.log(runtime.tools.list().map((tool) => tool.name)); // ["echo", "hash", "now"]
 * await runtime.close();
 * ```
 */
export async function createRuntime(options: CreateRuntimeOptions = {}): Promise<TokaRuntime> {
  const { db, extraTools, auth: authOption, fs, http, model, plugins, schedule, ...rest } = options;
  // The vault opened here, its SQLite files and its folder are never reached by the fs tools
  // or storage("local"), whatever their root (issue 17).
  const config = {
    ...rest,
    protectedPaths: [
      ...checkProtectedPaths(rest.protectedPaths),
      ...(rest.vault === undefined ? vaultFiles(resolveVaultLocation(db)) : []),
    ],
  };
  if ((options as RuntimeConfig).hooks !== undefined) {
    throw new TypeError("Invalid hooks: createRuntime sets its own; use Runtime.create for hooks");
  }
  // Read before the vault opens, so a bad manifest opens nothing.
  const pluginSpecs = typeof plugins === "string" ? await readPluginManifest(plugins) : plugins;
  // Checked before the vault opens, so a bad option opens nothing.
  const builtins = [...builtinTools({ clock: config.clock })];
  if (fs !== undefined) {
    if (typeof fs !== "object" || fs === null || Array.isArray(fs)) {
      throw new TypeError("Invalid fs: expected the options of the fs tools, e.g. {}");
    }
    builtins.push(...createFsTools({
      ...fs,
      root: fs.root ?? config.storageRoot ?? DEFAULT_ROOT,
      protectedPaths: [...config.protectedPaths, ...checkProtectedPaths(fs.protectedPaths)],
    }));
  }
  if (http !== undefined) {
    if (typeof http !== "object" || http === null || Array.isArray(http)) {
      throw new TypeError(
        'Invalid http: expected the options of http.fetch, e.g. { allow: ["api.example.com"] }',
      );
    }
    builtins.push(createHttpFetchTool(http) as Tool);
  }
  if (model !== undefined) {
    if (typeof model !== "object" || model === null || Array.isArray(model)) {
      throw new TypeError(
        'Invalid model: expected the options of model.chat, e.g. { model: "gpt-4o-mini" }',
      );
    }
    builtins.push(createModelChatTool({ clock: config.clock, ...model }) as Tool);
  }
  if (schedule !== undefined) {
    if (typeof schedule !== "object" || schedule === null || Array.isArray(schedule)) {
      throw new TypeError("Invalid schedule: expected the options of the schedule tools, e.g. {}");
    }
    Scheduler.checkOptions(schedule);
  }
  const given = isAuthority(authOption) ? authOption : undefined;
  const authOptions = given === undefined ? checkAuthOptions(authOption) : {};
  const ownsVault = config.vault === undefined;
  const vault = config.vault ?? await openVault(db, { clock: config.clock });
  // The state beside the log (secret pool, timers, storage, checkpoints,
  // leases) lives in the vault's KV, handed out by the vault.
  const kv = vaultKv(vault);
  let pluginHost: PluginHost | undefined;
  try {
    const auth = given ?? (kv === undefined ? undefined : await KvTokenAuthority.open(
      kv,
      {
        clock: config.clock,
        initialSecret: authOptions.initialSecret,
        retiredTtlSecs: authOptions.retiredTtlSecs,
        masterKey: authOptions.masterKey === undefined
          ? envMasterKey()
          : authOptions.masterKey ?? undefined,
      },
    ));
    const scheduler = schedule === undefined ? undefined : new Scheduler({
      ...schedule,
      vault,
      kv,
      clock: config.clock,
      // Timers of a revoked token are skipped when they come due.
      authority: auth,
      emit: (input) => runtime.bus.emit(input),
    });
    const tools = config.tools ?? new ToolRegistry({
      authority: auth,
      clock: config.clock,
      tools: [...builtins, ...(scheduler?.tools ?? []), ...(extraTools ?? [])],
      // Tool calls are events too, caused by the event the caller was handling.
      record: (event, cause) => runtime.bus.emit({ ...event, stream: "toolkit" }, cause),
      // A read-only call's tool.invoked and outcome go in one append once it has run.
      recordBatch: (events, cause) =>
        runtime.bus.emitBatch(events.map((event) => ({ ...event, stream: "toolkit" })), cause),
    });
    if (pluginSpecs !== undefined) {
      if (!(tools instanceof ToolRegistry)) {
        throw new TypeError("Invalid plugins: they need the toolkit's ToolRegistry as tools");
      }
      pluginHost = await loadPlugins(tools, pluginSpecs);
    }
    // Agents' storage("vault") lives in the vault's KV, given explicitly; the
    // vault offers checkpoints and leases itself (KvEventStore.agentState), so
    // that they outlive the process and several processes run each agent once.
    const storage = kv === undefined
      ? config.storage
      : { vault: createKvStorage(kv, { clock: config.clock }), ...config.storage };
    const runtime = await Runtime.create({
      ...config,
      vault,
      auth,
      tools,
      storage,
      hooks: {
        // The timers' poller runs with the runtime: started after it, stopped before it.
        afterStart: () => scheduler?.start(),
        beforeStop: () => scheduler?.stop(),
        // close() also closes what createRuntime opened; `await using` calls it.
        onClose: async () => {
          await pluginHost?.close();
          if (ownsVault) await vault.close();
        },
      },
    });
    return runtime;
  } catch (error) {
    await pluginHost?.close();
    if (ownsVault) await vault.close();
    throw error;
  }
}

// Runtime's default storageRoot, where storage("local") keeps files.
const DEFAULT_ROOT = "./.toka/storage";

function isAuthority(value: unknown): value is TokenAuthority {
  return typeof (value as TokenAuthority | undefined)?.authorize === "function";
}

function checkAuthOptions(value: unknown): CreateRuntimeAuthOptions {
  if (value === undefined) return {};
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new TypeError("Invalid auth: expected a TokenAuthority or auth options");
  }
  return value as CreateRuntimeAuthOptions;
}

// Falling back to no key when the variable cannot be read would store the
// secrets raw although the user set one: fail instead.
function envMasterKey(): string | undefined {
  try {
    return masterKeyFromEnv();
  } catch (error) {
    if (!isNotCapable(error)) throw error;
    throw notCapable(
      `Cannot read ${MASTER_KEY_ENV}: grant --allow-env=${MASTER_KEY_ENV}, or pass auth.masterKey (null to keep the secrets unwrapped)`,
      error,
    );
  }
}

export {
  type Agent,
  type AgentContext,
  type AgentLogger,
  type AgentState,
  type AgentStatePorts,
  type AgentStateSource,
  type AgentStatus,
  type AgentStorageOptions,
  type AgentTools,
  AllowAllAuthority,
  type AppendEffect,
  type AppendGuard,
  type AppendOptions,
  type AppendResult,
  type AtomicCheck,
  type BusSubscribeOptions,
  CapabilityDeniedError,
  CausalDepthError,
  type Checkpoint,
  type CheckpointStore,
  compileKindFilter,
  createKvStorage,
  createLocalStorage,
  createMemoryStorage,
  defineAgent,
  type EmitInput,
  EventBus,
  type EventBusOptions,
  type EventHandler,
  type EventInput,
  type EventRecord,
  type EventStore,
  type EventStream,
  type ExpectedVersion,
  type FailedEvent,
  GuardFailedError,
  type HandlerContext,
  type ImportResult,
  type IssueRequest,
  type JsonValue,
  type KindFilter,
  type Kv,
  KvCheckpointStore,
  KvLeaseStore,
  type KvStorageOptions,
  type KvWrite,
  type Lease,
  LeaseLostError,
  type LeaseStore,
  type LocalStorageOptions,
  type LogHead,
  MAX_STORAGE_VALUE_BYTES,
  MemoryCheckpointStore,
  MemoryLeaseStore,
  NonDeterminismError,
  NoopToolRegistry,
  readFailedEvents,
  type ReadOptions,
  type RetryOptions,
  type RetryRefusal,
  RetryRefusedError,
  Runtime,
  type RuntimeConfig,
  type RuntimeHooks,
  type SaveResult,
  type StateChange,
  type StorageAdapter,
  type StoredLease,
  type StoreStats,
  type SubscribeOptions,
  type Subscription,
  TokaError,
  type TokenAuthority,
  type TokenClaims,
  type ToolAnnotations,
  type ToolCallOptions,
  type ToolInfo,
  type ToolInvocation,
  ToolNotFoundError,
  type ToolOutcome,
  type VerifyOptions,
  type VerifyProblem,
  type VerifyReport,
  VersionConflictError,
} from "./runtime/mod.ts";
export {
  DEFAULT_VAULT_PATH,
  type ForkResult,
  forkVault,
  type ForkVaultOptions,
  INLINE_PAYLOAD_BYTES,
  KvEventStore,
  type KvEventStoreOptions,
  MAX_APPEND_BYTES,
  MAX_EVENTS_PER_APPEND,
  MAX_PAYLOAD_BYTES,
  MAX_PAYLOAD_DEPTH,
  MemoryEventStore,
  type MemoryEventStoreOptions,
  openVault,
  type OpenVaultOptions,
  vaultKv,
} from "./vault/mod.ts";
export {
  builtinTools,
  createFsTools,
  createHttpFetchTool,
  createModelChatTool,
  createNowTool,
  defineTool,
  echoTool,
  type FsDeleteInput,
  type FsDeleteOutput,
  type FsListInput,
  type FsListOutput,
  type FsReadInput,
  type FsReadOutput,
  type FsToolsOptions,
  type FsWriteInput,
  type FsWriteOutput,
  hashTool,
  type HttpFetchInput,
  type HttpFetchOptions,
  type HttpFetchOutput,
  type HttpTransport,
  type LoadedPlugin,
  loadPlugins,
  type LoadPluginsOptions,
  type McpTransport,
  type ModelChatInput,
  type ModelChatMessage,
  type ModelChatOptions,
  type ModelChatOutput,
  type ModelReplyMessage,
  type ModelToolCall,
  type ModuleTransport,
  type NowOutput,
  parsePluginManifest,
  type PluginHost,
  PluginLoadError,
  type PluginSpec,
  type PluginTransport,
  readPluginManifest,
  type ScheduleCancelInput,
  type ScheduleCancelOutput,
  type ScheduledTimer,
  type ScheduleInput,
  type ScheduleListOutput,
  Scheduler,
  type SchedulerOptions,
  type StdioTransport,
  type Tool,
  type ToolContext,
  type ToolEvent,
  type ToolEventPayload,
  ToolExecutionError,
  ToolInputError,
  ToolOutputError,
  ToolRegistry,
  type ToolRegistryContract,
  type ToolRegistryOptions,
  ToolTimeoutError,
} from "./toolkit/mod.ts";
export {
  assertPermission,
  type AttenuateOptions,
  generateMasterKey,
  InvalidTokenError,
  type InvalidTokenReason,
  type IssueOptions,
  isValidPermission,
  KvTokenAuthority,
  type KvTokenAuthorityOptions,
  MASTER_KEY_ENV,
  masterKeyFromEnv,
  MAX_PERMISSION_LENGTH,
  parseMasterKey,
  permits,
  type PoolStatus,
  type SecretInfo,
  SecretPoolError,
  type SecretPoolErrorCode,
  TokenExpiredError,
  TokenRevokedError,
} from "./auth/mod.ts";
