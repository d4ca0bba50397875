// Agent checkpoints: in Deno KV when the vault has one, else in memory.
// Writes are coalesced per agent, at most one per WRITE_INTERVAL_MS, so a fast
// agent neither waits for commits nor competes with the log for them.
import { getLogger } from "@logtape/logtape";
import { type Lease, LEASE_PREFIX } from "./_lease.ts";
import { retryLocked } from "./_kv_retry.ts";
import { delay } from "./_retry.ts";

/** Where an agent is in the log. */
export interface Checkpoint {
  /** Position of the last event the agent finished, or `null` before the first. */
  position: string | null;
  /** Events it gave up on (recorded as `agent.failed`), over its whole life. */
  failures: number;
  /** When the checkpoint was written, ms since the epoch. */
  updatedAt: number;
  /**
   * The agent's kind patterns when the checkpoint was written, so that tools
   * can count the events it has yet to handle. Missing in older records.
   */
  subscribe?: readonly string[];
}

/** The KV key prefix of checkpoints: `["runtime", "checkpoint", name]`. */
export const CHECKPOINT_PREFIX: readonly ["runtime", "checkpoint"] = ["runtime", "checkpoint"];

const logger = getLogger(["toka", "runtime", "checkpoint"]);
const WRITE_INTERVAL_MS = 20;

export class CheckpointBook {
  #kv: Deno.Kv | undefined;
  #clock: () => number;
  #latest = new Map<string, Checkpoint>();
  #pending = new Map<string, Checkpoint>();
  // The lease owner each agent's checkpoint is written for, if it runs under a lease.
  #owners = new Map<string, string>();
  #writing = new Map<string, Promise<void>>();
  #flushed = new AbortController();
  #flushing = false;

  constructor(kv: Deno.Kv | undefined, clock: () => number) {
    this.#kv = kv;
    this.#clock = clock;
  }

  async load(name: string): Promise<Checkpoint | undefined> {
    if (this.#kv === undefined) return this.#latest.get(name);
    const kv = this.#kv;
    const entry = await retryLocked(() => kv.get<Checkpoint>([...CHECKPOINT_PREFIX, name]));
    return entry.value ?? undefined;
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
    const checkpoint = { position, failures, updatedAt: this.#clock(), subscribe };
    this.#latest.set(name, checkpoint);
    if (this.#kv === undefined) return;
    if (owner) this.#owners.set(name, owner);
    else this.#owners.delete(name);
    this.#pending.set(name, checkpoint);
    if (!this.#writing.has(name)) this.#writing.set(name, this.#write(this.#kv, name));
  }

  async #write(kv: Deno.Kv, name: string): Promise<void> {
    try {
      for (let checkpoint; (checkpoint = this.#pending.get(name)) !== undefined;) {
        this.#pending.delete(name);
        if (!this.#flushing) await delay(WRITE_INTERVAL_MS, this.#flushed.signal);
        checkpoint = this.#pending.get(name) ?? checkpoint;
        this.#pending.delete(name);
        try {
          // A lease renewed between our read and commit: read it again.
          let written = false;
          for (let attempt = 1; attempt <= 5 && !written; attempt++) {
            written = await this.#put(kv, name, checkpoint);
          }
          if (written) {
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
            message: error instanceof Error ? error.message : String(error),
          });
        }
      }
    } finally {
      this.#writing.delete(name);
    }
  }

  // Writes the checkpoint; under a lease, only while its owner holds it, in
  // one commit checked against the lease read. False when the lease changed
  // meanwhile (a renewal, say): read it again. A locked database is retried.
  async #put(kv: Deno.Kv, name: string, checkpoint: Checkpoint): Promise<boolean> {
    const key = [...CHECKPOINT_PREFIX, name];
    const owner = this.#owners.get(name);
    if (owner === undefined) {
      await retryLocked(() => kv.set(key, checkpoint));
      return true;
    }
    const lease = await retryLocked(() => kv.get<Lease>([...LEASE_PREFIX, name]));
    if (lease.value?.owner !== owner) {
      logger.warn("Checkpoint of agent {name} not written: another process runs it now", { name });
      return true;
    }
    return (await retryLocked(() => kv.atomic().check(lease).set(key, checkpoint).commit())).ok;
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

/** Reads every checkpoint stored in a KV database, by agent name. */
export async function readCheckpoints(kv: Deno.Kv): Promise<Map<string, Checkpoint>> {
  const out = new Map<string, Checkpoint>();
  for await (const entry of kv.list<Checkpoint>({ prefix: [...CHECKPOINT_PREFIX] })) {
    out.set(String(entry.key[2]), entry.value);
  }
  return out;
}
