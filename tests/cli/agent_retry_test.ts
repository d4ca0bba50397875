// `toka agent failed` and `toka agent retry` (issue 20 §4): the CLI process is
// not the runtime's. It reads the failed events from the vault and appends
// retry requests there; the running agent handles them, and a stopped one at
// its next start. Bad input is one line and writes nothing.
import assert from "node:assert/strict";
import { join } from "node:path";
import { main } from "../../cli.ts";
import { defineAgent, type EventRecord, Runtime } from "../../runtime/mod.ts";
import { openVault } from "../../vault/mod.ts";
import { exists, recordingIo, runToka } from "./_fakes.ts";
import { kvPorts, until } from "../runtime/_helpers.ts";
import { section } from "../docs/_readme.ts";
import { toka as tokaProcess, TokaProcess, waitForEvent } from "./_process.ts";

const toka = (args: string[]) => runToka(args);

Deno.test("toka agent failed and retry", async (t) => {
  const dir = await Deno.makeTempDir();
  const db = join(dir, "v.kv");
  const vault = await openVault(db);
  let broken = true;
  const handled: unknown[] = [];
  const agent = defineAgent({
    name: "flaky",
    subscribe: ["task.*"],
    async handle(event, ctx) {
      if (broken) throw new Error(`broken on\n${event.payload}`);
      handled.push(event.payload);
      await ctx.emit({ kind: "work.handled", stream: "results", payload: event.payload });
    },
  });
  const start = async () => {
    const runtime = await Runtime.create({ vault, ...kvPorts(vault.kv), retry: { attempts: 1 } });
    runtime.register(agent);
    await runtime.start();
    return runtime;
  };
  let runtime = await start();
  const tasks: EventRecord[] = [];
  for (const n of [1, 2, 3]) tasks.push(await runtime.emit({ kind: "task.created", payload: n }));
  await until(() => runtime.agents()[0].failures === 3);
  const head = async () => (await vault.head())?.position;
  // Waits until the agent recorded n retries as handled.
  const recovered = async (n: number) => {
    for (let i = 0; i < 5000; i++) {
      const done = await Array.fromAsync(vault.read({ kinds: ["agent.recovered"] }));
      if (done.length >= n) return;
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    throw new Error(`Timed out waiting for ${n} agent.recovered`);
  };
  const handledIn = async () =>
    (await Array.fromAsync(vault.read({ stream: "results" }))).map((e) => e.payload);

  try {
    await t.step("agent failed lists the events, for every agent or one", async () => {
      const all = await toka(["--db", db, "agent", "failed"]);
      assert.equal(all.code, 0, all.errLines.join("\n"));
      const lines = all.out.trimEnd().split("\n");
      assert.match(lines[0], /^AGENT\s+EVENT\s+KIND\s+ATTEMPTS\s+FAILED AT\s+STATUS\s+ERROR$/);
      assert.equal(lines.length, 4);
      for (const [i, task] of tasks.entries()) {
        // The error's newline is escaped: one line per event.
        assert.match(
          lines[i + 1],
          new RegExp(
            `^flaky\\s+${task.id}\\s+task\\.created\\s+1\\s+\\d{4}-.*Z\\s+failed\\s+broken on\\\\u000a${
              i + 1
            }$`,
          ),
        );
      }
      const one = await toka(["--db", db, "--json", "agent", "failed", "flaky"]);
      assert.equal(one.code, 0);
      const rows = one.out.trimEnd().split("\n").map((line) => JSON.parse(line));
      assert.deepEqual(rows.map((r) => [r.agent, r.eventId, r.retryRequested]), [
        ["flaky", tasks[0].id, false],
        ["flaky", tasks[1].id, false],
        ["flaky", tasks[2].id, false],
      ]);
    });

    await t.step("agent retry --event: the running agent handles it again", async () => {
      broken = false;
      const { code, out, errLines } = await toka([
        "--db",
        db,
        "agent",
        "retry",
        "flaky",
        "--event",
        tasks[0].id.toLowerCase(),
      ]);
      assert.equal(code, 0, errLines.join("\n"));
      const request = (await Array.fromAsync(vault.read({ kinds: ["agent.retry_requested"] })))[0];
      assert.equal(
        out,
        `Asked agent "flaky" to retry event ${tasks[0].id} (request ${request.id})\n`,
      );
      await recovered(1);
      assert.deepEqual(handled, [1]);
      const listed = await toka(["--db", db, "--json", "agent", "failed", "flaky"]);
      assert.deepEqual(
        listed.out.trimEnd().split("\n").map((line) => JSON.parse(line).eventId),
        [tasks[1].id, tasks[2].id],
      );
    });

    await t.step("agent retry --all on a stopped agent: handled at its next start", async () => {
      await runtime.close();
      const { code, out } = await toka(["--db", db, "agent", "retry", "flaky", "--all"]);
      assert.equal(code, 0);
      assert.equal(out.trimEnd().split("\n").length, 2);
      assert.match(out, new RegExp(`retry event ${tasks[1].id} `));
      assert.match(out, new RegExp(`retry event ${tasks[2].id} `));
      const pending = await toka(["--db", db, "agent", "failed", "flaky"]);
      assert.match(pending.out, /retry requested/);
      // Nothing left that is not already requested.
      const again = await toka(["--db", db, "agent", "retry", "flaky", "--all"]);
      assert.equal(again.code, 0);
      assert.equal(
        again.out,
        'Agent "flaky" has no failed event that is not already being retried\n',
      );
      runtime = await start();
      await recovered(3);
      await runtime.stop();
      assert.deepEqual(await handledIn(), [1, 2, 3]);
      const none = await toka(["--db", db, "agent", "failed"]);
      assert.equal(none.out, "No agent has an event it gave up on\n");
    });

    await t.step("bad input: one line, exit 2 or 1, nothing written", async () => {
      const before = await head();
      const missing = join(dir, "missing.kv");
      const cases: [string[], number, string][] = [
        [["agent", "retry", "flaky"], 2, "error: Give --event ID or --all"],
        [
          ["agent", "retry", "flaky", "--all", "--event", tasks[0].id],
          2,
          "error: Give --event ID or --all, not both",
        ],
        [
          ["agent", "retry", "flaky", "--event", "nope"],
          2,
          "error: option '--event <id>' argument 'nope' is invalid. Expected an event id (26 characters of Crockford base32)",
        ],
        [
          ["agent", "retry", "bad name!", "--all"],
          2,
          "error: command-argument value 'bad name!' is invalid for argument 'name'. Expected an agent name: 1 to 64 letters, digits, _ or -",
        ],
        [
          ["agent", "failed", "bad name!"],
          2,
          "error: command-argument value 'bad name!' is invalid for argument 'name'. Expected an agent name: 1 to 64 letters, digits, _ or -",
        ],
        [
          ["agent", "retry", "ghost", "--all"],
          1,
          'error: Cannot retry for agent "ghost": no agent of that name has run or failed here',
        ],
        [
          ["agent", "failed", "ghost"],
          1,
          'error: No agent "ghost" has run or failed here',
        ],
        [
          ["agent", "retry", "flaky", "--event", "01ARZ3NDEKTSV4RRFFQ69G5FAV"],
          1,
          'error: Cannot retry event "01ARZ3NDEKTSV4RRFFQ69G5FAV" for agent "flaky": no such event',
        ],
        [
          ["agent", "retry", "flaky", "--event", tasks[0].id],
          1,
          `error: Cannot retry event "${
            tasks[0].id
          }" for agent "flaky": the agent has not given up on it (or a retry succeeded since)`,
        ],
      ];
      for (const [args, code, line] of cases) {
        const result = await toka(["--db", db, ...args]);
        assert.equal(result.code, code, args.join(" "));
        assert.deepEqual(result.errLines, [line]);
        assert.equal(result.out, "");
      }
      assert.equal(await head(), before);
      const absent = await toka(["--db", missing, "agent", "retry", "flaky", "--all"]);
      assert.equal(absent.code, 1);
      assert.deepEqual(absent.errLines, [`error: No vault at "${missing}"`]);
      assert.equal(await exists(missing), false);
      const json = await toka(["--db", db, "--json", "agent", "retry", "ghost", "--all"]);
      assert.equal(JSON.parse(json.errLines[0]).error.code, "retry_refused");
    });

    await t.step("the docs' commands are these", () => {
      const text = section("## Agents that give up, or loop");
      assert.match(text, /toka agent failed {2,}/);
      assert.match(text, /toka agent retry flaky --event <id>/);
      assert.match(text, /toka agent retry flaky --all/);
      assert.match(text, /"maxCausalDepth": 500/);
    });
  } finally {
    await runtime.close();
    await vault.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("toka run stops a looping agent at runtime.maxCausalDepth", async () => {
  const dir = await Deno.makeTempDir();
  const db = join(dir, "v.kv");
  const mod = JSON.stringify(new URL("../../mod.ts", import.meta.url).href);
  await Deno.writeTextFile(
    join(dir, "loop.ts"),
    `import { defineAgent } from ${mod};
export const loop = defineAgent({
  name: "loop", subscribe: ["job.*"],
  async handle(_event, ctx) { await ctx.emit({ kind: "job.done" }); },
});`,
  );
  // The README's toka.json, with a smaller limit.
  const config = JSON.parse(
    section("## Agents that give up, or loop").split("```json\n")[1].split("```")[0],
  );
  assert.deepEqual(config, { runtime: { maxCausalDepth: 500 } });
  config.runtime.maxCausalDepth = 7;
  await Deno.writeTextFile(join(dir, "toka.json"), JSON.stringify(config));
  const stop = new AbortController();
  const io = recordingIo({ signal: stop.signal });
  try {
    const running = main(
      ["--config", join(dir, "toka.json"), "--db", db, "run", join(dir, "loop.ts")],
      io,
    );
    await until(() => io.err.join("").includes('Hosting "loop" on'));
    const vault = await openVault(db);
    try {
      await vault.append("jobs", [{ kind: "job.started" }]);
      let failed: EventRecord[] = [];
      for (let i = 0; i < 5000 && failed.length === 0; i++) {
        failed = await Array.fromAsync(vault.read({ kinds: ["agent.failed"] }));
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
      stop.abort();
      assert.equal(await running, 0);
      assert.equal(failed.length, 1);
      assert.equal((failed[0].payload as { code: string }).code, "causal_depth");
      const done = await Array.fromAsync(vault.read({ kinds: ["job.done"] }));
      assert.equal(done.length, 7);
    } finally {
      await vault.close();
    }
  } finally {
    stop.abort();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("toka agent retry reaches an agent that toka run hosts in another process", async () => {
  const dir = await Deno.makeTempDir();
  const db = join(dir, "v.kv");
  const fixed = join(dir, "fixed");
  const mod = JSON.stringify(new URL("../../mod.ts", import.meta.url).href);
  // Fails until the file "fixed" exists: the cause is fixed outside the agent.
  await Deno.writeTextFile(
    join(dir, "flaky.ts"),
    `import { defineAgent } from ${mod};
export const flaky = defineAgent({
  name: "flaky", subscribe: ["task.*"],
  async handle(event, ctx) {
    await Deno.stat(${JSON.stringify(fixed)});
    await ctx.emit({ kind: "work.done", payload: event.payload });
  },
});`,
  );
  const host = new TokaProcess(["--db", db, "run", join(dir, "flaky.ts")], {
    env: { TOKA_STOP_TIMEOUT_MS: "0" },
  });
  try {
    await host.waitFor(/Hosting "flaky"/);
    const emitted = await tokaProcess(["--db", db, "emit", "task.created", "--payload", "7"]);
    assert.equal(emitted.code, 0, emitted.err);
    const id = emitted.out.trim();
    await waitForEvent(db, (e) => e.kind === "agent.failed", "the failure");
    const failed = await tokaProcess(["--db", db, "agent", "failed", "flaky"]);
    assert.match(failed.out, new RegExp(`\\nflaky\\s+${id}\\s+task\\.created\\s+3\\s`));
    await Deno.writeTextFile(fixed, "");
    const retried = await tokaProcess(["--db", db, "agent", "retry", "flaky", "--event", id]);
    assert.equal(retried.code, 0, retried.err);
    const done = await waitForEvent(db, (e) => e.kind === "work.done", "the retried work");
    assert.deepEqual([done.payload, done.parents], [7, [id]]);
    await waitForEvent(db, (e) => e.kind === "agent.recovered", "the recovery");
    const none = await tokaProcess(["--db", db, "agent", "failed"]);
    assert.equal(none.out, "No agent has an event it gave up on\n");
    host.kill("SIGTERM");
    assert.equal((await host.exit()).code, 0, host.err);
  } finally {
    await host.close();
    await Deno.remove(dir, { recursive: true });
  }
});
