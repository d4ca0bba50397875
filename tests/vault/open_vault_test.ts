// openVault's check before Deno KV opens a file: a SQLite file that another
// process is just creating (header written, no table yet) is a vault being
// made, not a foreign file; one that holds other tables is not a vault.
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { openVault } from "../../vault/mod.ts";
import { TokaError } from "../../runtime/mod.ts";

Deno.test("openVault and a SQLite file without Deno KV's table", async (t) => {
  const dir = await Deno.makeTempDir();
  try {
    await t.step(
      "one with no table yet opens for writing (another process is making it)",
      async () => {
        const path = `${dir}/fresh.kv`;
        const db = new DatabaseSync(path);
        db.exec("PRAGMA journal_mode = WAL"); // what Deno KV does first: the header is written
        db.close();
        assert.ok((await Deno.stat(path)).size > 0);
        const vault = await openVault(path);
        try {
          await vault.append("s", [{ kind: "a.b" }]);
          assert.equal((await vault.stats()).events, 1);
        } finally {
          await vault.close();
        }
      },
    );

    await t.step("read-only, one with no table yet is not a vault", async () => {
      const path = `${dir}/fresh-ro.kv`;
      const db = new DatabaseSync(path);
      db.exec("PRAGMA journal_mode = WAL");
      db.close();
      await assert.rejects(
        () => openVault(path, { readOnly: true }),
        (error) =>
          error instanceof TokaError && error.code === "not_a_vault" &&
          error.message === `"${path}" is not a vault: it holds no Deno KV data`,
      );
    });

    await t.step(
      "one holding another application's tables is not a vault, and is left as it was",
      async () => {
        const path = `${dir}/other.db`;
        const db = new DatabaseSync(path);
        db.exec("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('keep me')");
        db.close();
        const before = await Deno.readFile(path);
        await assert.rejects(
          () => openVault(path),
          (error) => error instanceof TokaError && error.code === "not_a_vault",
        );
        assert.deepEqual(await Deno.readFile(path), before);
      },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * A vault file of `batches` × 100 events whose stream index is gone, as a writer killed before it
 * indexed leaves it (an index for the next writer to catch up), and a list of every key with its
 * versionstamp, to show that nothing was written.
 */
async function laggingVault(path: string, batches: number) {
  const writer = await openVault(path);
  for (let i = 0; i < batches; i++) {
    await writer.append("s", Array.from({ length: 100 }, () => ({ kind: "e" })));
  }
  await writer.close();
  const kv = await Deno.openKv(path);
  await kv.delete(["vault", "ix"]);
  for await (const e of kv.list({ prefix: ["vault", "si"] })) await kv.delete(e.key);
  const stamps = async () => {
    const out: string[] = [];
    for await (const e of kv.list({ prefix: [] })) out.push(`${e.key}@${e.versionstamp}`);
    return out;
  };
  return { kv, stamps };
}

Deno.test("a vault opened to read only writes nothing, not even its stream index", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/ro.kv`;
  try {
    // 3,000 unindexed events (more than a writer leaves at close), which a writing store indexes.
    const { kv, stamps } = await laggingVault(path, 30);
    const before = await stamps();
    const reader = await openVault(path, { readOnly: true });
    await assert.rejects(reader.append("s", [{ kind: "e" }]), {
      name: "TypeError",
      message: "Cannot write: the vault was opened to read only",
    });
    await assert.rejects(reader.importEvents([]), { message: /opened to read only/ });
    assert.equal((await Array.fromAsync(reader.read({ stream: "s", limit: 2 }))).length, 2);
    await reader.close();
    assert.deepEqual(await stamps(), before);
    kv.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a writable vault that appended nothing leaves a lagging stream index as it was", async (t) => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/lag.kv`;
  try {
    const { kv, stamps } = await laggingVault(path, 3);
    const before = await stamps();
    try {
      await t.step("opened, read and closed: nothing written", async () => {
        const vault = await openVault(path);
        assert.equal((await Array.fromAsync(vault.read({ stream: "s", limit: 2 }))).length, 2);
        await vault.close();
        assert.deepEqual(await stamps(), before);
      });

      await t.step("a refused append and an import of nothing new: nothing written", async () => {
        const vault = await openVault(path);
        await assert.rejects(
          vault.append("s", [{ kind: "e" }], { expectedVersion: 1 }),
          { name: "VersionConflictError" },
        );
        const known = await Array.fromAsync(vault.read({ stream: "s", limit: 1 }));
        await vault.importEvents(known);
        await vault.close();
        assert.deepEqual(await stamps(), before);
      });

      await t.step("one that appended catches the index up at close", async () => {
        const vault = await openVault(path);
        await vault.append("t", [{ kind: "e" }]);
        await vault.close();
        assert.equal((await kv.get<number>(["vault", "ix"])).value, 302);
        const entries = await Array.fromAsync(kv.list({ prefix: ["vault", "si"] }));
        assert.deepEqual(entries.map((e) => e.key), [["vault", "si", "s", 1], [
          "vault",
          "si",
          "t",
          1,
        ]]);
      });
    } finally {
      kv.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
