// The contract of the runtime's own state ports: every CheckpointStore and
// LeaseStore pair passes it (like tests/vault/contract.ts for event stores).
import assert from "node:assert/strict";
import type { CheckpointStore, LeaseStore } from "../../../runtime/mod.ts";

/** A fresh, empty pair of stores, and how to dispose of them. */
export type MakeAgentState = () => Promise<{
  checkpoints: CheckpointStore;
  leases: LeaseStore;
  cleanup(): Promise<void> | void;
}>;

export async function runAgentStateContract(t: Deno.TestContext, make: MakeAgentState) {
  const step = (name: string, body: (s: Awaited<ReturnType<MakeAgentState>>) => Promise<void>) =>
    t.step(name, async () => {
      const state = await make();
      try {
        await body(state);
      } finally {
        await state.cleanup();
      }
    });

  await step("a checkpoint saved is loaded and listed; none before", async ({ checkpoints }) => {
    assert.equal(await checkpoints.load("worker"), undefined);
    const saved = { position: "0000000000000003", failures: 1, updatedAt: 5, subscribe: ["a.*"] };
    assert.equal(await checkpoints.save("worker", saved), "written");
    assert.equal(
      await checkpoints.save("alpha", { position: null, failures: 0, updatedAt: 1 }),
      "written",
    );
    assert.deepEqual(await checkpoints.load("worker"), saved);
    assert.deepEqual((await Array.fromAsync(checkpoints.list())).map(([name]) => name), [
      "alpha",
      "worker",
    ]);
  });

  await step("a lease is compare-and-set on its version", async ({ leases }) => {
    assert.deepEqual(await leases.read("worker"), { lease: null, version: null });
    const first = await leases.swap("worker", null, { owner: "a", expiresAt: 1 });
    assert.equal(typeof first, "string");
    // A stale version loses: nothing changes.
    assert.equal(await leases.swap("worker", null, { owner: "b", expiresAt: 2 }), undefined);
    const read = await leases.read("worker");
    assert.deepEqual(read, { lease: { owner: "a", expiresAt: 1 }, version: first });
    const second = await leases.swap("worker", first!, { owner: "a", expiresAt: 3 });
    assert.ok(second !== undefined && second !== first);
    assert.equal(await leases.swap("worker", first!, null), undefined);
    assert.deepEqual(await Array.fromAsync(leases.list()), [["worker", {
      owner: "a",
      expiresAt: 3,
    }]]);
    assert.equal(await leases.swap("worker", second!, null), "");
    assert.deepEqual(await leases.read("worker"), { lease: null, version: null });
  });

  await step(
    "a checkpoint saved for an owner is fenced by the lease",
    async ({ checkpoints, leases }) => {
      const at = (position: string) => ({ position, failures: 0, updatedAt: 0 });
      assert.equal(await checkpoints.save("worker", at("0000000000000001"), "a"), "fenced");
      assert.equal(await checkpoints.load("worker"), undefined, "nobody holds it: nothing written");
      const v = await leases.swap("worker", null, { owner: "a", expiresAt: 0 });
      assert.equal(await checkpoints.save("worker", at("0000000000000002"), "a"), "written");
      await leases.swap("worker", v!, { owner: "b", expiresAt: 0 });
      assert.equal(await checkpoints.save("worker", at("0000000000000001"), "a"), "fenced");
      assert.equal((await checkpoints.load("worker"))?.position, "0000000000000002");
      assert.equal(await checkpoints.save("worker", at("0000000000000005"), "b"), "written");
      assert.equal((await checkpoints.load("worker"))?.position, "0000000000000005");
    },
  );

  await step("what is read is a copy", async ({ checkpoints, leases }) => {
    const saved = { position: null, failures: 0, updatedAt: 0 };
    await checkpoints.save("worker", saved);
    saved.failures = 9;
    const loaded = (await checkpoints.load("worker"))!;
    assert.equal(loaded.failures, 0);
    loaded.failures = 7;
    assert.equal((await checkpoints.load("worker"))!.failures, 0);
    const lease = { owner: "a", expiresAt: 0 };
    await leases.swap("worker", null, lease);
    lease.owner = "z";
    assert.equal((await leases.read("worker")).lease?.owner, "a");
  });
}
