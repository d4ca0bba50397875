// Context calls a handler does not await (issue 18 #15): `(e, ctx) => void
// ctx.emit(...)` must neither crash the host when the emit rejects nor let the
// event pass before its emits land, and every such emit keeps its parent.
import assert from "node:assert/strict";
import { defineAgent, type EventStore, MemoryEventStore, Runtime } from "../../../runtime/mod.ts";
import { all, until, withAppend } from "../_helpers.ts";

/** A store whose next `n` appends of `kind` fail, then succeed after `ms`. */
function flaky(store: EventStore, kind: string) {
  let failing = 0;
  let slowMs = 0;
  const append: EventStore["append"] = async (stream, events, options) => {
    if (events[0]?.kind === kind) {
      if (failing > 0) {
        failing--;
        throw new Error("No space left on device (os error 28)");
      }
      if (slowMs > 0) await new Promise((resolve) => setTimeout(resolve, slowMs));
    }
    return store.append(stream, events, options);
  };
  return {
    vault: withAppend(store, append),
    fail: (n: number) => failing = n,
    slow: (ms: number) => slowMs = ms,
  };
}

Deno.test("context calls a handler did not await", async (t) => {
  await t.step(
    "a rejected `void ctx.emit()` crashes nothing: the handling is retried, then recorded",
    async () => {
      const store = new MemoryEventStore();
      const { vault, fail } = flaky(store, "work.done");
      const runtime = await Runtime.create({
        vault,
        retry: { attempts: 3, backoffMs: () => 1 },
      });
      runtime.register(defineAgent({
        name: "worker",
        subscribe: ["task.*"],
        handle: (event, ctx) => void ctx.emit({ kind: "work.done", payload: event.payload }),
      }));
      await runtime.start();
      fail(1);
      const first = await runtime.emit({ kind: "task.created", payload: 1 });
      await until(() => runtime.agents()[0].handled === 1);
      fail(3);
      const second = await runtime.emit({ kind: "task.created", payload: 2 });
      await until(() => runtime.agents()[0].handled === 2);
      await runtime.stop();
      const done = await all(store, ["work.done"]);
      assert.deepEqual(done.map((e) => e.parents), [[first.id]], "the retry emitted it once");
      const failed = await all(store, ["agent.failed"]);
      assert.deepEqual(failed.map((e) => (e.payload as { eventId: string }).eventId), [second.id]);
      assert.equal(runtime.agents()[0].failures, 1);
    },
  );

  await t.step(
    "an emit still in flight when the handler returns keeps its parent, and the checkpoint waits",
    async () => {
      const store = new MemoryEventStore();
      const { vault, slow } = flaky(store, "work.done");
      const runtime = await Runtime.create({ vault });
      runtime.register(defineAgent({
        name: "worker",
        subscribe: ["task.*"],
        handle: (_event, ctx) => {
          // The second is made once the handler has returned.
          void ctx.emit({ kind: "work.done", payload: 1 }).then(() =>
            ctx.emit({ kind: "work.done", payload: 2 })
          );
        },
      }));
      await runtime.start();
      slow(30);
      const task = await runtime.emit({ kind: "task.created" });
      await until(() => runtime.agents()[0].handled === 1);
      const done = await all(store, ["work.done"]);
      await runtime.stop();
      assert.deepEqual(done.map((e) => [e.payload, e.parents]), [[1, [task.id]], [2, [task.id]]]);
    },
  );

  await t.step("a rejection the handler caught is its own: the event passes", async () => {
    const store = new MemoryEventStore();
    const { vault, fail } = flaky(store, "work.done");
    const runtime = await Runtime.create({ vault, retry: { attempts: 3, backoffMs: () => 1 } });
    const caught: string[] = [];
    runtime.register(defineAgent({
      name: "worker",
      subscribe: ["task.*"],
      async handle(_event, ctx) {
        await ctx.emit({ kind: "work.done" }).catch((e: Error) => caught.push(e.message));
      },
    }));
    await runtime.start();
    fail(1);
    await runtime.emit({ kind: "task.created" });
    await until(() => runtime.agents()[0].handled === 1);
    await runtime.stop();
    assert.deepEqual(caught, ["No space left on device (os error 28)"]);
    assert.deepEqual(await all(store, ["work.done", "agent.failed"]), []);
    assert.equal(runtime.agents()[0].failures, 0);
  });

  await t.step("a rejected `void ctx.emit()` in init or stop is logged, not a crash", async () => {
    const store = new MemoryEventStore();
    const { vault, fail } = flaky(store, "agent.ready");
    const runtime = await Runtime.create({ vault });
    runtime.register(defineAgent({
      name: "worker",
      subscribe: ["task.*"],
      init: (ctx) => void ctx.emit({ kind: "agent.ready" }),
      handle() {},
      stop: (ctx) => void ctx.emit({ kind: "agent.ready" }),
    }));
    fail(2);
    await runtime.start();
    await runtime.stop();
    // The next macrotask: an unhandled rejection would have failed the test by now.
    await new Promise((resolve) => setTimeout(resolve, 0));
    assert.deepEqual(await all(store, ["agent.ready"]), []);
  });
});
