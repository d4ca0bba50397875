import assert from "node:assert/strict";
import denoJson from "../../deno.json" with { type: "json" };
import { findDenort, NO_DENORT_MESSAGE } from "../../scripts/compile.ts";

const SCRIPT = new URL("../../scripts/compile.ts", import.meta.url).pathname;

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

Deno.test("deno task compile", async (t) => {
  const denort = await findDenort();
  const dir = await Deno.makeTempDir();
  const output = `${dir}/toka${Deno.build.os === "windows" ? ".exe" : ""}`;
  try {
    await t.step({
      name: "without denort: says how to provide one and exits 0 (skipped where a denort is found)",
      ignore: denort !== undefined,
      fn: async () => {
        const { code, out } = await compile(output);
        assert.equal(code, 0);
        assert.equal(out, `${NO_DENORT_MESSAGE}\n`);
        await assert.rejects(Deno.stat(output), Deno.errors.NotFound);
      },
    });

    await t.step({
      name:
        "with denort: the binary prints the version (skipped without DENORT_BIN or a cached denort)",
      ignore: denort === undefined,
      fn: async () => {
        const { code, out, err } = await compile(output);
        assert.equal(code, 0, err);
        assert.match(out, /Built .* \(toka /);
        const run = await new Deno.Command(output, { args: ["--version"] }).output();
        assert.equal(new TextDecoder().decode(run.stdout), `toka ${denoJson.version}\n`);
      },
    });

    await t.step("a runtime that is not denort is caught by the smoke test: exit 1", async () => {
      // The deno binary compiles fine as a base but ignores the embedded program.
      const { code, err } = await compile(output, { DENORT_BIN: Deno.execPath() });
      assert.equal(code, 1);
      assert.match(err, /^error: .* --version printed "deno /m);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
