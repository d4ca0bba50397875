// A lease that is still renewed is never taken over, whatever the readers'
// wall clocks say (issue 18 #21). Deno KV judges a key's `expireIn` by the
// wall clock of the process that reads (or collects) it, so a lease that
// relied on it would vanish for a standby whose clock is ahead.
import assert from "node:assert/strict";
import { LeaseBook } from "../../../runtime/agents/_lease.ts";
import { KvLeaseStore } from "../../../runtime/mod.ts";

const HOUR = 3_600_000;

/**
 * One Deno KV as seen by a process whose wall clock is `clock`: a key written
 * with `expireIn` is gone once that clock passes the writer's time plus
 * `expireIn` (as the KV's collector of that process would delete it).
 * `expiries` is the database's record of when each key expires.
 */
function viewAt(kv: Deno.Kv, clock: () => number, expiries: Map<string, number>): Deno.Kv {
  const name = (key: Deno.KvKey) => JSON.stringify(key);
  const collect = async (key: Deno.KvKey) => {
    const at = expiries.get(name(key));
    if (at !== undefined && clock() >= at) {
      expiries.delete(name(key));
      await kv.delete(key);
    }
  };
  const atomic = () => {
    const op = kv.atomic();
    const writes: [Deno.KvKey, number | undefined][] = [];
    const wrapped = {
      check(...checks: Deno.AtomicCheck[]) {
        op.check(...checks);
        return wrapped;
      },
      set(key: Deno.KvKey, value: unknown, options?: { expireIn?: number }) {
        op.set(key, value, options);
        writes.push([
          key,
          options?.expireIn === undefined ? undefined : clock() + options.expireIn,
        ]);
        return wrapped;
      },
      delete(key: Deno.KvKey) {
        op.delete(key);
        writes.push([key, undefined]);
        return wrapped;
      },
      async commit() {
        const result = await op.commit();
        if (result.ok) {
          for (const [key, at] of writes) {
            if (at === undefined) expiries.delete(name(key));
            else expiries.set(name(key), at);
          }
        }
        return result;
      },
    };
    return wrapped;
  };
  return new Proxy(kv, {
    get(target, key) {
      if (key === "atomic") return atomic;
      if (key === "get") {
        return async (k: Deno.KvKey) => {
          await collect(k);
          return await target.get(k);
        };
      }
      const value = Reflect.get(target, key);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

Deno.test("a standby whose wall clock is far ahead never takes a renewed lease", async () => {
  using kv = await Deno.openKv(":memory:");
  const expiries = new Map<string, number>();
  let now = Date.parse("2030-01-01T00:00:00Z");
  let monotonic = 0;
  const ttl = 1_000;
  const holderClock = () => now;
  const standbyClock = () => now + HOUR;
  const holder = new LeaseBook(
    new KvLeaseStore(viewAt(kv, holderClock, expiries)),
    holderClock,
    ttl,
    () => monotonic,
  );
  const standby = new LeaseBook(
    new KvLeaseStore(viewAt(kv, standbyClock, expiries)),
    standbyClock,
    ttl,
    () => monotonic,
  );
  assert.notEqual(await holder.acquire("worker", "holder"), undefined);
  for (let round = 0; round < 10; round++) {
    assert.equal(await standby.acquire("worker", "standby"), undefined, `round ${round}`);
    now += ttl / 3;
    monotonic += ttl / 3;
    assert.notEqual(await holder.renew("worker", "holder"), undefined, `renewal ${round}`);
  }
  // The holder stops renewing: the standby takes over once it has seen no
  // renewal for a whole lease, by its own monotonic clock.
  assert.equal(await standby.acquire("worker", "standby"), undefined);
  monotonic += ttl - 1;
  assert.equal(await standby.acquire("worker", "standby"), undefined);
  monotonic += 1;
  assert.notEqual(await standby.acquire("worker", "standby"), undefined);
  assert.equal(await holder.renew("worker", "holder"), undefined, "the old holder lost it");
});
