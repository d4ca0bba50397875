// The README's quick start, run as a user runs it (with `toka` being this checkout's CLI)
// and checked for what its comments say.
import assert from "node:assert/strict";
import { join } from "node:path";
import { section } from "./_readme.ts";
import { CLI, CONFIG, TokaProcess, TRUST_FILE, waitForEvent } from "../cli/_process.ts";

const quickStart = section("## Quick start");
const blocks = (language: string) =>
  [...quickStart.matchAll(new RegExp("```" + language + "\\n([\\s\\S]*?)```", "g"))].map((m) =>
    m[1]
  );

/** Runs a shell script in which `toka` is this checkout's CLI, in a clean environment. */
async function bash(script: string, cwd: string): Promise<{ code: number; out: string }> {
  const toka = `toka() { "${Deno.execPath()}" run -A --quiet --config "${CONFIG}" "${CLI}" "$@"; }`;
  const { code, stdout, stderr } = await new Deno.Command("bash", {
    args: ["-ec", `${toka}\n${script}`],
    cwd,
    clearEnv: true,
    env: {
      NO_COLOR: "1",
      PATH: Deno.env.get("PATH") ?? "",
      HOME: Deno.env.get("HOME") ?? cwd,
      TOKA_TRUST_FILE: TRUST_FILE,
      ...(Deno.env.get("DENO_DIR") && { DENO_DIR: Deno.env.get("DENO_DIR") }),
    },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const out = new TextDecoder().decode(stdout);
  assert.equal(code, 0, new TextDecoder().decode(stderr));
  return { code, out };
}

Deno.test("README: the quick start does what its comments say", async (t) => {
  const [deno, install, host, other] = blocks("sh");
  const dir = await Deno.makeTempDir();
  try {
    await t.step("Deno comes from npm, pinned", () => {
      assert.equal(deno.trim(), "npm install -g deno@2.9.6");
    });

    await t.step("the installed toka is the checkout's", async () => {
      const [task, version] = install.trim().split("\n");
      assert.match(task, /^deno task install +# deno install -g -A --unstable-kv -f -n toka/);
      const json = JSON.parse(await Deno.readTextFile(CONFIG));
      assert.equal(`deno task install        # ${json.tasks.install}`, task);
      assert.equal(version, "toka --version           # toka 0.1.0");
      assert.equal((await bash("toka --version", dir)).out, "toka 0.1.0\n");
    });

    const hello = join(dir, "hello");
    await t.step("init, then run hosts the greeter; emit, list and a tool call", async () => {
      const lines = host.trim().split("\n").map((line) => line.replace(/ +#.*$/, ""));
      assert.deepEqual(lines, ["toka init hello", "cd hello", "toka run"]);
      await bash(lines.slice(0, 2).join("\n"), dir);
      const runtime = new TokaProcess(["run"], { cwd: hello });
      try {
        await runtime.waitFor(/Hosting "greeter" on/);
        const [emit, ...rest] = other.trim().split("\n");
        const id = (await bash(emit, hello)).out.trim();
        assert.match(id, /^[0-9A-Z]{26}$/);
        // A person types the next line after the agent answered; the test waits for it.
        await waitForEvent(
          join(hello, ".toka/toka.kv"),
          (e) => e.kind === "user.greeted" && e.parents.includes(id),
          "greeting",
        );
        const { out } = await bash(rest.join("\n"), hello);
        assert.match(out, /agent\/greeter#1 {2}user\.greeted {2}\{"text":"Hello Ada"\}\n/);
        assert.match(out, /\n\{\n {2}"text": "hi"\n\}\n/);
        assert.match(out, / toolkit#2 {2}tool\.completed {2}/);
        runtime.kill("SIGINT");
        assert.equal((await runtime.exit()).code, 0, runtime.err);
      } finally {
        await runtime.close();
      }
    });

    await t.step("the MCP client settings are those docs/mcp.md shows and its test runs", () => {
      const [shown] = blocks("json").map((json) => JSON.parse(json));
      const match = section("## An MCP server: `toka mcp serve`").match(/```json\n([\s\S]*?)```/);
      const tested = JSON.parse(match![1]);
      assert.equal(shown.mcpServers.toka.args[1], "/home/me/hello/.toka/toka.kv");
      shown.mcpServers.toka.args[1] = tested.mcpServers.toka.args[1];
      assert.deepEqual(shown, tested);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
