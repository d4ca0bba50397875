import assert from "node:assert/strict";
import { defineAgent, Runtime } from "../../runtime/mod.ts";
import { MemoryEventStore, openVault } from "../../vault/mod.ts";
import { listAgents, readAgentRows } from "../../cli/agent.ts";
import type { CommandContext } from "../../cli/_context.ts";
import type { EventStore } from "../../runtime/mod.ts";
import { until } from "./_helpers.ts";

function context(store: EventStore, json: boolean, out: string[]): CommandContext {
  return {
    io: { stdout: (t) => void out.push(t), stderr: () => {}, env: () => undefined },
    json,
    dbLocation: ":memory:",
    openStore: () => Promise.resolve(unclosable(store)),
  };
}

// The command closes the store it opens; keep ours open across calls.
function unclosable(store: EventStore): EventStore {
  return new Proxy(store, {
    get: (target, key) => {
      if (key === "close") return () => Promise.resolve();
      const value = Reflect.get(target, key, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

Deno.test("toka agent list", async (t) => {
  const store = await openVault(":memory:");
  const runtime = await Runtime.create({ vault: store, clock: () => 0, retry: { attempts: 1 } });
  runtime.register(defineAgent({
    name: "fails",
    subscribe: ["task.*"],
    handle: () => Promise.reject(new Error("nope")),
  }));
  runtime.register(defineAgent({ name: "idle", subscribe: ["never.*"], handle() {} }));
  await runtime.start();
  await runtime.emit({ kind: "task.created" });
  await runtime.emit({ kind: "task.created" });
  await until(() => runtime.agents()[0].handled === 2);
  await runtime.stop();
  await runtime.emit({ kind: "other.thing" });

  await t.step("reads positions, lag behind the head and failures", async () => {
    const rows = await readAgentRows(store);
    // Tasks at 1 and 2, two agent.failed at 3 and 4, other.thing at 5.
    assert.equal(await store.head(), "0000000000000005");
    assert.deepEqual(rows, [
      { name: "fails", position: "0000000000000002", lag: 3, failures: 2, updatedAt: 0 },
    ]);
  });

  await t.step("prints a table, or JSON lines", async () => {
    const out: string[] = [];
    assert.equal(await listAgents(context(store, false, out)), 0);
    assert.match(
      out.join(""),
      /^AGENT\s+POSITION\s+LAG\s+FAILURES\s+UPDATED\nfails\s+0000000000000002\s+3\s+2\s+1970-/,
    );
    const json: string[] = [];
    await listAgents(context(store, true, json));
    assert.equal(JSON.parse(json.join("")).name, "fails");
  });

  await t.step("a store without KV is refused, an empty vault says so", async () => {
    await assert.rejects(readAgentRows(new MemoryEventStore()), /Deno KV vault/);
    const empty = await openVault(":memory:");
    const out: string[] = [];
    await listAgents(context(empty, false, out));
    assert.equal(out.join(""), "No agent has a checkpoint in this vault yet\n");
    await empty.close();
  });
  await store.close();
});
