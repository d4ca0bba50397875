import assert from "node:assert/strict";
import {
  type EventStore,
  KvLeaseStore,
  type LeaseStore,
  MemoryLeaseStore,
} from "../../../runtime/mod.ts";
import { KvEventStore, MemoryEventStore } from "../../../vault/mod.ts";
import { handleOneTask, leasePorts, onEachStore, withAppend } from "../_helpers.ts";

// The race of a paused lease holder, made deterministic: the store lets
// another "process" take the agent's lease after the runner's own lease check
// and before the append commits.
function stealing(
  store: EventStore,
  leases: LeaseStore,
  renew = false,
): { vault: EventStore; arm(): void } {
  let armed = false;
  const append: EventStore["append"] = async (stream, events, options) => {
    if (armed && events[0]?.kind === "task.done") {
      armed = false;
      const { lease, version } = await leases.read("worker");
      const taken = await leases.swap("worker", version, {
        owner: renew ? lease!.owner : "other",
        expiresAt: Date.now() + 60_000,
      });
      assert.notEqual(taken, undefined, "the other process took the lease");
    }
    return store.append(stream, events, options);
  };
  const arm = () => {
    armed = true;
  };
  return { vault: withAppend(store, append), arm };
}

async function race(store: EventStore, leases: LeaseStore, renew = false): Promise<void> {
  const { vault, arm } = stealing(store, leases, renew);
  const errors = await handleOneTask(vault, leasePorts(store, leases), async (ctx) => {
    arm();
    await ctx.emit({ kind: "task.done" });
  });
  const done = [];
  for await (const event of store.read({ kinds: ["task.done"] })) done.push(event);
  if (renew) {
    assert.deepEqual([done.length, errors], [1, []], "a renewal meanwhile: appended once");
    return;
  }
  assert.equal(done.length, 0, "an emit made after the lease was taken is not appended");
  assert.equal(errors.length, 1);
  assert.equal((errors[0] as { code?: string }).code, "lease_lost");
}

Deno.test("an agent's emits are fenced atomically by its lease", async (t) => {
  await onEachStore(t, (store, leases) => race(store, leases), [
    "in memory: the lease taken between the check and the commit",
    "Deno KV: the lease taken between the check and the commit",
  ]);

  await t.step("a renewal of its own between the check and the commit: appended once", async () => {
    const memory = new MemoryEventStore();
    await race(memory, new MemoryLeaseStore(), true);
    await memory.close();
    const kv = await Deno.openKv(":memory:");
    const store = await KvEventStore.open(kv);
    await race(store, new KvLeaseStore(kv), true);
    await store.close();
    kv.close();
  });
});
