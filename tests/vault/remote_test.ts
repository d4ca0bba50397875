// The vault opened by URL, over KV Connect, against a test server backed by local Deno KV.
import assert from "node:assert/strict";
import { openVault } from "../../vault/mod.ts";
import { runContract } from "./contract.ts";
import { KvConnectServer, useTestToken } from "./_kv_connect_server.ts";

/** Keys of several types, so ordering across and within types is compared. */
const KEYS: Deno.KvKey[] = [
  ["a"],
  ["a", new Uint8Array([])],
  ["a", new Uint8Array([0])],
  ["a", new Uint8Array([0, 0])],
  ["a", new Uint8Array([0, 1])],
  ["a", new Uint8Array([1])],
  ["a", new Uint8Array([255])],
  ["a", ""],
  ["a", "\u0000"],
  ["a", "b"],
  ["a", "b", 1],
  ["a", "ba"],
  ["a", "é"],
  ["a", -1n],
  ["a", 0n],
  ["a", 2n ** 70n],
  ["a", -Infinity],
  ["a", -0.5],
  ["a", 0],
  ["a", 1.5],
  ["a", NaN],
  ["a", false],
  ["a", true],
  ["b"],
  [1],
];

async function listed(kv: Deno.Kv, selector: Deno.KvListSelector, options?: Deno.KvListOptions) {
  const out: [Deno.KvKey, unknown][] = [];
  for await (const entry of kv.list(selector, options)) out.push([entry.key, entry.value]);
  return out;
}

/** Applies the same operations to a kv and returns what it observed, minus versionstamps. */
async function exercise(kv: Deno.Kv): Promise<unknown[]> {
  const seen: unknown[] = [];
  // Inserted in a scrambled order, so the order read back is the store's.
  for (let i = 0; i < KEYS.length; i++) {
    const j = (i * 7) % KEYS.length;
    assert.ok((await kv.set(KEYS[j], { n: j, key: KEYS[j] })).ok);
  }
  // One value of each encoding: V8 above, LE64 and raw bytes here.
  await kv.set(["v", "u64"], new Deno.KvU64(2n ** 64n - 1n));
  await kv.set(["v", "bytes"], new Uint8Array([0, 1, 2, 255]));
  await kv.set(["v", "big"], "x".repeat(60_000));
  seen.push(await listed(kv, { prefix: [] }));
  seen.push(await listed(kv, { prefix: ["a"] }, { reverse: true }));
  seen.push(await listed(kv, { prefix: ["a"] }, { limit: 5 }));
  seen.push(await listed(kv, { prefix: ["a"] }, { limit: 5, reverse: true }));
  // Small batches make the client page with cursors.
  seen.push(await listed(kv, { prefix: ["a"] }, { batchSize: 3 }));
  seen.push(await listed(kv, { prefix: ["a"] }, { batchSize: 2, reverse: true, limit: 9 }));
  seen.push(await listed(kv, { start: ["a", "b"], end: ["a", 0n] }));
  seen.push(await listed(kv, { prefix: ["a"], start: ["a", "b"] }, { reverse: true }));
  seen.push(await listed(kv, { prefix: ["a"], end: ["a", new Uint8Array([1])] }));
  const iter = kv.list({ prefix: ["a"] }, { limit: 4 });
  for await (const _ of iter) { /* drain */ }
  seen.push(await listed(kv, { prefix: ["a"] }, { cursor: iter.cursor, limit: 4 }));
  seen.push(
    (await kv.getMany([["a", "b"], ["missing"], ["v", "u64"], ["v", "bytes"]])).map((e) => [
      e.key,
      e.value,
      e.versionstamp === null,
    ]),
  );
  // Checks: a stale or absent versionstamp fails the whole commit, which changes nothing.
  const before = await kv.get(["a", "b"]);
  const failed = await kv.atomic().check({ key: ["a", "b"], versionstamp: null })
    .set(["a", "b"], "lost").delete(["a"]).set(["new"], 1).commit();
  seen.push(failed.ok);
  const passed = await kv.atomic()
    .check(before)
    .check({ key: ["nothing"], versionstamp: null })
    .set(["a", "b"], "won").delete(["a"]).commit();
  seen.push(passed.ok);
  if (passed.ok) seen.push((await kv.get(["a", "b"])).versionstamp === passed.versionstamp);
  seen.push((await kv.atomic().check(before).set(["a", "b"], "stale").commit()).ok);
  seen.push(await listed(kv, { prefix: [] }));
  return seen;
}

Deno.test("contract: openVault on an http:// URL (KV Connect)", async (t) => {
  // The server's clock, which the expiry step moves instead of waiting.
  let skew = 0;
  const server = await KvConnectServer.start({
    accessToken: useTestToken(),
    clock: () => Date.now() + skew,
  });
  try {
    {
      let n = 0;
      await runContract(t, async (clock) => {
        const name = `store-${n++}`;
        const url = await server.create(name);
        return { store: await openVault(url, { clock }), cleanup: () => server.drop(name) };
      });
      assert.ok(n > 0);
      // Deno's client offers versions 1 to 3 and takes the highest the server offers.
      assert.deepEqual([...server.negotiated], [3]);
      assert.ok(server.served.snapshot_read > 0 && server.served.atomic_write > 0);

      await t.step("the server answers like a local Deno KV", async () => {
        const remote = await Deno.openKv(await server.create("differential"));
        const local = await Deno.openKv(":memory:");
        try {
          assert.deepEqual(await exercise(remote), await exercise(local));
          const a = await remote.set(["order"], 1);
          const b = await remote.set(["order"], 2);
          assert.ok(a.versionstamp < b.versionstamp);
        } finally {
          remote.close();
          local.close();
          await server.drop("differential");
        }
      });

      await t.step("an expired value is gone from reads and checks", async () => {
        const kv = await Deno.openKv(await server.create("expiry"));
        try {
          // Long enough to outlast the requests up to the check that it is still there.
          await kv.set(["short"], "a", { expireIn: 30_000 });
          await kv.set(["long"], "b", { expireIn: 60_000 });
          assert.equal((await kv.get(["short"])).value, "a");
          skew = 30_000;
          assert.equal((await kv.get(["short"])).value, null);
          assert.deepEqual((await listed(kv, { prefix: [] })).map(([key]) => key), [["long"]]);
          const commit = await kv.atomic().check({ key: ["short"], versionstamp: null })
            .set(["short"], "c").commit();
          assert.ok(commit.ok);
          assert.equal((await kv.get(["short"])).value, "c");
        } finally {
          skew = 0;
          kv.close();
          await server.drop("expiry");
        }
      });
    }

    await t.step("a wrong access token fails openVault with one line", async () => {
      // The token in the environment is the shared test token; this server wants another.
      const other = await KvConnectServer.start({ accessToken: "another-token" });
      const url = await other.create("wrong-token");
      try {
        // Deno's client does the metadata exchange within Deno.openKv, so the open
        // itself fails, and openVault wraps the reason.
        const error = await openVault(url).then(
          () => assert.fail("openVault resolved"),
          (error: unknown) => error,
        );
        assert.ok(error instanceof TypeError);
        assert.doesNotMatch(error.message, /\n/);
        assert.ok(error.message.startsWith(`Cannot open the vault at "${url}": `), error.message);
        assert.match(error.message, /401 Unauthorized: the access token is not valid/);
      } finally {
        await other.close();
      }
    });
  } finally {
    await server.close();
  }
});

for (const version of [1, 2]) {
  Deno.test(`openVault over KV Connect protocol version ${version}`, async () => {
    const server = await KvConnectServer.start({
      accessToken: useTestToken(),
      versions: [version],
    });
    try {
      const vault = await openVault(await server.create("v"));
      try {
        await vault.append("s", [{ kind: "a" }, { kind: "b", payload: { n: 1 } }]);
        const kinds = [];
        for await (const record of vault.read({ stream: "s" })) kinds.push(record.kind);
        assert.deepEqual(kinds, ["a", "b"]);
      } finally {
        await vault.close();
      }
      assert.deepEqual([...server.negotiated], [version]);
    } finally {
      await server.close();
    }
  });
}
