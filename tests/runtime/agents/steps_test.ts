// Durable steps (issue 20 §1): ctx.step runs its function at most once per
// (agent, handled event, step index) to success, on the in-memory store and
// on Deno KV alike.
import assert from "node:assert/strict";
import {
  type AgentContext,
  defineAgent,
  type EventRecord,
  type EventStore,
  MemoryCheckpointStore,
  MemoryLeaseStore,
  Runtime,
  type RuntimeConfig,
} from "../../../runtime/mod.ts";
import { KvEventStore, MemoryEventStore } from "../../../vault/mod.ts";
import { all, kvPorts, until } from "../_helpers.ts";

interface Setup {
  store: EventStore;
  config: RuntimeConfig;
  close(): Promise<void>;
}

function memory(): Promise<Setup> {
  const store = new MemoryEventStore();
  const leases = new MemoryLeaseStore();
  return Promise.resolve({
    store,
    config: { vault: store, leases, checkpoints: new MemoryCheckpointStore(leases) },
    close: () => store.close(),
  });
}

async function kv(): Promise<Setup> {
  const kv = await Deno.openKv(":memory:");
  const store = await KvEventStore.open(kv);
  return {
    store,
    config: { vault: store, ...kvPorts(kv) },
    close: async () => {
      await store.close();
      kv.close();
    },
  };
}

const SETUPS = [["in memory", memory], ["Deno KV", kv]] as const;

type Handle = (event: EventRecord, ctx: AgentContext, attempt: number) => Promise<void>;

// Runs an agent on one task.created until it finished (passed or gave up).
async function handleOnce(setup: Setup, handle: Handle, attempts = 3): Promise<EventRecord> {
  const runtime = await Runtime.create({
    ...setup.config,
    retry: { attempts, backoffMs: () => 1 },
  });
  let attempt = 0;
  runtime.register(defineAgent({
    name: "worker",
    subscribe: ["task.created"],
    handle: (event, ctx) => handle(event, ctx, ++attempt),
  }));
  await runtime.start();
  const task = await runtime.emit({ kind: "task.created", payload: { n: 1 } });
  await until(() => runtime.agents()[0].position === task.position);
  await runtime.stop();
  return task;
}

for (const [where, open] of SETUPS) {
  Deno.test(`ctx.step (${where})`, async (t) => {
    await t.step("a retry serves the recorded result without calling fn", async () => {
      const setup = await open();
      let calls = 0;
      const results: unknown[] = [];
      const task = await handleOnce(setup, async (_event, ctx, attempt) => {
        results.push(await ctx.step("fetch", () => ({ page: ++calls })));
        results.push(await ctx.step("nothing", () => undefined));
        if (attempt === 1) throw new Error("flaky");
      });
      assert.equal(calls, 1, "fn ran once");
      assert.deepEqual(results, [{ page: 1 }, undefined, { page: 1 }, undefined]);
      const steps = await all(setup.store, ["step.*"]);
      assert.deepEqual(steps.map((e) => [e.kind, e.payload]), [
        ["step.completed", { name: "fetch", index: 0, result: { page: 1 } }],
        ["step.completed", { name: "nothing", index: 1 }],
      ]);
      for (const step of steps) {
        assert.deepEqual(step.parents, [task.id]);
        assert.equal(step.meta.correlationId, task.id);
        assert.equal(step.stream, "agent/worker");
      }
      await setup.close();
    });

    await t.step("a restart on the same log serves the recorded result", async () => {
      const setup = await open();
      let calls = 0;
      // Stopped without draining while its handler is past the step: the
      // event is not finished, as when the process dies there.
      const runtime = await Runtime.create({ ...setup.config, stopTimeoutMs: 0 });
      let stepped = false;
      runtime.register(defineAgent({
        name: "worker",
        subscribe: ["task.created"],
        async handle(_event, ctx) {
          await ctx.step("charge", () => ++calls);
          stepped = true;
          await new Promise((_, reject) => ctx.signal.addEventListener("abort", reject));
        },
      }));
      await runtime.start();
      const task = await runtime.emit({ kind: "task.created" });
      await until(() => stepped);
      await runtime.stop();
      assert.notEqual(runtime.agents()[0].position, task.position, "not passed");

      const again = await Runtime.create(setup.config);
      const served: unknown[] = [];
      again.register(defineAgent({
        name: "worker",
        subscribe: ["task.created"],
        async handle(_event, ctx) {
          served.push(await ctx.step("charge", () => ++calls));
        },
      }));
      await again.start();
      await until(() => again.agents()[0].position === task.position);
      await again.stop();
      assert.deepEqual([calls, served], [1, [1]]);
      await setup.close();
    });

    await t.step("another step at a recorded index is a NonDeterminismError", async () => {
      const setup = await open();
      const errors: unknown[] = [];
      const task = await handleOnce(setup, async (_event, ctx, attempt) => {
        if (attempt === 1) {
          await ctx.step("fetch", () => 1);
          throw new Error("flaky");
        }
        try {
          await ctx.step("parse", () => 2);
        } catch (error) {
          errors.push(error);
        }
      });
      assert.equal(errors.length, 1);
      const error = errors[0] as Error & { code: string; eventId: string; index: number };
      assert.equal(error.name, "NonDeterminismError");
      assert.equal(error.code, "non_determinism");
      assert.equal(
        error.message,
        `Event "${task.id}" is handled unlike before: step 0 was step "fetch", now step "parse"`,
      );
      assert.deepEqual([error.eventId, error.index], [task.id, 0]);
      assert.equal((await all(setup.store, ["step.completed"])).length, 1, "nothing more recorded");
      await setup.close();
    });

    await t.step("a failed step is recorded and runs again at the next attempt", async () => {
      const setup = await open();
      let calls = 0;
      const task = await handleOnce(setup, async (_event, ctx) => {
        await ctx.step("send", () => {
          if (++calls === 1) throw new Error("Connection reset");
          return "sent";
        });
      });
      assert.equal(calls, 2);
      const steps = await all(setup.store, ["step.*"]);
      assert.deepEqual(steps.map((e) => [e.kind, e.payload]), [
        ["step.failed", { name: "send", index: 0, error: "Connection reset" }],
        ["step.completed", { name: "send", index: 0, result: "sent" }],
      ]);
      assert.ok(steps.every((e) => e.parents[0] === task.id));
      await setup.close();
    });

    await t.step("a result that is not JSON, or too big, fails in one line", async () => {
      const setup = await open();
      const errors: Error[] = [];
      await handleOnce(setup, async (_event, ctx) => {
        for (
          const [name, fn] of [
            ["fn", () => ({ when: () => 1 })],
            ["big", () => "x".repeat(4 * 1024 * 1024)],
          ] as const
        ) {
          await ctx.step<unknown>(name, fn).catch((error) => errors.push(error));
        }
      }, 1);
      assert.deepEqual(errors.map((e) => [e.name, e.message]), [
        [
          "TypeError",
          'Invalid payload of step "fn" (index 0): $.result.when is a function, not a JSON value',
        ],
        [
          "RangeError",
          'Payload of step "big" (index 1) is 4194340 bytes, over the maximum of 4194304: put a big result in storage("vault") and return its key',
        ],
      ]);
      assert.ok(errors.every((e) => !e.message.includes("\n")));
      const steps = await all(setup.store, ["step.*"]);
      assert.deepEqual(steps.map((e) => e.kind), ["step.failed", "step.failed"]);
      await setup.close();
    });

    await t.step(
      "bad names and functions are TypeErrors; outside handling fn just runs",
      async () => {
        const setup = await open();
        const runtime = await Runtime.create(setup.config);
        const seen: unknown[] = [];
        runtime.register(defineAgent({
          name: "worker",
          subscribe: ["task.created"],
          async init(ctx) {
            seen.push(await ctx.step("warm", () => "ran"));
            for (const [name, fn] of [["", () => 1], ["x", 1]] as const) {
              // @ts-expect-error: a wrong type on purpose
              await ctx.step(name, fn).catch((error: Error) => seen.push(error.message));
            }
          },
          handle() {},
        }));
        await runtime.start();
        await runtime.stop();
        assert.deepEqual(seen, [
          "ran",
          'Invalid step name "": expected 1 to 200 characters',
          'Invalid step "x": expected a function to run',
        ]);
        assert.deepEqual(await all(setup.store, ["step.*"]), [], "nothing recorded");
        await setup.close();
      },
    );

    await t.step("a result of 1 MiB is recorded and served", async () => {
      const setup = await open();
      const big = "x".repeat(1024 * 1024);
      const results: string[] = [];
      await handleOnce(setup, async (_event, ctx, attempt) => {
        results.push(await ctx.step("big", () => big));
        if (attempt === 1) throw new Error("flaky");
      });
      assert.deepEqual(results.map((r) => r.length), [big.length, big.length]);
      assert.equal(results[1], big);
      const [step] = await all(setup.store, ["step.completed"]);
      assert.equal((step.payload as { result: string }).result.length, big.length);
      await setup.close();
    });

    await t.step("an emit may not carry meta.step, which marks step records", async () => {
      const setup = await open();
      const errors: Error[] = [];
      await handleOnce(setup, async (_event, ctx) => {
        await ctx.emit({ kind: "task.noted", meta: { step: "0" } }).catch((e) => errors.push(e));
      });
      assert.deepEqual(errors.map((e) => [e.name, e.message]), [
        ["TypeError", 'Invalid meta "step" of event "task.noted": reserved for steps'],
      ]);
      assert.deepEqual(await all(setup.store, ["task.noted"]), [], "nothing appended");
      await setup.close();
    });

    await t.step("steps made concurrently keep their indexes", async () => {
      const setup = await open();
      let calls = 0;
      const results: unknown[] = [];
      await handleOnce(setup, async (_event, ctx, attempt) => {
        const slow = ctx.step("slow", async () => {
          await new Promise((resolve) => setTimeout(resolve, 5));
          return `slow ${++calls}`;
        });
        const fast = ctx.step("fast", () => `fast ${++calls}`);
        results.push(await Promise.all([slow, fast]));
        if (attempt === 1) throw new Error("flaky");
      });
      assert.equal(calls, 2);
      assert.deepEqual(results[0], results[1]);
      await setup.close();
    });
  });
}
