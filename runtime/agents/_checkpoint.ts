// Agent checkpoints, written through a CheckpointStore. Writes are coalesced
// per agent, at most one per WRITE_INTERVAL_MS, so a fast agent neither waits
// for commits nor competes with the log for them.
import { getLogger } from "@logtape/logtape";
import type { Checkpoint, CheckpointStore, SaveResult, StateChange } from "./agent_state.ts";
import type { AppendEffect, EventStore } from "../log/event_store.ts";
import { formatPosition } from "../../internal/ids.ts";
import { delay } from "../../internal/retry.ts";
import { errorMessage } from "../../internal/error_message.ts";

const logger = getLogger(["toka", "runtime", "checkpoint"]);
const WRITE_INTERVAL_MS = 20;

export class CheckpointBook {
  #store: CheckpointStore;
  #clock: () => number;
  #pending = new Map<string, Checkpoint>();
  // The lease owner each agent's checkpoint is written for, if it runs under a lease.
  #owners = new Map<string, string>();
  #writing = new Map<string, Promise<void>>();
  // Per agent, the save in flight (a write waiting out its interval is not).
  #saving = new Map<string, Promise<unknown>>();
  // Per agent, the position of its last checkpoint committed with a state
  // change: a coalesced write of an earlier one must not move it back.
  #floors = new Map<string, string>();
  #flushed = new AbortController();
  #flushing = false;

  constructor(store: CheckpointStore, clock: () => number) {
    this.#store = store;
    this.#clock = clock;
  }

  load(name: string): Promise<Checkpoint | undefined> {
    return this.#store.load(name);
  }

  /** The agent's last state change made while handling an event at or before `position`. */
  stateAt(name: string, position?: string): Promise<StateChange | undefined> {
    return this.#store.stateAt(name, position);
  }

  /** Lists the agent's state changes, oldest first. */
  stateHistory(name: string): AsyncIterable<StateChange> {
    return this.#store.stateHistory(name);
  }

  /**
   * Moves the checkpoint to `position` together with a state change: `append`
   * appends the agent.state event with the effect that writes both, in one
   * commit. A save in flight lands first; no write of an earlier position
   * lands after.
   */
  async withState<T>(
    name: string,
    position: string,
    failures: number,
    subscribe: readonly string[],
    state: string,
    append: (effect: AppendEffect) => Promise<T>,
  ): Promise<T> {
    const floor = this.#floors.get(name);
    this.#floors.set(name, position);
    this.#pending.delete(name);
    try {
      // A save in flight lands first; one still waiting will see the floor and skip.
      await this.#saving.get(name);
      const checkpoint = { position, failures, updatedAt: this.#clock(), subscribe };
      return await append(this.#store.withState(name, checkpoint, state));
    } catch (error) {
      if (floor === undefined) this.#floors.delete(name);
      else this.#floors.set(name, floor);
      throw error;
    }
  }

  // Whether a checkpoint at `position` lies before one committed with a state change.
  #belowFloor(name: string, position: string | null): boolean {
    const floor = this.#floors.get(name);
    return floor !== undefined && (position === null || position < floor);
  }

  /**
   * Records where an agent is; written to KV soon after. With `owner`, it is
   * written only while that owner holds the agent's lease, so a process that
   * lost the lease cannot move the checkpoint back under the new holder.
   */
  save(
    name: string,
    position: string | null,
    failures: number,
    subscribe: readonly string[],
    owner?: string,
  ): void {
    if (this.#belowFloor(name, position)) return;
    const checkpoint = { position, failures, updatedAt: this.#clock(), subscribe };
    if (owner) this.#owners.set(name, owner);
    else this.#owners.delete(name);
    this.#pending.set(name, checkpoint);
    if (!this.#writing.has(name)) this.#writing.set(name, this.#write(name));
  }

  async #write(name: string): Promise<void> {
    try {
      for (let checkpoint; (checkpoint = this.#pending.get(name)) !== undefined;) {
        this.#pending.delete(name);
        if (!this.#flushing) await delay(WRITE_INTERVAL_MS, this.#flushed.signal);
        checkpoint = this.#pending.get(name) ?? checkpoint;
        this.#pending.delete(name);
        // A state change committed a later checkpoint meanwhile.
        if (this.#belowFloor(name, checkpoint.position)) continue;
        try {
          const saving = this.#saveRetrying(name, checkpoint, this.#owners.get(name));
          this.#saving.set(name, saving.catch(() => {}));
          const result = await saving.finally(() => this.#saving.delete(name));
          if (result === "fenced") {
            logger.warn("Checkpoint of agent {name} not written: another process runs it now", {
              name,
            });
          } else if (result === "written") {
            logger.debug("Checkpoint of agent {name} moved to position {position}", {
              name,
              position: checkpoint.position ?? "none",
            });
          } else {
            logger.error(
              "Could not write the checkpoint of agent {name}: its lease kept changing",
              { name },
            );
          }
        } catch (error) {
          logger.error("Could not write the checkpoint of agent {name}: {message}", {
            name,
            message: errorMessage(error),
          });
        }
      }
    } finally {
      this.#writing.delete(name);
    }
  }

  // Saves, reading the lease again when it was renewed between the read and the commit.
  async #saveRetrying(name: string, checkpoint: Checkpoint, owner?: string): Promise<SaveResult> {
    let result = await this.#store.save(name, checkpoint, owner);
    for (let attempt = 1; attempt < 5 && result === "conflict"; attempt++) {
      result = await this.#store.save(name, checkpoint, owner);
    }
    return result;
  }

  /** Writes every pending checkpoint now. */
  async flush(): Promise<void> {
    this.#flushing = true;
    try {
      // Cuts short the writers' pauses, so stop() does not wait for them.
      this.#flushed.abort();
      this.#flushed = new AbortController();
      while (this.#writing.size > 0) await Promise.all(this.#writing.values());
    } finally {
      this.#flushing = false;
    }
  }
}

/**
 * The head of the log, when it lies after `from` with no event of `kinds`
 * between the two: a checkpoint can move there without handling anything.
 */
export async function idleHead(
  store: EventStore,
  from: string | null,
  kinds: readonly string[],
): Promise<string | undefined> {
  const head = (await store.head())?.position;
  if (head === undefined || (from !== null && head <= from)) return undefined;
  const pending = store.read({
    from: from === null ? undefined : formatPosition(Number(from) + 1),
    kinds: [...kinds],
    limit: 1,
  });
  for await (const event of pending) if (event.position <= head) return undefined;
  return head;
}

/** Whether the patterns a checkpoint recorded are the agent's current ones. */
export function samePatterns(
  stored: readonly string[] | undefined,
  current: readonly string[],
): boolean {
  return stored !== undefined && stored.length === current.length &&
    stored.every((pattern, i) => pattern === current[i]);
}
