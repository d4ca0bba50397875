/**
 * `toka agent list`: each agent's checkpoint in the vault named by `--db`,
 * its lag behind the head of the log (the events after its checkpoint that it
 * subscribes to, counted by scanning the log), its failures, and whether a
 * process runs it (holds its lease). `toka agent failed` and `toka agent
 * retry`: the events agents gave up on, and requests to handle them again.
 * `toka agent state` and `toka agent history`: an agent's state (`ctx.state`)
 * at a position, and its changes.
 *
 * @module
 */
import { type Command, InvalidArgumentError } from "commander";
import type { EventStore } from "../runtime/log/event_store.ts";
import { formatPosition } from "../internal/ids.ts";
import { EventBus, KvCheckpointStore, KvLeaseStore, readFailedEvents } from "../runtime/mod.ts";
import { hasFailed, retryRequests } from "../runtime/agents/failed_events.ts";
import { TokaError } from "../runtime/errors.ts";
import { vaultKv } from "../vault/kv_store.ts";
import { type CommandContext, type RunCommand, withStore, writes } from "./_context.ts";
import { parseAgentName, registerStateCommands } from "./_agent_state.ts";
import { escapeControls } from "./_format.ts";
import { normalizeEventId } from "./_event_queries.ts";
import { UsageError } from "./_usage_error.ts";

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
    printTable(ctx, [
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
    ]);
    return 0;
  });
}

/**
 * Prints the events agents gave up on that no retry has handled since (see
 * `readFailedEvents`), of every agent or of one; with `--json`, one JSON
 * object per line.
 *
 * @param ctx The command context.
 * @param name An agent's name, or undefined for every agent.
 * @returns The exit code.
 * @throws {TokaError} When `name` has neither a checkpoint nor a failure in the vault.
 */
export function listFailed(ctx: CommandContext, name: string | undefined): Promise<number> {
  return withStore(ctx, async (store) => {
    const failed = await readFailedEvents(store, name);
    if (name !== undefined && failed.length === 0 && !(await hasRun(store, name))) {
      throw new TokaError(
        "unknown_agent",
        `No agent ${JSON.stringify(name)} has run or failed here`,
      );
    }
    if (ctx.json) {
      ctx.io.stdout(failed.map((row) => `${JSON.stringify(row)}\n`).join(""));
      return 0;
    }
    if (failed.length === 0) {
      ctx.io.stdout(
        name === undefined
          ? "No agent has an event it gave up on\n"
          : `Agent ${JSON.stringify(name)} has no event it gave up on\n`,
      );
      return 0;
    }
    printTable(ctx, [
      ["AGENT", "EVENT", "KIND", "ATTEMPTS", "FAILED AT", "STATUS", "ERROR"],
      ...failed.map((f) => [
        f.agent,
        f.eventId,
        escapeControls(f.kind),
        String(f.attempts),
        new Date(f.failedAt).toISOString(),
        f.retryRequested ? "retry requested" : "failed",
        escapeControls(f.error),
      ]),
    ]);
    return 0;
  });
}

/** Which events `toka agent retry` asks for. */
export interface RetryAgentOptions {
  /** One event's id (`--event`). */
  event?: string;
  /** Every event the agent gave up on and is not already being retried (`--all`). */
  all?: boolean;
}

/**
 * Appends, in one append, the requests that have an agent handle again the
 * events it gave up on (`agent.retry_requested` in its stream): the process
 * that runs it handles them in order, or it does at its next start. Prints
 * one line per request; with `--json`, the stored requests.
 *
 * @param ctx The command context.
 * @param name The agent's name.
 * @param options `--event ID` or `--all`.
 * @returns The exit code.
 * @throws {UsageError} When neither or both of `--event` and `--all` are given.
 * @throws {RetryRefusedError} When the agent or event is unknown, the agent has
 *   not given up on the event, or its retry is already requested.
 */
export async function retryAgent(
  ctx: CommandContext,
  name: string,
  options: RetryAgentOptions,
): Promise<number> {
  if (options.event !== undefined && options.all === true) {
    throw new UsageError("Give --event ID or --all, not both");
  }
  const target = options.event ?? (options.all === true ? "all" : undefined);
  if (target === undefined) throw new UsageError("Give --event ID or --all");
  // Checked on a read-only store first: a refused retry changes nothing stored.
  const requested = (store: EventStore) =>
    hasCheckpoint(store, name).then((known) => retryRequests(store, name, target, known));
  const none = () => {
    ctx.io.stdout(
      `Agent ${JSON.stringify(name)} has no failed event that is not already being retried\n`,
    );
    return 0;
  };
  if ((await withStore(ctx, requested, { readOnly: true })).length === 0) return none();
  return await withStore(ctx, async (store) => {
    // Asked again: another process may have requested some since.
    const requests = await requested(store);
    if (requests.length === 0) return none();
    const bus = new EventBus({ store });
    const stored = await bus.emitBatch(requests).finally(() => bus.close());
    ctx.io.stdout(
      stored.map((request) =>
        ctx.json
          ? `${JSON.stringify(request)}\n`
          : `Asked agent ${JSON.stringify(name)} to retry event ${
            (request.payload as { eventId: string }).eventId
          } (request ${request.id})\n`
      ).join(""),
    );
    return 0;
  });
}

async function hasCheckpoint(store: EventStore, name: string): Promise<boolean> {
  const kv = vaultKv(store);
  return kv !== undefined && (await new KvCheckpointStore(kv).load(name)) !== undefined;
}

async function hasRun(store: EventStore, name: string): Promise<boolean> {
  return await hasCheckpoint(store, name) || await hasFailed(store, name);
}

// Columns padded to their widest cell, two spaces apart.
function printTable(ctx: CommandContext, table: string[][]): void {
  const widths = table[0].map((_, i) => Math.max(...table.map((row) => row[i].length)));
  ctx.io.stdout(
    table.map((row) => row.map((cell, i) => cell.padEnd(widths[i])).join("  ").trimEnd())
      .join("\n") + "\n",
  );
}

function parseEventId(value: string): string {
  const id = normalizeEventId(value);
  if (id === undefined) {
    throw new InvalidArgumentError("Expected an event id (26 characters of Crockford base32)");
  }
  return id;
}

/**
 * Adds `agent list`, `state`, `history`, `failed` and `retry` to the program.
 *
 * @param program The `toka` program.
 * @param run Runs a command's task with its context.
 * @returns The `agent` command.
 */
export function registerAgentCommands(program: Command, run: RunCommand): Command {
  const agent = program.command("agent").description(
    "inspect agents and their state, and retry the events they gave up on",
  );
  agent.command("list")
    .description(
      "each agent's position, lag (events after its position that it subscribes to; scans the log), failures, and until when a process holds its lease",
    )
    .action((_options: unknown, command: Command) => run(command, listAgents));
  registerStateCommands(agent, run);
  agent.command("failed")
    .description(
      "the events agents gave up on (agent.failed) that no retry has handled since; reads the log",
    )
    .argument("[name]", "only this agent's", parseAgentName)
    .action((name: string | undefined, _options: unknown, command: Command) =>
      run(command, (ctx) => listFailed(ctx, name))
    );
  writes(agent.command("retry"), { create: false })
    .description(
      "ask an agent to handle again events it gave up on: the process running it does, or it does at its next start",
    )
    .argument("<name>", "the agent", parseAgentName)
    .option("--event <id>", "the event to retry, as agent failed lists it", parseEventId)
    .option("--all", "every event it gave up on that is not already being retried")
    .action((name: string, options: RetryAgentOptions, command: Command) =>
      run(command, (ctx) => retryAgent(ctx, name, options))
    );
  return agent;
}
