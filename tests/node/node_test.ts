// The library on Node.js (issue 13): builds the package for Node with
// scripts/build_node.ts (.node-build/, `npm install` there, which needs the
// npm registry or npm's cache), then runs suites and child processes with
// `node`, and Deno and Node children on one vault file.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { example } from "../docs/_readme.ts";
import { checkTracesNodeExample } from "../docs/_traces_node_example.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const BUILT = join(ROOT, ".node-build");
const CHILD_TS = join(ROOT, "tests/node/_child.ts");
const CHILD_JS = join(BUILT, "tests/node/_child.js");
const NODE = Deno.env.get("NODE") ?? "node";
const TASKS = 40;

type Runtime = "deno" | "node";

function command(runtime: Runtime, args: string[], stdout: "piped" | "null" = "piped") {
  return runtime === "node"
    ? new Deno.Command(NODE, { args: [CHILD_JS, ...args], cwd: BUILT, stdout, stderr: "piped" })
    : new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", CHILD_TS, ...args],
      cwd: ROOT,
      stdout,
      stderr: "piped",
    });
}

/** Runs the child to its end and returns its JSON line; fails with its stderr otherwise. */
async function run<T = unknown>(runtime: Runtime, ...args: string[]): Promise<T> {
  const { code, stdout, stderr } = await command(runtime, args).output();
  const out = new TextDecoder().decode(stdout);
  assert.equal(code, 0, `${runtime} ${args[0]} failed:\n${new TextDecoder().decode(stderr)}`);
  return JSON.parse(out.trim().split("\n").at(-1)!) as T;
}

async function withDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "toka-node-test-"));
  try {
    await body(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

interface Checked {
  ok: boolean;
  checked: number;
  problems: unknown[];
  head: { position: string; digest: string } | null;
  events: [string, number, string, string, string, { tag: string; i: number; n: number }][];
}

Deno.test("on Node.js", async (t) => {
  const build = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(ROOT, "scripts/build_node.ts")],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(
    build.success,
    `scripts/build_node.ts failed (it needs npm and the npm registry or npm's cache):\n` +
      new TextDecoder().decode(build.stderr),
  );
  const version = await new Deno.Command(NODE, { args: ["--version"], stdout: "piped" }).output()
    .catch(() => undefined);
  assert.ok(
    version?.success,
    `Cannot run "${NODE}": Node.js 20 or later is needed for these tests`,
  );
  assert.ok(Number(/^v(\d+)/.exec(new TextDecoder().decode(version.stdout))?.[1]) >= 20);

  await t.step("README: the On Node.js example prints what it says", async () => {
    const code = example("## On Node.js", "js");
    // Inside the built package, where "@toka/runtime" names the package itself.
    const file = join(BUILT, "readme_example.mjs");
    await Deno.writeTextFile(file, code);
    const out = await new Deno.Command(NODE, { args: [file], cwd: BUILT, stdout: "piped" })
      .output();
    assert.equal(out.code, 0);
    assert.equal(new TextDecoder().decode(out.stdout), "true\n");
  });

  await t.step("docs/traces.md: the Node.js example exports its spans", checkTracesNodeExample);

  await t.step("the vault contract suite runs on Node through @deno/kv", async () => {
    const { code, stdout, stderr } = await new Deno.Command(NODE, {
      args: ["--test", "tests/node/vault_contract_node.js"],
      cwd: BUILT,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const report = new TextDecoder().decode(stdout);
    assert.equal(code, 0, report + new TextDecoder().decode(stderr));
    assert.match(report, /^# fail 0$/m);
    const passed = Number(/^# pass (\d+)$/m.exec(report)?.[1]);
    assert.ok(passed >= 40, `only ${passed} contract steps passed`);
  });

  await t.step("an agent resumes after its Node process is killed (SIGKILL)", async () => {
    await withDir(async (dir) => {
      const db = join(dir, "toka.kv");
      const first = command("node", ["produce", db, String(TASKS)]).spawn();
      const lines = first.stdout.pipeThrough(new TextDecoderStream()).getReader();
      let text = "";
      try {
        while (
          text.split("\n").filter((l) => l.startsWith("handled")).length < 10 ||
          !text.includes("produced")
        ) {
          const { value, done } = await lines.read();
          if (done) throw new Error("The Node child ended before it was killed");
          text += value;
        }
      } finally {
        first.kill("SIGKILL");
        await lines.cancel();
        await first.stderr.cancel();
      }
      assert.equal((await first.status).signal, "SIGKILL");

      // What was durably finished when the process died, as Deno reads it.
      const saved = await run<string | null>("deno", "checkpoint", db, "worker");
      const killed = await run<Checked>("deno", "check", db);
      const tasks = killed.events.filter((e) => e[4] === "task.created");
      assert.equal(tasks.length, TASKS, "every acknowledged emit survived");
      assert.ok(saved !== null);
      const finished = tasks.filter((e) => e[2] <= saved).length;
      assert.ok(finished >= 1 && finished < TASKS, `killed mid-run (${finished} finished)`);

      const resumed = await run<number[]>("node", "resume", db, String(TASKS));
      const expected = Array.from({ length: TASKS - finished }, (_, i) => finished + i + 1);
      assert.deepEqual(resumed, expected, "exactly the events after the checkpoint, in order");

      // The log holds each effect once, even for events handled twice.
      const seen = await run<Checked>("deno", "check", db);
      assert.equal(seen.ok, true);
      const every = Array.from({ length: TASKS }, (_, i) => i + 1);
      for (const kind of ["task.started", "task.done"]) {
        const ns = seen.events.filter((e) => e[4] === kind).map((e) => e[5].n);
        assert.deepEqual(ns.toSorted((a, b) => a - b), every, kind);
      }
    });
  });

  await t.step("ctx.state on Node: recorded with the checkpoint, read back by Deno", async () => {
    await withDir(async (dir) => {
      const db = join(dir, "toka.kv");
      const expected = [{ count: 1 }, { count: 2 }, { count: 3 }, { count: 3 }];
      assert.deepEqual(await run("node", "state", db, "write", "3"), expected);
      assert.deepEqual(await run("deno", "state", db, "read"), expected);
    });
  });

  await t.step("tokens: issue, verify and rotate across Node and Deno on one KV", async () => {
    await withDir(async (dir) => {
      const db = join(dir, "toka.kv");
      const fromNode = await run<string>("node", "tokens", db, "issue", "alice");
      const fromDeno = await run<string>("deno", "tokens", db, "issue", "bob");
      assert.equal(
        (await run<{ sub: string }>("deno", "tokens", db, "verify", fromNode)).sub,
        "alice",
      );
      assert.equal(
        (await run<{ sub: string }>("node", "tokens", db, "verify", fromDeno)).sub,
        "bob",
      );
      // Concurrent rotations from both runtimes all land, none is lost.
      const [a, b] = await Promise.all([
        run<string[]>("node", "tokens", db, "rotate", "5"),
        run<string[]>("deno", "tokens", db, "rotate", "5"),
      ]);
      const status = await run<{ kid: string; state: string }[]>("node", "tokens", db, "status");
      const kids = new Set(status.map((s) => s.kid));
      for (const kid of [...a, ...b]) assert.ok(kids.has(kid), `rotation to ${kid} was lost`);
      assert.equal(status.filter((s) => s.state === "active").length, 1);
      // Tokens signed before the rotations still verify (their secret is retired, not gone).
      assert.equal(
        (await run<{ sub: string }>("node", "tokens", db, "verify", fromNode)).sub,
        "alice",
      );
      const forged = fromDeno.slice(0, -2) + (fromDeno.endsWith("AA") ? "BB" : "AA");
      assert.match(
        (await run<{ error: string }>("node", "tokens", db, "verify", forged)).error,
        /signature/i,
      );
    });
  });

  await t.step("a tool call on Node: checked, recorded, and the fs path rules hold", async () => {
    await withDir(async (dir) => {
      const out = await run<{ results: unknown[]; kinds: string[]; onDisk: number }>(
        "node",
        "tool",
        join(dir, "toka.kv"),
        join(dir, "root"),
      );
      assert.deepEqual(out.results.slice(0, 2), [
        { path: "notes/a.txt", size: 9 },
        { path: "notes/a.txt", encoding: "utf8", content: "from node", size: 9 },
      ]);
      assert.match(JSON.stringify(out.results[2]), /Invalid path \\"..\/secret\\"/);
      assert.match(JSON.stringify(out.results[3]), /goes through a symbolic link/);
      assert.match(JSON.stringify(out.results[4]), /not granted/);
      assert.deepEqual(out.kinds.filter((k) => k === "tool.completed").length, 2);
      assert.equal(out.onDisk, 9);
    });
  });

  await t.step("a stdio plugin's child is started and called on Node too", async () => {
    await withDir(async (dir) => {
      const script = new URL("../../examples/plugins/weather_stdio.ts", import.meta.url).pathname;
      for (const runtime of ["node", "deno"] as const) {
        const out = await run<{ forecast: { city: string }; bad: string; kinds: string[] }>(
          runtime,
          "plugin",
          join(dir, `${runtime}.kv`),
          Deno.execPath(),
          script,
        );
        assert.equal(out.forecast.city, "Oslo", runtime);
        assert.equal(out.bad, "ToolInputError", runtime);
        assert.deepEqual(out.kinds, [
          "tool.invoked",
          "tool.completed",
          "tool.invoked",
          "tool.failed",
        ], runtime);
      }
    });
  });

  await t.step("http.fetch connects to the checked address, not through HTTP_PROXY", async () => {
    for (const runtime of ["node", "deno"] as const) {
      assert.deepEqual(await run(runtime, "http", "-"), {
        body: "checked",
        hits: ["checked rebind.test:PORT"],
        calls: ["rebind.test"],
      }, runtime);
    }
  });

  await t.step("model.chat calls an endpoint with the key from the environment", async () => {
    for (const runtime of ["node", "deno"] as const) {
      assert.deepEqual(await run(runtime, "model", "-"), {
        reply: {
          id: "chatcmpl-node",
          model: "node-model",
          message: { role: "assistant", content: "hi" },
          finishReason: "stop",
        },
        seen: [{ auth: "Bearer sk-from-env", model: "node-model" }],
      }, runtime);
    }
  });

  await t.step("values written in KV by one runtime read the same in the other", async () => {
    await withDir(async (dir) => {
      for (const [first, second] of [["deno", "node"], ["node", "deno"]] as const) {
        const db = join(dir, `${first}.kv`);
        const written = await run<string[]>(first, "values", db, "write");
        assert.deepEqual(await run(second, "values", db, "read"), written);
        assert.ok(written.every((key) => !key.includes(":")), written.join(", "));
      }
    });
  });

  for (const [first, second] of [["deno", "node"], ["node", "deno"]] as const) {
    await t.step(
      `a vault written by ${first} is read, verified and appended to by ${second}`,
      async () => {
        await withDir(async (dir) => {
          const db = join(dir, "toka.kv");
          await run(first, "append", db, "s", "20", first);
          const before = await run<Checked>(second, "check", db);
          assert.equal(before.ok, true);
          assert.equal(before.checked, 20);
          await run(second, "append", db, "s", "20", second);
          const a = await run<Checked>(first, "check", db);
          const b = await run<Checked>(second, "check", db);
          assert.deepEqual(a, b, "both runtimes see the same log, digests and head");
          assert.equal(a.ok, true);
          assert.deepEqual(a.events.map((e) => e[1]), Array.from({ length: 40 }, (_, i) => i + 1));
          assert.deepEqual(a.events.slice(0, 20), before.events);
          assert.deepEqual(a.events.map((e) => e[5].tag), [
            ...Array(20).fill(first),
            ...Array(20).fill(second),
          ]);
        });
      },
    );
  }

  await t.step(
    "Node forks a vault Deno wrote; Deno finds the fork's head at the fork point",
    async () => {
      await withDir(async (dir) => {
        const db = join(dir, "toka.kv");
        const fork = join(dir, "fork.kv");
        await run("deno", "append", db, "s", "20", "deno");
        const source = await run<Checked>("deno", "check", db);
        const made = await run<{ head: Checked["head"]; events: number }>(
          "node",
          "fork",
          db,
          "12",
          fork,
        );
        const [, , position, digest] = source.events[11];
        assert.deepEqual(made.head, { position, digest });
        assert.equal(made.events, 12);
        const forked = await run<Checked>("deno", "check", fork);
        assert.equal(forked.ok, true);
        assert.deepEqual(forked.head, { position, digest });
        assert.deepEqual(forked.events, source.events.slice(0, 12));
        assert.deepEqual(
          await run<Checked>("deno", "check", db),
          source,
          "the source is unchanged",
        );
      });
    },
  );

  await t.step("Deno and Node append to one stream at once with expected versions", async () => {
    await withDir(async (dir) => {
      const db = join(dir, "toka.kv");
      await run("deno", "append", db, "s", "1", "seed"); // Both open an existing vault.
      const [d, n] = await Promise.all([
        run<{ appended: number }>("deno", "append", db, "s", "60", "deno", "node"),
        run<{ appended: number }>("node", "append", db, "s", "60", "node", "deno"),
      ]);
      assert.equal(d.appended + n.appended, 120);
      for (const runtime of ["deno", "node"] as const) {
        const seen = await run<Checked>(runtime, "check", db);
        assert.equal(seen.ok, true, JSON.stringify(seen.problems));
        assert.deepEqual(
          seen.events.map((e) => e[1]),
          Array.from({ length: 121 }, (_, i) => i + 1),
        );
        for (const tag of ["deno", "node"]) {
          const mine = seen.events.filter((e) => e[5].tag === tag).map((e) => e[5].i);
          assert.deepEqual(
            mine,
            Array.from({ length: 60 }, (_, i) => i + 1),
            `${tag}'s events, once each, in order`,
          );
        }
      }
    });
  });
});
