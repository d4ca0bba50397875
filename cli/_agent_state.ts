// `toka agent state` and `toka agent history`: an agent's state (ctx.state)
// at a position, and its changes, read through a Runtime over the vault.
import { type Command, InvalidArgumentError } from "commander";
import type { EventStore, JsonValue } from "../runtime/log/event_store.ts";
import { formatPosition } from "../internal/ids.ts";
import { isAgentName } from "../runtime/agents/agent.ts";
import { KvCheckpointStore, Runtime, TokaError } from "../runtime/mod.ts";
import { vaultKv } from "../vault/kv_store.ts";
import { type CommandContext, type RunCommand, withStore } from "./_context.ts";
import { escapeControls } from "./_format.ts";

/** Options of {@linkcode showAgentState}. */
export interface AgentStateOptions {
  /** The position, as typed (up to 16 digits); the head of the log when absent. */
  at?: string;
}

/** What `toka agent state --json` prints. */
export interface AgentStateLine {
  /** The agent's name. */
  agent: string;
  /** The position asked about (16 digits). */
  at: string;
  /** Position of the event whose handling set the state; `null` when it had none yet. */
  after: string | null;
  /** Position of the `agent.state` event recording it; `null` when none. */
  position: string | null;
  /** The state; `null` when none. */
  state: JsonValue;
}

/**
 * Prints the state an agent had once it had handled everything up to `--at`
 * (the head of the log by default), as indented JSON; with `--json`, one
 * {@linkcode AgentStateLine}.
 *
 * @param ctx The command context.
 * @param name The agent's name.
 * @param options The position.
 * @returns The exit code.
 * @throws {TokaError} `"agent_not_found"` when the vault has no checkpoint of
 *   the agent; `"position_past_head"` when `--at` lies past the head of the log.
 */
export function showAgentState(
  ctx: CommandContext,
  name: string,
  options: AgentStateOptions,
): Promise<number> {
  return withStore(ctx, async (store) => {
    const { runtime, checkpoints } = await agentRuntime(store, name);
    const head = (await store.head())?.position ?? formatPosition(0);
    const at = options.at === undefined ? head : formatPosition(Number(options.at));
    if (at > head) {
      throw new TokaError(
        "position_past_head",
        `Position ${JSON.stringify(options.at)} is past the head of the log (${
          JSON.stringify(head)
        })`,
      );
    }
    const change = await checkpoints.stateAt(name, at);
    const state = change === undefined ? undefined : await runtime.stateAt(name, at);
    if (ctx.json) {
      const line: AgentStateLine = {
        agent: name,
        at,
        after: change?.after ?? null,
        position: change?.position ?? null,
        state: state ?? null,
      };
      ctx.io.stdout(`${JSON.stringify(line)}\n`);
    } else if (state === undefined) {
      ctx.io.stdout(`Agent ${JSON.stringify(name)} had no state at position ${at}\n`);
    } else {
      // JSON escapes C0 controls but not C1 ones nor U+2028/2029; the indent's line breaks stay.
      const lines = JSON.stringify(state, null, 2).split("\n").map(escapeControls);
      ctx.io.stdout(`${lines.join("\n")}\n`);
    }
    return 0;
  });
}

/**
 * Prints an agent's state changes, oldest first: the position of the event
 * whose handling made each, of the `agent.state` event recording it, and the
 * new state (cut short at 60 characters); with `--json`, one object a line
 * (`after`, `position`, `state`), in full.
 *
 * @param ctx The command context.
 * @param name The agent's name.
 * @returns The exit code.
 * @throws {TokaError} `"agent_not_found"` when the vault has no checkpoint of the agent.
 */
export function showAgentHistory(ctx: CommandContext, name: string): Promise<number> {
  return withStore(ctx, async (store) => {
    const { runtime, checkpoints } = await agentRuntime(store, name);
    const rows = [["AFTER", "POSITION", "STATE"]];
    for await (const indexed of checkpoints.stateHistory(name)) {
      // A large state is not in the index: stateAt reads it from its event.
      const change = {
        ...indexed,
        state: indexed.state ?? await runtime.stateAt(name, indexed.after),
      };
      if (ctx.json) {
        ctx.io.stdout(`${JSON.stringify(change)}\n`);
        continue;
      }
      // JSON escapes C0 controls but not C1 ones nor U+2028/2029.
      const state = escapeControls(JSON.stringify(change.state));
      rows.push([
        change.after,
        change.position,
        state.length > 60 ? `${state.slice(0, 59)}…` : state,
      ]);
    }
    if (ctx.json) return 0;
    if (rows.length === 1) {
      ctx.io.stdout(`Agent ${JSON.stringify(name)} has not changed its state\n`);
      return 0;
    }
    ctx.io.stdout(
      rows.map(([after, position, state]) =>
        `${after.padEnd(16)}  ${position.padEnd(16)}  ${state}`
      )
        .join("\n") + "\n",
    );
    return 0;
  });
}

// A runtime over the vault (its own checkpoint store), to read the agent's
// state by; the agent must have a checkpoint there.
async function agentRuntime(
  store: EventStore,
  name: string,
): Promise<{ runtime: Runtime; checkpoints: KvCheckpointStore }> {
  const kv = vaultKv(store);
  if (kv === undefined) {
    throw new Error("Agent checkpoints live in a Deno KV vault, and this store is not one");
  }
  const checkpoints = new KvCheckpointStore(kv);
  if (await checkpoints.load(name) === undefined) {
    throw new TokaError("agent_not_found", `No agent ${JSON.stringify(name)} in this vault`);
  }
  const runtime = await Runtime.create({ vault: store });
  return { runtime, checkpoints };
}

function parsePositionArg(value: string): string {
  if (!/^\d{1,16}$/.test(value)) throw new InvalidArgumentError("Expected up to 16 digits");
  return value;
}

/** Parses an agent name argument. */
export function parseAgentName(value: string): string {
  if (!isAgentName(value)) {
    throw new InvalidArgumentError("Expected an agent name: 1 to 64 letters, digits, _ or -");
  }
  return value;
}

/** Adds `state` and `history` to the `agent` command. */
export function registerStateCommands(agent: Command, run: RunCommand): void {
  agent.command("state")
    .description(
      "the state (ctx.state) the agent had once it had handled everything up to a position, as JSON",
    )
    .argument("<name>", "the agent", parseAgentName)
    .option(
      "--at <position>",
      "the global position; the head of the log by default",
      parsePositionArg,
    )
    .action((name: string, options: AgentStateOptions, command: Command) =>
      run(command, (ctx) => showAgentState(ctx, name, options))
    );
  agent.command("history")
    .description("the agent's state changes: the event handled, the agent.state event, the state")
    .argument("<name>", "the agent", parseAgentName)
    .action((name: string, _options: unknown, command: Command) =>
      run(command, (ctx) => showAgentHistory(ctx, name))
    );
}
