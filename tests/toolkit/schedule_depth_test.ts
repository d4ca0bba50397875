// A timer fired for an event an agent handled is one deeper in its causal
// chain, like an emit: an agent that schedules itself again on every tick
// stops at maxCausalDepth instead of ticking forever (issue 20 §4).
import assert from "node:assert/strict";
import { createRuntime, defineAgent, type EventRecord } from "../../mod.ts";

Deno.test("schedule: a self-rescheduling agent stops at maxCausalDepth", async () => {
  await using runtime = await createRuntime({
    db: ":memory:",
    maxCausalDepth: 4,
    stopTimeoutMs: 0,
    retry: { attempts: 1 },
    schedule: { pollIntervalMs: 10 },
  });
  runtime.register(defineAgent({
    name: "ticker",
    subscribe: ["tick"],
    permissions: ["tool:schedule:invoke"],
    async handle(_event, ctx) {
      await ctx.tools.call("schedule", { kind: "tick", delayMs: 0 });
    },
  }));
  await runtime.start();
  await runtime.emit({ kind: "tick" });
  const vault = runtime.bus.store!;
  let failed: EventRecord[] = [];
  for (let i = 0; i < 2000 && failed.length === 0; i++) {
    await new Promise((resolve) => setTimeout(resolve, 5));
    failed = await Array.fromAsync(vault.read({ kinds: ["agent.failed"] }));
  }
  // Let a timer that should not exist have time to fire.
  await new Promise((resolve) => setTimeout(resolve, 100));
  await runtime.stop();
  const ticks = await Array.fromAsync(vault.read({ kinds: ["tick"] }));
  // The root, then each fired tick one deeper than the tick handled when it was
  // scheduled. Handling the one at the limit, the tool call's tool.invoked
  // would be one past it: refused, so no timer is set.
  assert.deepEqual(ticks.map((e) => e.meta.causalDepth), [undefined, "1", "2", "3", "4"]);
  assert.equal(failed.length, 1);
  assert.equal((failed[0].payload as { code: string }).code, "causal_depth");
});
