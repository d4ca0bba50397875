/**
 * `toka run [module…]`: imports the modules (the arguments, else `toka.json`'s
 * `agents`), registers every agent and every tool they export, and hosts them
 * on the configured vault until SIGINT or SIGTERM. Then it stops gracefully:
 * in-flight handlers finish (up to `stopTimeoutMs`), checkpoints are flushed
 * and leases released. Several `toka run` on one vault share the agents
 * through their leases.
 *
 * @module
 */
import type { Command } from "commander";
import { resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { getLogger } from "@logtape/logtape";
import { createRuntime } from "../mod.ts";
import { modelOptionsOf } from "./_config.ts";
import { type Agent, defineAgent } from "../runtime/mod.ts";
import { defineTool, type Tool } from "../toolkit/mod.ts";
import { TokaError } from "../runtime/errors.ts";
import {
  type CommandContext,
  logsByDefault,
  type RunCommand,
  withStore,
  writes,
} from "./_context.ts";
import { UsageError } from "./_usage_error.ts";
import { canRestart, projectImportMap, runRestarted } from "./_project_imports.ts";

/** What {@linkcode loadModules} found in the modules. */
export interface HostedModules {
  /** Every exported agent, validated by `defineAgent`. */
  agents: Agent[];
  /** Every exported tool, validated by `defineTool`. */
  tools: Tool[];
}

const logger = getLogger(["toka", "cli", "run"]);

/**
 * Imports modules and collects the agents and tools they export: named or
 * default exports, or arrays of them. Other exports are ignored.
 *
 * @param specifiers Paths (relative to `cwd`) or URLs of the modules.
 * @param cwd Where relative paths start; `Deno.cwd()` by default.
 * @returns The agents and tools, in export order.
 * @throws {TokaError} (`module_unusable`) When a module cannot be imported, exports no agent
 *   and no tool, exports an invalid one, or two agents or tools share a name.
 */
export async function loadModules(specifiers: string[], cwd?: string): Promise<HostedModules> {
  const agents = new Map<string, Agent>();
  const tools = new Map<string, Tool>();
  for (const specifier of specifiers) {
    const url = moduleUrl(specifier, cwd ?? Deno.cwd());
    let exports: Record<string, unknown>;
    try {
      exports = await import(url);
    } catch (error) {
      throw unusable(
        `Cannot import "${specifier}": ${firstLine(error)}${where(error)}${hint(error)}`,
      );
    }
    let found = 0;
    for (const [name, value] of Object.entries(exports)) {
      for (const item of Array.isArray(value) ? value : [value]) {
        const kind = isAgentLike(item) ? "agent" : isToolLike(item) ? "tool" : undefined;
        if (kind === undefined) continue;
        found++;
        try {
          if (kind === "agent") add(agents, defineAgent(item as Agent), "agent");
          else add(tools, defineTool(item as Tool) as Tool, "tool");
        } catch (error) {
          throw unusable(`Module "${specifier}" export "${name}": ${firstLine(error)}`);
        }
      }
    }
    if (found === 0) {
      throw unusable(
        `Module "${specifier}" exports no agent (made with defineAgent) and no tool (made with defineTool)`,
      );
    }
  }
  return { agents: [...agents.values()], tools: [...tools.values()] };
}

function add<T extends { name: string }>(into: Map<string, T>, item: T, what: string): void {
  const existing = into.get(item.name);
  if (existing === item) return;
  if (existing !== undefined) throw new Error(`two ${what}s are named "${item.name}"`);
  into.set(item.name, item);
}

function isAgentLike(value: unknown): boolean {
  const v = value as Partial<Agent> | null;
  return typeof v === "object" && v !== null && typeof v.handle === "function" &&
    "subscribe" in v;
}

function isToolLike(value: unknown): boolean {
  const v = value as Partial<Tool> | null;
  return typeof v === "object" && v !== null && typeof v.execute === "function" &&
    "inputSchema" in v;
}

function moduleUrl(specifier: string, cwd: string): string {
  // A URL (file:, https:, jsr:, npm:) as is; a path relative to the working directory.
  return /^[a-z][a-z0-9+.-]+:/i.test(specifier)
    ? specifier
    : pathToFileURL(resolve(cwd, specifier)).href;
}

function unusable(message: string): TokaError {
  return new TokaError("module_unusable", message);
}

// Deno puts a syntax error's place in the message, after a code excerpt, as "at file:///…:3:21".
function where(error: unknown): string {
  const message = error instanceof Error ? error.message : "";
  const found = message.match(/\n\s*at (\S+):(\d+):(\d+)\s*$/);
  if (found === null) return "";
  const [, url, line, column] = found;
  const place = url.startsWith("file:") ? fileURLToPath(url) : url;
  return ` at ${place}:${line}:${column}`;
}

// A bare specifier no import map has: say where a mapping goes, or how to do without one.
function hint(error: unknown): string {
  const message = error instanceof Error ? error.message : "";
  const bare = message.match(/^Import "([^"]+)" not a dependency and not in import map/)?.[1];
  return bare === undefined ? "" : `; map "${bare}" in the "imports" of the deno.json next to ` +
    `the module, or import it with an "npm:" or "jsr:" specifier`;
}

function firstLine(error: unknown): string {
  const text = error instanceof Error ? error.message || error.name : String(error);
  return text.trim().split("\n")[0];
}

/**
 * Hosts the agents of `modules` (else `ctx.settings.agents`) until `ctx.io.signal`
 * aborts, then stops the runtime gracefully.
 *
 * @param ctx The command context: settings, vault and the interrupt signal.
 * @param modules The modules named on the command line.
 * @returns 0 after a graceful stop.
 * @throws {UsageError} When no module is named here or in `toka.json`.
 * @throws {TokaError} When a module is unusable (see {@linkcode loadModules}).
 */
export async function runAgents(ctx: CommandContext, modules: string[]): Promise<number> {
  const { settings } = ctx;
  const specifiers = modules.length > 0 ? modules : settings.agents;
  if (specifiers.length === 0) {
    throw new UsageError(
      `No modules to run: name them ("toka run agents.ts") or list them in toka.json's "agents"`,
    );
  }
  if (canRestart(ctx.io.env)) {
    const map = await projectImportMap(specifiers.map((s) => moduleUrl(s, Deno.cwd())));
    if (map !== undefined) return await runRestarted(map, ctx.io.signal);
  }
  // Modules load before the vault opens: a module that cannot be used changes nothing.
  const { agents, tools } = await loadModules(specifiers);
  const masterKey = ctx.io.env(settings.masterKeyEnv) || null;
  return await withStore(ctx, async (vault) => {
    const runtime = await createRuntime({
      vault,
      storageRoot: settings.storageRoot,
      // The vault is opened by the CLI: its files are named here, with the config's.
      protectedPaths: ctx.toolSettings?.protectedPaths,
      agentLeaseSecs: settings.agentLeaseSecs,
      stopTimeoutMs: settings.stopTimeoutMs,
      maxCausalDepth: settings.maxCausalDepth,
      extraTools: tools,
      fs: {},
      http: settings.httpAllow === undefined
        ? undefined
        : { allow: settings.httpAllow, allowPrivate: settings.httpAllowPrivate },
      model: ctx.toolSettings?.model ?? modelOptionsOf(settings),
      auth: { retiredTtlSecs: settings.retiredTtlSecs, masterKey },
      plugins: settings.plugins,
      schedule: {},
    });
    try {
      for (const agent of agents) runtime.register(agent);
      await runtime.start();
      const standby = runtime.agents().filter((a) => a.standby).map((a) => a.name);
      logger.info("Hosting {agents} on {db}; SIGINT or SIGTERM stops them", {
        agents: agents.map((a) => a.name).join(", "),
        db: ctx.dbLocation,
      });
      if (standby.length > 0) {
        logger.info("Standing by for {agents}: another process runs them now", {
          agents: standby.join(", "),
        });
      }
      await interrupted(ctx.io.signal);
      logger.info("Stopping: in-flight handlers get up to {ms} ms", {
        ms: settings.stopTimeoutMs,
      });
    } finally {
      await runtime.close();
    }
    logger.info("Stopped");
    return 0;
  });
}

function interrupted(signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal === undefined) return; // Runs until the process ends.
    if (signal.aborted) resolve();
    else signal.addEventListener("abort", () => resolve(), { once: true });
  });
}

/**
 * Registers `toka run` on the program.
 *
 * @param program The `toka` command.
 * @param run Runs the command's task with its context.
 */
export function registerRunCommand(program: Command, run: RunCommand): void {
  const command = program.command("run")
    .description("host the agents that modules export, until SIGINT or SIGTERM")
    .argument("[modules...]", "modules to import (default: toka.json's agents)")
    .addHelpText(
      "after",
      `
Every agent (defineAgent) and tool (defineTool) a module exports is registered.
Logs go to stderr, at info unless --log-level says otherwise. The first SIGINT
or SIGTERM stops gracefully (in-flight handlers get stopTimeoutMs); a second one
exits at once with 130. Several "toka run" on one vault share the agents: each
runs in one process at a time, and another takes it over when that one dies.

Examples:
  toka run                 # the modules listed in toka.json's "agents"
  toka run agents.ts more_agents.ts`,
    );
  writes(command);
  logsByDefault(command, "info");
  command.action((modules: string[], _options: unknown, self: Command) =>
    run(self, (ctx) => runAgents(ctx, modules))
  );
}
