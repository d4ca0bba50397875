/**
 * `toka agent list`: each agent's checkpoint in the vault named by `--db`,
 * its lag behind the head of the log (the events after its checkpoint that it
 * subscribes to, counted by scanning the log), its failures, and whether a
 * process runs it (holds its lease).
 *
 * @module
 */
import type { Command } from "commander";
import type { EventStore } from "../runtime/log/event_store.ts";
import { formatPosition } from "../internal/ids.ts";
import { KvCheckpointStore, KvLeaseStore } from "../runtime/mod.ts";
import { vaultKv } from "../vault/kv_store.ts";
import { type CommandContext, type RunCommand, withStore } from "./_context.ts";

/** One agent as `toka agent list` shows it. */
export interface AgentRow {
  /** The agent's name. */
  name: string;
  /** Position of the last event it finished, or `null`. */
  position: string | null;
  /**
   * Events after its position that match its kind patterns: what it has yet
   * to handle. When the checkpoint predates recorded patterns, every event
   * after its position (an upper bound).
   */
  lag: number;
  /** The kind patterns recorded with its checkpoint, or `null` in older records. */
  subscribe: string[] | null;
  /** Events it gave up on. */
  failures: number;
  /** When its checkpoint was written, ms since the epoch. */
  updatedAt: number;
  /**
   * When the lease of the process running it ends unless renewed, ms since
   * the epoch; `null` when no process runs it.
   */
  leasedUntil: number | null;
}

/**
 * Reads every agent checkpoint of a store and counts, for each agent, the
 * events after its checkpoint that match its kind patterns. This scans the log
 * after the oldest checkpoint once per agent: meant for diagnostics.
 *
 * @example
 * ```ts ignore
 * import { openVault } from "@toka/runtime/vault";
 * import { readAgentRows } from "./cli/agent.ts";
 *
 * const vault = await openVault("./toka.kv");
 * for (const row of await readAgentRows(vault)) console.log(row.name, row.lag);
 * await vault.close();
 * ```
 *
 * @param store A store backed by Deno KV.
 * @param now The time leases are judged at, ms since the epoch.
 * @returns One row per agent, sorted by name.
 * @throws {Error} When the store has no Deno KV.
 */
export async function readAgentRows(
  store: EventStore,
  now: number = Date.now(),
): Promise<AgentRow[]> {
  const kv = vaultKv(store);
  if (kv === undefined) {
    throw new Error("Agent checkpoints live in a Deno KV vault, and this store is not one");
  }
  const head = Number((await store.head())?.position ?? 0);
  const leases = new Map<string, number>();
  for await (const [name, lease] of new KvLeaseStore(kv).list()) {
    if (lease.expiresAt > now) leases.set(name, lease.expiresAt);
  }
  const rows: AgentRow[] = [];
  for await (const [name, checkpoint] of new KvCheckpointStore(kv).list()) {
    const after = Number(checkpoint.position ?? 0);
    const subscribe = Array.isArray(checkpoint.subscribe) ? [...checkpoint.subscribe] : null;
    let lag = Math.max(0, head - after);
    if (subscribe !== null && lag > 0) {
      lag = 0;
      for await (const _ of store.read({ from: formatPosition(after + 1), kinds: subscribe })) {
        lag++;
      }
    }
    rows.push({
      name,
      position: checkpoint.position,
      lag,
      subscribe,
      failures: checkpoint.failures,
      updatedAt: checkpoint.updatedAt,
      leasedUntil: leases.get(name) ?? null,
    });
  }
  return rows.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
}

/**
 * Prints each agent's position, lag, failures and until when a process holds
 * its lease (a process that died keeps it until then); with `--json`, one JSON
 * object per line. A lag shown as `≤N` comes from a checkpoint without
 * recorded kind patterns: N counts every later event.
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
      ["AGENT", "POSITION", "LAG", "FAILURES", "LEASE", "UPDATED"],
      ...rows.map((r) => [
        r.name,
        r.position ?? "-",
        r.subscribe === null ? `≤${r.lag}` : String(r.lag),
        String(r.failures),
        // A lease says a process held the agent lately, not that it is alive: one that died
        // keeps it until it ends.
        r.leasedUntil === null
          ? "none"
          : `lease held until ${new Date(r.leasedUntil).toISOString()}`,
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
  agent.command("list")
    .description(
      "each agent's position, lag (events after its position that it subscribes to; scans the log), failures, and until when a process holds its lease",
    )
    .action((_options: unknown, command: Command) => run(command, listAgents));
  return agent;
}
