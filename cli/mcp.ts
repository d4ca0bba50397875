/**
 * `toka mcp serve`: the CLI's tools as an MCP server on stdio, for MCP clients
 * (editors, agents). The token in `TOKA_TOKEN` (or in the file of `--token-file`, re-read
 * when it changes) decides which tools are listed
 * and may be called; each call is recorded in the vault.
 *
 * @module
 */
import type { Command } from "commander";
import { type RunCommand, writes } from "./_context.ts";
import { TOKEN_ENV } from "./tool.ts";
import { TOKEN_FILE_ENV } from "./_token_file.ts";

/**
 * Adds `mcp` and its subcommand `serve` to the program. The MCP SDK is loaded
 * only when `serve` runs.
 *
 * @param program The root command.
 * @param run Runs a task with the context of the global options.
 * @returns The `mcp` command.
 */
export function registerMcpCommands(program: Command, run: RunCommand): Command {
  const mcp = program.command("mcp").description("serve the tools to MCP clients");

  // It appends the calls' events, but needs the vault's secret pool: it never creates a vault.
  writes(mcp.command("serve"), { create: false })
    .description(
      `serve the tools that $${TOKEN_ENV} grants over MCP on stdin/stdout (logs go to stderr)`,
    )
    .option(
      "--token-file <path>",
      `read the token from this file, re-read when it changes (default: $${TOKEN_FILE_ENV})`,
    )
    .action((options: { tokenFile?: string }, command: Command) =>
      run(
        command,
        async (ctx) => (await import("./_mcp_server.ts")).serveMcp(ctx, options.tokenFile),
      )
    )
    .addHelpText(
      "after",
      `
Example (an MCP client's configuration, e.g. mcpServers in its JSON settings):
  { "command": "toka", "args": ["--db", "/path/to/toka.kv", "mcp", "serve"],
    "env": { "${TOKEN_ENV}": "<a token from toka auth issue>" } }
With a token file that a daily job refreshes (toka auth issue ... > PATH), re-read on change:
  { "command": "toka", "args": ["--db", "/path/to/toka.kv", "mcp", "serve",
    "--token-file", "/path/to/mcp.token"] }`,
    );

  return mcp;
}
