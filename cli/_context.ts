// What every command's implementation receives, so commands stay testable in-process.
import type { Command } from "commander";
import type { EventStore } from "../runtime/log/event_store.ts";
import type { LogLevel } from "@logtape/logtape";
import type { CliIo } from "./_io.ts";
import type { CliToolSettings } from "./_tool_registry.ts";
import type { Settings } from "./_config.ts";

/**
 * The vault's default location (`DEFAULT_VAULT_PATH` of the vault), here so
 * that reading settings and printing help load no vault code.
 */
export const DEFAULT_DB: string = "./.toka/toka.kv";

/** The global options and services a command runs with. */
export interface CommandContext {
  /** Where output goes and where input and environment come from. */
  io: CliIo;
  /** True when `--json` asks for machine-readable output. */
  json: boolean;
  /** The working directory, where `toka.json` is looked for; `Deno.cwd()` when absent. */
  cwd?: string;
  /** Milliseconds since the epoch for issuing and checking tokens; `Date.now` when absent. */
  clock?: () => number;
  /** The `--db` location: a file path, `:memory:` or an `https://` URL. */
  dbLocation: string;
  /**
   * Every setting, decided by the one rule (flag, `TOKA_*` variable, `toka.json`,
   * default); `settings.db` is `dbLocation`.
   */
  settings: Settings;
  /**
   * The words that run this program again on the same store, as a user types
   * them (e.g. `["toka", "--db", "x.kv"]`), for hints such as the demo's;
   * `toka --db <dbLocation>` when absent.
   */
  invocation?: string[];
  /**
   * Opens the event store at {@linkcode CommandContext.dbLocation}; the caller
   * closes it. A command that does not write opens it read-only: a missing
   * vault is an error, not a new one. `{ readOnly: true }` opens it read-only
   * for a writing command too, to check its input first: a read-only store
   * writes nothing when it closes, not even the stream index.
   */
  openStore(options?: { readOnly?: boolean }): Promise<EventStore>;
  /**
   * What the tool commands (`toka tool`, `toka mcp serve`) register besides the
   * built-ins: the fs tools' root, the `http.fetch` allowlist, plugins. Built-in
   * defaults when absent.
   */
  toolSettings?: CliToolSettings;
}

/**
 * Runs a command's task with the context built from the global options; the
 * task's number becomes the exit code. Command groups registered by other
 * files (e.g. `registerAuthCommands(program, run)`) use it for their actions.
 */
export type RunCommand = (
  command: Command,
  task: (ctx: CommandContext) => Promise<number>,
) => Promise<void>;

// Each writing command, and whether it may create a missing vault.
const WRITERS = new WeakMap<Command, boolean>();
const WITHOUT_CONFIG = new WeakSet<Command>();
const LOG_LEVELS = new WeakMap<Command, LogLevel>();

/**
 * Declares that a command does not read `toka.json` (as `toka init`, which
 * writes one): its settings come from flags, variables and defaults only.
 *
 * @param command The command being defined.
 * @returns The same command, for chaining.
 */
export function withoutConfig(command: Command): Command {
  WITHOUT_CONFIG.add(command);
  return command;
}

/**
 * Whether a command was declared with {@linkcode withoutConfig}.
 *
 * @param command A command.
 * @returns True when it ignores `toka.json`.
 */
export function ignoresConfig(command: Command): boolean {
  return WITHOUT_CONFIG.has(command);
}

/**
 * Makes a command log at `level` when no setting chooses a level (`toka run`: info).
 *
 * @param command The command being defined.
 * @param level Its default log level.
 * @returns The same command, for chaining.
 */
export function logsByDefault(command: Command, level: LogLevel): Command {
  LOG_LEVELS.set(command, level);
  return command;
}

/**
 * The log level a command uses when no setting chooses one.
 *
 * @param command A command.
 * @returns Its default level, or undefined for none (silent).
 */
export function defaultLogLevel(command: Command): LogLevel | undefined {
  return LOG_LEVELS.get(command);
}

/** Options of {@linkcode writes}. */
export interface WritesOptions {
  /**
   * Whether the command may create a missing vault (true). A command that
   * needs what is already in it, such as a secret pool to check tokens
   * against, says false: on a missing vault it fails and creates nothing.
   */
  create?: boolean;
}

/**
 * Declares that a command writes to the vault, and so may create it unless
 * `options.create` is false. Every other command only reads: it opens the
 * vault read-only and never creates one.
 *
 * @param command The command being defined.
 * @param options Whether it may create a missing vault.
 * @returns The same command, for chaining.
 */
export function writes(command: Command, options: WritesOptions = {}): Command {
  WRITERS.set(command, options.create ?? true);
  return command;
}

/**
 * Whether a command was declared with {@linkcode writes} and may create a
 * missing vault.
 *
 * @param command A command.
 * @returns True when it may create the vault.
 */
export function mayCreate(command: Command): boolean {
  return WRITERS.get(command) === true;
}

/**
 * Whether a command was declared with {@linkcode writes}.
 *
 * @param command A command.
 * @returns True when it writes to the vault.
 */
export function isWriting(command: Command): boolean {
  return WRITERS.has(command);
}

/**
 * Opens the store, runs `task` with it and always closes it.
 *
 * @param ctx The command context.
 * @param task The work to do with the open store.
 * @param options `{ readOnly: true }` to open it read-only even for a writing command.
 * @returns What `task` returns.
 */
export async function withStore<T>(
  ctx: CommandContext,
  task: (store: EventStore) => Promise<T>,
  options?: { readOnly?: boolean },
): Promise<T> {
  const store = await ctx.openStore(options);
  try {
    return await task(store);
  } finally {
    await store.close();
  }
}

/**
 * Quotes a word for a POSIX shell when it needs it, so a printed command runs as shown.
 *
 * @param word A command-line word.
 * @returns The word, single-quoted when it holds anything but safe characters.
 */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_./:@%+=,-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}
