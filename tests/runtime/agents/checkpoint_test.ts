import assert from "node:assert/strict";
import { CheckpointBook } from "../../../runtime/agents/_checkpoint.ts";
import { KvCheckpointStore, MemoryCheckpointStore } from "../../../runtime/mod.ts";

Deno.test("CheckpointBook", async (t) => {
  const KEY = ["runtime", "checkpoint", "worker"];
  const LEASE = ["runtime", "lease", "worker"];

  await t.step("writes under a lease only while its owner holds it", async () => {
    using kv = await Deno.openKv(":memory:");
    const book = new CheckpointBook(new KvCheckpointStore(kv), () => 7);
    const position = async () => (await kv.get<{ position: string }>(KEY)).value?.position;

    await kv.set(LEASE, { owner: "a", expiresAt: 1_000 });
    book.save("worker", "0000000000000001", 0, ["task.*"], "a");
    await book.flush();
    assert.equal(await position(), "0000000000000001");

    // Another process took the lease over: the old owner cannot move it back.
    await kv.set(LEASE, { owner: "b", expiresAt: 2_000 });
    book.save("worker", "0000000000000000", 0, ["task.*"], "a");
    await book.flush();
    assert.equal(await position(), "0000000000000001");

    book.save("worker", "0000000000000005", 0, ["task.*"], "b");
    await book.flush();
    assert.equal(await position(), "0000000000000005");

    // Nobody holds it: nothing is written for an owner.
    await kv.delete(LEASE);
    book.save("worker", "0000000000000006", 0, ["task.*"], "b");
    await book.flush();
    assert.equal(await position(), "0000000000000005");
  });

  await t.step(
    "a state change's checkpoint waits for no queued write, and none moves it back",
    async () => {
      const book = new CheckpointBook(new MemoryCheckpointStore(), () => 7);
      book.save("worker", "0000000000000003", 0, ["task.*"]);
      let appended = false;
      const committing = book.withState("worker", "0000000000000004", 0, ["task.*"], "1", () => {
        appended = true;
        return Promise.resolve();
      });
      // The queued write waits out its interval; the state change does not wait for it.
      for (let i = 0; i < 10; i++) await null;
      assert.equal(appended, true);
      await committing;
      // A write of an earlier position queued now is dropped too.
      book.save("worker", "0000000000000002", 0, ["task.*"]);
      await book.flush();
      assert.equal(
        (await book.load("worker"))?.position,
        undefined,
        "the effect was never applied",
      );
    },
  );

  await t.step("writes without a lease when no owner is given", async () => {
    using kv = await Deno.openKv(":memory:");
    const book = new CheckpointBook(new KvCheckpointStore(kv), () => 7);
    book.save("worker", "0000000000000003", 1, ["task.*"]);
    await book.flush();
    assert.deepEqual((await kv.get(KEY)).value, {
      position: "0000000000000003",
      failures: 1,
      updatedAt: 7,
      subscribe: ["task.*"],
    });
    assert.deepEqual(await book.load("worker"), {
      position: "0000000000000003",
      failures: 1,
      updatedAt: 7,
      subscribe: ["task.*"],
    });
  });

  await t.step("load and save retry a database that is locked for a while", async () => {
    using kv = await Deno.openKv(":memory:");
    await kv.set(KEY, { position: "0000000000000003", failures: 1, updatedAt: 5 });
    // Another process holds the write lock for the next few operations.
    let locked = 3;
    const busy = () => {
      if (locked-- > 0) throw new Error("database is locked");
    };
    const flaky = {
      get: (key: Deno.KvKey) => (busy(), kv.get(key)),
      set: (key: Deno.KvKey, value: unknown) => (busy(), kv.set(key, value)),
    } as unknown as Deno.Kv;
    const book = new CheckpointBook(new KvCheckpointStore(flaky), () => 9);
    assert.equal((await book.load("worker"))?.position, "0000000000000003");
    assert.ok(locked < 0, "the locked reads were tried again");
    locked = 2;
    book.save("worker", "0000000000000004", 1, ["task.*"]);
    await book.flush();
    assert.equal((await kv.get<{ position: string }>(KEY)).value?.position, "0000000000000004");
  });
});
