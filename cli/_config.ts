// The one place where the CLI's settings are decided: a flag beats a TOKA_* environment
// variable beats toka.json beats the default, for every setting in SETTINGS.
import { dirname, isAbsolute, resolve } from "node:path";
import type { LogLevel } from "@logtape/logtape";
import { DEFAULT_DB } from "./_context.ts";
import { UsageError } from "./_usage_error.ts";
import { TokaError } from "../runtime/errors.ts";
import { isTrusted, trustFilePath } from "./_trust.ts";
import { type ConfigFile, findConfig, readConfigFile } from "./_config_file.ts";

export {
  checkConfig,
  CONFIG_FILE,
  type ConfigFile,
  findConfig,
  readConfigFile,
  SCHEMA_URL,
} from "./_config_file.ts";
import { vaultFiles } from "../internal/protected_paths.ts";
import type { CliToolSettings } from "./_tool_registry.ts";
import type { PluginSpec } from "../toolkit/plugin_manifest.ts";

/** Every setting of the `toka` program, decided by {@linkcode loadSettings}. */
export interface Settings {
  /** The absolute path of the `toka.json` read, if any. */
  configPath?: string;
  /**
   * Whether that file may start plugins and have modules imported by commands that
   * only inspect or call tools: true when it was named (`--config`, `TOKA_CONFIG`)
   * or found and recorded by `toka trust`; false for a found, untrusted one.
   */
  configTrusted?: boolean;
  /** The vault location: a file path, `:memory:` or a URL. */
  db: string;
  /** Where `storage("local")` and the fs tools keep files. */
  storageRoot: string;
  /** Modules `toka run` hosts when given none (absolute paths or URLs). */
  agents: string[];
  /** Plugins, from the `plugins` field (a plugin manifest's), paths resolved against the file. */
  plugins?: PluginSpec[];
  /** Hosts `http.fetch` may reach; `http.fetch` is registered only when set. */
  httpAllow?: string[];
  /** Hosts `http.fetch` may reach on loopback or private addresses. */
  httpAllowPrivate?: string[];
  /** The model `model.chat` asks; `model.chat` is registered only when set. */
  model?: string;
  /** The base URL of the model's OpenAI-compatible endpoint. */
  modelBaseUrl?: string;
  /** The environment variable holding the model's API key. */
  modelApiKeyEnv?: string;
  /** Whether `model.chat` records whole prompts, not only their digests. */
  modelRecordPrompt?: boolean;
  /** Seconds a retired secret still verifies. */
  retiredTtlSecs: number;
  /** The environment variable that holds the master key. */
  masterKeyEnv: string;
  /** Seconds without renewal after which another process takes an agent over. */
  agentLeaseSecs: number;
  /** Milliseconds in-flight handlers get to finish when `toka run` stops. */
  stopTimeoutMs: number;
  /** How deep a causal chain of events may go under `toka run`. */
  maxCausalDepth: number;
  /** The lowest level logged to stderr; none when unset (`toka run` logs at info). */
  logLevel?: LogLevel;
}

/** The global flags that are settings, as commander parsed them. */
export interface SettingFlags {
  /** `--config <file>`. */
  config?: string;
  /** `--db <location>`. */
  db?: string;
  /** `--storage-root <dir>`. */
  storageRoot?: string;
  /** `--log-level <level>`. */
  logLevel?: string;
}

type Key = Exclude<keyof Settings, "configPath" | "configTrusted">;

interface SettingSpec {
  key: Key;
  flag?: string;
  env?: string;
  /** Where it sits in toka.json, e.g. ["auth", "retiredTtlSecs"]. */
  file?: string[];
  /** The default, as the README's table shows it. */
  defaultText: string;
  value?: Settings[Key];
  /** Parses a flag's or a variable's text; the message says what was expected. */
  parse(text: string): Settings[Key];
  /** Resolves relative paths of a file value against the file's folder. */
  fromFile?(value: unknown, dir: string): Settings[Key];
}

// auth/'s MASTER_KEY_ENV, not imported: commands that need no auth load none (a test
// keeps the two equal).
const MASTER_KEY_ENV = "TOKA_MASTER_KEY";

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
// model.chat's defaults, not imported: commands that call no model load no client.
const DEFAULT_MODEL_URL = "https://api.openai.com/v1";
const DEFAULT_MODEL_KEY_ENV = "OPENAI_API_KEY";

const LOG_LEVELS: readonly string[] = ["trace", "debug", "info", "warning", "error", "fatal"];

const text = (what: string) => (value: string) => {
  if (value.trim() === "") throw new Error(`expected ${what}`);
  return value;
};
const list = (value: string) => {
  const items = value.split(",").map((item) => item.trim()).filter((item) => item !== "");
  if (items.length === 0) throw new Error("expected a comma-separated list");
  return items;
};
const number = (min: number, max: number, integer: boolean) => (value: string) => {
  const n = Number(value);
  const ok = value.trim() !== "" && Number.isFinite(n) && (!integer || Number.isInteger(n));
  if (!ok || n < min || n > max) {
    throw new Error(`expected ${integer ? "a whole number" : "a number"} from ${min} to ${max}`);
  }
  return n;
};
// model.chat's own check says more (credentials in it); this one catches what is no URL at all.
const httpUrl = (value: string) => {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new Error("expected an http or https URL");
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new Error("expected an http or https URL");
  }
  if (url.username !== "" || url.password !== "") {
    throw new Error("credentials in the URL are not allowed, name the key's variable instead");
  }
  return value;
};
// A path in the file is relative to the file; a vault may also be :memory: or a URL.
const filePath = (value: unknown, dir: string) => resolve(dir, value as string);
const vaultLocation = (value: unknown, dir: string) => {
  const location = value as string;
  return location === ":memory:" || /^[a-z][a-z0-9+.-]*:\/\//i.test(location) ||
      isAbsolute(location)
    ? location
    : resolve(dir, location);
};
const modulePath = (value: string, dir: string) =>
  /^[a-z][a-z0-9+.-]*:/i.test(value) && !/^[a-z]:[\\/]/i.test(value) ? value : resolve(dir, value);

/**
 * Every setting, in the order of the README's table: its flag, environment
 * variable, place in `toka.json` and default.
 */
export const SETTINGS: readonly SettingSpec[] = [
  {
    key: "db",
    flag: "--db",
    env: "TOKA_DB",
    file: ["db"],
    defaultText: DEFAULT_DB,
    value: DEFAULT_DB,
    parse: text("a vault: a file path, :memory: or a URL"),
    fromFile: vaultLocation,
  },
  {
    key: "storageRoot",
    flag: "--storage-root",
    env: "TOKA_STORAGE_ROOT",
    file: ["storageRoot"],
    defaultText: "./.toka/storage",
    value: "./.toka/storage",
    parse: text("a folder"),
    fromFile: filePath,
  },
  {
    key: "agents",
    flag: "`toka run` arguments",
    file: ["agents"],
    defaultText: "none",
    value: [],
    parse: list,
    fromFile: (value, dir) => (value as string[]).map((path) => modulePath(path, dir)),
  },
  {
    key: "plugins",
    file: ["plugins"],
    defaultText: "none",
    parse: () => {
      throw new Error("plugins are set in toka.json only");
    },
  },
  {
    key: "httpAllow",
    env: "TOKA_HTTP_ALLOW",
    file: ["tools", "http", "allow"],
    defaultText: "none: http.fetch is not registered",
    parse: list,
  },
  {
    key: "httpAllowPrivate",
    env: "TOKA_HTTP_ALLOW_PRIVATE",
    file: ["tools", "http", "allowPrivate"],
    defaultText: "none",
    parse: list,
  },
  {
    key: "model",
    env: "TOKA_MODEL",
    file: ["tools", "model", "model"],
    defaultText: "none: model.chat is not registered",
    parse: text("a model name"),
  },
  {
    key: "modelBaseUrl",
    env: "TOKA_MODEL_BASE_URL",
    file: ["tools", "model", "baseUrl"],
    defaultText: DEFAULT_MODEL_URL,
    parse: httpUrl,
    fromFile: (value) => httpUrl(value as string),
  },
  {
    key: "modelApiKeyEnv",
    file: ["tools", "model", "apiKeyEnv"],
    defaultText: DEFAULT_MODEL_KEY_ENV,
    parse: () => {
      throw new Error("set in toka.json only");
    },
  },
  {
    key: "modelRecordPrompt",
    file: ["tools", "model", "recordPrompt"],
    defaultText: "false",
    parse: () => {
      throw new Error("set in toka.json only");
    },
  },
  {
    key: "retiredTtlSecs",
    env: "TOKA_RETIRED_TTL_SECS",
    file: ["auth", "retiredTtlSecs"],
    defaultText: "300",
    value: 300,
    parse: number(0, 86_400, true),
  },
  {
    key: "masterKeyEnv",
    env: "TOKA_MASTER_KEY_ENV",
    file: ["auth", "masterKeyEnv"],
    defaultText: MASTER_KEY_ENV,
    value: MASTER_KEY_ENV,
    parse: (value) => {
      if (!ENV_NAME.test(value)) throw new Error("expected a variable name");
      return value;
    },
  },
  {
    key: "agentLeaseSecs",
    env: "TOKA_AGENT_LEASE_SECS",
    file: ["runtime", "agentLeaseSecs"],
    defaultText: "10",
    value: 10,
    parse: number(0.1, 3600, false),
  },
  {
    key: "stopTimeoutMs",
    env: "TOKA_STOP_TIMEOUT_MS",
    file: ["runtime", "stopTimeoutMs"],
    defaultText: "10000",
    value: 10_000,
    parse: number(0, 600_000, true),
  },
  {
    key: "maxCausalDepth",
    env: "TOKA_MAX_CAUSAL_DEPTH",
    file: ["runtime", "maxCausalDepth"],
    defaultText: "100",
    value: 100,
    parse: number(1, 1_000_000, true),
  },
  {
    key: "logLevel",
    flag: "--log-level",
    env: "TOKA_LOG_LEVEL",
    file: ["logLevel"],
    defaultText: "off (info for `toka run`)",
    parse: (value) => {
      if (!LOG_LEVELS.includes(value)) throw new Error(`expected one of ${LOG_LEVELS.join(", ")}`);
      return value as LogLevel;
    },
  },
];

/** Where {@linkcode loadSettings} reads from. */
export interface SettingSources {
  /** The global flags given. */
  flags: SettingFlags;
  /** Environment lookup. */
  env(name: string): string | undefined;
  /**
   * The working directory, where `toka.json` is looked for (then in each parent
   * folder); `Deno.cwd()` by default.
   */
  cwd?: string;
  /** False to leave `toka.json` and `--config` unread (`toka init`); true by default. */
  readFile?: boolean;
  /** A config already read ({@linkcode readConfigFile}), used instead of looking for one. */
  file?: ConfigFile;
}

/**
 * Decides every setting: flag, else environment variable, else `toka.json`
 * (the `--config` file, else `TOKA_CONFIG`, else the first `toka.json` found in
 * the working directory or a parent folder), else the default. With a file,
 * relative paths in it and the default vault and storage root are relative to
 * its folder.
 *
 * A found file that `toka trust` did not record (with its current digest) is
 * untrusted: `configTrusted` is false, and a remote `db` in it is refused, so
 * `DENO_KV_ACCESS_TOKEN` goes only where the user said. A plain `http://` db in
 * any file is refused: the token would cross the network in clear.
 *
 * @param sources The flags, the environment and the working directory.
 * @returns The settings.
 * @throws {UsageError} When a flag, a variable or the file holds a bad value, or the
 *   named config file cannot be read; the one-line message names the field and the file.
 * @throws {TokaError} `untrusted_config` when an untrusted found file names a remote vault, or
 *   a model endpoint or key variable (`tools.model.baseUrl`, `tools.model.apiKeyEnv`).
 */
export async function loadSettings(sources: SettingSources): Promise<Settings> {
  const cwd = sources.cwd ?? Deno.cwd();
  const file = sources.file ??
    (sources.readFile === false ? undefined : await readConfig(sources, cwd));
  const settings: Record<string, unknown> = {};
  if (file !== undefined) {
    settings.configPath = file.path;
    settings.configTrusted = file.named ||
      await isTrusted((name) => sources.env(name), file.realPath, file.digest);
  }
  const fromFile = new Set<Key>();
  const flags = sources.flags as Record<string, string | undefined>;
  for (const spec of SETTINGS) {
    const flag = spec.flag?.startsWith("--") ? flags[spec.key] : undefined;
    const fromEnv = spec.env === undefined ? undefined : sources.env(spec.env);
    const inFile = file === undefined ? undefined : pick(file.value, spec.file!);
    let value: unknown = spec.value;
    if (flag !== undefined) value = parseText(spec, flag, spec.flag!);
    else if (fromEnv !== undefined) {
      if (fromEnv === "") {
        throw new UsageError(
          `${spec.env} is set but empty: unset it or ${
            spec.key === "db" ? "name a vault" : "give a value"
          }`,
        );
      }
      value = parseText(spec, fromEnv, spec.env!);
    } else if (inFile !== undefined) {
      try {
        value = spec.fromFile ? spec.fromFile(inFile, dirname(file!.path)) : inFile;
      } catch (error) {
        throw new UsageError(
          `Invalid field "${spec.file!.join(".")}" in config "${file!.path}": ${
            (error as Error).message
          }`,
        );
      }
      fromFile.add(spec.key);
    } else if (file !== undefined && typeof value === "string" && value.startsWith("./")) {
      // The project is where its toka.json is, wherever in it toka runs.
      value = resolve(dirname(file.path), value);
    }
    if (value !== undefined) settings[spec.key] = value;
  }
  if (fromFile.has("db")) checkRemoteDb(settings.db as string, file!, settings.configTrusted);
  if (settings.model === undefined && file !== undefined && pick(file.value, ["tools", "model"])) {
    throw new UsageError(
      `Missing field "tools.model.model" in config "${file.path}": name the model (or set TOKA_MODEL)`,
    );
  }
  if (fromFile.has("modelBaseUrl") || fromFile.has("modelApiKeyEnv")) {
    checkModelEndpoint(settings, file!);
  }
  if (settings.plugins !== undefined) {
    settings.plugins = await parsePlugins(settings.plugins, file!.path);
  }
  return settings as unknown as Settings;
}

// Deno KV sends DENO_KV_ACCESS_TOKEN to a remote vault: from a file, only over https,
// and only to a host the user confirmed by naming or trusting the file.
function checkRemoteDb(db: string, file: ConfigFile, trusted: unknown): void {
  if (/^http:\/\//i.test(db)) {
    throw new UsageError(
      `Invalid field "db" in config "${file.path}": a remote vault must be an https:// URL (plain http would send DENO_KV_ACCESS_TOKEN in clear); name a local denokv with --db or TOKA_DB`,
    );
  }
  if (trusted !== true && /^https:\/\//i.test(db)) {
    let origin = "https://…";
    try {
      origin = new URL(db).origin;
    } catch {
      // openVault says what is wrong with it, once the file is trusted.
    }
    throw new TokaError(
      "untrusted_config",
      `Untrusted config "${file.path}" names the remote vault "${origin}": DENO_KV_ACCESS_TOKEN goes only to a vault named by --db or TOKA_DB or by a trusted config; check the file, then run "toka trust"`,
    );
  }
}

// model.chat sends the key in the variable apiKeyEnv names to baseUrl: from a file, only when
// the user confirmed it by naming or trusting the file, as for a remote db.
function checkModelEndpoint(settings: Record<string, unknown>, file: ConfigFile): void {
  if (settings.configTrusted === true || settings.model === undefined) return;
  const origin = new URL((settings.modelBaseUrl as string | undefined) ?? DEFAULT_MODEL_URL).origin;
  throw new TokaError(
    "untrusted_config",
    `Untrusted config "${file.path}" sends the model's API key (${
      (settings.modelApiKeyEnv as string | undefined) ?? DEFAULT_MODEL_KEY_ENV
    }) to "${origin}": the key goes only where TOKA_MODEL_BASE_URL or a trusted config says; check the file, then run "toka trust"`,
  );
}

// Checked by the plugins' own manifest rules, loaded only when a file names plugins.
async function parsePlugins(plugins: unknown, path: string): Promise<PluginSpec[]> {
  const { parsePluginManifest } = await import("../toolkit/plugin_manifest.ts");
  try {
    return parsePluginManifest({ plugins }, path);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

/**
 * The settings when nothing sets any: every default. For code that builds a
 * command context itself (tests, embedders).
 *
 * @returns Fresh default settings.
 */
export function defaultSettings(): Settings {
  const settings: Record<string, unknown> = {};
  for (const spec of SETTINGS) {
    if (spec.value !== undefined) {
      settings[spec.key] = Array.isArray(spec.value) ? [...spec.value] : spec.value;
    }
  }
  return settings as unknown as Settings;
}

/**
 * What the tool commands register besides the built-ins, from the settings: the
 * plugins and the tools of the `agents` modules only when the config is trusted
 * (else `withheld` says, in one line, what was left out and how to trust it).
 *
 * The fs tools never reach the vault (its SQLite files and folder), the config file nor the
 * trust file, whatever the root.
 *
 * @param settings The decided settings.
 * @param env The environment, where the trust file's place is read.
 * @returns The fs root and what it never reaches, the `http.fetch` allowlist, the plugins
 *   and the modules.
 */
export function toolSettingsOf(
  settings: Settings,
  env: (name: string) => string | undefined = () => undefined,
): CliToolSettings {
  const trustFile = trustFilePath(env);
  const tools: CliToolSettings = {
    storageRoot: settings.storageRoot,
    protectedPaths: [
      ...vaultFiles(settings.db),
      ...(settings.configPath === undefined ? [] : [settings.configPath]),
      ...(trustFile === undefined ? [] : [trustFile]),
    ],
    httpAllow: settings.httpAllow,
    httpAllowPrivate: settings.httpAllowPrivate,
    // The key is read where the CLI reads its environment.
    ...(settings.model !== undefined && { model: { ...modelOptionsOf(settings)!, env } }),
  };
  const plugins = settings.plugins ?? [];
  const modules = settings.configPath === undefined ? [] : settings.agents;
  if (settings.configTrusted !== false) {
    if (plugins.length > 0) tools.plugins = plugins;
    if (modules.length > 0) tools.modules = modules;
    return tools;
  }
  const refused = [
    ...(plugins.length > 0 ? ["start its plugins"] : []),
    ...(modules.length > 0 ? ["import its agents modules"] : []),
  ];
  if (refused.length > 0) {
    tools.withheld = `untrusted config "${settings.configPath}": did not ${
      refused.join(" nor ")
    }; check the file, then run "toka trust" (or name it with --config)`;
  }
  return tools;
}

/**
 * The options of `model.chat` the settings give, for `createRuntime({ model })` and the tool
 * commands; undefined when no model is named.
 *
 * @param settings The decided settings.
 * @returns The model, its endpoint, the key's variable and whether prompts are recorded.
 */
export function modelOptionsOf(settings: Settings): CliToolSettings["model"] {
  if (settings.model === undefined) return undefined;
  return {
    model: settings.model,
    ...(settings.modelBaseUrl !== undefined && { baseUrl: settings.modelBaseUrl }),
    ...(settings.modelApiKeyEnv !== undefined && { apiKeyEnv: settings.modelApiKeyEnv }),
    ...(settings.modelRecordPrompt === true && { recordPrompt: true }),
  };
}

function parseText(spec: SettingSpec, value: string, source: string): Settings[Key] {
  try {
    return spec.parse(value);
  } catch (error) {
    throw new UsageError(`Invalid ${source} ${JSON.stringify(value)}: ${(error as Error).message}`);
  }
}

function pick(value: Record<string, unknown>, path: string[]): unknown {
  let node: unknown = value;
  for (const key of path) node = (node as Record<string, unknown> | undefined)?.[key];
  return node;
}

async function readConfig(sources: SettingSources, cwd: string): Promise<ConfigFile | undefined> {
  const named = sources.flags.config ?? sources.env("TOKA_CONFIG");
  if (named === "") {
    throw new UsageError(
      sources.flags.config === undefined
        ? "TOKA_CONFIG is set but empty: unset it or name a config file"
        : 'Invalid --config "": expected a config file',
    );
  }
  if (named !== undefined) return await readConfigFile(resolve(cwd, named), true);
  const found = await findConfig(cwd);
  return found === undefined ? undefined : await readConfigFile(found, false);
}
