// Agent leases: on a vault shared by several processes, one process at a time
// runs a given agent. The holder renews its lease; the others wait and take
// over once it is released (on stop) or once they have seen no renewal for a
// whole lease (after a crash or a pause). That judgement uses only their own
// monotonic clock: a wall-clock time written by another process, whose clock
// may differ or jump, decides nothing.
import { retryLocked } from "./_kv_retry.ts";

/** A lease as stored at `["runtime", "lease", name]`. */
export interface Lease {
  /** The runner holding it: random, one per runner start. */
  owner: string;
  /** When it ends unless renewed, ms since the epoch by the holder's clock: informative only. */
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
  #monotonic: () => number;
  // Per agent: the other holder's lease as last read, and since when (by the
  // monotonic clock) it has not changed.
  #seen = new Map<string, { versionstamp: string; since: number }>();

  constructor(kv: Deno.Kv, clock: () => number, ttlMs: number, monotonic: () => number) {
    this.#kv = kv;
    this.#clock = clock;
    this.ttlMs = ttlMs;
    this.#monotonic = monotonic;
  }

  /**
   * Takes the lease when it is free, this owner's, or another's that this
   * process has seen go unrenewed for a whole lease.
   */
  acquire(name: string, owner: string): Promise<boolean> {
    return this.#take(name, owner, (lease, versionstamp) => {
      if (lease === null || lease.owner === owner) return true;
      const now = this.#monotonic();
      const seen = this.#seen.get(name);
      if (seen === undefined || seen.versionstamp !== versionstamp) {
        this.#seen.set(name, { versionstamp, since: now });
        return false;
      }
      return now - seen.since >= this.ttlMs;
    });
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
    mayTake: (lease: Lease | null, versionstamp: string) => boolean,
  ): Promise<boolean> {
    const key = [...LEASE_PREFIX, name];
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const entry = await retryLocked(() => this.#kv.get<Lease>(key));
      if (!mayTake(entry.value, entry.versionstamp ?? "")) return false;
      const lease: Lease = { owner, expiresAt: this.#clock() + this.ttlMs };
      // KV drops a lease long expired, e.g. of a process that crashed.
      const commit = await retryLocked(() =>
        this.#kv.atomic().check(entry)
          .set(key, lease, { expireIn: Math.ceil(this.ttlMs * 3) }).commit()
      );
      if (commit.ok) {
        this.#seen.delete(name);
        return true;
      }
    }
    return false;
  }
}
