// `deno task compile`: a plain deno compile first, then DENORT_BIN; every failed attempt
// said with its reason; never a dist/toka that is not a working Toka. Where a denort is
// available, the built binary goes through init → emit → run → events list.
import assert from "node:assert/strict";
import { join } from "node:path";
import denoJson from "../../deno.json" with { type: "json" };
import { findDenort } from "../../scripts/compile.ts";
import { toka, TokaProcess, waitForEvent } from "./_process.ts";

const SCRIPT = new URL("../../scripts/compile.ts", import.meta.url).pathname;
// Makes a download fail at once (where it would fail anyway, it takes ~30 s of DNS retries).
const NO_DOWNLOAD = { HTTPS_PROXY: "http://127.0.0.1:9", https_proxy: "http://127.0.0.1:9" };

async function compile(output: string, env: Record<string, string> = {}) {
  const result = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", SCRIPT, output],
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: result.code,
    out: decoder.decode(result.stdout),
    err: decoder.decode(result.stderr),
  };
}

async function exists(path: string): Promise<boolean> {
  return await Deno.lstat(path).then(() => true, () => false);
}

Deno.test("deno task compile", async (t) => {
  const denort = await findDenort();
  // A cached denort lets a plain deno compile succeed offline, so the failures below
  // cannot happen; DENORT_BIN set by the user is used by the last step.
  const cached = denort !== undefined && !Deno.env.get("DENORT_BIN");
  const dir = await Deno.makeTempDir();
  const output = join(dir, `toka${Deno.build.os === "windows" ? ".exe" : ""}`);
  try {
    await t.step({
      name: "no download and no DENORT_BIN: both reasons, exit 1, no binary",
      ignore: cached,
      fn: async () => {
        const { code, out, err } = await compile(output, { ...NO_DOWNLOAD, DENORT_BIN: "" });
        assert.equal(code, 1);
        assert.equal(out, "");
        const lines = err.trimEnd().split("\n");
        assert.match(
          lines[0],
          /^error: plain deno compile \(downloads denort unless cached\) failed: error sending request for url \(https:\/\/dl\.deno\.land\/.*denort.*\): /,
        );
        assert.match(lines[1], /^error: DENORT_BIN is not set: point it at a denort binary/);
        assert.match(lines[2], /^error: .*toka was not built$/);
        assert.equal(lines.length, 3, err);
        assert.equal(await exists(output), false);
        assert.deepEqual([...Deno.readDirSync(dir)], [], "no staging file is left");
      },
    });

    await t.step({
      name: "DENORT_BIN that is not denort: caught by --version, and a stale bad binary removed",
      ignore: cached,
      fn: async () => {
        await Deno.writeTextFile(output, "#!/bin/sh\necho not toka\n", { mode: 0o755 });
        // The deno binary compiles fine as a base but ignores the embedded program.
        const env = { ...NO_DOWNLOAD, DENORT_BIN: Deno.execPath() };
        const { code, err } = await compile(output, env);
        assert.equal(code, 1);
        const lines = err.trimEnd().split("\n");
        assert.match(lines[0], /^error: plain deno compile .* failed: /);
        assert.match(
          lines[1],
          /^error: deno compile with DENORT_BIN=\S+ built a binary that is not Toka: --version printed "deno /,
        );
        assert.match(
          lines[2],
          /toka was not built; the one there was not a working Toka and was removed$/,
        );
        assert.equal(await exists(output), false);
        assert.deepEqual([...Deno.readDirSync(dir)], []);
      },
    });

    await t.step({
      name: "DENORT_BIN that does not exist: its reason is said too",
      ignore: cached,
      fn: async () => {
        const env = { ...NO_DOWNLOAD, DENORT_BIN: join(dir, "no-denort") };
        const { code, err } = await compile(output, env);
        assert.equal(code, 1);
        assert.match(err, /^error: deno compile with DENORT_BIN=\S+no-denort failed: \S/m);
        assert.equal(await exists(output), false);
      },
    });

    await t.step({
      name: denort === undefined
        ? "SKIPPED: no denort here (no DENORT_BIN, none cached, no download): the built binary's init → emit → run → events list is not run"
        : "the built binary: init → emit → run → events list",
      ignore: denort === undefined,
      fn: async () => {
        const { code, out, err } = await compile(output);
        assert.equal(code, 0, err);
        assert.match(out, /^Built .*toka \(toka \S+\) with /);
        const version = await new Deno.Command(output, { args: ["--version"] }).output();
        assert.equal(new TextDecoder().decode(version.stdout), `toka ${denoJson.version}\n`);
        const binary = { command: [output] };
        const project = join(dir, "project");
        const init = await toka(["init", project], binary);
        assert.equal(init.code, 0, init.err);
        const emitted = await toka(["emit", "user.joined", "--payload", '"Ada"'], {
          ...binary,
          cwd: project,
        });
        assert.equal(emitted.code, 0, emitted.err);
        const host = new TokaProcess(["run"], { ...binary, cwd: project });
        try {
          await waitForEvent(
            join(project, ".toka/toka.kv"),
            (e) => e.kind === "user.greeted",
            "the greeting",
          );
          host.kill("SIGTERM");
          assert.equal((await host.exit()).code, 0, host.err);
        } finally {
          await host.close();
        }
        const listed = await toka(["events", "list"], { ...binary, cwd: project });
        assert.match(listed.out, /user\.greeted {2}\{"text":"Hello Ada"\}/);
      },
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
