// A retry's state change is kept when its commit fails after agent.recovered
// was recorded (a full disk, or a process killed between the two appends):
// the request is delivered again, and the state it set is not lost.
import assert from "node:assert/strict";
import { defineAgent, readFailedEvents, Runtime } from "../../../runtime/mod.ts";
import { openVault } from "../../../vault/mod.ts";
import { all, kvPorts, until, withAppend } from "../_helpers.ts";
import { formatPosition } from "../../../internal/ids.ts";

Deno.test("a retry's state change survives a failed commit after agent.recovered", async () => {
  const vault = await openVault(":memory:");
  let broken = true;
  let failState = false;
  const store = withAppend(vault, (stream, events, options) => {
    if (failState && events.some((event) => event.kind === "agent.state")) {
      failState = false;
      return Promise.reject(new Error("The disk is full"));
    }
    return vault.append(stream, events, options);
  });
  const runtime = await Runtime.create({
    vault: store,
    ...kvPorts(vault.kv),
    retry: { attempts: 1, backoffMs: () => 1 },
  });
  runtime.register(defineAgent({
    name: "counter",
    subscribe: ["task.*"],
    handle(_event, ctx) {
      if (broken) throw new Error("The mail server is down");
      ctx.state.set({ count: (ctx.state.get<{ count: number }>()?.count ?? 0) + 1 });
    },
  }));
  try {
    await runtime.start();
    const task = await runtime.emit({ kind: "task.created" });
    await until(() => runtime.agents()[0].failures === 1);
    broken = false;
    failState = true;
    const request = await runtime.retry("counter", task.id);
    await until(() => runtime.agents()[0].position! >= request.position);
    await runtime.stop();
    assert.equal(failState, false, "the first commit failed");
    assert.equal((await all(vault, ["agent.recovered"])).length, 1, "recorded once");
    assert.deepEqual(await readFailedEvents(vault, "counter"), []);
    assert.deepEqual(await runtime.stateAt("counter"), { count: 1 });
    assert.equal((await all(vault, ["agent.state"])).length, 1);
  } finally {
    await runtime.close();
    await vault.close();
  }
});

Deno.test("an event the agent gave up on is not handled again when delivered again after a crash", async () => {
  const vault = await openVault(":memory:");
  let broken = true;
  let handled = 0;
  const create = () =>
    Runtime.create({ vault, ...kvPorts(vault.kv), retry: { attempts: 1, backoffMs: () => 1 } });
  const counter = defineAgent({
    name: "counter",
    subscribe: ["task.*"],
    handle(_event, ctx) {
      handled++;
      if (broken) throw new Error("The mail server is down");
      ctx.state.set({ count: (ctx.state.get<{ count: number }>()?.count ?? 0) + 1 });
    },
  });
  let runtime = await create();
  runtime.register(counter);
  try {
    await runtime.start();
    const task = await runtime.emit({ kind: "task.created" });
    await until(() => runtime.agents()[0].failures === 1);
    await runtime.stop();
    await runtime.close();
    // As if the process died after agent.failed, before its checkpoint passed the task.
    await kvPorts(vault.kv).checkpoints.save("counter", {
      position: formatPosition(Number(task.position) - 1),
      failures: 1,
      updatedAt: 0,
      subscribe: ["task.*"],
    });
    broken = false;
    runtime = await create();
    runtime.register(counter);
    await runtime.start();
    const next = await runtime.emit({ kind: "task.created" });
    await until(() => runtime.agents()[0].position === next.position);
    assert.equal(handled, 2, "the task is not handled again, only the next one");
    assert.deepEqual((await readFailedEvents(vault, "counter")).map((f) => f.eventId), [task.id]);
    const request = await runtime.retry("counter", task.id);
    await until(() => runtime.agents()[0].position! >= request.position);
    await runtime.stop();
    assert.deepEqual(await runtime.stateAt("counter"), { count: 2 }, "each task counted once");
  } finally {
    await runtime.close();
    await vault.close();
  }
});
