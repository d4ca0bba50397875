/**
 * `toka tool list|describe|run`: the CLI's tools (built-ins, fs, http and
 * plugins per the settings), and calls to them through the tool registry:
 * the token (`--token` or `TOKA_TOKEN`) is checked against the vault's secret
 * pool, the input against the tool's schema, and each call is recorded as
 * `tool.*` events in the vault.
 *
 * @module
 */
import { type Command, InvalidArgumentError } from "commander";
import type { ToolInfo } from "../runtime/tool_registry.ts";
import { ToolNotFoundError } from "../runtime/tool_registry.ts";
import { TokaError } from "../runtime/errors.ts";
import { type CommandContext, type RunCommand, writes } from "./_context.ts";
import { buildCliTools, storeRecorders } from "./_tool_registry.ts";
import { UsageError } from "./_usage_error.ts";
import { escapeControls } from "./_format.ts";
import { abortable, INTERRUPTED, INTERRUPTED_EXIT } from "./_interrupt.ts";
import { withExistingAuthority } from "./auth.ts";

/** The environment variable holding the caller's capability token. */
export const TOKEN_ENV = "TOKA_TOKEN";

/** The largest input `toka tool run` reads, in bytes (16 MiB). */
export const MAX_INPUT_BYTES: number = 16 * 1024 * 1024;

// Tool names as defineTool accepts them; checked as an argument, before anything runs.
const TOOL_NAME = /^[a-z][a-z0-9_-]*(?:\.[a-z][a-z0-9_-]*)*$/;

/** Options of {@linkcode runTool}. */
export interface RunToolOptions {
  /** The input as JSON text. */
  input?: string;
  /** A file holding the input as JSON. */
  inputFile?: string;
  /** The caller's capability token; `TOKA_TOKEN` when absent. */
  token?: string;
}

/**
 * Prints the tools: a table of name, permissions and description, or with
 * `--json` an array of each tool's full description. Opens no vault.
 *
 * @param ctx The command context.
 * @returns The exit code.
 */
export async function listTools(ctx: CommandContext): Promise<number> {
  await using tools = await buildCliTools(ctx.toolSettings, {
    warn: (line) => ctx.io.stderr(line),
  });
  const infos = tools.registry.list();
  if (ctx.json) {
    ctx.io.stdout(`${JSON.stringify(infos)}\n`);
    return 0;
  }
  const rows = [
    ["NAME", "PERMISSIONS", "DESCRIPTION"],
    // Plugins declare these: escaped, so none forges a line or sends escape sequences.
    ...infos.map((info) =>
      [info.name, info.permissions.join(" "), info.description].map(escapeControls)
    ),
  ];
  const widths = [0, 1].map((i) => Math.max(...rows.map((row) => row[i].length)));
  ctx.io.stdout(
    rows.map((row) => `${row[0].padEnd(widths[0])}  ${row[1].padEnd(widths[1])}  ${row[2]}\n`)
      .join(""),
  );
  return 0;
}

/**
 * Prints one tool's description: name, version, permissions, timeout,
 * annotations and schemas; with `--json`, the description as one object.
 * Opens no vault.
 *
 * @param ctx The command context.
 * @param name The tool name.
 * @returns The exit code.
 * @throws {ToolNotFoundError} When no tool has this name.
 */
export async function describeTool(ctx: CommandContext, name: string): Promise<number> {
  await using tools = await buildCliTools(ctx.toolSettings, {
    warn: (line) => ctx.io.stderr(line),
  });
  const info = tools.registry.get(name);
  if (info === undefined) throw withHint(new ToolNotFoundError(name), ctx);
  ctx.io.stdout(ctx.json ? `${JSON.stringify(info)}\n` : formatInfo(info));
  return 0;
}

/**
 * Calls a tool with the caller's token and prints its output as JSON. The
 * input comes from `--input`, `--input-file` or standard input (empty: `{}`)
 * and is parsed before the vault is opened. The call is authorised against
 * the vault's secret pool and recorded in it (`tool.invoked`, then
 * `tool.completed` or `tool.failed`; `tool.denied` when the token is
 * refused). A missing vault is an error: nothing is created. An interrupt
 * (the io's signal) stops the read of the input or the call, and exits 130.
 *
 * @param ctx The command context.
 * @param name The tool name.
 * @param options The input and the token.
 * @returns The exit code.
 * @throws {UsageError} When the input is not JSON, is given twice, or its file cannot be read.
 * @throws {TokaError} When no token is given (`missing_token`), the vault has no secret pool,
 * or the call is refused or fails (the registry's errors, e.g. `capability_denied`).
 */
export async function runTool(
  ctx: CommandContext,
  name: string,
  options: RunToolOptions,
): Promise<number> {
  let input: unknown;
  try {
    input = await readInput(ctx, options);
  } catch (error) {
    if (error !== INTERRUPTED) throw error;
    ctx.io.stderr("Interrupted while reading the input from standard input: nothing was called\n");
    return INTERRUPTED_EXIT;
  }
  const token = options.token ?? (ctx.io.env(TOKEN_ENV) || undefined);
  if (token === undefined) {
    throw new TokaError("missing_token", `Missing token: pass --token or set ${TOKEN_ENV}`);
  }
  return await withExistingAuthority(ctx, async (authority, store) => {
    if (authority === undefined) throw noSecretPool(ctx);
    await using tools = await buildCliTools(ctx.toolSettings, {
      warn: (line) => ctx.io.stderr(line),
      authority,
      ...storeRecorders(store, "cli"),
    });
    let output: unknown;
    try {
      output = await tools.registry.call(name, input, { token, signal: ctx.io.signal });
    } catch (error) {
      if (ctx.io.signal?.aborted !== true) throw withHint(error, ctx);
      ctx.io.stderr(
        `Interrupted: the call to ${JSON.stringify(name)} was stopped (recorded as tool.failed)\n`,
      );
      return INTERRUPTED_EXIT;
    }
    ctx.io.stdout(`${JSON.stringify(output ?? null, null, ctx.json ? undefined : 2)}\n`);
    return 0;
  });
}

/**
 * Adds `tool` and its subcommands to the program.
 *
 * @param program The root command.
 * @param run Runs a task with the context of the global options.
 * @returns The `tool` command.
 */
export function registerToolCommands(program: Command, run: RunCommand): Command {
  const tool = program.command("tool").description(
    "list, describe and call tools (calls are checked against a token and recorded)",
  );

  tool.command("list").description("list the tools: name, permissions, description")
    .action((_options: unknown, command: Command) => run(command, listTools));

  tool.command("describe").description("show a tool's description, permissions and schemas")
    .argument("<name>", "the tool name", parseToolName)
    .action((name: string, _options: unknown, command: Command) =>
      run(command, (ctx) => describeTool(ctx, name))
    );

  // It appends the call's events, but needs the vault's secret pool: it never creates a vault.
  writes(tool.command("run"), { create: false })
    .description("call a tool and print its output as JSON; exit 1 when refused or failed")
    .argument("<name>", "the tool name", parseToolName)
    .option("--input <json>", "the input, a JSON object (default: standard input, or {})")
    .option("--input-file <path>", "a file holding the input as JSON")
    .option("--token <token>", `the capability token (default: $${TOKEN_ENV})`, parseTokenArg)
    .action((name: string, options: RunToolOptions, command: Command) =>
      run(command, (ctx) => runTool(ctx, name, options))
    )
    .addHelpText(
      "after",
      `
Examples:
  export ${TOKEN_ENV}=$(toka auth issue --sub me --perm "tool:echo:invoke" --ttl 600)
  toka tool run echo --input '{"text":"hi"}'
  echo '{"algorithm":"SHA-256","text":"hi"}' | toka tool run hash`,
    );

  return tool;
}

/**
 * The refusal of a vault without a secret pool: no token can be valid there.
 *
 * @param ctx The command context.
 * @returns The error to throw.
 */
export function noSecretPool(ctx: CommandContext): TokaError {
  return new TokaError(
    "no_secret_pool",
    `No secret pool in vault "${ctx.dbLocation}", so no token is valid here: ` +
      `"toka auth issue" creates one and a token`,
  );
}

async function readInput(ctx: CommandContext, options: RunToolOptions): Promise<unknown> {
  if (options.input !== undefined && options.inputFile !== undefined) {
    throw new UsageError("Give the input once: --input or --input-file, not both");
  }
  let text: string;
  let source: string;
  if (options.input !== undefined) {
    text = options.input;
    source = "--input";
  } else if (options.inputFile !== undefined) {
    source = `--input-file ${JSON.stringify(options.inputFile)}`;
    text = await readInputFile(options.inputFile, source);
  } else {
    source = "standard input";
    text = ctx.io.stdin === undefined ? "" : await readBounded(ctx.io.stdin, source, ctx.io.signal);
    if (text.trim() === "") return {};
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new UsageError(`Invalid JSON in ${source}: ${(error as Error).message}`);
  }
}

async function readInputFile(path: string, source: string): Promise<string> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path);
  } catch (error) {
    throw new UsageError(`Cannot read ${source}: ${(error as Error).message}`);
  }
  return await readBounded(file.readable, source);
}

// Reads a whole stream as UTF-8, refusing it past MAX_INPUT_BYTES without reading further;
// an interrupt (a terminal's Ctrl-C while nothing is typed) stops the read.
async function readBounded(
  stream: ReadableStream<Uint8Array>,
  source: string,
  signal?: AbortSignal,
): Promise<string> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of abortable(stream, signal)) {
    size += chunk.length;
    if (size > MAX_INPUT_BYTES) {
      throw new UsageError(`Input too large in ${source}: more than ${MAX_INPUT_BYTES} bytes`);
    }
    chunks.push(chunk);
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) bytes.set(chunk, offset), offset += chunk.length;
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new UsageError(`Invalid UTF-8 in ${source}`);
  }
}

function formatInfo(info: ToolInfo): string {
  const rows: [string, string][] = [
    ["name", info.name],
    ["description", info.description],
    ["version", info.version],
    ["permissions", info.permissions.join(" ")],
    ["timeout", `${info.timeoutMs} ms`],
  ];
  const hints = Object.entries(info.annotations ?? {}).map(([key, value]) => `${key}=${value}`);
  if (hints.length > 0) rows.push(["annotations", hints.join(" ")]);
  const width = Math.max(...rows.map(([label]) => label.length));
  // A plugin declares all of it: escaped, so none forges a line or sends escape sequences.
  let text = rows.map(([label, value]) => `${label.padEnd(width)}  ${escapeControls(value)}\n`)
    .join("");
  text += `\ninput schema:\n${schemaText(info.inputSchema)}\n`;
  if (info.outputSchema !== undefined) {
    text += `\noutput schema:\n${schemaText(info.outputSchema)}\n`;
  }
  return text;
}

// The only raw newlines of JSON are its indentation's; C1 controls and U+2028/2029 stay raw.
function schemaText(schema: unknown): string {
  return JSON.stringify(schema, null, 2).split("\n").map(escapeControls).join("\n");
}

// A built-in that only a setting registers is named as such, with the setting.
function withHint(error: unknown, ctx: CommandContext): unknown {
  if (!(error instanceof ToolNotFoundError)) return error;
  if (error.tool === "http.fetch" && ctx.toolSettings?.httpAllow === undefined) {
    return new TokaError(
      error.code,
      `${error.message}: it is registered when toka.json's tools.http.allow (or TOKA_HTTP_ALLOW) ` +
        `lists the hosts it may reach`,
    );
  }
  if (error.tool === "model.chat" && ctx.toolSettings?.model === undefined) {
    return new TokaError(
      error.code,
      `${error.message}: it is registered when toka.json's tools.model.model (or TOKA_MODEL) ` +
        `names a model`,
    );
  }
  return error;
}

function parseToolName(value: string): string {
  if (value.length > 52 || !TOOL_NAME.test(value)) {
    throw new InvalidArgumentError(
      'Expected a tool name: words of a-z, 0-9, "_" or "-" separated by ".", e.g. fs.read',
    );
  }
  return value;
}

function parseTokenArg(value: string): string {
  if (value.trim() === "") throw new InvalidArgumentError("Expected a non-empty token");
  return value;
}
