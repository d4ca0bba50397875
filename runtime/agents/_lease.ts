// Agent leases: on a vault shared by several processes, one process at a time
// runs a given agent. The holder renews its lease; the others wait and take
// over once it is released (on stop) or once they have seen no renewal for a
// whole lease (after a crash or a pause). That judgement uses only their own
// monotonic clock: a wall-clock time written by another process, whose clock
// may differ or jump, decides nothing.
import type { Lease, LeaseStore } from "./agent_state.ts";
import type { AppendGuard } from "../log/event_store.ts";

/** Compare-and-sets that lost a race before an operation gives up. */
const CAS_ATTEMPTS = 5;

export class LeaseBook {
  readonly ttlMs: number;
  #store: LeaseStore;
  #clock: () => number;
  #monotonic: () => number;
  // Per agent: the other holder's lease as last read, and since when (by the
  // monotonic clock) it has not changed.
  #seen = new Map<string, { version: string; since: number }>();

  constructor(store: LeaseStore, clock: () => number, ttlMs: number, monotonic: () => number) {
    this.#store = store;
    this.#clock = clock;
    this.ttlMs = ttlMs;
    this.#monotonic = monotonic;
  }

  /**
   * Takes the lease when it is free, this owner's, or another's that this
   * process has seen go unrenewed for a whole lease.
   */
  acquire(name: string, owner: string): Promise<string | undefined> {
    return this.#take(name, owner, (lease, version) => {
      if (lease === null || lease.owner === owner) return true;
      const now = this.#monotonic();
      const seen = this.#seen.get(name);
      if (seen === undefined || seen.version !== version) {
        this.#seen.set(name, { version, since: now });
        return false;
      }
      return now - seen.since >= this.ttlMs;
    });
  }

  /** Extends the lease; false when this owner no longer holds it. */
  renew(name: string, owner: string): Promise<string | undefined> {
    return this.#take(name, owner, (lease) => lease?.owner === owner);
  }

  /** Gives the lease up, if this owner holds it. */
  async release(name: string, owner: string): Promise<void> {
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const { lease, version } = await this.#store.read(name);
      if (lease?.owner !== owner) return;
      if ((await this.#store.swap(name, version, null)) !== undefined) return;
    }
  }

  // Sets the lease to this owner for another TTL when `mayTake` allows it, in
  // one compare-and-set on what was read; a lost race is read again.
  async #take(
    name: string,
    owner: string,
    mayTake: (lease: Lease | null, version: string) => boolean,
  ): Promise<string | undefined> {
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const { lease, version } = await this.#store.read(name);
      if (!mayTake(lease, version ?? "")) return undefined;
      const next: Lease = { owner, expiresAt: this.#clock() + this.ttlMs };
      // Never with an expiry: a reader whose wall clock is ahead would drop it.
      const taken = await this.#store.swap(name, version, next);
      if (taken !== undefined) {
        this.#seen.delete(name);
        return taken;
      }
    }
    return undefined;
  }

  // What the vault's append checks to fence an emit by the lease at `version`.
  guard(name: string, version: string): AppendGuard | undefined {
    return this.#store.guard?.(name, version);
  }
}
