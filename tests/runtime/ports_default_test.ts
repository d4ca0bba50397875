// A durable vault brings durable agent state: `Runtime.create({ vault })` takes
// the checkpoint and lease stores the vault offers (issue 18 #13), and so does
// `createRuntime()`, so checkpoints outlive the process.
import assert from "node:assert/strict";
import { createRuntime } from "../../mod.ts";
import {
  type Agent,
  defineAgent,
  MemoryCheckpointStore,
  MemoryEventStore,
  MemoryLeaseStore,
  Runtime,
} from "../../runtime/mod.ts";
import { openVault } from "../../vault/mod.ts";
import { until } from "./_helpers.ts";

function worker(handled: number[]): Agent {
  return defineAgent({
    name: "worker",
    subscribe: ["task.created"],
    handle(event) {
      handled.push((event.payload as { n: number }).n);
    },
  });
}

Deno.test("Runtime.create and createRuntime keep checkpoints where they should", async (t) => {
  await t.step(
    "Runtime.create({ vault }) on a KV file keeps checkpoints there: a restart handles nothing twice",
    async () => {
      const dir = await Deno.makeTempDir();
      try {
        const db = `${dir}/toka.kv`;
        const handled: number[] = [];
        for (const n of [1, 2, 3]) {
          const store = await openVault(db);
          const runtime = await Runtime.create({ vault: store });
          runtime.register(worker(handled));
          await runtime.start();
          await runtime.emit({ kind: "task.created", payload: { n } });
          await until(() => handled.includes(n));
          await runtime.stop();
          await store.close();
        }
        assert.deepEqual(handled, [1, 2, 3], "each restart resumed after its checkpoint");
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    },
  );

  await t.step(
    "Runtime.create({ vault }) on a shared KV takes a lease: two runtimes never run one agent at once",
    async () => {
      const store = await openVault(":memory:");
      const a = await Runtime.create({ vault: store });
      const b = await Runtime.create({ vault: store });
      a.register(worker([]));
      b.register(worker([]));
      await a.start();
      await b.start();
      assert.deepEqual(
        [a.agents()[0].running, b.agents()[0].running, b.agents()[0].standby],
        [true, false, true],
      );
      await b.stop();
      await a.stop();
      await store.close();
    },
  );

  await t.step(
    "given checkpoints without leases (or the reverse), a vault's own are refused",
    async () => {
      const store = await openVault(":memory:");
      try {
        await assert.rejects(
          Runtime.create({ vault: store, leases: new MemoryLeaseStore() }),
          {
            name: "TypeError",
            message:
              "Invalid config: pass checkpoints and leases together, or neither to keep agents' state in the vault",
          },
        );
        await assert.rejects(
          Runtime.create({ vault: store, checkpoints: new MemoryCheckpointStore() }),
          TypeError,
        );
        assert.ok(
          await Runtime.create({ vault: new MemoryEventStore(), leases: new MemoryLeaseStore() }),
        );
      } finally {
        await store.close();
      }
    },
  );

  await t.step(
    "createRuntime persists checkpoints in the vault's KV across a restart",
    async () => {
      const dir = await Deno.makeTempDir();
      try {
        const db = `${dir}/toka.kv`;
        const handled: number[] = [];
        {
          await using first = await createRuntime({ db });
          first.register(worker(handled));
          await first.start();
          await first.emit({ kind: "task.created", payload: { n: 1 } });
          await first.emit({ kind: "task.created", payload: { n: 2 } });
        }
        assert.deepEqual(handled, [1, 2]);
        {
          await using next = await createRuntime({ db });
          next.register(worker(handled));
          await next.start();
          await next.emit({ kind: "task.created", payload: { n: 3 } });
          await until(() => handled.length === 3);
        }
        assert.deepEqual(handled, [1, 2, 3], "resumed after its checkpoint: nothing handled twice");
        const vault = await openVault(db);
        const stored = await vault.kv.get(["runtime", "checkpoint", "worker"]);
        await vault.close();
        assert.notEqual(stored.value, null);
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    },
  );
});
