/**
 * `toka ui`: a local, read-only web app for the vault named by `--db`: its events (live),
 * each event's causes and effects, runs as timelines, agents, and verify. It listens on
 * 127.0.0.1 only and every URL carries a random token.
 *
 * @module
 */
import { type Command, InvalidArgumentError } from "commander";
import { type CommandContext, type RunCommand, withStore } from "./_context.ts";
import { startUiServer } from "./_ui_server.ts";
import { isSnapshot } from "../vault/open_vault.ts";

/** Options of {@linkcode serveUi}. */
export interface UiOptions {
  /** The port; 0 picks a free one. */
  port?: number;
  /** Open the page in the default browser. */
  open?: boolean;
}

/**
 * Serves the web app until `ctx.io.signal` aborts (Ctrl-C), after printing its URL (with
 * `--json`, `{ "url", "port" }` on one line).
 *
 * @param ctx The command context.
 * @param options The port, and whether to open a browser.
 * @returns The exit code.
 * @throws {TokaError} `"port_in_use"` when the port is taken.
 */
export function serveUi(ctx: CommandContext, options: UiOptions = {}): Promise<number> {
  return withStore(ctx, async (store) => {
    if (isSnapshot(store)) {
      ctx.io.stderr(
        `warning: This process may not write "${ctx.dbLocation}", so it shows a snapshot: ` +
          `no live updates\n`,
      );
    }
    const server = await startUiServer({ store, port: options.port, location: ctx.dbLocation });
    try {
      ctx.io.stdout(
        ctx.json
          ? `${JSON.stringify({ url: server.url, port: server.port })}\n`
          : `Serving ${ctx.dbLocation} (read-only) at\n  ${server.url}\nPress Ctrl-C to stop\n`,
      );
      if (options.open) await openBrowser(ctx, server.openUrl);
      const signal = ctx.io.signal;
      if (signal !== undefined && !signal.aborted) {
        await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
      }
    } finally {
      await server.shutdown();
    }
    return 0;
  });
}

// $BROWSER names the program when set, as for other command-line tools. Its arguments show in
// `ps` to every local user, so it gets the server's one-time link, not the token.
async function openBrowser(ctx: CommandContext, url: string): Promise<void> {
  const chosen = ctx.io.env("BROWSER");
  const [command, ...args] = chosen !== undefined && chosen !== ""
    ? [chosen, url]
    : Deno.build.os === "darwin"
    ? ["open", url]
    : Deno.build.os === "windows"
    ? ["cmd", "/c", "start", "", url]
    : ["xdg-open", url];
  try {
    const child = new Deno.Command(command, {
      args,
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    const status = await child.status;
    if (!status.success) throw new Error(`${command} exited with ${status.code}`);
  } catch (error) {
    // The URL holds the token: the message names the opener only.
    const reason = error instanceof Deno.errors.NotFound
      ? `"${command}" was not found`
      : (error as Error).message;
    ctx.io.stderr(`warning: Could not open a browser (${reason}): open the URL above\n`);
  }
}

function parsePortArg(value: string): number {
  const n = Number(value);
  if (!/^\d{1,5}$/.test(value) || n > 65535) {
    throw new InvalidArgumentError("Expected a port from 0 to 65535 (0 picks a free one)");
  }
  return n;
}

/**
 * Adds `ui` to the program.
 *
 * @param program The root command.
 * @param run Runs a task with the context of the global options.
 * @returns The `ui` command.
 */
export function registerUiCommand(program: Command, run: RunCommand): Command {
  return program.command("ui")
    .description(
      "serve a local, read-only web app of the vault: live events, runs, agents, verify",
    )
    .option("--port <n>", "listen on this port of 127.0.0.1 (default: a free one)", parsePortArg)
    .option("--open", "open the page in the default browser (or the program $BROWSER names)")
    .action((options: UiOptions, command: Command) => run(command, (ctx) => serveUi(ctx, options)))
    .addHelpText(
      "after",
      `
The printed URL carries a random token: requests without it are refused (401).
It answers only to 127.0.0.1 and localhost, and never writes to the vault.`,
    );
}
