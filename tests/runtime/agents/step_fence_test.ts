// A step's record is fenced by the agent's lease like its emits: a holder
// whose lease another process took between its lease check and the append
// records nothing, and its step fails with LeaseLostError.
import assert from "node:assert/strict";
import {
  defineAgent,
  type EventStore,
  KvCheckpointStore,
  KvLeaseStore,
  type LeaseStore,
  MemoryCheckpointStore,
  MemoryLeaseStore,
  Runtime,
} from "../../../runtime/mod.ts";
import { KvEventStore, MemoryEventStore, vaultKv } from "../../../vault/mod.ts";
import { all, until } from "../_helpers.ts";

// Another "process" takes the lease just before the step's record is appended.
function stealing(store: EventStore, leases: LeaseStore): EventStore {
  let stolen = false;
  const append: EventStore["append"] = async (stream, events, options) => {
    if (!stolen && events[0]?.kind === "step.completed") {
      stolen = true;
      const { version } = await leases.read("worker");
      const taken = await leases.swap("worker", version, {
        owner: "other",
        expiresAt: Date.now() + 60_000,
      });
      assert.notEqual(taken, undefined, "the other process took the lease");
    }
    return store.append(stream, events, options);
  };
  return new Proxy(store, {
    get(target, key) {
      if (key === "append") return append;
      const value = Reflect.get(target, key);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

async function race(store: EventStore, leases: LeaseStore): Promise<void> {
  const errors: unknown[] = [];
  let calls = 0;
  let finished = false;
  const kv = vaultKv(store);
  const runtime = await Runtime.create({
    vault: stealing(store, leases),
    leases,
    checkpoints: kv === undefined
      ? new MemoryCheckpointStore(leases as MemoryLeaseStore)
      : new KvCheckpointStore(kv),
    agentLeaseSecs: 30,
  });
  runtime.register(defineAgent({
    name: "worker",
    subscribe: ["task.created"],
    async handle(_event, ctx) {
      try {
        await ctx.step("charge", () => ++calls);
      } catch (error) {
        errors.push(error);
      } finally {
        finished = true;
      }
    },
  }));
  await runtime.start();
  await runtime.emit({ kind: "task.created" });
  await until(() => finished);
  await runtime.stop();
  assert.deepEqual(await all(store, ["step.completed"]), [], "the late step is not recorded");
  assert.equal(errors.length, 1);
  assert.equal((errors[0] as { code?: string }).code, "lease_lost");
}

Deno.test("a step recorded after the lease was taken over is refused", async (t) => {
  await t.step("in memory", async () => {
    const store = new MemoryEventStore();
    await race(store, new MemoryLeaseStore());
    await store.close();
  });

  await t.step("Deno KV", async () => {
    const kv = await Deno.openKv(":memory:");
    const store = await KvEventStore.open(kv);
    await race(store, new KvLeaseStore(kv));
    await store.close();
    kv.close();
  });
});
