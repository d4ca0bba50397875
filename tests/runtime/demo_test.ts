import assert from "node:assert/strict";
import { runDemo } from "../../cli/demo.ts";
import type { CommandContext } from "../../cli/_context.ts";
import { defaultSettings } from "../../cli/_config.ts";
import { openVault } from "../../vault/mod.ts";
import { readAgentRows } from "../../cli/agent.ts";

function context(
  db: string,
  json: boolean,
  out: string[],
  invocation: string[] = ["toka", "--db", db],
): CommandContext {
  return {
    io: { stdout: (t) => void out.push(t), stderr: () => {}, env: () => undefined },
    json,
    dbLocation: db,
    settings: { ...defaultSettings(), db },
    invocation,
    openStore: () => openVault(db),
  };
}

Deno.test("toka demo stops mid-run, restarts and resumes without loss or duplicate", async (t) => {
  const dir = await Deno.makeTempDir();
  const db = `${dir}/toka.kv`;
  try {
    await t.step("human output", async () => {
      const out: string[] = [];
      assert.equal(await runDemo(context(db, false, out), { tasks: 4, workMs: 30 }), 0);
      const text = out.join("");
      assert.match(text, /producer emitted 4 tasks/);
      assert.match(text, /runtime stopped after [0-3] of 4 tasks/);
      assert.match(text, /worker completed task 4 \(echo "task 4"\)/);
      assert.match(text, /Summary: 4 tasks, 4 planned, 4 completed, 0 duplicates, 0 lost/);
      assert.ok(text.includes(`Inspect the log: toka --db ${db} events list\n`), text);
    });

    await t.step("a second run on the same vault, as JSON", async () => {
      const out: string[] = [];
      assert.equal(await runDemo(context(db, true, out), { tasks: 3, workMs: 30 }), 0);
      const summary = JSON.parse(out.join(""));
      assert.equal(summary.tasks, 3);
      assert.equal(summary.completed, 3);
      assert.equal(summary.duplicates, 0);
      assert.equal(summary.lost, 0);
      assert.ok(summary.beforeRestart < 3);
      // planner, worker: each caught up; tool events are in the log too.
      const store = await openVault(db);
      const rows = await readAgentRows(store);
      const tools = await Array.fromAsync(store.read({ kinds: ["tool.*"] }));
      await store.close();
      assert.deepEqual(rows.map((r) => r.name), ["planner", "worker"]);
      assert.ok(rows.every((r) => r.failures === 0));
      assert.equal(tools.filter((e) => e.kind === "tool.completed").length, 7);
    });

    await t.step(
      "the hint is the command as typed, with the store, quoted for a shell",
      async () => {
        const out: string[] = [];
        const invocation = ["deno", "run", "-A", "cli.ts", "--db", "my dir/it's.kv"];
        assert.equal(
          await runDemo(context(db, false, out, invocation), { tasks: 1, workMs: 1 }),
          0,
        );
        const text = out.join("");
        assert.ok(
          text.includes(
            `Inspect the log: deno run -A cli.ts --db 'my dir/it'\\''s.kv' events list\n`,
          ),
          text,
        );
        assert.ok(
          text.includes(
            `Inspect the agents: deno run -A cli.ts --db 'my dir/it'\\''s.kv' agent list\n`,
          ),
        );
      },
    );

    await t.step("the summary counts only this run's events, not another writer's", async () => {
      const other = await openVault(db);
      let appended = 0;
      let running = true;
      const writer = (async () => {
        while (running) {
          await other.append("elsewhere", [{ kind: "noise.made", payload: { appended } }]);
          appended++;
          await new Promise((resolve) => setTimeout(resolve, 2));
        }
      })();
      const out: string[] = [];
      const head = Number((await other.head())?.position ?? 0);
      let summary;
      try {
        assert.equal(await runDemo(context(db, true, out), { tasks: 3, workMs: 20 }), 0);
        summary = JSON.parse(out.join(""));
      } finally {
        running = false;
        await writer;
      }
      const since = await Array.fromAsync(other.read({ from: String(head + 1).padStart(16, "0") }));
      await other.close();
      const created = new Set(
        since.filter((e) =>
          e.kind === "task.created" && (e.payload as { run: string }).run === summary.run
        )
          .map((e) => e.id),
      );
      const ours = since.filter((e) =>
        created.has(e.id) || created.has(e.meta.correlationId ?? "")
      );
      assert.ok(appended > 0 && since.some((e) => e.stream === "elsewhere"));
      assert.equal(summary.events, ours.length);
      assert.ok(summary.events < since.length);
    });

    await t.step("an agent another process holds is waited for, and said so", async () => {
      {
        using kv = await Deno.openKv(db);
        await kv.set(["runtime", "lease", "planner"], {
          owner: "another process",
          expiresAt: Date.now() + 500,
        });
      }
      const out: string[] = [];
      // The lease of toka.json's runtime.agentLeaseSecs, as toka run has it: a short one here.
      const ctx = context(db, false, out);
      ctx.settings.agentLeaseSecs = 0.3;
      assert.equal(await runDemo(ctx, { tasks: 2, workMs: 10 }), 0);
      const text = out.join("");
      assert.match(
        text,
        /waiting for another process to release planner \(its lease ends within 0\.3 s\)/,
      );
      assert.match(text, /Summary: 2 tasks, 2 planned, 2 completed, 0 duplicates, 0 lost/);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
