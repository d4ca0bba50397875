// Nothing outside the vault reaches into its KV: `Runtime.create` keeps
// checkpoints in memory unless given a store, and `createRuntime()` wires the
// KV ones, so its checkpoints outlive the process.
import assert from "node:assert/strict";
import { createRuntime } from "../../mod.ts";
import { type Agent, defineAgent, Runtime } from "../../runtime/mod.ts";
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
    "Runtime.create({ vault }) writes nothing but vault keys to the vault's KV",
    async () => {
      const store = await openVault(":memory:");
      const handled: number[] = [];
      const runtime = await Runtime.create({ vault: store });
      runtime.register(worker(handled));
      await runtime.start();
      await runtime.emit({ kind: "task.created", payload: { n: 1 } });
      await until(() => handled.length === 1);
      await runtime.stop();
      const keys = await Array.fromAsync(store.kv.list({ prefix: [] }), (entry) => entry.key);
      await store.close();
      assert.ok(keys.length > 0, "the event is stored");
      assert.deepEqual(keys.filter((key) => key[0] !== "vault"), []);
      assert.deepEqual(handled, [1]);
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
