// The real program in a subprocess: argument handling, exit codes, a shared KV file, signals.
import assert from "node:assert/strict";
import { openVault } from "../../vault/mod.ts";
import denoJson from "../../deno.json" with { type: "json" };

const CLI = new URL("../../cli.ts", import.meta.url).pathname;

function toka(args: string[], stdin?: string): Promise<{ code: number; out: string; err: string }> {
  return (async () => {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", CLI, ...args],
      stdin: stdin === undefined ? "null" : "piped",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).spawn();
    if (stdin !== undefined) {
      const writer = child.stdin.getWriter();
      await writer.write(new TextEncoder().encode(stdin));
      await writer.close();
    }
    const { code, stdout, stderr } = await child.output();
    const decoder = new TextDecoder();
    return { code, out: decoder.decode(stdout), err: decoder.decode(stderr) };
  })();
}

Deno.test("toka e2e", async (t) => {
  const dir = await Deno.makeTempDir();
  const db = `${dir}/sub/t.kv`;
  try {
    await t.step("--version prints the version and exits 0", async () => {
      const { code, out, err } = await toka(["--version"]);
      assert.equal(code, 0);
      assert.equal(out, `toka ${denoJson.version}\n`);
      assert.equal(err, "");
    });

    await t.step("usage errors exit 2, failures exit 1, one line each", async () => {
      const usage = await toka(["events", "list", "--limit", "abc"]);
      assert.equal(usage.code, 2);
      assert.equal(usage.out, "");
      assert.match(usage.err, /^error: option '--limit <n>' argument 'abc' is invalid[^\n]*\n$/);
      // A read-only command does not create a vault where none is.
      const missing = await toka(["--db", db, "events", "show", "0".repeat(26)]);
      assert.equal(missing.code, 1);
      assert.equal(missing.err, `error: No vault at "${db}"\n`);
      assert.equal(await Deno.stat(db).then(() => true, () => false), false);
    });

    await t.step("events list --json reads what another process appended", async () => {
      const vault = await openVault(db);
      const first = await vault.append("agent/planner", [{
        kind: "task.created",
        payload: { id: 1 },
      }]);
      await vault.append("agent/planner", [{ kind: "task.done", parents: [first.events[0].id] }]);
      const stored = await Array.fromAsync(vault.read());
      await vault.close();
      const { code, out, err } = await toka(["--db", db, "--json", "events", "list"]);
      assert.equal(err, "");
      assert.equal(code, 0);
      assert.deepEqual(out.trimEnd().split("\n").map((line) => JSON.parse(line)), stored);
    });

    await t.step("export then import into a new file, twice: the second adds nothing", async () => {
      const exported = await toka(["--db", db, "events", "export"]);
      assert.equal(exported.code, 0);
      const copy = `${dir}/copy.kv`;
      const first = await toka(["--db", copy, "events", "import"], exported.out);
      assert.equal(first.out, "Imported 2 events, skipped 0 already stored\n");
      const second = await toka(["--db", copy, "events", "import"], exported.out);
      assert.equal(second.out, "Imported 0 events, skipped 2 already stored\n");
      const verified = await toka(["--db", copy, "--json", "events", "verify"]);
      assert.equal(verified.code, 0);
      assert.deepEqual(JSON.parse(verified.out), { ok: true, checked: 2, problems: [] });
    });

    await t.step("TOKA_DB names the store when --db is absent", async () => {
      const child = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", CLI, "--json", "events", "stats"],
        env: { TOKA_DB: db },
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(child.code, 0, new TextDecoder().decode(child.stderr));
      assert.equal(JSON.parse(new TextDecoder().decode(child.stdout)).events, 2);
    });

    await t.step(
      "tail --follow prints another process's appends; Ctrl-C ends it with 0",
      async () => {
        const child = new Deno.Command(Deno.execPath(), {
          args: ["run", "-A", CLI, "--db", db, "--json", "events", "tail", "--follow", "-n", "1"],
          stdout: "piped",
          stderr: "piped",
        }).spawn();
        // A stuck child must not hang the test run.
        const guard = setTimeout(() => child.kill("SIGKILL"), 30_000);
        const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
        let buffered = "";
        const nextLine = async (): Promise<string> => {
          while (!buffered.includes("\n")) {
            const { value, done } = await lines.read();
            if (done) throw new Error(`The tail ended early: ${JSON.stringify(buffered)}`);
            buffered += value;
          }
          const index = buffered.indexOf("\n");
          const line = buffered.slice(0, index);
          buffered = buffered.slice(index + 1);
          return line;
        };
        try {
          assert.equal(JSON.parse(await nextLine()).kind, "task.done");
          const vault = await openVault(db);
          await vault.append("agent/worker", [{ kind: "tool.completed", payload: { n: 3 } }]);
          await vault.close();
          const live = JSON.parse(await nextLine());
          assert.deepEqual([live.stream, live.kind, live.payload], [
            "agent/worker",
            "tool.completed",
            { n: 3 },
          ]);
          child.kill("SIGINT");
          const status = await child.status;
          assert.equal(status.code, 0);
          assert.equal(buffered, "");
        } finally {
          clearTimeout(guard);
          await lines.cancel();
          const err = await new Response(child.stderr).text();
          assert.equal(err, "");
        }
      },
    );

    await t.step("the demo's closing hint runs as typed, with a path holding a space", async () => {
      const root = new URL("../..", import.meta.url).pathname;
      const spaced = `${dir}/my vault/demo.kv`;
      const demo = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", "cli.ts", "--db", spaced, "demo"],
        cwd: root,
        stdout: "piped",
        stderr: "piped",
      }).output();
      const out = new TextDecoder().decode(demo.stdout);
      assert.equal(demo.code, 0, new TextDecoder().decode(demo.stderr));
      const hint = out.match(/^Inspect the log: (.*)$/m)?.[1];
      assert.equal(hint, `deno run -A cli.ts --db '${spaced}' events list`);
      const listed = await new Deno.Command("sh", {
        args: ["-c", hint!],
        cwd: root,
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(listed.code, 0, new TextDecoder().decode(listed.stderr));
      assert.match(new TextDecoder().decode(listed.stdout), /task\.completed/);
    });

    await t.step("an empty TOKA_DB is an error in openVault() too", async () => {
      const vaultMod = new URL("../../vault/mod.ts", import.meta.url).href;
      const config = new URL("../../deno.json", import.meta.url).pathname;
      const code = `import { openVault } from "${vaultMod}";
        try { await openVault(); console.log("opened"); }
        catch (e) { console.log(e.constructor.name + ": " + e.message); }`;
      const child = await new Deno.Command(Deno.execPath(), {
        args: ["eval", "--config", config, code],
        cwd: dir,
        env: { TOKA_DB: "" },
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(
        new TextDecoder().decode(child.stdout),
        "TypeError: TOKA_DB is set but empty: unset it or name a vault\n",
        new TextDecoder().decode(child.stderr),
      );
      assert.equal(await Deno.stat(`${dir}/.toka`).then(() => true, () => false), false);
    });

    await t.step("a closed stdout pipe ends export quietly", async () => {
      const vault = await openVault(db);
      for (let i = 0; i < 4; i++) {
        const events = Array.from({ length: 500 }, (_, n) => ({
          kind: "bulk.item",
          payload: { n, text: "y".repeat(100) },
        }));
        await vault.append("bulk", events);
      }
      await vault.close();
      const child = new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", CLI, "--db", db, "events", "export"],
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const reader = child.stdout.getReader();
      await reader.read();
      // Like `| head`: read a little, then close the pipe.
      await reader.cancel();
      const [status, err] = await Promise.all([child.status, new Response(child.stderr).text()]);
      assert.equal(err, "");
      assert.equal(status.code, 0);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
