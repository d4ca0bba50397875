// A step's record is fenced by the agent's lease like its emits: a holder
// whose lease another process took between its lease check and the append
// records nothing, and its step fails with LeaseLostError.
import assert from "node:assert/strict";
import type { EventStore, LeaseStore } from "../../../runtime/mod.ts";
import { all, handleOneTask, leasePorts, onEachStore, withAppend } from "../_helpers.ts";

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
  const results: unknown[] = [];
  let calls = 0;
  const errors = await handleOneTask(
    stealing(store, leases, first),
    leasePorts(store, leases),
    async (ctx) => void results.push(await ctx.step("charge", () => ++calls)),
  );
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
