// An agent on job.* that emits job.done handles its own emits: the causal
// depth limit stops it, and its refusal is recorded once as agent.failed
// (issue 20 §4).
import assert from "node:assert/strict";
import { defineAgent, type EventRecord, Runtime } from "../../../runtime/mod.ts";
import { openVault } from "../../../vault/mod.ts";
import { all, kvPorts, until } from "../_helpers.ts";

const looping = defineAgent({
  name: "looper",
  subscribe: ["job.*"],
  async handle(_event, ctx) {
    await ctx.emit({ kind: "job.done" });
  },
});

async function runLoop(maxCausalDepth?: number): Promise<EventRecord[]> {
  const vault = await openVault(":memory:");
  const runtime = await Runtime.create({
    vault,
    ...kvPorts(vault.kv),
    maxCausalDepth,
    // Attempts it must not spend on a refusal that cannot pass.
    retry: { attempts: 5, backoffMs: () => 60_000 },
  });
  try {
    runtime.register(looping);
    await runtime.start();
    await runtime.emit({ kind: "job.started" });
    await until(() => runtime.agents()[0].failures === 1, 20_000);
    await runtime.stop();
    return await all(vault);
  } finally {
    await runtime.close();
    await vault.close();
  }
}

Deno.test("causal depth of agents", async (t) => {
  await t.step("a self-triggering agent stops at depth 100 with one agent.failed", async () => {
    const events = await runLoop();
    const done = events.filter((e) => e.kind === "job.done");
    assert.equal(done.length, 100);
    assert.equal(done.at(-1)!.meta.causalDepth, "100");
    const failed = events.filter((e) => e.kind === "agent.failed");
    assert.equal(failed.length, 1);
    assert.deepEqual(failed[0].parents, [done.at(-1)!.id]);
    assert.deepEqual(failed[0].payload, {
      agent: "looper",
      eventId: done.at(-1)!.id,
      kind: "job.done",
      attempts: 1,
      code: "causal_depth",
      error: `Cannot emit "job.done" caused by event "${
        done.at(-1)!.id
      }": causal depth 101 is over the limit of 100 (maxCausalDepth)`,
    });
    assert.equal(events.length, 102);
  });

  await t.step("raising maxCausalDepth lets it go deeper", async () => {
    const events = await runLoop(130);
    assert.equal(events.filter((e) => e.kind === "job.done").length, 130);
    assert.equal(events.filter((e) => e.kind === "agent.failed").length, 1);
  });

  await t.step(
    "an agent that fails on everything, its own agent.failed included, stops",
    async () => {
      const vault = await openVault(":memory:");
      const runtime = await Runtime.create({
        vault,
        ...kvPorts(vault.kv),
        maxCausalDepth: 5,
        retry: { attempts: 1 },
      });
      try {
        runtime.register(defineAgent({
          name: "grumpy",
          subscribe: ["*"],
          handle: () => Promise.reject(new Error("no")),
        }));
        await runtime.start();
        await runtime.emit({ kind: "job.started" });
        // The root, agent.failed at depths 1 to 6 (one past the limit); the
        // failure on the last cannot be recorded deeper, so it is passed.
        await until(() => runtime.agents()[0].handled === 7);
        await runtime.stop();
        const failed = await all(vault, ["agent.failed"]);
        assert.deepEqual(failed.map((e) => e.meta.causalDepth), ["1", "2", "3", "4", "5", "6"]);
        assert.equal((await vault.head())?.position, "0000000000000007");
      } finally {
        await runtime.close();
        await vault.close();
      }
    },
  );
});
