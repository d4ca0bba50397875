import assert from "node:assert/strict";
import { createRuntime, defineAgent, type EventRecord, KvTokenAuthority } from "../mod.ts";

Deno.test("createRuntime", async (t) => {
  await t.step("tool events are caused by the event the agent was handling", async () => {
    const runtime = await createRuntime({ db: ":memory:" });
    let done = false;
    runtime.register(defineAgent({
      name: "caller",
      subscribe: ["task.created"],
      permissions: ["tool:echo:invoke"],
      async handle(_event, ctx) {
        await ctx.tools.call("echo", { text: "hi" });
        await assert.rejects(ctx.tools.call("echo", { wrong: true }));
        done = true;
      },
    }));
    await runtime.start();
    const task = await runtime.emit({ kind: "task.created" });
    for (let i = 0; i < 500 && !done; i++) await new Promise((r) => setTimeout(r, 5));
    assert.equal(done, true);
    // A call from outside any handler has no cause.
    const store = runtime.bus.store!;
    await assert.rejects(
      runtime.tools.call("echo", { text: "x" }, { cause: { id: 1 } as never }),
      { name: "TypeError", message: "Invalid cause: expected the event record being handled" },
    );
    const auth = await KvTokenAuthority.open(store.kv!);
    await runtime.tools.call("echo", { text: "direct" }, {
      token: await auth.issue({ sub: "test", permissions: ["tool:*:invoke"] }),
    });
    const tool: EventRecord[] = await Array.fromAsync(store.read({ kinds: ["tool.*"] }));
    assert.deepEqual(tool.map((e) => e.kind), [
      "tool.invoked",
      "tool.completed",
      "tool.invoked",
      "tool.failed",
      "tool.invoked",
      "tool.completed",
    ]);
    for (const event of tool.slice(0, 4)) {
      assert.deepEqual(event.parents, [task.id]);
      assert.equal(event.meta.correlationId, task.id);
      assert.equal(event.meta.causationId, task.id);
    }
    for (const event of tool.slice(4)) {
      assert.deepEqual(event.parents, []);
      assert.equal(event.meta.causationId, undefined);
    }
    await runtime.close();
  });
});
