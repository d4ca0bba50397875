// The one place where the CLI's settings are decided: a flag beats a TOKA_* environment
// variable beats toka.json beats the default, for every setting in SETTINGS.
import type { ErrorObject, ValidateFunction } from "ajv";
import { dirname, isAbsolute, resolve } from "node:path";
import type { LogLevel } from "@logtape/logtape";
import schema from "../toka.schema.json" with { type: "json" };
import denoJson from "../deno.json" with { type: "json" };
import { DEFAULT_DB } from "./_context.ts";
import { UsageError } from "./_usage_error.ts";
import type { CliToolSettings } from "./_tool_registry.ts";
import type { PluginSpec } from "../toolkit/plugin_manifest.ts";

/** The file name looked for in the working directory. */
export const CONFIG_FILE = "toka.json";

/** Where editors find the schema of `toka.json`: the copy published with this version. */
export const SCHEMA_URL = `https://jsr.io/@toka/runtime/${denoJson.version}/toka.schema.json`;

/** Every setting of the `toka` program, decided by {@linkcode loadSettings}. */
export interface Settings {
  /** The absolute path of the `toka.json` read, if any. */
  configPath?: string;
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
  /** Seconds a retired secret still verifies. */
  retiredTtlSecs: number;
  /** The environment variable that holds the master key. */
  masterKeyEnv: string;
  /** Seconds without renewal after which another process takes an agent over. */
  agentLeaseSecs: number;
  /** Milliseconds in-flight handlers get to finish when `toka run` stops. */
  stopTimeoutMs: number;
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

type Key = Exclude<keyof Settings, "configPath">;

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
  if (value.trim() === "" || !Number.isFinite(n) || (integer && !Number.isInteger(n))) {
    throw new Error(`expected ${integer ? "a whole number" : "a number"} from ${min} to ${max}`);
  }
  if (n < min || n > max) throw new Error(`expected a number from ${min} to ${max}`);
  return n;
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
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(value)) throw new Error("expected a variable name");
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
  /** The working directory, where `toka.json` is looked for; `Deno.cwd()` by default. */
  cwd?: string;
  /** False to leave `toka.json` and `--config` unread (`toka init`); true by default. */
  readFile?: boolean;
}

/**
 * Decides every setting: flag, else environment variable, else `toka.json`
 * (the `--config` file, else `TOKA_CONFIG`, else `./toka.json` when present),
 * else the default.
 *
 * @param sources The flags, the environment and the working directory.
 * @returns The settings.
 * @throws {UsageError} When a flag, a variable or the file holds a bad value, or the
 *   named config file cannot be read; the one-line message names the field and the file.
 */
export async function loadSettings(sources: SettingSources): Promise<Settings> {
  const cwd = sources.cwd ?? Deno.cwd();
  const file = sources.readFile === false ? undefined : await readConfig(sources, cwd);
  const settings: Record<string, unknown> = {};
  if (file !== undefined) settings.configPath = file.path;
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
      value = spec.fromFile ? spec.fromFile(inFile, dirname(file!.path)) : inFile;
    }
    if (value !== undefined) settings[spec.key] = value;
  }
  if (settings.plugins !== undefined) {
    settings.plugins = await parsePlugins(settings.plugins, file!.path);
  }
  return settings as unknown as Settings;
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
 * What the tool commands register besides the built-ins, from the settings.
 *
 * @param settings The decided settings.
 * @returns The fs root, the `http.fetch` allowlist and the plugins.
 */
export function toolSettingsOf(settings: Settings): CliToolSettings {
  return {
    storageRoot: settings.storageRoot,
    httpAllow: settings.httpAllow,
    httpAllowPrivate: settings.httpAllowPrivate,
    plugins: settings.plugins,
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

async function readConfig(
  sources: SettingSources,
  cwd: string,
): Promise<{ path: string; value: Record<string, unknown> } | undefined> {
  const named = sources.flags.config ?? sources.env("TOKA_CONFIG");
  if (named === "") {
    throw new UsageError(
      sources.flags.config === undefined
        ? "TOKA_CONFIG is set but empty: unset it or name a config file"
        : 'Invalid --config "": expected a config file',
    );
  }
  const path = resolve(cwd, named ?? CONFIG_FILE);
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (named === undefined && error instanceof Deno.errors.NotFound) return undefined;
    throw new UsageError(`Cannot read config "${path}": ${(error as Error).message}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new UsageError(`Invalid JSON in config "${path}": ${(error as Error).message}`);
  }
  await checkConfig(value, path);
  return { path, value: value as Record<string, unknown> };
}

// Compiled on first use: commands run without a toka.json never load ajv.
let validate: ValidateFunction | undefined;

/**
 * Checks a parsed `toka.json` against the shipped schema.
 *
 * @param value The parsed file.
 * @param path The file, named in the error.
 * @returns When the value is valid.
 * @throws {UsageError} Naming the first invalid field and the file.
 */
export async function checkConfig(value: unknown, path: string): Promise<void> {
  if (validate === undefined) {
    const { Ajv } = await import("ajv");
    validate = new Ajv({ logger: false, allErrors: false }).compile(schema);
  }
  if (validate(value)) return;
  throw new UsageError(describe(validate.errors![0], path));
}

function describe(error: ErrorObject, path: string): string {
  const segments = error.instancePath.split("/").slice(1).map((s) =>
    s.replaceAll("~1", "/").replaceAll("~0", "~")
  );
  const field = (parts: string[]) =>
    parts.reduce(
      (name, part) => /^\d+$/.test(part) ? `${name}[${part}]` : name ? `${name}.${part}` : part,
      "",
    );
  const where = `in config "${path}"`;
  const name = (error as ErrorObject & { propertyName?: string }).propertyName;
  if (name !== undefined) {
    return `Invalid name ${JSON.stringify(name)} in field "${
      field(segments)
    }" ${where}: ${error.message}`;
  }
  switch (error.keyword) {
    case "additionalProperties": {
      const extra = (error.params as { additionalProperty: string }).additionalProperty;
      return `Unknown field "${field([...segments, extra])}" ${where}`;
    }
    case "required": {
      const missing = (error.params as { missingProperty: string }).missingProperty;
      return `Missing field "${field([...segments, missing])}" ${where}`;
    }
    case "enum":
      return `Invalid field "${field(segments)}" ${where}: must be one of ${
        (error.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v))
          .join(", ")
      }`;
    default:
      return segments.length === 0
        ? `Invalid config "${path}": ${error.message}`
        : `Invalid field "${field(segments)}" ${where}: ${error.message}`;
  }
}
