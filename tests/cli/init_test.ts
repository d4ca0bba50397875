// `toka init`: the project it makes works as made (deno check, toka run, toka emit, the
// README's walk-through), and an existing toka.json is never overwritten without --force.
import assert from "node:assert/strict";
import { join } from "node:path";
import { checkConfig, SCHEMA_URL } from "../../cli/_config.ts";
import { openVault } from "../../vault/mod.ts";
import { runToka } from "./_fakes.ts";
import { toka as tokaProcess, TokaProcess, waitForEvent } from "./_process.ts";

const toka = (args: string[], env: Record<string, string> = {}) => runToka(args, { env });

/** Every file under a folder with its bytes, to show that nothing changed. */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const files: Record<string, string> = {};
  const walk = async (path: string) => {
    for await (const entry of Deno.readDir(path)) {
      const full = join(path, entry.name);
      if (entry.isDirectory) await walk(full);
      else {files[full] = (await Deno.stat(full)).mtime!.toISOString() +
          await Deno.readTextFile(full).catch(() => "");}
    }
  };
  await walk(dir);
  return files;
}

Deno.test("toka init", async (t) => {
  const dir = await Deno.makeTempDir();
  const project = join(dir, "hello");
  try {
    await t.step(
      "makes the project and prints what it made and the next two commands",
      async () => {
        const { code, out, errLines } = await toka(["init", project]);
        assert.equal(code, 0, errLines.join("\n"));
        const names = ["toka.json", "agents.ts", "deno.json", ".gitignore", ".toka/storage"];
        const lines = out.split("\n");
        for (const name of names) assert.ok(lines.includes(`Created ${join(project, name)}`), out);
        assert.match(
          out,
          /^Vault .*hello\/\.toka\/toka\.kv holds its first secret \(kid [0-9a-f]+\)$/m,
        );
        // A program on PATH is run from the project's folder, as a user would.
        assert.match(out, /^ {2}cd \S*hello && toka run$/m);
        assert.match(out, /^ {2}cd \S*hello && toka emit user\.joined --payload '"Ada"'$/m);
        const config = JSON.parse(await Deno.readTextFile(join(project, "toka.json")));
        await checkConfig(config, "toka.json");
        assert.equal(config.$schema, SCHEMA_URL);
        assert.deepEqual(config.agents, ["./agents.ts"]);
        // The store and its first secret.
        const status = await toka([
          "--config",
          join(project, "toka.json"),
          "--json",
          "auth",
          "status",
        ]);
        assert.equal(status.code, 0, status.errLines.join("\n"));
        assert.equal(JSON.parse(status.out).secrets.length, 1);
      },
    );

    await t.step("an existing toka.json: exit 1, one line, nothing changed", async () => {
      const before = await snapshot(project);
      const { code, out, errLines } = await toka(["init", project]);
      assert.equal(code, 1);
      assert.equal(out, "");
      assert.deepEqual(errLines, [
        `error: "${
          join(project, "toka.json")
        }" already exists: nothing was changed (--force overwrites it)`,
      ]);
      assert.deepEqual(await snapshot(project), before);
    });

    await t.step("--force rewrites toka.json and keeps the rest", async () => {
      await Deno.writeTextFile(join(project, "toka.json"), "{}");
      await Deno.writeTextFile(join(project, "agents.ts"), "// mine\n");
      const { code, out } = await toka(["init", project, "--force"]);
      assert.equal(code, 0);
      assert.match(out, new RegExp(`^Created ${join(project, "toka.json")}$`, "m"));
      assert.match(
        out,
        new RegExp(`^Kept ${join(project, "agents.ts")} \\(it already existed\\)$`, "m"),
      );
      assert.equal(await Deno.readTextFile(join(project, "agents.ts")), "// mine\n");
      assert.equal(
        JSON.parse(await Deno.readTextFile(join(project, "toka.json"))).db,
        ".toka/toka.kv",
      );
    });

    await t.step("--db is written into toka.json", async () => {
      const other = join(dir, "other");
      const { code } = await toka(["--db", join(dir, "shared/v.kv"), "init", other]);
      assert.equal(code, 0);
      const config = JSON.parse(await Deno.readTextFile(join(other, "toka.json")));
      assert.equal(config.db, join(dir, "shared/v.kv"));
      const vault = await openVault(join(dir, "shared/v.kv"), { create: false });
      await vault.close();
    });

    await t.step("the README walk-through: the agent it made runs and greets", async () => {
      const walk = join(dir, "walk");
      const init = await tokaProcess(["init", "walk"], { cwd: dir });
      assert.equal(init.code, 0, init.err);
      // The deno.json it wrote resolves @toka/runtime for the user's own tools, offline.
      const check = await new Deno.Command(Deno.execPath(), {
        args: ["check", "agents.ts"],
        cwd: walk,
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(check.code, 0, new TextDecoder().decode(check.stderr));
      // As the README shows: cd, run, emit from another terminal, list.
      const host = new TokaProcess(["run"], { cwd: walk });
      try {
        await host.waitFor(/Hosting "greeter" on/);
        const emitted = await tokaProcess(["emit", "user.joined", "--payload", '"Ada"'], {
          cwd: walk,
        });
        assert.equal(emitted.code, 0, emitted.err);
        const id = emitted.out.trim();
        const db = join(walk, ".toka/toka.kv");
        await waitForEvent(
          db,
          (e) => e.kind === "user.greeted" && e.parents.includes(id),
          "greeting",
        );
        const listed = await tokaProcess(["events", "list", "--kind", "user.greeted"], {
          cwd: walk,
        });
        assert.match(listed.out, /agent\/greeter#1 {2}user\.greeted {2}\{"text":"Hello Ada"\}\n$/);
        host.kill("SIGINT");
        assert.equal((await host.exit()).code, 0, host.err);
      } finally {
        await host.close();
      }
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
