// The causal depth limit (issue 20 §4): an event caused by another is one
// deeper (meta.causalDepth), and an emit deeper than maxCausalDepth is refused,
// so a handler that triggers itself stops instead of running forever.
import assert from "node:assert/strict";
import {
  CausalDepthError,
  EventBus,
  type EventRecord,
  Runtime,
  TokaError,
} from "../../../runtime/mod.ts";
import { MemoryEventStore } from "../../../vault/mod.ts";
import { createRuntime } from "../../../mod.ts";

// A plain subscriber on job.* that emits job.done for each: a runaway loop.
async function runaway(bus: EventBus): Promise<{ done: EventRecord[]; refused: unknown[] }> {
  const done: EventRecord[] = [];
  const refused: unknown[] = [];
  bus.subscribe("job.*", async (_event, ctx) => {
    try {
      done.push(await ctx.emit({ kind: "job.done" }));
    } catch (error) {
      refused.push(error);
    }
  });
  await bus.emit({ kind: "job.started" });
  await bus.idle();
  await bus.close();
  return { done, refused };
}

Deno.test("causal depth", async (t) => {
  await t.step("a root event has none; each caused event is one deeper", async () => {
    const bus = new EventBus();
    const root = await bus.emit({ kind: "a.b" });
    const child = await bus.emit({ kind: "a.c" }, root);
    const grandchild = await bus.emit({ kind: "a.d", meta: { causalDepth: "7" } }, child);
    assert.equal(root.meta.causalDepth, undefined);
    assert.equal(child.meta.causalDepth, "1");
    // The bus decides the depth, not the emitter.
    assert.equal(grandchild.meta.causalDepth, "2");
  });

  for (const store of [undefined, "memory store"]) {
    await t.step(
      `a self-triggering subscriber stops at depth 100 (${store ?? "no store"})`,
      async () => {
        const bus = new EventBus({
          store: store === undefined ? undefined : new MemoryEventStore(),
        });
        const { done, refused } = await runaway(bus);
        assert.equal(done.length, 100);
        assert.deepEqual(done.map((e) => e.meta.causalDepth), done.map((_, i) => String(i + 1)));
        assert.equal(refused.length, 1);
        const error = refused[0] as CausalDepthError;
        assert.ok(error instanceof CausalDepthError && error instanceof TokaError);
        assert.equal(error.code, "causal_depth");
        assert.equal(error.depth, 101);
        assert.equal(error.limit, 100);
        assert.equal(
          error.message,
          `Cannot emit "job.done" caused by event "${
            done[99].id
          }": causal depth 101 is over the limit of 100 (maxCausalDepth)`,
        );
        await bus.store?.close();
      },
    );
  }

  await t.step("raising maxCausalDepth lets a chain go deeper", async () => {
    const store = new MemoryEventStore();
    const { done, refused } = await runaway(new EventBus({ store, maxCausalDepth: 250 }));
    assert.equal(done.length, 250);
    assert.equal(refused.length, 1);
    assert.equal((await Array.fromAsync(store.read())).length, 251);
    await store.close();
  });

  await t.step("a refused emit appends nothing", async () => {
    const store = new MemoryEventStore();
    const bus = new EventBus({ store, maxCausalDepth: 1 });
    const root = await bus.emit({ kind: "a.b" });
    const child = await bus.emit({ kind: "a.c" }, root);
    await assert.rejects(bus.emit({ kind: "a.d" }, child), CausalDepthError);
    await assert.rejects(bus.emitBatch([{ kind: "a.d" }], child), CausalDepthError);
    assert.equal((await store.head())?.position, "0000000000000002");
    await store.close();
  });

  await t.step("agent.failed may go one deeper, so that a refusal is recorded", async () => {
    const bus = new EventBus({ maxCausalDepth: 1 });
    const child = await bus.emit({ kind: "a.c" }, await bus.emit({ kind: "a.b" }));
    const failed = await bus.emit({ kind: "agent.failed" }, child);
    assert.equal(failed.meta.causalDepth, "2");
    await assert.rejects(bus.emit({ kind: "agent.failed" }, failed), CausalDepthError);
  });

  await t.step("bad values of maxCausalDepth are refused with one line", () => {
    for (const value of [0, -1, 1.5, Number.NaN, "100", 1_000_001]) {
      assert.throws(() => new EventBus({ maxCausalDepth: value as number }), {
        name: "RangeError",
        message: `Invalid maxCausalDepth ${
          JSON.stringify(value)
        }: expected an integer from 1 to 1000000`,
      });
    }
  });

  await t.step(
    "bad values are refused with one line, by Runtime.create and createRuntime",
    async () => {
      for (const value of [0, -3, 2.5, "100", null, 1e9]) {
        const message = `Invalid maxCausalDepth ${
          JSON.stringify(value)
        }: expected an integer from 1 to 1000000`;
        await assert.rejects(Runtime.create({ maxCausalDepth: value as number }), {
          name: "RangeError",
          message,
        });
        await assert.rejects(createRuntime({ db: ":memory:", maxCausalDepth: value as number }), {
          name: "RangeError",
          message,
        });
      }
    },
  );
});
