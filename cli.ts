/**
 * The `toka` command-line program.
 *
 * ```sh
 * toka [--db PATH|URL] [--json] [--log-level L] <command>
 * ```
 *
 * Exit codes: 0 on success, 1 on a failure or denial, 2 on a usage error.
 * Errors are one line on stderr, never a stack trace.
 *
 * @module
 */
import { Command, CommanderError, Option } from "commander";
import denoJson from "./deno.json" with { type: "json" };
import type { EventStore } from "./runtime/log/event_store.ts";
import { getLogLevels } from "@logtape/logtape";
import { TokaError } from "./runtime/errors.ts";
import {
  type CommandContext,
  DEFAULT_DB as CONTEXT_DEFAULT_DB,
  defaultLogLevel,
  ignoresConfig,
  isWriting,
  mayCreate,
  type RunCommand,
} from "./cli/_context.ts";
import { loadSettings, type SettingFlags, toolSettingsOf } from "./cli/_config.ts";
import { type CliIo, processIo } from "./cli/_io.ts";
import { configureLogging } from "./cli/_log.ts";
import { UsageError } from "./cli/_usage_error.ts";
import { redactTokens } from "./internal/redact.ts";
import { COMMAND_GROUPS, invokedGroup } from "./cli/_commands.ts";
import { escapeControls } from "./cli/_format.ts";
import { closest } from "./cli/_suggest.ts";

/**
 * Where the event store lives when neither `--db` nor `TOKA_DB` says otherwise:
 * the vault's `DEFAULT_VAULT_PATH`, kept in cli/_context.ts so that `toka --help`
 * loads no vault code (a test keeps the two equal).
 */
export const DEFAULT_DB: string = CONTEXT_DEFAULT_DB;

/** Options of {@linkcode main}, for tests and embedders. */
export interface MainOptions {
  /**
   * Opens the event store at a `--db` location. Commands that do not write
   * ask for `{ create: false, readOnly: true }`.
   */
  openStore?: (
    location: string,
    options: { create: boolean; readOnly: boolean; warn?: (line: string) => void },
  ) => Promise<EventStore>;
  /** The working directory, where `toka.json` is looked for; `Deno.cwd()` by default. */
  cwd?: string;
  /**
   * Milliseconds since the epoch by which tokens are issued and checked (their
   * expiry, and when revocations are re-read); `Date.now` by default.
   */
  clock?: () => number;
}

/**
 * Runs the `toka` program in-process: parses `args`, runs the command and
 * returns its exit code. It never exits the process and writes only to `io`.
 *
 * @param args The arguments after the program name.
 * @param io The streams and environment; the real process's by default.
 * @param options The store factory.
 * @returns 0 on success, 1 on a failure or denial, 2 on a usage error.
 */
export async function main(
  args: string[],
  io: CliIo = processIo(),
  options: MainOptions = {},
): Promise<number> {
  let code = 0;
  let resetLogging: (() => Promise<void>) | undefined;

  const program = new Command("toka")
    .description("A Deno-first runtime for agents, with a durable, verifiable event log")
    .version(`toka ${denoJson.version}`, "-V, --version", "print the version")
    .option(
      "--db <location>",
      `event store: a file path, :memory: or an https:// URL
(default: $TOKA_DB, toka.json's db or ${DEFAULT_DB})`,
    )
    .option(
      "--config <file>",
      "settings file (default: $TOKA_CONFIG, else the first toka.json here or in a parent folder)",
    )
    .option(
      "--storage-root <dir>",
      "where agents' local storage and the fs tools keep files (default: ./.toka/storage)",
    )
    .option("--json", "print machine-readable JSON")
    .addOption(
      new Option("--log-level <level>", "log to stderr at this level and above").choices(
        getLogLevels(),
      ),
    )
    // Inherited by every subcommand created below.
    .exitOverride()
    .configureOutput({
      writeOut: (text) => io.stdout(text),
      writeErr: (text) => io.stderr(text),
      // main() reports every error itself, as text or as JSON.
      outputError: () => {},
      getOutHelpWidth: () => 100,
      getErrHelpWidth: () => 100,
      getOutHasColors: () => false,
      getErrHasColors: () => false,
    })
    .addHelpText(
      "after",
      `
Examples:
  toka events list --kind "task.*" --limit 20
  toka events tail --follow
  toka --db ./old.kv events export > events.jsonl
  toka --db ./new.kv events import < events.jsonl

Backups: export carries the events only, not the agents' checkpoints, the secret
pool or revocations. To back up a whole vault, copy its file (and any -wal file
beside it) while no process writes to it.

Auth (capability tokens; TOKA_MASTER_KEY unwraps a wrapped secret pool):
  toka auth rotate-secret
  TOKEN=$(toka auth issue --sub agent/planner --perm "tool:*:invoke" --ttl 600)
  toka auth attenuate "$TOKEN" --perm "tool:echo:invoke" --ttl 60
  toka auth verify "$TOKEN"
  toka auth status
  toka auth revoke <jti> --exp <epoch-seconds>`,
    )
    .helpCommand(false);

  const run: RunCommand = async (command, task) => {
    const globals = command.optsWithGlobals<SettingFlags & { json?: boolean }>();
    // One rule for every setting: flag, TOKA_* variable, toka.json, default.
    const settings = await loadSettings({
      flags: globals,
      env: (name) => io.env(name),
      cwd: options.cwd,
      readFile: !ignoresConfig(command),
    });
    const dbLocation = settings.db;
    // Loaded once a command runs: help and usage errors need no vault.
    const { asDamagedVault, openVault } = await import("./vault/open_vault.ts");
    const openStore = options.openStore ?? openVault;
    const level = settings.logLevel ?? defaultLogLevel(command);
    if (level !== undefined) resetLogging = await configureLogging(io, level);
    // Only commands that write may create a vault: a mistyped --db of a
    // read-only command is an error, not a new empty vault.
    const writes = isWriting(command);
    const ctx: CommandContext = {
      io,
      json: globals.json === true,
      cwd: options.cwd,
      clock: options.clock,
      dbLocation,
      settings,
      toolSettings: toolSettingsOf(settings, (name) => io.env(name)),
      invocation: [
        ...(io.program ?? ["toka"]),
        ...(dbLocation === DEFAULT_DB ? [] : ["--db", dbLocation]),
      ],
      openStore: (open) =>
        openStore(dbLocation, {
          create: mayCreate(command) && open?.readOnly !== true,
          readOnly: !writes || open?.readOnly === true,
          warn: (line) => io.stderr(`warning: ${line}\n`),
        }),
    };
    try {
      code = await task(ctx);
    } catch (error) {
      // SQLite errors met while reading a damaged file.
      throw asDamagedVault(dbLocation, error) ?? error;
    }
  };

  // Only the invoked command's module is loaded (`toka events stats` loads no
  // runtime, toolkit or auth code); the others are listed by name for help.
  const invoked = invokedGroup(program, args);
  for (const group of COMMAND_GROUPS) {
    if (group.name === invoked) (await group.load())(program, run);
    else program.command(group.name).description(group.summary);
  }
  requireSubcommands(program);
  // Ours rather than commander's: it resolves every word (`help events list`) and refuses an
  // unknown one in one line, where commander printed the whole program's help.
  program.command("help").description("display help for command")
    .argument("[command...]")
    .action((words: string[]) => {
      let target = program;
      for (const word of words) target = subcommand(target, word);
      target.outputHelp();
    });

  try {
    await program.parseAsync(args, { from: "user" });
  } catch (error) {
    code = failure(io, error, wantsJson(args));
  } finally {
    await resetLogging?.();
  }
  return code;
}

// A bare group (`toka`, `toka events`) or an unknown subcommand is a usage error, in one line.
// Called once every command exists, as subcommands inherit allowExcessArguments.
function requireSubcommands(command: Command): void {
  if (command.commands.length === 0) return;
  for (const sub of command.commands) requireSubcommands(sub);
  command.allowExcessArguments().action((_options: unknown, self: Command) => {
    const names: string[] = [];
    for (let c: Command | null = self; c !== null; c = c.parent) names.unshift(c.name());
    const hint = `run "${names.join(" ")} --help" to list them`;
    const [first] = self.args;
    // A bare `toka` is how a new user asks what it can do.
    if (first === undefined && self.parent === null) {
      self.outputHelp();
      return;
    }
    if (first === undefined) throw new UsageError(`Missing command: ${hint}`);
    subcommand(self, first);
  });
}

// The subcommand `word` of `command`, or a usage error that suggests the nearest name.
function subcommand(command: Command, word: string): Command {
  const found = command.commands.find((c) => c.name() === word || c.aliases().includes(word));
  if (found !== undefined) return found;
  const names: string[] = [];
  for (let c: Command | null = command; c !== null; c = c.parent) names.unshift(c.name());
  const near = closest(word, command.commands.map((c) => c.name()));
  throw new UsageError(
    `Unknown command ${JSON.stringify(word)}${
      near === undefined ? "" : ` (did you mean ${JSON.stringify(near)}?)`
    }: run "${names.join(" ")} --help" to list them`,
  );
}

// Read from the arguments, as a parse error can stop commander before it sets the option.
function wantsJson(args: string[]): boolean {
  const end = args.indexOf("--");
  return (end === -1 ? args : args.slice(0, end)).includes("--json");
}

/** The exit code of an error: 2 for a bad argument value, 1 for a refusal or failure. */
function failure(io: CliIo, error: unknown, json: boolean): number {
  // Help and --version end parsing through exitOverride with code 0.
  if (error instanceof CommanderError && error.exitCode === 0) return 0;
  // The reader of stdout went away (`toka events export | head`): nothing left to say.
  if (error instanceof Deno.errors.BrokenPipe) return 0;
  const usage = error instanceof CommanderError || error instanceof UsageError;
  let message = error instanceof Error ? error.message || error.name : String(error);
  // Commander's own messages already start with "error: ".
  if (error instanceof CommanderError) message = message.replace(/^error: /, "");
  message = oneLine(message);
  const code = usage ? "usage" : error instanceof TokaError ? error.code : "error";
  io.stderr(
    json ? `${JSON.stringify({ error: { code, message } })}\n` : `error: ${message}\n`,
  );
  return usage ? 2 : 1;
}

// Error lines may echo what the user typed: never a token, nor a raw control character.
function oneLine(text: string): string {
  return escapeControls(redactTokens(text.trim().replace(/\s*\n\s*/g, " ")));
}

if (import.meta.main) {
  const interrupt = new AbortController();
  // The first Ctrl-C (or SIGTERM) ends `events tail --follow` or `run` cleanly; a second
  // one exits at once.
  const onSignal = () => {
    if (interrupt.signal.aborted) Deno.exit(130);
    interrupt.abort();
  };
  Deno.addSignalListener("SIGINT", onSignal);
  if (Deno.build.os !== "windows") Deno.addSignalListener("SIGTERM", onSignal);
  Deno.exit(await main(Deno.args, processIo(interrupt.signal)));
}
