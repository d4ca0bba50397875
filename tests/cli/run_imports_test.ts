// `toka run` loads a module with the import map of its own project (the nearest deno.json),
// as `deno check` there does: bare specifiers the project maps work, offline, in a real
// subprocess started as `deno task install` starts `toka`.
import assert from "node:assert/strict";
import { join } from "node:path";
import { eventsIn, toka, TokaProcess, waitForEvent } from "./_process.ts";
import { openVault } from "../../vault/mod.ts";

Deno.test("toka run: the project's import map", async (t) => {
  const dir = await Deno.makeTempDir();
  const db = join(dir, ".toka/toka.kv");
  await Deno.mkdir(join(dir, "lib"));
  // What `toka init` writes, plus a bare specifier of the project's own.
  await Deno.writeTextFile(
    join(dir, "deno.json"),
    JSON.stringify({
      imports: { "@toka/runtime": "jsr:@toka/runtime@^0.1.0", "greet": "./lib/greet.ts" },
    }),
  );
  await Deno.writeTextFile(
    join(dir, "lib/greet.ts"),
    "export const greet = (name: string): string => `Hello ${name}`;\n",
  );
  await Deno.writeTextFile(
    join(dir, "agents.ts"),
    `import { defineAgent } from "@toka/runtime";
import { greet } from "greet";
export const greeter = defineAgent({
  name: "greeter",
  subscribe: ["user.joined"],
  async handle(event, ctx) {
    await ctx.emit({ kind: "user.greeted", payload: greet(event.payload) });
  },
});
export const slow = defineAgent({
  name: "slow",
  subscribe: ["slow.created"],
  async handle(_event, ctx) {
    await ctx.emit({ kind: "slow.begun", payload: null });
    // Ignores the abort: only the stop deadline or a forced exit ends it.
    await new Promise((resolve) => setTimeout(resolve, 600_000));
  },
});`,
  );
  await Deno.writeTextFile(join(dir, "unmapped.ts"), 'import "ulid";\n');
  await Deno.writeTextFile(
    join(dir, "toka.json"),
    JSON.stringify({ runtime: { stopTimeoutMs: 600_000 } }),
  );
  const append = async (kind: string, payload: unknown) => {
    const vault = await openVault(db);
    await vault.append("users", [{ kind, payload }]).finally(() => vault.close());
  };
  try {
    await t.step("a bare specifier mapped by the project's deno.json resolves", async () => {
      const run = new TokaProcess(["--db", db, "run", "agents.ts"], { cwd: dir });
      try {
        await run.waitFor(/Hosting "greeter, slow"/);
        await append("user.joined", "Ada");
        await waitForEvent(db, (e) => e.kind === "user.greeted", "the greeting");
        run.kill("SIGTERM");
        const status = await run.exit();
        assert.equal(status.code, 0, run.err);
        assert.match(run.err, /Stopped/);
        const greeted = (await eventsIn(db)).find((e) => e.kind === "user.greeted");
        assert.equal(greeted?.payload, "Hello Ada");
      } finally {
        await run.close();
      }
    });

    await t.step("a second signal ends the restarted toka run too, at once", async () => {
      const run = new TokaProcess(["--db", db, "run", "agents.ts"], { cwd: dir });
      try {
        await run.waitFor(/Hosting "greeter, slow"/);
        await append("slow.created", null);
        await waitForEvent(db, (e) => e.kind === "slow.begun", "slow.begun");
        run.kill("SIGINT");
        await run.waitFor(/Stopping: in-flight handlers get up to 600000 ms/);
        run.kill("SIGINT");
        assert.equal((await run.exit()).code, 130);
        // exit() waited for stderr's end, which the restarted child shares: it is gone too,
        // without finishing its graceful stop.
        assert.doesNotMatch(run.err, /Stopped/);
      } finally {
        await run.close();
      }
    });

    await t.step("a bare specifier nobody maps: one line naming it, exit 1", async () => {
      const { code, err } = await toka(["--db", join(dir, "other.kv"), "run", "unmapped.ts"], {
        cwd: dir,
      });
      assert.equal(code, 1);
      const lines = err.trim().split("\n");
      assert.equal(lines.length, 1, err);
      assert.match(lines[0], /^error: Cannot import "unmapped.ts": .*"ulid"/);
      assert.match(lines[0], /deno\.json's "imports"|npm:/);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
