// The index of agents' state changes beside their checkpoints: one entry per
// change, keyed by the position of the event whose handling made it, so that
// the state at any position is one reverse-listed entry however long the
// history. Entries are written only with the agent.state event and checkpoint
// they belong to (an append effect), so the three never disagree.
import type { Kv } from "../../internal/platform.ts";
import type { AppendEffect, EventRecord, JsonValue } from "../log/event_store.ts";
import type { Checkpoint, StateChange } from "./agent_state.ts";
import { formatPosition } from "../../internal/ids.ts";
import { TokaError } from "../errors.ts";
import { parsePosition } from "../log/event_rules.ts";
import { isAgentName } from "./agent.ts";

/** `["runtime", "state", agent, after]` → {@linkcode StoredChange}. */
export const STATE_PREFIX = ["runtime", "state"] as const;
/** States up to this many bytes of JSON are kept in the index; larger ones stay in their event. */
export const INDEXED_STATE_BYTES = 32 * 1024;
// Room for the keys, the checkpoint and the entry's other fields.
const OVERHEAD_BYTES = 2048;

/** The entry that repeats an agent's latest change (sorted after every position). */
const LATEST = "latest";

/** An index entry: the agent.state event's position, and the state's JSON when small. */
interface StoredChange {
  p: string;
  s?: Uint8Array;
  /** In the latest entry only: the position of the event handled. */
  a?: string;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The position a checkpoint that comes with a state change must have. */
export function changedAfter(agent: string, checkpoint: Checkpoint): string {
  const after = checkpoint?.position;
  if (typeof after !== "string") {
    throw new TypeError(
      `Invalid checkpoint of agent "${agent}": a state change needs the position of the event handled`,
    );
  }
  return after;
}

/** The effect that writes the checkpoint and the index entry in the vault's commit. */
export function stateWrites(
  checkpointKey: readonly (string | number)[],
  agent: string,
  checkpoint: Checkpoint,
  state: string,
): AppendEffect {
  const after = changedAfter(agent, checkpoint);
  const bytes = encoder.encode(state);
  const indexed = bytes.length <= INDEXED_STATE_BYTES;
  const saved = structuredClone(checkpoint);
  return {
    bytes: 2 * ((indexed ? bytes.length : 0) + OVERHEAD_BYTES),
    writes: (events: readonly EventRecord[]) => {
      const change: StoredChange = { p: events[events.length - 1].position };
      if (indexed) change.s = bytes;
      return [
        { key: [...checkpointKey], value: saved },
        { key: [...STATE_PREFIX, agent, after], value: change },
        { key: [...STATE_PREFIX, agent, LATEST], value: { ...change, a: after } },
      ];
    },
  };
}

function toChange(agent: string, after: string, stored: StoredChange): StateChange {
  try {
    if (typeof stored?.p !== "string" || !/^\d{16}$/.test(stored.p)) throw new TypeError("p");
    const change: StateChange = { after, position: stored.p };
    if (stored.s !== undefined) change.state = JSON.parse(decoder.decode(stored.s)) as JsonValue;
    return change;
  } catch {
    // Edited or damaged beside the log: verify() says which entry.
    throw new TokaError(
      "state_unreadable",
      `The state index entry of agent ${JSON.stringify(agent)} after ${
        JSON.stringify(after.slice(0, 20))
      } is unreadable: run toka events verify`,
    );
  }
}

/**
 * Checks a query of the index: a bad name or position is a caller's mistake,
 * not a question with no answer (a bad position would read as the latest).
 */
export function checkStateQuery(agent: string, position?: string): void {
  if (!isAgentName(agent)) {
    throw new TypeError(
      `Invalid agent name ${JSON.stringify(agent)}: use 1 to 64 letters, digits, _ or -`,
    );
  }
  if (position !== undefined) parsePosition(position);
}

/** The last change made while handling an event at or before `position` (any, without). */
export async function kvStateAt(
  kv: Kv,
  agent: string,
  position?: string,
): Promise<StateChange | undefined> {
  checkStateQuery(agent, position);
  const prefix = [...STATE_PREFIX, agent];
  if (position === undefined) {
    const latest = await kv.get<StoredChange>([...prefix, LATEST]);
    if (latest.value?.a !== undefined) return toChange(agent, latest.value.a, latest.value);
  }
  // Positions are 16 digits: they sort before the latest entry's key.
  const end = [...prefix, position === undefined ? LATEST : formatPosition(Number(position) + 1)];
  for await (const entry of kv.list<StoredChange>({ prefix, end }, { reverse: true, limit: 1 })) {
    return toChange(agent, String(entry.key[3]), entry.value);
  }
  return undefined;
}

/** Every change of an agent's state, oldest first. */
export async function* kvStateHistory(kv: Kv, agent: string): AsyncIterable<StateChange> {
  checkStateQuery(agent);
  const prefix = [...STATE_PREFIX, agent];
  for await (const entry of kv.list<StoredChange>({ prefix, end: [...prefix, LATEST] })) {
    yield toChange(agent, String(entry.key[3]), entry.value);
  }
}

/** The same index in memory, sorted by `after`, for the in-memory checkpoint store. */
export class MemoryStateIndex {
  #changes = new Map<string, { after: string; position: string; state: string }[]>();

  /** The effect that saves the checkpoint (with `save`) and indexes the state as the event is stored. */
  effect(
    agent: string,
    checkpoint: Checkpoint,
    state: string,
    save: (checkpoint: Checkpoint) => void,
  ): AppendEffect {
    const after = changedAfter(agent, checkpoint);
    const saved = structuredClone(checkpoint);
    return {
      apply: (events: readonly EventRecord[]) => {
        save(saved);
        let list = this.#changes.get(agent);
        if (list === undefined) this.#changes.set(agent, list = []);
        const change = { after, position: events[events.length - 1].position, state };
        const i = this.#lastAtOrBefore(list, after);
        if (i >= 0 && list[i].after === after) list[i] = change;
        else list.splice(i + 1, 0, change);
      },
    };
  }

  at(agent: string, position?: string): StateChange | undefined {
    checkStateQuery(agent, position);
    const list = this.#changes.get(agent) ?? [];
    const change = position === undefined
      ? list[list.length - 1]
      : list[this.#lastAtOrBefore(list, formatPosition(Number(position)))];
    return change === undefined ? undefined : {
      after: change.after,
      position: change.position,
      state: JSON.parse(change.state) as JsonValue,
    };
  }

  history(agent: string): StateChange[] {
    checkStateQuery(agent);
    return (this.#changes.get(agent) ?? []).map((change) => ({
      after: change.after,
      position: change.position,
      state: JSON.parse(change.state) as JsonValue,
    }));
  }

  // The index of the last change whose `after` is at or before `position`; -1 when none.
  #lastAtOrBefore(list: { after: string }[], position: string): number {
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (list[mid].after <= position) lo = mid + 1;
      else hi = mid;
    }
    return lo - 1;
  }
}
