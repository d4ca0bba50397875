// `deno task install` gives a working `toka` offline: installed into a temporary root,
// it prints help and runs the demo from another folder.
import assert from "node:assert/strict";
import { join } from "node:path";
import denoJson from "../../deno.json" with { type: "json" };
import { TokaProcess } from "./_process.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const decoder = new TextDecoder();

async function run(command: string, args: string[], options: Deno.CommandOptions = {}) {
  const result = await new Deno.Command(command, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    ...options,
  }).output();
  return {
    code: result.code,
    out: decoder.decode(result.stdout),
    err: decoder.decode(result.stderr),
  };
}

Deno.test("deno task install", async (t) => {
  const dir = await Deno.makeTempDir();
  const root = join(dir, "root");
  const work = join(dir, "work");
  await Deno.mkdir(work);
  const toka = join(root, "bin", Deno.build.os === "windows" ? "toka.cmd" : "toka");
  try {
    await t.step("installs a toka script into DENO_INSTALL_ROOT's bin", async () => {
      assert.match(
        denoJson.tasks.install,
        /^deno install -g -A --unstable-kv -f -n toka --config deno\.json cli\.ts$/,
      );
      const { code, err } = await run(Deno.execPath(), ["task", "install"], {
        cwd: ROOT,
        env: { DENO_INSTALL_ROOT: root },
      });
      assert.equal(code, 0, err);
      assert.ok((await Deno.stat(toka)).isFile);
    });

    await t.step("toka --help and toka --version", async () => {
      const help = await run(toka, ["--help"], { cwd: work });
      assert.equal(help.code, 0, help.err);
      assert.match(help.out, /^Usage: toka \[options\] \[command\]/);
      const version = await run(toka, ["--version"], { cwd: work });
      assert.equal(version.out, `toka ${denoJson.version}\n`);
    });

    await t.step("toka demo in another folder: no loss, no duplicate", async () => {
      const demo = await run(toka, ["demo"], { cwd: work });
      assert.equal(demo.code, 0, demo.err);
      assert.match(demo.out, /Summary: 6 tasks, 6 planned, 6 completed, 0 duplicates, 0 lost/);
      assert.ok((await Deno.stat(join(work, ".toka/toka.kv"))).isFile);
    });

    await t.step("toka init through the installed toka prints cd hello && toka run", async () => {
      // Issue 19 item 10: the next steps named the checkout's cli.ts.
      const path = `${join(root, "bin")}:${Deno.env.get("PATH") ?? ""}`;
      const init = await run(toka, ["init", "hello"], { cwd: work, env: { PATH: path } });
      assert.equal(init.code, 0, init.err);
      const lines = init.out.split("\n");
      assert.ok(lines.includes("  cd hello && toka run"), init.out);
      assert.ok(lines.includes(`  cd hello && toka emit user.joined --payload '"Ada"'`), init.out);
      assert.ok(!init.out.includes("cli.ts"), init.out);
    });

    await t.step("toka run in that project uses its deno.json imports", async () => {
      // Issue 19 item 1: a bare specifier the project maps was "not in import map".
      const hello = join(work, "hello");
      const config = JSON.parse(await Deno.readTextFile(join(hello, "deno.json")));
      config.imports.greet = "./lib/greet.ts";
      await Deno.writeTextFile(join(hello, "deno.json"), JSON.stringify(config));
      await Deno.mkdir(join(hello, "lib"));
      await Deno.writeTextFile(join(hello, "lib/greet.ts"), 'export const name = "greeter2";\n');
      await Deno.writeTextFile(
        join(hello, "greet_agents.ts"),
        `import { defineAgent } from "@toka/runtime";
import { name } from "greet";
export const agent = defineAgent({ name, subscribe: ["x"], handle() {} });`,
      );
      const hosting = new TokaProcess(["run", "greet_agents.ts"], { cwd: hello, command: [toka] });
      try {
        await hosting.waitFor(/Hosting "greeter2"/);
        hosting.kill("SIGTERM");
        assert.equal((await hosting.exit()).code, 0, hosting.err);
        assert.match(hosting.err, /Stopped/);
      } finally {
        await hosting.close();
      }
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
