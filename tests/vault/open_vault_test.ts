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
