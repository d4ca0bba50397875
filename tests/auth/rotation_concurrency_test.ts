import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { KvTokenAuthority } from "../../auth/mod.ts";

const WORKER = fileURLToPath(new URL("./_rotate_worker.ts", import.meta.url));
const PROCESSES = 6;
const ROTATIONS = 5;

Deno.test("concurrent rotations from several processes all land", async (t) => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/toka.kv`;
  try {
    await t.step(
      `${PROCESSES} processes bootstrap and rotate ${ROTATIONS} times each`,
      async () => {
        const outputs = await Promise.all(
          Array.from({ length: PROCESSES }, () =>
            new Deno.Command(Deno.execPath(), {
              args: ["run", "-A", "--unstable-kv", WORKER, path, String(ROTATIONS)],
              stdout: "piped",
              stderr: "piped",
            }).output()),
        );
        const kids: string[] = [];
        for (const out of outputs) {
          const stderr = new TextDecoder().decode(out.stderr);
          assert.equal(out.code, 0, stderr);
          assert.ok(!/locked/i.test(stderr), stderr);
          kids.push(...JSON.parse(new TextDecoder().decode(out.stdout)));
        }
        assert.equal(new Set(kids).size, PROCESSES * ROTATIONS, "every rotation made a new kid");

        using kv = await Deno.openKv(path);
        const status = await (await KvTokenAuthority.open(kv, { vault: "concurrency" })).status();
        const stored = status.secrets.map((s) => s.kid);
        // One bootstrap secret plus every rotation: none lost, none duplicated.
        assert.equal(stored.length, PROCESSES * ROTATIONS + 1);
        assert.equal(new Set(stored).size, stored.length);
        for (const kid of kids) assert.ok(stored.includes(kid), `kid ${kid} was lost`);
        assert.equal(status.secrets.filter((s) => s.state === "active").length, 1);
      },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
