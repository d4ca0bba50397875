import assert from "node:assert/strict";
import { defineAgent, KvLeaseStore, Runtime } from "../../../runtime/mod.ts";
import { MemoryEventStore, openVault } from "../../../vault/mod.ts";
import { listAgents, readAgentRows } from "../../../cli/agent.ts";
import type { CommandContext } from "../../../cli/_context.ts";
import { defaultSettings } from "../../../cli/_config.ts";
import type { EventStore } from "../../../runtime/mod.ts";
import { kvPorts, until } from "../_helpers.ts";

function context(store: EventStore, json: boolean, out: string[]): CommandContext {
  return {
    io: { stdout: (t) => void out.push(t), stderr: () => {}, env: () => undefined },
    json,
    dbLocation: ":memory:",
    settings: { ...defaultSettings(), db: ":memory:" },
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
  const runtime = await Runtime.create({
    vault: store,
    ...kvPorts(store.kv),
    clock: () => 0,
    retry: { attempts: 1 },
  });
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

  await t.step("lag counts only pending events the agent subscribes to", async () => {
    const rows = await readAgentRows(store);
    // Tasks at 1 and 2, two agent.failed at 3 and 4, other.thing at 5 (after
    // the stop). At the stop, both checkpoints moved to the head (4): nothing
    // after it was for them.
    assert.equal((await store.head())?.position, "0000000000000005");
    assert.deepEqual(rows, [
      {
        name: "fails",
        position: "0000000000000004",
        lag: 0,
        subscribe: ["task.*"],
        failures: 2,
        updatedAt: 0,
        leasedUntil: null,
      },
      {
        name: "idle",
        position: "0000000000000004",
        lag: 0,
        subscribe: ["never.*"],
        failures: 0,
        updatedAt: 0,
        leasedUntil: null,
      },
    ]);
  });

  await t.step("prints a table, or JSON lines", async () => {
    const out: string[] = [];
    assert.equal(await listAgents(context(store, false, out)), 0);
    assert.match(
      out.join(""),
      /^AGENT\s+POSITION\s+LAG\s+FAILURES\s+LEASE\s+UPDATED\nfails\s+0000000000000004\s+0\s+2\s+none\s+1970-.*\nidle\s+0000000000000004\s+0\s+0\s+none\s+1970-/,
    );
    const json: string[] = [];
    await listAgents(context(store, true, json));
    const lines = json.join("").trimEnd().split("\n").map((line) => JSON.parse(line));
    assert.deepEqual(lines.map((row) => [row.name, row.lag]), [["fails", 0], ["idle", 0]]);
  });

  await t.step(
    "a lease left by a process is shown as held until it ends, not running",
    async () => {
      // Issue 19 item 10: a process that died showed RUNNING yes until its lease ended.
      const leases = new KvLeaseStore(store.kv);
      const expiresAt = Date.now() + 60_000;
      const { version } = await leases.read("idle");
      assert.ok(await leases.swap("idle", version, { owner: "gone", expiresAt }) !== undefined);
      const out: string[] = [];
      assert.equal(await listAgents(context(store, false, out)), 0);
      const text = out.join("");
      assert.match(
        text,
        new RegExp(`\\nidle\\s.*  lease held until ${new Date(expiresAt).toISOString()}  1970-`),
      );
      assert.doesNotMatch(text, /RUNNING|\byes\b/);
      assert.match(text, /\nfails\s.* {2}none {2}/);
      const { version: held } = await leases.read("idle");
      await leases.swap("idle", held, null);
    },
  );

  await t.step("a stopped agent lags by the matching events emitted since", async () => {
    for (let i = 0; i < 3; i++) await runtime.emit({ kind: "task.created" });
    for (let i = 0; i < 4; i++) await runtime.emit({ kind: "other.thing" });
    await runtime.emit({ kind: "never.seen" });
    const lags = (await readAgentRows(store)).map((row) => [row.name, row.lag]);
    assert.deepEqual(lags, [["fails", 3], ["idle", 1]]);
  });

  await t.step("a checkpoint without patterns shows an upper bound", async () => {
    await store.kv.set(["runtime", "checkpoint", "old"], {
      position: "0000000000000004",
      failures: 1,
      updatedAt: 0,
      leasedUntil: null,
    });
    const row = (await readAgentRows(store)).find((r) => r.name === "old");
    assert.deepEqual(row, {
      name: "old",
      position: "0000000000000004",
      lag: 9,
      subscribe: null,
      failures: 1,
      updatedAt: 0,
      leasedUntil: null,
    });
    const out: string[] = [];
    await listAgents(context(store, false, out));
    assert.match(out.join(""), /\nold\s+0000000000000004\s+≤9\s+1\s+none\s/);
    await store.kv.delete(["runtime", "checkpoint", "old"]);
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

Deno.test("toka agent list after a pipeline of agents", async (t) => {
  const store = await openVault(":memory:");
  const runtime = await Runtime.create({ vault: store, ...kvPorts(store.kv), clock: () => 0 });
  let done = 0;
  runtime.register(defineAgent({
    name: "planner",
    subscribe: ["task.created"],
    handle: async (event, ctx) => void await ctx.emit({ kind: "task.planned", payload: event.id }),
  }));
  runtime.register(defineAgent({
    name: "worker",
    subscribe: ["task.planned"],
    handle: async (_event, ctx) => {
      await ctx.emit({ kind: "task.done" });
      done++;
    },
  }));
  await runtime.start();
  for (let i = 0; i < 6; i++) {
    await runtime.emit({ kind: "task.created", stream: "producer" });
  }
  await until(() => done === 6);
  await runtime.stop();

  await t.step("agents that handled everything have no lag", async () => {
    const rows = await readAgentRows(store);
    assert.equal((await store.head())?.position, "0000000000000018");
    assert.deepEqual(rows.map((row) => [row.name, row.lag]), [["planner", 0], ["worker", 0]]);
    // Both finished everything for them, so both checkpoints are at the head.
    assert.deepEqual(rows.map((row) => row.position), ["0000000000000018", "0000000000000018"]);
  });

  await t.step("a running agent shows as running, until it stops", async () => {
    const next = await Runtime.create({ vault: store, ...kvPorts(store.kv), clock: () => 0 });
    next.register(defineAgent({ name: "planner", subscribe: ["task.created"], handle() {} }));
    await next.start();
    const running = (await readAgentRows(store, 5_000)).map((r) => [r.name, r.leasedUntil]);
    assert.deepEqual(running, [["planner", 10_000], ["worker", null]]);
    await next.stop();
    const stopped = (await readAgentRows(store, 5_000)).map((r) => r.leasedUntil);
    assert.deepEqual(stopped, [null, null]);
  });

  await t.step("changed patterns are recorded at the next start", async () => {
    const next = await Runtime.create({ vault: store, ...kvPorts(store.kv), clock: () => 0 });
    next.register(defineAgent({ name: "worker", subscribe: ["task.*"], handle() {} }));
    await next.start();
    await next.stop();
    const worker = (await readAgentRows(store)).find((row) => row.name === "worker");
    assert.deepEqual(worker?.subscribe, ["task.*"]);
  });
  await store.close();
});
