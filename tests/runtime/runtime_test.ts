import assert from "node:assert/strict";
import {
  type AgentContext,
  AllowAllAuthority,
  defineAgent,
  type EventRecord,
  type EventStore,
  type IssueRequest,
  MemoryCheckpointStore,
  MemoryLeaseStore,
  NoopToolRegistry,
  Runtime,
  type ToolCallOptions,
  type ToolInfo,
  type ToolRegistry,
} from "../../runtime/mod.ts";
import { MemoryEventStore } from "../../vault/mod.ts";
import { all, gate, kvPorts, until } from "./_helpers.ts";

const fast = { attempts: 3, backoffMs: () => 1 };

Deno.test("Runtime lifecycle and configuration", async (t) => {
  await t.step("works with no config, and start/stop cycle many times", async () => {
    const runtime = await Runtime.create();
    assert.equal(runtime.isRunning, false);
    assert.ok(runtime.tools instanceof NoopToolRegistry);
    for (let i = 0; i < 25; i++) {
      await runtime.start();
      await runtime.start();
      assert.equal(runtime.isRunning, true);
      await runtime.stop();
      await runtime.stop();
      assert.equal(runtime.isRunning, false);
    }
    await Promise.all([runtime.start(), runtime.stop(), runtime.start()]);
    assert.equal(runtime.isRunning, true);
    await runtime.stop();
  });

  await t.step("rejects bad config", async () => {
    await assert.rejects(Runtime.create({ maxAgents: 0 }), /Invalid maxAgents 0/);
    await assert.rejects(Runtime.create({ eventBufferSize: 1.5 }), RangeError);
    await assert.rejects(Runtime.create({ vault: {} as never }), /Invalid vault/);
    await assert.rejects(Runtime.create({ clock: 5 as never }), TypeError);
    await assert.rejects(Runtime.create({ retry: { attempts: 0 } }), RangeError);
    for (const agentLeaseSecs of [0, 0.01, 3601, NaN, "10" as never]) {
      await assert.rejects(Runtime.create({ agentLeaseSecs }), {
        name: "RangeError",
        message: `Invalid agentLeaseSecs ${
          JSON.stringify(agentLeaseSecs)
        }: expected a number of seconds from 0.1 to 3600`,
      });
    }
    for (const stopTimeoutMs of [-1, 1.5, "10" as never]) {
      await assert.rejects(Runtime.create({ stopTimeoutMs }), {
        name: "RangeError",
        message: `Invalid stopTimeoutMs ${
          JSON.stringify(stopTimeoutMs)
        }: expected a whole number ≥ 0`,
      });
    }
    await assert.rejects(Runtime.create(null as never), TypeError);
    await assert.rejects(Runtime.create({ hooks: 5 as never }), {
      name: "TypeError",
      message: "Invalid hooks: expected an object of functions",
    });
    await assert.rejects(Runtime.create({ hooks: { beforeStop: "x" as never } }), {
      name: "TypeError",
      message: "Invalid hooks.beforeStop: expected a function",
    });
  });

  await t.step("runs its hooks at the lifecycle's edges, once per transition", async () => {
    const calls: string[] = [];
    const runtime = await Runtime.create({
      hooks: {
        afterStart: () => void calls.push(`afterStart running=${runtime.isRunning}`),
        beforeStop: () => {
          calls.push(`beforeStop running=${runtime.isRunning}`);
          return Promise.resolve();
        },
        onClose: () => void calls.push(`onClose running=${runtime.isRunning}`),
      },
    });
    runtime.register(defineAgent({ name: "a", subscribe: ["x"], handle() {} }));
    await runtime.start();
    await runtime.start();
    await runtime.stop();
    await runtime.stop();
    assert.deepEqual(calls, ["afterStart running=true", "beforeStop running=true"]);
    await runtime.start();
    await runtime.close();
    assert.deepEqual(calls.slice(2), [
      "afterStart running=true",
      "beforeStop running=true",
      "onClose running=false",
    ]);
    {
      await using _disposed = runtime;
    }
    assert.equal(calls.at(-1), "onClose running=false");
    assert.equal(calls.length, 6);
  });

  await t.step("enforces maxAgents and unique names", async () => {
    const runtime = await Runtime.create({ maxAgents: 2 });
    const agent = (name: string) => defineAgent({ name, subscribe: ["*"], handle() {} });
    runtime.register(agent("a"));
    runtime.register(agent("b"));
    assert.throws(
      () => runtime.register(agent("c")),
      {
        name: "RangeError",
        message: 'Cannot register agent "c": the runtime already has 2 agents (maxAgents)',
      },
    );
    assert.throws(() => runtime.register(agent("a")), /Agent "a" is already registered/);
    assert.equal(await runtime.unregister("a"), true);
    assert.equal(await runtime.unregister("a"), false);
    runtime.register(agent("c"));
    assert.deepEqual(runtime.agents().map((a) => a.name), ["b", "c"]);
  });

  await t.step("rejects bad agent definitions", () => {
    const bad: unknown[] = [
      null,
      { name: "a b", subscribe: ["*"], handle() {} },
      { name: "a", subscribe: [], handle() {} },
      { name: "a", subscribe: ["x..y"], handle() {} },
      { name: "a", subscribe: ["*"] },
      { name: "a", subscribe: ["*"], handle() {}, init: 1 },
      { name: "a", subscribe: ["*"], handle() {}, permissions: [""] },
    ];
    for (const definition of bad) {
      assert.throws(() => defineAgent(definition as never), TypeError);
    }
  });

  await t.step("storage: unknown schemes and a vault without KV give undefined", async () => {
    const runtime = await Runtime.create({ vault: new MemoryEventStore() });
    assert.equal(runtime.storage("s3"), undefined);
    assert.equal(runtime.storage("vault"), undefined);
    assert.equal(runtime.storage("local")?.scheme, "local");
  });

  await t.step(
    "await using stops the runtime at the end of the block, after draining",
    async () => {
      const handled: string[] = [];
      let outside: Runtime;
      {
        await using runtime = await Runtime.create();
        outside = runtime;
        runtime.register(defineAgent({
          name: "worker",
          subscribe: ["task.*"],
          async handle(event) {
            await new Promise((resolve) => setTimeout(resolve, 20));
            handled.push(event.kind);
          },
        }));
        await runtime.start();
        await runtime.emit({ kind: "task.created" });
        assert.equal(runtime.isRunning, true);
      }
      assert.equal(outside.isRunning, false);
      assert.deepEqual(handled, ["task.created"]);
    },
  );

  await t.step("rotateSecrets needs an auth that can rotate", async () => {
    const runtime = await Runtime.create();
    await assert.rejects(runtime.rotateSecrets(), {
      name: "TypeError",
      message: "Cannot rotate secrets: no auth is attached to the runtime",
    });
    const plain = await Runtime.create({ auth: new AllowAllAuthority() });
    await assert.rejects(plain.rotateSecrets(), /has no rotate\(\)/);
  });
});

Deno.test("Agents without a vault", async (t) => {
  await t.step("handle one event at a time, in order, and finish the mailbox on stop", async () => {
    const runtime = await Runtime.create();
    const seen: unknown[] = [];
    let inFlight = 0;
    let maxInFlight = 0;
    runtime.register(defineAgent({
      name: "worker",
      subscribe: ["task.*"],
      async handle(event) {
        maxInFlight = Math.max(maxInFlight, ++inFlight);
        await new Promise((resolve) => setTimeout(resolve, 1));
        seen.push(event.payload);
        inFlight--;
      },
    }));
    await runtime.start();
    for (let i = 1; i <= 5; i++) await runtime.emit({ kind: "task.created", payload: i });
    await runtime.emit({ kind: "other" });
    await runtime.stop();
    assert.deepEqual(seen, [1, 2, 3, 4, 5]);
    assert.equal(maxInFlight, 1);
    const [status] = runtime.agents();
    assert.equal(status.handled, 5);
    assert.equal(status.running, false);
    // One delivery path: as with a vault, stop() moves the checkpoint past the
    // "other" event it does not subscribe to (position 6), after task 5.
    assert.equal(status.position, "0000000000000006");
  });

  await t.step("consume the in-memory log: a restart resumes after the checkpoint", async () => {
    const runtime = await Runtime.create();
    const seen: unknown[] = [];
    runtime.register(defineAgent({
      name: "worker",
      subscribe: ["task.*"],
      handle: (event) => void seen.push(event.payload),
    }));
    // Appended before the first start: in the log, so handled, as with a vault.
    await runtime.emit({ kind: "task.created", payload: 1 });
    await runtime.start();
    await runtime.emit({ kind: "task.created", payload: 2 });
    await runtime.stop();
    // Appended while stopped: handled at the next start, nothing twice.
    await runtime.emit({ kind: "task.created", payload: 3 });
    await runtime.start();
    await runtime.stop();
    assert.deepEqual(seen, [1, 2, 3]);
    assert.equal(runtime.agents()[0].position, "0000000000000003");
  });
});

/**
 * Five tasks, the third held until `stop()` is called, then two more after a
 * restart: what was handled when stop returned, at the end, and the task.done
 * events in the log.
 */
async function stopMidHandler(
  config: { stopTimeoutMs?: number } = {},
): Promise<{ atStop: number[]; handled: number[]; done: number[] }> {
  const store = new MemoryEventStore();
  const runtime = await Runtime.create({ vault: store, ...config });
  const handled: number[] = [];
  const slow = gate();
  let inFlight = 0;
  runtime.register(defineAgent({
    name: "worker",
    subscribe: ["task.created"],
    async handle(event, ctx) {
      const n = (event.payload as { n: number }).n;
      inFlight = n;
      if (n === 3) await slow.promise;
      handled.push(n);
      await ctx.emit({ kind: "task.done", payload: { n } });
    },
  }));
  await runtime.start();
  for (let n = 1; n <= 5; n++) await runtime.emit({ kind: "task.created", payload: { n } });
  await until(() => inFlight === 3);
  const stopping = runtime.stop();
  slow.open();
  await stopping;
  const atStop = [...handled];
  for (let n = 6; n <= 7; n++) await runtime.emit({ kind: "task.created", payload: { n } });
  await runtime.start();
  await until(() => handled.length === 7);
  await runtime.stop();
  const done = (await all(store, ["task.done"])).map((e) => (e.payload as { n: number }).n);
  await store.close();
  return { atStop, handled, done };
}

Deno.test("Agents with a vault", async (t) => {
  await t.step("stop drains: events appended before it are handled, then resume", async () => {
    const { atStop, handled, done } = await stopMidHandler();
    assert.deepEqual(atStop, [1, 2, 3, 4, 5], "every event appended before stop is handled");
    assert.deepEqual(handled, [1, 2, 3, 4, 5, 6, 7]);
    assert.deepEqual(done, [1, 2, 3, 4, 5, 6, 7]);
  });

  await t.step("past stopTimeoutMs the handler's signal aborts; the event comes back", async () => {
    const store = new MemoryEventStore();
    const runtime = await Runtime.create({ vault: store, stopTimeoutMs: 50 });
    const seen: number[] = [];
    const abortedOn: number[] = [];
    runtime.register(defineAgent({
      name: "stuck",
      subscribe: ["task.created"],
      async handle(event, ctx) {
        const n = (event.payload as { n: number }).n;
        seen.push(n);
        if (n !== 2 || seen.filter((x) => x === 2).length > 1) return;
        // Never finishes on its own the first time: only the abort ends it.
        await new Promise((_, reject) =>
          ctx.signal.addEventListener("abort", () => {
            abortedOn.push(n);
            reject(ctx.signal.reason);
          })
        );
      },
    }));
    await runtime.start();
    for (let n = 1; n <= 3; n++) await runtime.emit({ kind: "task.created", payload: { n } });
    await until(() => seen.includes(2));
    await runtime.stop();
    assert.deepEqual(abortedOn, [2]);
    assert.deepEqual(seen, [1, 2], "nothing after the aborted event is handled");
    assert.equal(runtime.agents()[0].position, (await all(store))[0].position);
    await runtime.start();
    await until(() => seen.length === 4);
    await runtime.stop();
    assert.deepEqual(seen, [1, 2, 2, 3]);
    assert.equal(runtime.agents()[0].failures, 0);
    await store.close();
  });

  await t.step("with stopTimeoutMs 0 the in-flight event finishes, the rest waits", async () => {
    const { atStop, handled, done } = await stopMidHandler({ stopTimeoutMs: 0 });
    assert.deepEqual(atStop, [1, 2, 3], "the in-flight event is finished, the rest waits");
    assert.deepEqual(handled, [1, 2, 3, 4, 5, 6, 7]);
    assert.deepEqual(done, [1, 2, 3, 4, 5, 6, 7]);
  });

  await t.step("a new runtime on the same KV resumes from the stored checkpoint", async () => {
    const kv = await Deno.openKv(":memory:");
    const store = new MemoryEventStore({ clock: () => 1000 });
    const handled: string[] = [];
    const agent = defineAgent({
      name: "worker",
      subscribe: ["task.*"],
      handle: (event) => void handled.push(event.id),
    });
    const first = await Runtime.create({ vault: store, ...kvPorts(kv), clock: () => 42 });
    first.register(agent);
    await first.start();
    await first.emit({ kind: "task.created" });
    await first.emit({ kind: "task.created" });
    await until(() => handled.length === 2);
    await first.stop();
    const stored = await kv.get(["runtime", "checkpoint", "worker"]);
    assert.deepEqual(stored.value, {
      position: "0000000000000002",
      failures: 0,
      updatedAt: 42,
      subscribe: ["task.*"],
    });

    await first.emit({ kind: "task.created" });
    const second = await Runtime.create({ vault: store, ...kvPorts(kv) });
    second.register(agent);
    await second.start();
    await until(() => handled.length === 3);
    await second.stop();
    assert.equal(new Set(handled).size, 3);
    assert.equal(second.agents()[0].position, "0000000000000003");
    kv.close();
    await store.close();
  });

  await t.step(
    "retry a failing handler, then record agent.failed; others keep running",
    async () => {
      const store = new MemoryEventStore();
      const delays: number[] = [];
      const runtime = await Runtime.create({
        vault: store,
        retry: { attempts: 3, backoffMs: (n) => (delays.push(n), 1) },
      });
      let flakyCalls = 0;
      const healthy: unknown[] = [];
      runtime.register(defineAgent({
        name: "flaky",
        subscribe: ["task.*"],
        handle() {
          if (++flakyCalls <= 2) throw new Error("temporary");
        },
      }));
      runtime.register(defineAgent({
        name: "broken",
        subscribe: ["task.*"],
        handle: () => Promise.reject(new Error('always "broken"')),
      }));
      runtime.register(defineAgent({
        name: "healthy",
        subscribe: ["task.*"],
        handle: (e) => void healthy.push(e.payload),
      }));
      await runtime.start();
      const task = await runtime.emit({ kind: "task.created", payload: 1 });
      await runtime.emit({ kind: "task.created", payload: 2 });
      await until(() => runtime.agents().every((a) => a.handled === 2));
      await runtime.stop();
      assert.equal(flakyCalls, 4, "two failures, then success for both events");
      assert.deepEqual(healthy, [1, 2]);
      const failed = await all(store, ["agent.failed"]);
      assert.equal(failed.length, 2);
      assert.deepEqual(failed[0].payload, {
        agent: "broken",
        eventId: task.id,
        kind: "task.created",
        attempts: 3,
        error: 'always "broken"',
      });
      assert.deepEqual(failed[0].parents, [task.id]);
      assert.equal(failed[0].stream, "agent/broken");
      const byName = Object.fromEntries(runtime.agents().map((a) => [a.name, a.failures]));
      assert.deepEqual(byName, { flaky: 0, broken: 2, healthy: 0 });
      assert.deepEqual([...new Set(delays)].sort(), [1, 2], "backoff gets the attempt number");
      await store.close();
    },
  );

  await t.step(
    "an event interrupted by stop is delivered again, and its emits are not repeated",
    async () => {
      const store = new MemoryEventStore();
      // Stop aborts the handler at once rather than after the default 10 s drain.
      const runtime = await Runtime.create({ vault: store, retry: fast, stopTimeoutMs: 0 });
      let calls = 0;
      runtime.register(defineAgent({
        name: "worker",
        subscribe: ["task.*"],
        async handle(_event, ctx) {
          calls++;
          await ctx.emit({ kind: "work.started" });
          if (calls === 1) {
            await new Promise((_, reject) =>
              ctx.signal.addEventListener("abort", () => reject(new Error("aborted")))
            );
          }
          await ctx.emit({ kind: "work.finished" });
        },
      }));
      await runtime.start();
      await runtime.emit({ kind: "task.created" });
      await until(() => calls === 1);
      await runtime.stop();
      assert.equal(runtime.agents()[0].position, null);
      await runtime.start();
      await until(() => runtime.agents()[0].handled === 1);
      await runtime.stop();
      assert.equal(calls, 2);
      const kinds = (await all(store)).map((e) => e.kind);
      assert.deepEqual(kinds, ["task.created", "work.started", "work.finished"]);
      await store.close();
    },
  );

  await t.step("ctx: token, tools, storage, logger, signal, causality", async () => {
    const store = new MemoryEventStore();
    const issued: IssueRequest[] = [];
    const calls: [string, unknown, ToolCallOptions | undefined][] = [];
    const auth = new (class extends AllowAllAuthority {
      override issue(request: IssueRequest): Promise<string> {
        issued.push(request);
        return Promise.resolve(`token-${issued.length}`);
      }
      rotate(): Promise<{ kid: string }> {
        return Promise.resolve({ kid: "k2" });
      }
    })();
    const tools: ToolRegistry = {
      get: () => undefined,
      list: (): ToolInfo[] => [],
      call(name, input, options) {
        calls.push([name, input, options]);
        return Promise.resolve({ ok: true });
      },
    };
    const runtime = await Runtime.create({ vault: store, auth, tools });
    let context: AgentContext | undefined;
    let result: unknown;
    runtime.register(defineAgent({
      name: "caller",
      subscribe: ["task.*"],
      permissions: ["tool:echo:invoke"],
      async handle(_event, ctx) {
        context = ctx;
        result = await ctx.tools.call("echo", { text: "hi" });
        await ctx.emit({ kind: "work.done", meta: { actor: "spoofed" } });
      },
    }));
    await runtime.start();
    const root = await runtime.emit({ kind: "task.created" });
    await until(() => runtime.agents()[0].handled === 1);
    assert.deepEqual(issued, [{ sub: "agent/caller", permissions: ["tool:echo:invoke"] }]);
    assert.deepEqual(result, { ok: true });
    assert.equal(calls[0][0], "echo");
    assert.equal(calls[0][2]?.token, "token-1");
    assert.equal(context?.token, "token-1");
    assert.deepEqual(context?.logger.category, ["toka", "agent", "caller"]);
    assert.equal(context?.storage("local")?.scheme, "local"); // its own namespace of it
    assert.equal(context?.signal.aborted, false);
    const [done] = await all(store, ["work.done"]);
    assert.deepEqual(done.parents, [root.id]);
    assert.equal(done.meta.correlationId, root.id);
    assert.equal(done.meta.actor, "agent/caller");
    assert.equal(done.stream, "agent/caller");
    assert.deepEqual(await runtime.rotateSecrets(), { kid: "k2" });
    assert.equal(context?.token, "token-2", "tokens are renewed after a rotation");
    await runtime.stop();
    assert.equal(context?.signal.aborted, true);
    await store.close();
  });

  await t.step("the checkpoint moves past events the agent does not subscribe to", async () => {
    const kv = await Deno.openKv(":memory:");
    const memory = new MemoryEventStore();
    const reads: (string | undefined)[] = [];
    const store = memory;
    const read = memory.read.bind(memory);
    store.read = (options) => {
      reads.push(options?.from);
      return read(options);
    };
    const handled: string[] = [];
    const agent = defineAgent({
      name: "rare",
      subscribe: ["rare.*"],
      handle: (event) => void handled.push(event.kind),
    });
    const runtime = await Runtime.create({ vault: store, ...kvPorts(kv) });
    runtime.register(agent);
    await runtime.start();
    await runtime.emit({ kind: "rare.event" });
    for (let i = 0; i < 50; i++) await runtime.emit({ kind: "common.event" });
    await until(() => handled.length === 1);
    // While it runs, within about a second.
    await until(() => runtime.agents()[0].position === "0000000000000051", 3000);
    for (let i = 0; i < 5; i++) await runtime.emit({ kind: "common.event" });
    // And when it stops.
    await runtime.stop();
    const stored = await kv.get<{ position: string }>(["runtime", "checkpoint", "rare"]);
    assert.equal(stored.value?.position, "0000000000000056");

    // A restart reads nothing before the head to find its earlier emits.
    reads.length = 0;
    const next = await Runtime.create({ vault: store, ...kvPorts(kv) });
    next.register(agent);
    await next.start();
    await next.stop();
    assert.deepEqual(reads, ["0000000000000057"]);
    assert.deepEqual(handled, ["rare.event"]);
    kv.close();
    await memory.close();
  });

  await t.step("an event the agent has not finished holds its checkpoint back", async () => {
    const store = new MemoryEventStore();
    let calls = 0;
    const agent = defineAgent({
      name: "flaky",
      subscribe: ["job.*"],
      handle: () => {
        if (++calls === 1) throw new Error("not yet");
      },
    });
    const runtime = await Runtime.create({
      vault: store,
      retry: { attempts: 3, backoffMs: () => 60_000 },
      // Stop ends the backoff at once rather than after the default 10 s drain.
      stopTimeoutMs: 0,
    });
    runtime.register(agent);
    await runtime.start();
    await runtime.emit({ kind: "job.run" });
    for (let i = 0; i < 3; i++) await runtime.emit({ kind: "other.thing" });
    await until(() => calls === 1);
    // Stopping cuts the backoff short: job.run is unfinished.
    await runtime.stop();
    assert.equal(runtime.agents()[0].position, null);
    await runtime.start();
    await until(() => calls === 2);
    await runtime.stop();
    assert.equal(runtime.agents()[0].position, "0000000000000004");
    await store.close();
  });

  await t.step("init, stop hooks, and an agent registered while running", async () => {
    const store = new MemoryEventStore();
    const runtime = await Runtime.create({ vault: store });
    const log: string[] = [];
    await runtime.start();
    runtime.register(defineAgent({
      name: "late",
      subscribe: ["task.*"],
      init: () => void log.push("init"),
      handle: (e: EventRecord) => void log.push(e.kind),
      stop: () => void log.push("stop"),
    }));
    runtime.register(defineAgent({
      name: "cannot-init",
      subscribe: ["task.*"],
      init: () => Promise.reject(new Error("no config")),
      handle: () => void log.push("never"),
    }));
    await runtime.emit({ kind: "task.created" });
    await until(() => log.length === 2);
    await runtime.stop();
    assert.deepEqual(log, ["init", "task.created", "stop"]);
    const failed = await all(store, ["agent.failed"]);
    assert.deepEqual(failed.map((e) => e.payload), [{
      agent: "cannot-init",
      phase: "init",
      error: "no config",
    }]);
    await store.close();
  });

  await t.step("runtime.subscribe sees every event, live and replayed", async () => {
    const store = new MemoryEventStore();
    const runtime = await Runtime.create({ vault: store, eventBufferSize: 2 });
    await runtime.emit({ kind: "task.created", payload: 0 });
    const seen: unknown[] = [];
    const sub = runtime.subscribe("task.*", (e) => void seen.push(e.payload), {
      after: "0000000000000000",
    });
    for (let i = 1; i <= 10; i++) void runtime.emit({ kind: "task.created", payload: i });
    await until(() => seen.length === 11);
    await sub.close();
    assert.deepEqual(seen, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    await store.close();
  });
});

Deno.test("Agents on a vault shared by several processes", async (t) => {
  const LEASE = ["runtime", "lease", "worker"];
  // Two runtimes on one KV stand for two processes sharing a vault.
  async function shared(): Promise<{ kv: Deno.Kv; store: EventStore; close(): Promise<void> }> {
    const kv = await Deno.openKv(":memory:");
    const memory = new MemoryEventStore();
    return {
      kv,
      store: memory,
      async close() {
        kv.close();
        await memory.close();
      },
    };
  }
  // The KV ports with the lease reads counted: a standby reads the lease at
  // each poll, so a test waits for polls instead of sleeping.
  function counted(kv: Deno.Kv) {
    const ports = kvPorts(kv);
    let reads = 0;
    const leases = new Proxy(ports.leases, {
      get(target, key) {
        if (key === "read") return (agent: string) => (reads++, target.read(agent));
        const value = Reflect.get(target, key);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    return { checkpoints: ports.checkpoints, leases, reads: () => reads };
  }
  // Waits until the standby has polled `n` more times.
  async function polls(ports: { reads(): number }, n: number): Promise<void> {
    const target = ports.reads() + n;
    await until(() => ports.reads() >= target);
  }
  function worker(handled: number[]) {
    return defineAgent({
      name: "worker",
      subscribe: ["task.*"],
      handle: (event) => void handled.push((event.payload as { n: number }).n),
    });
  }

  await t.step("one runs an agent at a time; another takes over when it stops", async () => {
    const { kv, store, close } = await shared();
    const handledA: number[] = [];
    const handledB: number[] = [];
    const a = await Runtime.create({ vault: store, ...kvPorts(kv), agentLeaseSecs: 0.3 });
    // b's monotonic clock stands still: it takes over because a stops, never because a's
    // renewals came late on a loaded machine (a renewed lease is never taken: tested with
    // clocks under control in agents/lease_clock_test.ts).
    const b = await Runtime.create({
      vault: store,
      ...kvPorts(kv),
      agentLeaseSecs: 0.3,
      monotonicClock: () => 0,
    });
    a.register(worker(handledA));
    b.register(worker(handledB));
    await a.start();
    await b.start();
    assert.deepEqual(
      [a.agents()[0].running, a.agents()[0].standby, b.agents()[0].running, b.agents()[0].standby],
      [true, false, false, true],
    );
    for (let n = 1; n <= 3; n++) await a.emit({ kind: "task.created", payload: { n } });
    await until(() => handledA.length === 3);
    assert.equal(b.agents()[0].standby, true);
    await a.stop();
    await until(() => b.agents()[0].running);
    for (let n = 4; n <= 5; n++) await b.emit({ kind: "task.created", payload: { n } });
    await until(() => handledB.length === 2);
    await b.stop();
    assert.deepEqual(handledA, [1, 2, 3]);
    assert.deepEqual(handledB, [4, 5], "each event handled once, by one of them");
    await close();
  });

  await t.step("the lease of a holder that crashed is taken over when it ends", async () => {
    const { kv, store, close } = await shared();
    await kv.set(LEASE, { owner: "crashed", expiresAt: Date.now() + 400 });
    const handled: number[] = [];
    let monotonic = 0;
    const ports = counted(kv);
    const runtime = await Runtime.create({
      vault: store,
      ...ports,
      agentLeaseSecs: 0.3,
      monotonicClock: () => monotonic,
    });
    runtime.register(worker(handled));
    await runtime.start();
    assert.equal(runtime.agents()[0].standby, true);
    await runtime.emit({ kind: "task.created", payload: { n: 1 } });
    // Not renewed, but not for a whole lease yet by this process's clock.
    monotonic += 299;
    await polls(ports, 2);
    assert.deepEqual([runtime.agents()[0].standby, handled], [true, []]);
    monotonic += 1;
    await until(() => handled.length === 1);
    assert.equal(runtime.agents()[0].standby, false);
    await runtime.stop();
    assert.equal((await kv.get(LEASE)).value, null, "stop gives the lease back");
    await close();
  });

  await t.step("a holder that lost its lease stops handling and stands by", async () => {
    const { kv, store, close } = await shared();
    const handled: number[] = [];
    const ports = counted(kv);
    const runtime = await Runtime.create({
      vault: store,
      ...ports,
      agentLeaseSecs: 0.3,
      monotonicClock: () => 0,
    });
    runtime.register(worker(handled));
    await runtime.start();
    await runtime.emit({ kind: "task.created", payload: { n: 1 } });
    await until(() => handled.length === 1);
    // Its checkpoint is written (else the next holder would rightly deliver 1 again).
    const checkpoint = ["runtime", "checkpoint", "worker"];
    for (let i = 0; i < 100; i++) {
      const stored = await kv.get<{ position: string | null }>(checkpoint);
      if (stored.value?.position === "0000000000000001") break;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    // As if this process had been paused past its lease and another took over.
    await kv.set(LEASE, { owner: "other", expiresAt: Date.now() + 60_000 });
    await until(() => runtime.agents()[0].standby);
    await runtime.emit({ kind: "task.created", payload: { n: 2 } });
    await polls(ports, 2);
    assert.deepEqual(handled, [1]);
    await kv.delete(LEASE);
    await until(() => handled.length === 2);
    await runtime.stop();
    assert.deepEqual(handled, [1, 2]);
    await close();
  });

  await t.step("a holder that slept past its lease checks it before handling more", async () => {
    const { kv, store, close } = await shared();
    const handled: number[] = [];
    let now = Date.now();
    let monotonic = 0;
    // A long lease: its renewal timer does not fire during the test.
    const runtime = await Runtime.create({
      vault: store,
      ...kvPorts(kv),
      agentLeaseSecs: 60,
      clock: () => now,
      monotonicClock: () => monotonic,
    });
    runtime.register(worker(handled));
    await runtime.start();
    await runtime.emit({ kind: "task.created", payload: { n: 1 } });
    await until(() => handled.length === 1);
    await kv.set(LEASE, { owner: "other", expiresAt: now + 600_000 });
    now += 61_000;
    monotonic += 61_000;
    await runtime.emit({ kind: "task.created", payload: { n: 2 } });
    await until(() => runtime.agents()[0].standby);
    assert.deepEqual(handled, [1], "event 2 is left to the new holder");
    await runtime.stop();
    assert.equal((await kv.get<{ owner: string }>(LEASE)).value?.owner, "other");
    await close();
  });

  await t.step(
    "a standby judges a lease by its own monotonic clock, not by wall time written by another process",
    async () => {
      const { kv, store, close } = await shared();
      // A holder that crashed wrote an end 1 s ahead by its clock; this
      // process's wall clock has since jumped back 60 s.
      await kv.set(LEASE, { owner: "crashed", expiresAt: Date.now() + 1_000 });
      const handled: number[] = [];
      let monotonic = 0;
      const ports = counted(kv);
      const runtime = await Runtime.create({
        vault: store,
        ...ports,
        agentLeaseSecs: 0.3,
        clock: () => Date.now() - 60_000,
        monotonicClock: () => monotonic,
      });
      runtime.register(worker(handled));
      await runtime.start();
      assert.equal(runtime.agents()[0].standby, true);
      await runtime.emit({ kind: "task.created", payload: { n: 1 } });
      // A lease (0.3 s) of seeing no renewal: far from the 61 s the written time says.
      monotonic += 300;
      await until(() => handled.length === 1);
      await runtime.stop();
      await close();
    },
  );

  await t.step(
    "checkpoints and leases are ports: the in-memory ones, passed as options",
    async () => {
      const store = new MemoryEventStore();
      const leases = new MemoryLeaseStore();
      const checkpoints = new MemoryCheckpointStore(leases);
      const handledA: number[] = [];
      const handledB: number[] = [];
      const a = await Runtime.create({ vault: store, checkpoints, leases, agentLeaseSecs: 0.3 });
      // Takes over when a stops, never by time (its monotonic clock stands still).
      const b = await Runtime.create({
        vault: store,
        checkpoints,
        leases,
        agentLeaseSecs: 0.3,
        monotonicClock: () => 0,
      });
      a.register(worker(handledA));
      b.register(worker(handledB));
      await a.start();
      await b.start();
      assert.deepEqual([a.agents()[0].running, b.agents()[0].standby], [true, true]);
      for (let n = 1; n <= 2; n++) await a.emit({ kind: "task.created", payload: { n } });
      await a.stop();
      assert.equal((await checkpoints.load("worker"))?.position, "0000000000000002");
      await until(() => b.agents()[0].running);
      await b.emit({ kind: "task.created", payload: { n: 3 } });
      await until(() => handledB.length === 1);
      await b.stop();
      assert.deepEqual([handledA, handledB], [[1, 2], [3]], "resumed from the shared checkpoint");
      assert.deepEqual(await leases.read("worker"), { lease: null, version: null });
      await store.close();
    },
  );

  await t.step("stopping while standing by leaves the other's lease alone", async () => {
    const { kv, store, close } = await shared();
    const lease = { owner: "other", expiresAt: Date.now() + 60_000 };
    await kv.set(LEASE, lease);
    const runtime = await Runtime.create({ vault: store, ...kvPorts(kv), agentLeaseSecs: 0.3 });
    runtime.register(worker([]));
    await runtime.start();
    await runtime.stop();
    assert.deepEqual((await kv.get(LEASE)).value, lease);
    assert.deepEqual(
      [runtime.agents()[0].running, runtime.agents()[0].standby],
      [false, false],
    );
    await close();
  });
});

Deno.test("Importing the runtime loads no vault, toolkit or auth code", async () => {
  const root = new URL("../../", import.meta.url);
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", "runtime/mod.ts"],
    cwd: root,
    stdout: "piped",
    stderr: "inherit",
  }).output();
  assert.equal(output.code, 0);
  const info = JSON.parse(new TextDecoder().decode(output.stdout));
  const local = (info.modules as { specifier: string }[])
    .map((m) => m.specifier)
    .filter((s) => s.startsWith(root.href))
    .map((s) => s.slice(root.href.length));
  assert.ok(local.includes("runtime/mod.ts"));
  assert.deepEqual(local.filter((path) => /^(vault|toolkit|auth)\//.test(path)), []);
});
