// `toka run`: modules checked before the vault opens; a graceful stop on SIGTERM/SIGINT,
// exit 130 on a second signal; two processes on one vault share the agents, and one
// takes over when the other is killed. Real subprocesses; every wait polls.
import assert from "node:assert/strict";
import { join } from "node:path";
import { main } from "../../cli.ts";
import { loadModules } from "../../cli/run.ts";
import { openVault } from "../../vault/mod.ts";
import { exists, hasNoStackTrace, recordingIo } from "./_fakes.ts";
import { eventsIn, TokaProcess, until, waitForEvent } from "./_process.ts";

const MOD = JSON.stringify(new URL("../../mod.ts", import.meta.url).href);

function field(payload: unknown, name: string): unknown {
  return (payload as Record<string, unknown>)[name];
}

async function append(db: string, kind: string, payload: unknown): Promise<string> {
  const vault = await openVault(db);
  try {
    return (await vault.append("jobs", [{ kind, payload }])).events[0].id;
  } finally {
    await vault.close();
  }
}

Deno.test("toka run: modules", async (t) => {
  const dir = await Deno.makeTempDir();
  const db = join(dir, "v.kv");
  const module = async (name: string, code: string) => {
    await Deno.writeTextFile(join(dir, name), code);
    return join(dir, name);
  };
  const run = async (args: string[]) => {
    const io = recordingIo();
    const code = await main(["--db", db, "run", ...args], io);
    assert.ok(hasNoStackTrace(io), io.err.join(""));
    return { code, errLines: io.errLines() };
  };
  try {
    await t.step("agents and tools are found in named, default and array exports", async () => {
      const path = await module(
        "many.ts",
        `import { defineAgent, defineTool } from ${MOD};
const agent = (name) => defineAgent({ name, subscribe: ["x"], handle() {} });
export default agent("first");
export const more = [agent("second"), agent("third")];
export const shout = defineTool({
  name: "shout", description: "d", version: "1.0.0",
  inputSchema: { type: "object" }, execute: () => ({}),
});
export const notAnAgent = { name: "plain" };
export const count = 3;`,
      );
      const { agents, tools } = await loadModules([path]);
      assert.deepEqual(agents.map((a) => a.name), ["first", "second", "third"]);
      assert.deepEqual(tools.map((tool) => tool.name), ["shout"]);
    });

    await t.step("an unusable module: one line, exit 1, no vault", async () => {
      const empty = await module("empty.ts", "export const answer = 42;\n");
      const broken = await module("broken.ts", "export const = ;\n");
      const throws = await module("throws.ts", 'throw new Error("boom\\nsecond line");\n');
      const invalid = await module(
        "invalid.ts",
        "export const bad = { name: 'no spaces allowed', subscribe: ['x'], handle() {} };\n",
      );
      const twice = await module(
        "twice.ts",
        `import { defineAgent } from ${MOD};
export const a = defineAgent({ name: "same", subscribe: ["x"], handle() {} });
export const b = defineAgent({ name: "same", subscribe: ["y"], handle() {} });`,
      );
      const cases: [string, RegExp][] = [
        [join(dir, "missing.ts"), /^error: Cannot import ".*missing.ts": Module not found/],
        [empty, /^error: Module ".*empty.ts" exports no agent \(made with defineAgent\) and no/],
        [broken, /^error: Cannot import ".*broken.ts": /],
        [throws, /^error: Cannot import ".*throws.ts": boom$/],
        [invalid, /^error: Module ".*invalid.ts" export "bad": Invalid agent name "no spaces/],
        [twice, /^error: Module ".*twice.ts" export "b": two agents are named "same"$/],
      ];
      for (const [path, line] of cases) {
        const { code, errLines } = await run([path]);
        assert.equal(code, 1, path);
        assert.equal(errLines.length, 1, errLines.join("\n"));
        assert.match(errLines[0], line);
      }
      const none = await run([]);
      assert.equal(none.code, 2);
      assert.match(none.errLines[0], /^error: No modules to run: /);
      assert.equal(await exists(db), false);
    });

    await t.step("a syntax error names the file, line and column, on one line", async () => {
      const path = await module("syntax.ts", "export const a = 1;\n\nexport const b = 2 +;\n");
      const { code, errLines } = await run([path]);
      assert.equal(code, 1);
      assert.equal(errLines.length, 1, errLines.join("\n"));
      assert.match(
        errLines[0],
        /^error: Cannot import ".*syntax.ts": SyntaxError: Expression expected at \/.*syntax.ts:3:21$/,
      );
      assert.equal(await exists(db), false);
    });

    await t.step("in-process: hosts until the signal, then stops gracefully", async () => {
      const path = await module(
        "echo.ts",
        `import { defineAgent } from ${MOD};
export const echo = defineAgent({
  name: "echo", subscribe: ["ping"],
  async handle(event, ctx) { await ctx.emit({ kind: "pong", payload: event.payload }); },
});
export const bad = defineAgent({
  name: "bad", subscribe: ["ping"],
  handle() { throw new Error("boom"); },
});`,
      );
      const stop = new AbortController();
      const io = recordingIo({ signal: stop.signal });
      const running = main(["--db", db, "run", path], io);
      await until(() => io.err.join("").includes('Hosting "bad, echo" on'), "the start");
      await append(db, "ping", 1);
      await waitForEvent(db, (e) => e.kind === "pong", "the pong");
      await waitForEvent(db, (e) => e.kind === "agent.failed", "the failure");
      stop.abort();
      assert.equal(await running, 0);
      const log = io.err.join("");
      assert.match(log, /\[INF\] toka·agent·echo: Agent "echo" started/);
      assert.match(log, /Agent "echo" stopped at position "\d+", 1 events handled/);
      // The failure: a line per attempt, and one when the agent gives up on the event.
      assert.match(
        log,
        /\[WRN\] toka·agent·bad: Agent "bad" failed on event "\w+" \(attempt 1\): "boom"/,
      );
      assert.equal(log.match(/\[ERR\] .*Agent "bad" gave up on event/g)?.length, 1, log);
      assert.ok(hasNoStackTrace(io));
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("toka run: signals and two processes on one vault", async (t) => {
  const dir = await Deno.makeTempDir();
  const db = join(dir, ".toka/toka.kv");
  await Deno.writeTextFile(
    join(dir, "agents.ts"),
    `import { defineAgent } from "@toka/runtime";
export const worker = defineAgent({
  name: "worker",
  subscribe: ["job.created"],
  async handle(event, ctx) {
    await ctx.emit({ kind: "job.done", payload: { job: event.payload, pid: Deno.pid } });
  },
});
export const slow = defineAgent({
  name: "slow",
  subscribe: ["slow.created"],
  async handle(event, ctx) {
    await ctx.emit({ kind: "slow.begun", payload: event.payload });
    // Ignores the abort: only the stop deadline or a forced exit ends it.
    await new Promise((resolve) => setTimeout(resolve, event.payload.ms));
    await ctx.emit({ kind: "slow.done", payload: event.payload });
  },
});`,
  );
  await Deno.writeTextFile(
    join(dir, "toka.json"),
    JSON.stringify({
      agents: ["agents.ts"],
      runtime: { agentLeaseSecs: 2, stopTimeoutMs: 60_000 },
    }),
  );
  const processes: TokaProcess[] = [];
  const start = (args: string[] = []) => {
    const process = new TokaProcess([...args, "run"], { cwd: dir });
    processes.push(process);
    return process;
  };
  try {
    await t.step(
      "SIGTERM: the handler in flight finishes, checkpoints and leases are released, exit 0",
      async () => {
        const host = start();
        await host.waitFor(/Hosting "slow, worker" on/);
        await append(db, "slow.created", { n: 1, ms: 1500 });
        await waitForEvent(db, (e) => e.kind === "slow.begun", "slow.begun");
        host.kill("SIGTERM");
        const status = await host.exit();
        assert.equal(status.code, 0, host.err);
        assert.ok((await eventsIn(db)).some((e) => e.kind === "slow.done"), host.err);
        assert.match(host.err, /Agent "slow" stopped at position/);
        assert.match(host.err, /Stopped\n$/);
        const io = recordingIo();
        assert.equal(await main(["--db", db, "--json", "agent", "list"], io), 0);
        const rows = io.outLines().map((line) => JSON.parse(line));
        const slow = rows.find((row) => row.name === "slow");
        assert.equal(slow.lag, 0, io.out.join(""));
        assert.equal(slow.leasedUntil, null, io.out.join(""));
      },
    );

    await t.step("a second signal exits at once with 130", async () => {
      const host = start();
      await host.waitFor(/Hosting "slow, worker" on/);
      await append(db, "slow.created", { n: 2, ms: 600_000 });
      await waitForEvent(
        db,
        (e) => e.kind === "slow.begun" && field(e.payload, "n") === 2,
        "slow.begun",
      );
      host.kill("SIGINT");
      await host.waitFor(/Stopping: in-flight handlers get up to 60000 ms/);
      host.kill("SIGINT");
      assert.equal((await host.exit()).code, 130);
    });

    await t.step(
      "two processes share the agents; SIGKILL one and the other takes over",
      async () => {
        // A vault of their own: the handler the last step left unfinished stays there.
        const shared = join(dir, "shared.kv");
        const first = start(["--db", shared]);
        await first.waitFor(/Hosting "slow, worker" on/);
        const second = start(["--db", shared]);
        await second.waitFor(/Standing by for "slow, worker"/);
        const job1 = await append(shared, "job.created", 1);
        const done1 = await waitForEvent(
          shared,
          (e) => e.kind === "job.done" && e.parents.includes(job1),
          "job 1 done",
        );
        assert.equal(field(done1.payload, "pid"), first.child.pid);
        first.kill("SIGKILL");
        await first.exit();
        const job2 = await append(shared, "job.created", 2);
        const done2 = await waitForEvent(
          shared,
          (e) => e.kind === "job.done" && e.parents.includes(job2),
          "job 2 done by the survivor",
        );
        assert.equal(field(done2.payload, "pid"), second.child.pid);
        await second.waitFor(/Agent "worker" takes over/);
        second.kill("SIGTERM");
        assert.equal((await second.exit()).code, 0, second.err);
        // Each job was done once: the log has no duplicate.
        const done = (await eventsIn(shared)).filter((e) => e.kind === "job.done");
        assert.deepEqual(done.map((e) => field(e.payload, "job")).sort(), [1, 2]);
      },
    );
  } finally {
    for (const process of processes) await process.close();
    await Deno.remove(dir, { recursive: true });
  }
});
