// `toka auth ...` as real processes: a rotation, issue or revocation persists in the KV file
// for the next process.
import assert from "node:assert/strict";

const CLI = new URL("../../cli.ts", import.meta.url).pathname;

interface Result {
  code: number;
  out: string;
  err: string;
}

async function toka(args: string[], env: Record<string, string> = {}): Promise<Result> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    // Whatever the caller's shell holds must not leak in.
    env: { NO_COLOR: "1", TOKA_MASTER_KEY: "", TOKA_DB: "", ...env },
  }).output();
  const decoder = new TextDecoder();
  return { code, out: decoder.decode(stdout), err: decoder.decode(stderr) };
}

function status(result: Result): { activeKid: string; secrets: { kid: string; state: string }[] } {
  assert.equal(result.err, "");
  assert.equal(result.code, 0);
  return JSON.parse(result.out);
}

Deno.test("toka auth e2e", async (t) => {
  const dir = await Deno.makeTempDir();
  const db = `${dir}/t.kv`;
  try {
    await t.step("rotate-secret persists: a new process sees the new kid active", async () => {
      // Status only reads: no vault yet, and it creates none.
      const none = await toka(["--db", db, "auth", "status"]);
      assert.deepEqual([none.code, none.err], [1, `error: No vault at "${db}"\n`]);
      assert.equal(
        (await toka(["--db", db, "auth", "issue", "--sub", "a", "--perm", "a:b"])).code,
        0,
      );
      const before = status(await toka(["--db", db, "--json", "auth", "status"]));
      const rotated = await toka(["--db", db, "auth", "rotate-secret"]);
      assert.equal(rotated.err, "");
      assert.equal(rotated.code, 0);
      const match = /^✅ Secret rotated successfully\nkid: (\S+)\n$/.exec(rotated.out);
      assert.ok(match, rotated.out);
      const after = status(await toka(["--db", db, "--json", "auth", "status"]));
      assert.equal(after.activeKid, match[1]);
      assert.deepEqual(after.secrets.map((s) => [s.kid, s.state]), [
        [match[1], "active"],
        [before.activeKid, "retired"],
      ]);
    });

    await t.step("TOKA_DB names the vault when --db is absent", async () => {
      const other = `${dir}/env.kv`;
      const rotated = await toka(["--json", "auth", "rotate-secret"], { TOKA_DB: other });
      assert.equal(rotated.code, 0, rotated.err);
      const { kid } = JSON.parse(rotated.out);
      const after = status(await toka(["--json", "auth", "status"], { TOKA_DB: other }));
      assert.equal(after.activeKid, kid);
      assert.equal(after.secrets.length, 2);
      // The --db file was not touched.
      const first = status(await toka(["--db", db, "--json", "auth", "status"]));
      assert.notEqual(first.activeKid, kid);
    });

    await t.step("issue, verify, revoke and verify again, each in its own process", async () => {
      const issued = await toka(["--db", db, "auth", "issue", "--sub", "a", "--perm", "a:b"]);
      assert.equal(issued.code, 0, issued.err);
      const token = issued.out.trim();
      assert.equal(issued.out, `${token}\n`);
      const verified = await toka(["--db", db, "--json", "auth", "verify", token]);
      assert.equal(verified.code, 0, verified.err);
      const { claims } = JSON.parse(verified.out);
      const revoked = await toka([
        "--db",
        db,
        "auth",
        "revoke",
        claims.jti,
        "--exp",
        String(claims.exp),
      ]);
      assert.equal(revoked.code, 0, revoked.err);
      const refused = await toka(["--db", db, "auth", "verify", token]);
      assert.equal(refused.code, 1);
      assert.equal(refused.out, "");
      assert.equal(refused.err, `error: Token ${JSON.stringify(claims.jti)} has been revoked\n`);
    });

    await t.step("a usage error exits 2 in one line", async () => {
      const bad = await toka([
        "--db",
        db,
        "auth",
        "issue",
        "--sub",
        "a",
        "--perm",
        "a:b",
        "--ttl",
        "0",
      ]);
      assert.equal(bad.code, 2);
      assert.equal(bad.out, "");
      assert.match(bad.err, /^error: option '--ttl <seconds>' argument '0' is invalid[^\n]*\n$/);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
