// ctx.state (issue 21 §2): an agent's JSON state, recorded as agent.state
// events committed with its checkpoint, read back at any position with
// runtime.stateAt, on the in-memory store and the Deno KV vault.
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  type Agent as AgentDefinition,
  type AgentContext,
  defineAgent,
  type EventRecord,
  type EventStore,
  type JsonValue,
  type LeaseStore,
  MemoryEventStore,
  Runtime,
} from "../../../runtime/mod.ts";
import { KvEventStore, openVault, vaultKv } from "../../../vault/mod.ts";
import {
  kvPorts,
  leasePorts,
  onEachStore,
  stepWith,
  until,
  withAppend,
  withRemoteVaults,
} from "../_helpers.ts";

interface Setup {
  store: EventStore;
  runtime(options?: { leases?: boolean }): Promise<Runtime>;
  close(): Promise<void>;
}

const memory = (): Promise<Setup> => {
  const store = new MemoryEventStore();
  return Promise.resolve({
    store,
    runtime: () => Runtime.create({ vault: store }),
    close: () => store.close(),
  });
};

const kvVault = async (): Promise<Setup> => {
  const kv = await Deno.openKv(":memory:");
  const store = await KvEventStore.open(kv, { closeKv: true });
  return {
    store,
    runtime: () => Runtime.create({ vault: store, ...kvPorts(kv) }),
    close: () => store.close(),
  };
};

// Counts the task.* events it handles in its state; task.skip leaves it alone.
function counter(seen: (JsonValue | undefined)[] = []) {
  return defineAgent({
    name: "counter",
    subscribe: ["task.*"],
    handle(event, ctx) {
      const state = ctx.state.get<{ count: number }>();
      seen.push(state);
      if (event.kind === "task.skip") return;
      ctx.state.set({ count: (state?.count ?? 0) + 1 });
    },
  });
}

async function settle(runtime: Runtime, last: EventRecord): Promise<void> {
  await until(() => runtime.agents()[0].position === last.position);
}

async function suite(t: Deno.TestContext, open: () => Promise<Setup>): Promise<void> {
  const step = stepWith(t, open);

  await step("each change is an agent.state event, read back at any position", async (s) => {
    const runtime = await s.runtime();
    const seen: (JsonValue | undefined)[] = [];
    runtime.register(counter(seen));
    const before = await runtime.emit({ kind: "other" });
    await runtime.start();
    const tasks = [];
    for (const kind of ["task.a", "task.skip", "task.b"]) {
      tasks.push(await runtime.emit({ kind }));
    }
    await settle(runtime, tasks[2]);
    await runtime.stop();
    assert.deepEqual(seen, [undefined, { count: 1 }, { count: 1 }]);
    const changes = await Array.fromAsync(s.store.read({ kinds: ["agent.state"] }));
    assert.deepEqual(changes.map((e) => [e.stream, e.parents, e.meta.causationId, e.payload]), [
      ["agent/counter", [tasks[0].id], tasks[0].id, {
        agent: "counter",
        after: tasks[0].position,
        state: { count: 1 },
      }],
      ["agent/counter", [tasks[2].id], tasks[2].id, {
        agent: "counter",
        after: tasks[2].position,
        state: { count: 2 },
      }],
    ]);
    assert.equal(await runtime.stateAt("counter", before.position), undefined);
    assert.deepEqual(await runtime.stateAt("counter", tasks[0].position), { count: 1 });
    assert.deepEqual(await runtime.stateAt("counter", tasks[1].position), { count: 1 });
    assert.deepEqual(await runtime.stateAt("counter", tasks[2].position), { count: 2 });
    assert.deepEqual(await runtime.stateAt("counter"), { count: 2 }, "the latest");
    assert.deepEqual(await runtime.stateAt("counter", "99"), { count: 2 });
    assert.equal(await runtime.stateAt("nobody"), undefined);
  });

  await step("the state is kept across stop and start", async (s) => {
    const runtime = await s.runtime();
    const seen: (JsonValue | undefined)[] = [];
    runtime.register(counter(seen));
    await runtime.start();
    await settle(runtime, await runtime.emit({ kind: "task.a" }));
    await runtime.stop();
    await runtime.start();
    await settle(runtime, await runtime.emit({ kind: "task.a" }));
    await runtime.stop();
    assert.deepEqual(seen, [undefined, { count: 1 }]);
    assert.deepEqual(await runtime.stateAt("counter"), { count: 2 });
  });

  await step(
    "a failed attempt's state is dropped; the retry starts from the last one",
    async (s) => {
      const runtime = await Runtime.create({
        vault: s.store,
        ...(vaultKv(s.store) === undefined ? {} : kvPorts(vaultKv(s.store)!)),
        retry: { attempts: 3, backoffMs: () => 1 },
      });
      const seen: (JsonValue | undefined)[] = [];
      let attempt = 0;
      runtime.register(defineAgent({
        name: "flaky",
        subscribe: ["task.*"],
        handle(_event, ctx) {
          seen.push(ctx.state.get() ?? null);
          ctx.state.set((ctx.state.get<number>() ?? 0) + 10);
          if (++attempt === 1) throw new Error("first attempt fails");
        },
      }));
      await runtime.start();
      await settle(runtime, await runtime.emit({ kind: "task.a" }));
      await runtime.stop();
      assert.deepEqual(seen, [null, null]);
      assert.equal(await runtime.stateAt("flaky"), 10);
      const changes = await Array.fromAsync(s.store.read({ kinds: ["agent.state"] }));
      assert.equal(changes.length, 1);
    },
  );

  await step("an agent is not handed its own agent.state events; others' it is", async (s) => {
    const runtime = await s.runtime();
    const seen: string[] = [];
    for (const name of ["watcher", "other"]) {
      runtime.register(defineAgent({
        name,
        subscribe: name === "watcher" ? ["agent.*", "task.*"] : ["task.*"],
        handle(event, ctx) {
          if (name === "watcher") seen.push(`${event.kind} ${event.meta.actor ?? ""}`.trim());
          // Were its own changes handed to it, this would loop.
          ctx.state.set((ctx.state.get<number>() ?? 0) + 1);
        },
      }));
    }
    await runtime.start();
    await runtime.emit({ kind: "task.a" });
    await until(() => seen.includes("agent.state agent/other"));
    await runtime.stop();
    assert.deepEqual(seen, ["task.a", "agent.state agent/other"]);
    assert.equal(await runtime.stateAt("watcher"), 2);
    assert.equal(await runtime.stateAt("other"), 1);
  });

  await step(
    "the state of an event at the causal depth limit is recorded; past it, dropped",
    async (s) => {
      const runtime = await Runtime.create({
        vault: s.store,
        ...(vaultKv(s.store) === undefined ? {} : kvPorts(vaultKv(s.store)!)),
        maxCausalDepth: 1,
      });
      const define = (name: string, subscribe: string[], handle: AgentDefinition["handle"]) =>
        runtime.register(defineAgent({ name, subscribe, handle }));
      define(
        "relay",
        ["task.a"],
        async (_event, ctx) => void await ctx.emit({ kind: "task.next" }),
      );
      // task.next is at depth 1, the limit: its agent.state goes one past it, as agent.failed may.
      define("deep", ["task.next"], (_event, ctx) => ctx.state.set("deep"));
      // deep's agent.state is past the limit: a change made handling it cannot be recorded.
      define("watcher", ["agent.state"], (_event, ctx) => ctx.state.set("watched"));
      await runtime.start();
      await runtime.emit({ kind: "task.a" });
      await until(() =>
        runtime.agents().find((a) => a.name === "watcher")?.position === "0000000000000003"
      );
      await runtime.stop();
      assert.equal(await runtime.stateAt("deep"), "deep");
      assert.equal(await runtime.stateAt("watcher"), undefined);
      const states = await Array.fromAsync(s.store.read({ kinds: ["agent.state"] }));
      assert.deepEqual(states.map((e) => [e.meta.actor, e.meta.causalDepth]), [[
        "agent/deep",
        "2",
      ]]);
    },
  );

  await step("a handler that gives up records no state", async (s) => {
    const runtime = await Runtime.create({
      vault: s.store,
      ...(vaultKv(s.store) === undefined ? {} : kvPorts(vaultKv(s.store)!)),
      retry: { attempts: 2, backoffMs: () => 1 },
    });
    runtime.register(defineAgent({
      name: "doomed",
      subscribe: ["task.*"],
      handle(_event, ctx) {
        ctx.state.set("half done");
        throw new Error("always fails");
      },
    }));
    await runtime.start();
    await settle(runtime, await runtime.emit({ kind: "task.a" }));
    await runtime.stop();
    assert.equal((await Array.fromAsync(s.store.read({ kinds: ["agent.failed"] }))).length, 1);
    assert.deepEqual(await Array.fromAsync(s.store.read({ kinds: ["agent.state"] })), []);
    assert.equal(await runtime.stateAt("doomed"), undefined);
  });

  await step("what get() returns is a copy; setting the same value records nothing", async (s) => {
    const runtime = await s.runtime();
    runtime.register(defineAgent({
      name: "copy",
      subscribe: ["task.*"],
      handle(_event, ctx) {
        const state = ctx.state.get<{ list: number[] }>() ?? { list: [] };
        state.list.push(1);
        assert.deepEqual(ctx.state.get(), state.list.length === 1 ? undefined : { list: [1] });
        if (state.list.length === 1) ctx.state.set(state);
        else ctx.state.set({ list: [1] });
      },
    }));
    await runtime.start();
    await runtime.emit({ kind: "task.a" });
    await settle(runtime, await runtime.emit({ kind: "task.a" }));
    await runtime.stop();
    const changes = await Array.fromAsync(s.store.read({ kinds: ["agent.state"] }));
    assert.equal(changes.length, 1);
  });

  await step("bad values and sets outside handling are refused in one line", async (s) => {
    const runtime = await s.runtime();
    const errors: string[] = [];
    const attempt = (ctx: AgentContext, value: unknown) => {
      try {
        ctx.state.set(value as JsonValue);
      } catch (error) {
        errors.push(`${(error as Error).name}: ${(error as Error).message}`);
      }
    };
    runtime.register(defineAgent({
      name: "bad",
      subscribe: ["task.*"],
      init(ctx) {
        attempt(ctx, 1);
      },
      handle(_event, ctx) {
        attempt(ctx, undefined);
        attempt(ctx, { f: () => 1 });
        attempt(ctx, { n: 10n });
        attempt(ctx, "x".repeat(4 * 1024 * 1024));
      },
    }));
    await runtime.start();
    await settle(runtime, await runtime.emit({ kind: "task.a" }));
    await runtime.stop();
    assert.deepEqual(errors, [
      'TypeError: Cannot set the state of agent "bad" outside the handling of an event',
      'TypeError: Invalid state of agent "bad": $ is undefined, not a JSON value',
      'TypeError: Invalid state of agent "bad": $.f is a function, not a JSON value',
      'TypeError: Invalid state of agent "bad": $.n is bigint, not a JSON value',
      'RangeError: State of agent "bad" is 4194306 bytes, over the maximum of 4193280',
    ]);
    for (const error of errors) assert.ok(!error.includes("\n"));
    assert.deepEqual(await Array.fromAsync(s.store.read({ kinds: ["agent.state"] })), []);
    assert.equal(await runtime.stateAt("bad"), undefined);
  });

  await step("stateAt refuses a bad position or agent name in one line", async (s) => {
    const runtime = await s.runtime();
    for (const position of ["abc", "-1", "1.5", "12345678901234567"]) {
      await assert.rejects(runtime.stateAt("counter", position), {
        name: "TypeError",
        message: `Invalid position ${JSON.stringify(position)}: expected up to 16 digits`,
      });
    }
    await assert.rejects(runtime.stateAt(42 as unknown as string), {
      name: "TypeError",
      message: "Invalid agent name 42: use 1 to 64 letters, digits, _ or -",
    });
  });

  await step("a large state is kept and read back", async (s) => {
    const runtime = await s.runtime();
    const big = { text: "y".repeat(100_000) };
    runtime.register(defineAgent({
      name: "big",
      subscribe: ["task.*"],
      handle(_event, ctx) {
        if (ctx.state.get() === undefined) ctx.state.set(big);
      },
    }));
    await runtime.start();
    const first = await runtime.emit({ kind: "task.a" });
    await settle(runtime, await runtime.emit({ kind: "task.a" }));
    await runtime.stop();
    assert.deepEqual(await runtime.stateAt("big", first.position), big);
    await runtime.start(); // loads it
    await runtime.stop();
    assert.deepEqual(await runtime.stateAt("big"), big);
  });
}

Deno.test("ctx.state: in memory", async (t) => {
  await suite(t, memory);
});

Deno.test("ctx.state: Deno KV vault", async (t) => {
  await suite(t, kvVault);
});

Deno.test("ctx.state: remote vault (KV Connect)", async (t) => {
  await withRemoteVaults((open) =>
    suite(t, async () => {
      const { store, close } = await open();
      return { store, runtime: () => Runtime.create({ vault: store }), close };
    })
  );
});

Deno.test("ctx.state survives a restart on a vault file", async () => {
  const dir = await Deno.makeTempDir();
  const db = join(dir, "toka.kv");
  try {
    const seen: (JsonValue | undefined)[] = [];
    for (let run = 0; run < 2; run++) {
      const store = await openVault(db);
      const runtime = await Runtime.create({ vault: store, ...kvPorts(store.kv) });
      runtime.register(counter(seen));
      await runtime.start();
      await settle(runtime, await runtime.emit({ kind: "task.a" }));
      await runtime.stop();
      await store.close();
    }
    assert.deepEqual(seen, [undefined, { count: 1 }]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// The paused-holder race made deterministic (as in emit_fence_test.ts): another
// process takes the lease after the runner's check, before the commit of the
// agent.state event. Neither it nor the checkpoint nor the index is written.
async function stolen(store: EventStore, leases: LeaseStore): Promise<void> {
  const append: EventStore["append"] = async (stream, events, options) => {
    if (events[0]?.kind === "agent.state") {
      const { version } = await leases.read("counter");
      await leases.swap("counter", version, { owner: "other", expiresAt: Date.now() + 60_000 });
    }
    return store.append(stream, events, options);
  };
  const runtime = await Runtime.create({
    vault: withAppend(store, append),
    ...leasePorts(store, leases),
    agentLeaseSecs: 30,
  });
  const seen: (JsonValue | undefined)[] = [];
  runtime.register(counter(seen));
  await runtime.start();
  const task = await runtime.emit({ kind: "task.a" });
  await until(() => seen.length === 1);
  await until(() => !runtime.agents()[0].running || runtime.agents()[0].standby);
  await runtime.stop();
  assert.deepEqual(await Array.fromAsync(store.read({ kinds: ["agent.state"] })), []);
  assert.equal(await runtime.stateAt("counter", task.position), undefined);
  assert.notEqual(runtime.agents()[0].position, task.position, "the checkpoint did not move");
}

Deno.test("a paused lease holder cannot write its state", async (t) => {
  await onEachStore(t, stolen);
});
