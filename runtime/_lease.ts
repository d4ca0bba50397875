// Agent leases: on a vault shared by several processes, one process at a time
// runs a given agent. The holder renews its lease; the others wait and take
// over once it is released (on stop) or has expired (after a crash).
import { retryLocked } from "./_kv_retry.ts";

/** A lease as stored at `["runtime", "lease", name]`. */
export interface Lease {
  /** The runner holding it: random, one per runner start. */
  owner: string;
  /** When it ends unless renewed, ms since the epoch by the runtime's clock. */
  expiresAt: number;
}

/** Compare-and-sets that lost a race before an operation gives up. */
const CAS_ATTEMPTS = 5;

/** The KV key prefix of leases. */
export const LEASE_PREFIX: readonly ["runtime", "lease"] = ["runtime", "lease"];

export class LeaseBook {
  readonly ttlMs: number;
  #kv: Deno.Kv;
  #clock: () => number;

  constructor(kv: Deno.Kv, clock: () => number, ttlMs: number) {
    this.#kv = kv;
    this.#clock = clock;
    this.ttlMs = ttlMs;
  }

  /** Takes the lease unless another owner holds an unexpired one. */
  acquire(name: string, owner: string): Promise<boolean> {
    return this.#take(
      name,
      owner,
      (lease, now) => lease === null || lease.owner === owner || lease.expiresAt <= now,
    );
  }

  /** Extends the lease; false when this owner no longer holds it. */
  renew(name: string, owner: string): Promise<boolean> {
    return this.#take(name, owner, (lease) => lease?.owner === owner);
  }

  /** Gives the lease up, if this owner holds it. */
  async release(name: string, owner: string): Promise<void> {
    const key = [...LEASE_PREFIX, name];
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const entry = await retryLocked(() => this.#kv.get<Lease>(key));
      if (entry.value?.owner !== owner) return;
      const commit = await retryLocked(() => this.#kv.atomic().check(entry).delete(key).commit());
      if (commit.ok) return;
    }
  }

  // Sets the lease to this owner for another TTL when `mayTake` allows it, in
  // one compare-and-set on what was read; a lost race is read again.
  async #take(
    name: string,
    owner: string,
    mayTake: (lease: Lease | null, now: number) => boolean,
  ): Promise<boolean> {
    const key = [...LEASE_PREFIX, name];
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const entry = await retryLocked(() => this.#kv.get<Lease>(key));
      const now = this.#clock();
      if (!mayTake(entry.value, now)) return false;
      const lease: Lease = { owner, expiresAt: now + this.ttlMs };
      // KV drops a lease long expired, e.g. of a process that crashed.
      const commit = await retryLocked(() =>
        this.#kv.atomic().check(entry)
          .set(key, lease, { expireIn: Math.ceil(this.ttlMs * 3) }).commit()
      );
      if (commit.ok) return true;
    }
    return false;
  }
}
