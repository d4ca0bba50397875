// Agent leases: on a vault shared by several processes, one process at a time
// runs a given agent. The holder renews its lease; the others wait and take
// over once it is released (on stop) or has expired (after a crash).

/** A lease as stored at `["runtime", "lease", name]`. */
export interface Lease {
  /** The runner holding it: random, one per runner start. */
  owner: string;
  /** When it ends unless renewed, ms since the epoch by the runtime's clock. */
  expiresAt: number;
}

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
    await retry(async () => {
      const entry = await this.#kv.get<Lease>(key);
      if (entry.value?.owner !== owner) return true;
      return (await this.#kv.atomic().check(entry).delete(key).commit()).ok;
    });
  }

  // Sets the lease to this owner for another TTL when `mayTake` allows it, in
  // one compare-and-set on what was read.
  async #take(
    name: string,
    owner: string,
    mayTake: (lease: Lease | null, now: number) => boolean,
  ): Promise<boolean> {
    const key = [...LEASE_PREFIX, name];
    let taken = false;
    await retry(async () => {
      const entry = await this.#kv.get<Lease>(key);
      const now = this.#clock();
      taken = false;
      if (!mayTake(entry.value, now)) return true;
      const lease: Lease = { owner, expiresAt: now + this.ttlMs };
      // KV drops a lease long expired, e.g. of a process that crashed.
      const commit = await this.#kv.atomic().check(entry)
        .set(key, lease, { expireIn: Math.ceil(this.ttlMs * 3) }).commit();
      taken = commit.ok;
      return commit.ok;
    });
    return taken;
  }
}

// Retries a compare-and-set that lost a race, and "database is locked" (two
// processes on one file), a few times.
async function retry(attempt: () => Promise<boolean>): Promise<boolean> {
  for (let i = 1;; i++) {
    try {
      if (await attempt()) return true;
    } catch (error) {
      if (i >= 5) throw error;
    }
    if (i >= 5) return false;
    await new Promise((resolve) => setTimeout(resolve, 5 * 2 ** i));
  }
}
