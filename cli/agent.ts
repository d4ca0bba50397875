/**
 * `toka agent list`: each agent's checkpoint in the vault named by `--db`,
 * its lag behind the head of the log and its failures.
 *
 * @module
 */
import type { Command } from "commander";
import type { EventStore } from "../runtime/event_store.ts";
import { readCheckpoints } from "../runtime/_checkpoint.ts";
import { type CommandContext, type RunCommand, withStore } from "./_context.ts";

/** One agent as `toka agent list` shows it. */
export interface AgentRow {
  /** The agent's name. */
  name: string;
  /** Position of the last event it finished, or `null`. */
  position: string | null;
  /** Events in the log after its position. */
  lag: number;
  /** Events it gave up on. */
  failures: number;
  /** When its checkpoint was written, ms since the epoch. */
  updatedAt: number;
}

/**
 * Reads every agent checkpoint of a store and the head of its log.
 *
 * @param store A store backed by Deno KV.
 * @returns One row per agent, sorted by name.
 * @throws {Error} When the store has no Deno KV.
 */
export async function readAgentRows(store: EventStore): Promise<AgentRow[]> {
  if (store.kv === undefined) {
    throw new Error("Agent checkpoints live in a Deno KV vault, and this store is not one");
  }
  const head = Number((await store.head()) ?? 0);
  const rows = [...(await readCheckpoints(store.kv))].map(([name, checkpoint]) => ({
    name,
    position: checkpoint.position,
    lag: head - Number(checkpoint.position ?? 0),
    failures: checkpoint.failures,
    updatedAt: checkpoint.updatedAt,
  }));
  return rows.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
}

/**
 * Prints each agent's position, lag and failures; with `--json`, one JSON
 * object per line.
 *
 * @param ctx The command context.
 * @returns The exit code.
 */
export function listAgents(ctx: CommandContext): Promise<number> {
  return withStore(ctx, async (store) => {
    const rows = await readAgentRows(store);
    if (ctx.json) {
      ctx.io.stdout(rows.map((row) => `${JSON.stringify(row)}\n`).join(""));
      return 0;
    }
    if (rows.length === 0) {
      ctx.io.stdout("No agent has a checkpoint in this vault yet\n");
      return 0;
    }
    const table = [
      ["AGENT", "POSITION", "LAG", "FAILURES", "UPDATED"],
      ...rows.map((r) => [
        r.name,
        r.position ?? "-",
        String(r.lag),
        String(r.failures),
        new Date(r.updatedAt).toISOString(),
      ]),
    ];
    const widths = table[0].map((_, i) => Math.max(...table.map((row) => row[i].length)));
    ctx.io.stdout(
      table.map((row) => row.map((cell, i) => cell.padEnd(widths[i])).join("  ").trimEnd())
        .join("\n") + "\n",
    );
    return 0;
  });
}

/**
 * Adds `agent list` to the program.
 *
 * @param program The `toka` program.
 * @param run Runs a command's task with its context.
 * @returns The `agent` command.
 */
export function registerAgentCommands(program: Command, run: RunCommand): Command {
  const agent = program.command("agent").description("inspect agents");
  agent.command("list").description("each agent's position, lag behind the log and failures")
    .action((_options: unknown, command: Command) => run(command, listAgents));
  return agent;
}
