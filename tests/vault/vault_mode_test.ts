// The vault holds the secret pool: it is made readable by its owner only (folder 0700, files
// 0600, SQLite's -wal and -shm too), and an existing vault that others may read is warned of
// once (issue 17 item 2).
import assert from "node:assert/strict";
import { join } from "node:path";
import { reset } from "@logtape/logtape";
import { recordLogs } from "../runtime/_helpers.ts";
import { openVault } from "../../vault/mod.ts";
import { main } from "../../cli.ts";
import { hasNoStackTrace, recordingIo } from "../cli/_fakes.ts";

const mode = async (path: string) => (await Deno.stat(path)).mode! & 0o777;
const WARNING =
  /^The vault at ".*" is open to other accounts \(mode 0644\): its secret pool mints tokens; run chmod 600 on it and its -wal and -shm files$/;

Deno.test("vault file modes", { ignore: Deno.build.os === "windows" }, async (t) => {
  const dir = await Deno.realPath(await Deno.makeTempDir());
  try {
    await t.step("openVault on a new path: folders 0700, file, -wal and -shm 0600", async () => {
      const path = join(dir, "a", ".toka", "toka.kv");
      const warnings: string[] = [];
      const vault = await openVault(path, { warn: (line) => warnings.push(line) });
      await vault.append("s", [{ kind: "x.happened" }]);
      try {
        assert.equal(await mode(join(dir, "a")), 0o700);
        assert.equal(await mode(join(dir, "a", ".toka")), 0o700);
        for (const file of [path, `${path}-wal`, `${path}-shm`]) {
          assert.equal(await mode(file), 0o600, file);
        }
      } finally {
        await vault.close();
      }
      assert.deepEqual(warnings, []);
    });

    await t.step("an existing folder keeps its mode", async () => {
      await Deno.mkdir(join(dir, "shared"), { mode: 0o755 });
      await Deno.chmod(join(dir, "shared"), 0o755);
      const vault = await openVault(join(dir, "shared", "v.kv"));
      await vault.close();
      assert.equal(await mode(join(dir, "shared")), 0o755);
      assert.equal(await mode(join(dir, "shared", "v.kv")), 0o600);
    });

    await t.step("an existing 0644 vault is warned of once, and left as it is", async () => {
      const path = join(dir, "old.kv");
      (await openVault(path)).close();
      await Deno.chmod(path, 0o644);
      const warnings: string[] = [];
      const warn = (line: string) => warnings.push(line);
      await (await openVault(path, { warn })).close();
      await (await openVault(path, { warn })).close();
      assert.equal(warnings.length, 1, warnings.join("\n"));
      assert.match(warnings[0], WARNING);
      assert.equal(await mode(path), 0o644);
    });

    await t.step("without warn, a logtape warning under toka.vault", async () => {
      const path = join(dir, "logged.kv");
      await (await openVault(path)).close();
      await Deno.chmod(path, 0o640);
      const records = await recordLogs("warning", ["toka", "vault"]);
      try {
        await (await openVault(path)).close();
      } finally {
        await reset();
      }
      assert.equal(records.length, 1);
      assert.equal(records[0].level, "warning");
      assert.match(String(records[0].message.join("")), /\(mode 0640\)/);
    });

    await t.step("a 0600 vault is not warned of", async () => {
      const path = join(dir, "private.kv");
      await (await openVault(path)).close();
      const warnings: string[] = [];
      await (await openVault(path, { warn: (line) => warnings.push(line) })).close();
      assert.deepEqual(warnings, []);
    });

    await t.step("toka init makes .toka 0700 and toka.kv 0600", async () => {
      const project = join(dir, "hello");
      const io = recordingIo();
      assert.equal(await main(["init", project], io), 0, io.err.join(""));
      assert.equal(await mode(join(project, ".toka")), 0o700);
      assert.equal(await mode(join(project, ".toka", "storage")), 0o700);
      assert.equal(await mode(join(project, ".toka", "toka.kv")), 0o600);
    });

    await t.step("the CLI says it in one stderr line for a 0644 vault", async () => {
      const path = join(dir, "cli.kv");
      await (await openVault(path)).close();
      await Deno.chmod(path, 0o644);
      const io = recordingIo();
      assert.equal(await main(["--db", path, "events", "stats"], io), 0, io.err.join(""));
      assert.ok(hasNoStackTrace(io));
      const lines = io.errLines();
      assert.equal(lines.length, 1, lines.join("\n"));
      assert.match(lines[0].replace(/^warning: /, ""), WARNING);
      assert.ok(lines[0].startsWith("warning: "), lines[0]);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
