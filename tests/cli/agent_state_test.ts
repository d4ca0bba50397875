// toka agent state NAME [--at POSITION] and toka agent history NAME (issue 21 §2).
import assert from "node:assert/strict";
import { join } from "node:path";
import { main } from "../../cli.ts";
import { defineAgent, type EventRecord, Runtime } from "../../runtime/mod.ts";
import { openVault } from "../../vault/mod.ts";
import { hasNoStackTrace, recordingIo } from "./_fakes.ts";

// A vault where "counter" counted two task.* events (not the task.skip between them).
async function seed(db: string): Promise<EventRecord[]> {
  const store = await openVault(db);
  const runtime = await Runtime.create({ vault: store });
  runtime.register(defineAgent({
    name: "counter",
    subscribe: ["task.*"],
    handle(event, ctx) {
      if (event.kind === "task.skip") return;
      ctx.state.set({ count: (ctx.state.get<{ count: number }>()?.count ?? 0) + 1 });
    },
  }));
  const tasks = [];
  for (const kind of ["task.a", "task.skip", "task.b"]) tasks.push(await runtime.emit({ kind }));
  await runtime.start();
  await runtime.stop(); // handles them first
  await store.close();
  return tasks;
}

// Every KV entry of the vault, to show a refused command changed nothing.
async function snapshot(db: string): Promise<string> {
  const kv = await Deno.openKv(db);
  const entries = await Array.fromAsync(kv.list({ prefix: [] }));
  kv.close();
  return JSON.stringify(entries.map((e) => [e.key, e.versionstamp]));
}

Deno.test("toka agent state and history", async (t) => {
  const dir = await Deno.makeTempDir();
  const db = join(dir, "toka.kv");
  const toka = async (...args: string[]) => {
    const io = recordingIo();
    const code = await main([...args, "--db", db], io);
    return { code, io, out: io.outLines(), err: io.errLines() };
  };
  try {
    const tasks = await seed(db);
    // Positions: task.a 1, task.skip 2, task.b 3, then their agent.state events 4 and 5.
    assert.deepEqual(tasks.map((e) => e.position), [
      "0000000000000001",
      "0000000000000002",
      "0000000000000003",
    ]);

    await t.step("state prints the latest state, or the one at --at", async () => {
      assert.deepEqual((await toka("agent", "state", "counter")).out, [
        "{",
        '  "count": 2',
        "}",
      ]);
      assert.deepEqual((await toka("agent", "state", "counter", "--at", "2")).out, [
        "{",
        '  "count": 1',
        "}",
      ]);
      const json = await toka("agent", "state", "counter", "--at", "1", "--json");
      assert.equal(json.code, 0);
      assert.deepEqual(json.out.map((line) => JSON.parse(line)), [{
        agent: "counter",
        at: "0000000000000001",
        after: "0000000000000001",
        position: "0000000000000004",
        state: { count: 1 },
      }]);
    });

    await t.step("state before the first change says so", async () => {
      const run = await toka("agent", "state", "counter", "--at", "0");
      assert.equal(run.code, 0);
      assert.deepEqual(run.out, ['Agent "counter" had no state at position 0000000000000000']);
      const json = await toka("agent", "state", "counter", "--at", "0", "--json");
      assert.deepEqual(JSON.parse(json.out[0]), {
        agent: "counter",
        at: "0000000000000000",
        after: null,
        position: null,
        state: null,
      });
    });

    await t.step("history lists the changes with their positions", async () => {
      const run = await toka("agent", "history", "counter");
      assert.equal(run.code, 0);
      assert.deepEqual(run.out, [
        "AFTER             POSITION          STATE",
        '0000000000000001  0000000000000004  {"count":1}',
        '0000000000000003  0000000000000005  {"count":2}',
      ]);
      const json = await toka("agent", "history", "counter", "--json");
      assert.deepEqual(json.out.map((line) => JSON.parse(line)), [
        { after: "0000000000000001", position: "0000000000000004", state: { count: 1 } },
        { after: "0000000000000003", position: "0000000000000005", state: { count: 2 } },
      ]);
    });

    await t.step("bad input is one line, and the vault is unchanged", async () => {
      const before = await snapshot(db);
      const cases: [string[], number, string][] = [
        [["agent", "state", "nobody"], 1, 'error: No agent "nobody" in this vault'],
        [["agent", "history", "nobody"], 1, 'error: No agent "nobody" in this vault'],
        [
          ["agent", "state", "counter", "--at", "abc"],
          2,
          "error: option '--at <position>' argument 'abc' is invalid. Expected up to 16 digits",
        ],
        [
          ["agent", "state", "counter", "--at", "99"],
          1,
          'error: Position "99" is past the head of the log ("0000000000000005")',
        ],
        [
          ["agent", "state", "bad name!"],
          2,
          "error: command-argument value 'bad name!' is invalid for argument 'name'. Expected an agent name: 1 to 64 letters, digits, _ or -",
        ],
      ];
      for (const [args, code, line] of cases) {
        const run = await toka(...args);
        assert.equal(run.code, code, args.join(" "));
        assert.deepEqual(run.err, [line]);
        assert.deepEqual(run.out, []);
        assert.ok(hasNoStackTrace(run.io));
      }
      assert.equal(await snapshot(db), before);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("toka agent state and history escape what a terminal would act on", async () => {
  const dir = await Deno.makeTempDir();
  const db = join(dir, "toka.kv");
  try {
    const store = await openVault(db);
    const runtime = await Runtime.create({ vault: store });
    // JSON escapes C0 controls, not C1 ones (U+009B is a CSI) nor U+2028.
    const text = "\u009b2J\u0085x\u2028y";
    runtime.register(defineAgent({
      name: "echo",
      subscribe: ["say.*"],
      handle: (_event, ctx) => ctx.state.set({ text }),
    }));
    await runtime.emit({ kind: "say.it" });
    await runtime.start();
    await runtime.stop();
    await store.close();
    for (const command of ["state", "history"]) {
      const io = recordingIo();
      assert.equal(await main(["agent", command, "echo", "--db", db], io), 0);
      const out = io.out.join("");
      assert.ok(!/[\u0080-\u009f\u2028\u2029]/.test(out), JSON.stringify(out));
      assert.match(out, /\\u009b2J\\u0085x\\u2028y/);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
