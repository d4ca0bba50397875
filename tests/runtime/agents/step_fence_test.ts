// A step's record is fenced by the agent's lease like its emits: a holder
// whose lease another process took between its lease check and the append
// records nothing, and its step fails with LeaseLostError.
import assert from "node:assert/strict";
import { defineAgent, type EventStore, type LeaseStore, Runtime } from "../../../runtime/mod.ts";
import { all, leasePorts, onEachStore, until, withAppend } from "../_helpers.ts";

// Another "process" takes the lease just before the step's record is appended
// and, with `first`, records the same step with its own result before it.
function stealing(store: EventStore, leases: LeaseStore, first: boolean): EventStore {
  let stolen = false;
  const append: EventStore["append"] = async (stream, events, options) => {
    const late = events[0];
    if (!stolen && late?.kind === "step.completed") {
      stolen = true;
      const { version } = await leases.read("worker");
      const taken = await leases.swap("worker", version, {
        owner: "other",
        expiresAt: Date.now() + 60_000,
      });
      assert.notEqual(taken, undefined, "the other process took the lease");
      if (first) {
        const payload = { ...(late.payload as object), result: "the other's" };
        await store.append(stream, [{ ...late, payload }]);
      }
    }
    return store.append(stream, events, options);
  };
  return withAppend(store, append);
}

async function race(store: EventStore, leases: LeaseStore, first = false): Promise<void> {
  const errors: unknown[] = [];
  const results: unknown[] = [];
  let calls = 0;
  let finished = false;
  const runtime = await Runtime.create({
    vault: stealing(store, leases, first),
    ...leasePorts(store, leases),
    agentLeaseSecs: 30,
  });
  runtime.register(defineAgent({
    name: "worker",
    subscribe: ["task.created"],
    async handle(_event, ctx) {
      try {
        results.push(await ctx.step("charge", () => ++calls));
      } catch (error) {
        errors.push(error);
      } finally {
        finished = true;
      }
    },
  }));
  await runtime.start();
  await runtime.emit({ kind: "task.created" });
  await until(() => finished);
  await runtime.stop();
  const recorded = await all(store, ["step.completed"]);
  if (first) {
    assert.deepEqual(recorded.map((e) => e.payload), [
      { name: "charge", index: 0, result: "the other's" },
    ], "one result recorded");
    assert.deepEqual([results, errors], [["the other's"], []], "and the late holder gets it");
    return;
  }
  assert.deepEqual(recorded, [], "the late step is not recorded");
  assert.equal(errors.length, 1);
  assert.equal((errors[0] as { code?: string }).code, "lease_lost");
}

Deno.test("two holders racing on one step: one result, and both get it", async (t) => {
  await onEachStore(t, (store, leases) => race(store, leases, true));
});

Deno.test("a step recorded after the lease was taken over is refused", async (t) => {
  await onEachStore(t, (store, leases) => race(store, leases));
});
