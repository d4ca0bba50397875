// The table of top-level commands. A command's module is imported only when
// that command runs (or its help is asked for), so start-up loads what the
// command needs and no more: `toka events stats` loads no runtime, toolkit or
// auth code. To add a command, add a row here; its module may import anything.
import type { Command } from "commander";
import type { RunCommand } from "./_context.ts";

/** Adds a command (and its subcommands) to the program. */
export type RegisterCommand = (program: Command, run: RunCommand) => unknown;

/** A top-level command: its name and summary for `toka --help`, and its module's loader. */
export interface CommandGroup {
  /** The command's name, as typed after `toka`. */
  name: string;
  /** The one-line description `toka --help` lists; the same as the module sets. */
  summary: string;
  /** Imports the command's module and returns its registration function. */
  load(): Promise<RegisterCommand>;
}

/** Every top-level command, in the order `toka --help` lists them. */
export const COMMAND_GROUPS: readonly CommandGroup[] = [
  {
    name: "init",
    summary: "create a project: toka.json, agents.ts, the vault and its first secret",
    load: async () => (await import("./init.ts")).registerInitCommand,
  },
  {
    name: "trust",
    summary: "trust a toka.json found in this folder or above: its plugins, modules and vault",
    load: async () => (await import("./trust.ts")).registerTrustCommand,
  },
  {
    name: "run",
    summary: "host the agents that modules export, until SIGINT or SIGTERM",
    load: async () => (await import("./run.ts")).registerRunCommand,
  },
  {
    name: "emit",
    summary: "append one event to the log, as runtime.emit does, and print its id",
    load: async () => (await import("./emit.ts")).registerEmitCommand,
  },
  {
    name: "events",
    summary: "inspect and move the event log",
    load: async () => (await import("./events.ts")).registerEventsCommands,
  },
  {
    name: "ui",
    summary: "serve a local, read-only web app of the vault: live events, runs, agents, verify",
    load: async () => (await import("./ui.ts")).registerUiCommand,
  },
  {
    name: "agent",
    summary: "inspect agents and their state, and retry the events they gave up on",
    load: async () => (await import("./agent.ts")).registerAgentCommands,
  },
  {
    name: "auth",
    summary: "manage capability tokens and the secret pool (TOKA_MASTER_KEY unwraps it)",
    load: async () => (await import("./auth.ts")).registerAuthCommands,
  },
  {
    name: "demo",
    summary: "run a small multi-agent demo: stop mid-run, restart, resume without loss",
    load: async () => (await import("./demo.ts")).registerDemoCommand,
  },
  {
    name: "tool",
    summary: "list, describe and call tools (calls are checked against a token and recorded)",
    load: async () => (await import("./tool.ts")).registerToolCommands,
  },
  {
    name: "mcp",
    summary: "serve the tools to MCP clients",
    load: async () => (await import("./mcp.ts")).registerMcpCommands,
  },
];

/**
 * The top-level command the arguments invoke (`events` in `toka --db x events
 * list`, and in `toka help events`), read before parsing: the first word that
 * is neither an option of the program nor an option's value.
 *
 * @param program The program with its global options defined.
 * @param args The arguments after the program name.
 * @returns The command's name, or undefined when there is none.
 */
export function invokedGroup(program: Command, args: readonly string[]): string | undefined {
  const takesValue = new Set<string>();
  for (const option of program.options) {
    if (!option.required && !option.optional) continue;
    if (option.long !== undefined) takesValue.add(option.long);
    if (option.short !== undefined) takesValue.add(option.short);
  }
  const words: string[] = [];
  for (let i = 0; i < args.length && words.length < 2; i++) {
    const arg = args[i];
    if (arg === "--") {
      words.push(...args.slice(i + 1, i + 3));
      break;
    }
    if (words.length === 0 && arg.startsWith("-") && arg !== "-") {
      if (takesValue.has(arg)) i++;
      continue;
    }
    words.push(arg);
  }
  return words[0] === "help" ? words[1] : words[0];
}
