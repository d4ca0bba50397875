/**
 * What a fork of a Deno KV vault carries of the agents' state: each
 * checkpoint moved back to the fork point when it is past it (and before any
 * event whose handling left records after the fork point, such as an
 * `agent.state` event, so that the handling is done again on the fork), and
 * the state changes recorded by `agent.state` events the fork holds. Leases
 * are not carried: no process runs an agent of a fork yet.
 *
 * @module
 */
import type { Kv, KvKey } from "../../internal/platform.ts";
import { formatPosition } from "../../internal/ids.ts";
import { retryLocked } from "../../internal/kv_retry.ts";
import type { Checkpoint } from "./agent_state.ts";
import { STATE_PREFIX } from "./_state_index.ts";

const CHECKPOINTS = ["runtime", "checkpoint"] as const;

/** Counts of what {@linkcode agentStateAt} yields. */
export interface AgentStateCounts {
  /** Checkpoints. */
  checkpoints: number;
  /** State index entries. */
  stateChanges: number;
}

/**
 * The KV entries of the agents' checkpoints and state index as of a position
 * of the log, read from a vault's database, for its fork: the state changes
 * whose `agent.state` event is at or before `at`, and each checkpoint at
 * `min(position, at)`, or just before the first event whose state change was
 * recorded after `at` (or that is in `cut`), if earlier.
 *
 * @param kv The source vault's database.
 * @param at The fork point, a position of 1 or more.
 * @param counts Counted as entries are yielded.
 * @param cut Per agent, the first event at or before `at` whose handling left
 *   records after it (steps, emits): its checkpoint goes back before it too.
 * @returns Keys and values to write into the fork.
 * @throws {Error} When the database cannot be read.
 *
 * @example
 * ```ts
 * import { agentStateAt } from "./agent_state_fork.ts";
 * import { KvCheckpointStore } from "./agent_state.ts";
 *
 * using kv = await Deno.openKv(":memory:");
 * await new KvCheckpointStore(kv).save("worker", { position: "0000000000000009", failures: 0, updatedAt: 0 });
 * for await (const [, value] of agentStateAt(kv, 5)) console.log((value as { position: string }).position);
 * // 0000000000000005
 * ```
 */
export async function* agentStateAt(
  kv: Kv,
  at: number,
  counts: AgentStateCounts = { checkpoints: 0, stateChanges: 0 },
  cut: ReadonlyMap<string, number> = new Map(),
): AsyncIterableIterator<[KvKey, unknown]> {
  const cap = formatPosition(at);
  // Per agent, the first handled event whose state change the fork does not
  // hold (recorded after the fork point): its checkpoint goes back before it.
  const redo = new Map(cut);
  const changes = kv.list<{ p: string }>({ prefix: [...STATE_PREFIX] });
  for (;;) {
    const entry = await retryLocked(() => changes.next());
    if (entry.done) break;
    const agent = String(entry.value.key[2]);
    // The entry that repeats an agent's latest change is not a change of its own.
    const after = String(entry.value.key[3]);
    const change = /^\d{16}$/.test(after);
    if (entry.value.value.p > cap) {
      if (change) redo.set(agent, Math.min(redo.get(agent) ?? Number(after), Number(after)));
      continue;
    }
    if (change) counts.stateChanges++;
    yield [entry.value.key, entry.value.value];
  }
  const checkpoints = kv.list<Checkpoint>({ prefix: [...CHECKPOINTS] });
  for (;;) {
    const entry = await retryLocked(() => checkpoints.next());
    if (entry.done) break;
    const { key, value } = entry.value;
    let last = value.position === null ? 0 : Math.min(Number(value.position), at);
    const first = redo.get(String(key[2]));
    if (first !== undefined) last = Math.min(last, first - 1);
    counts.checkpoints++;
    yield [key, { ...value, position: last === 0 ? null : formatPosition(last) }];
  }
}
