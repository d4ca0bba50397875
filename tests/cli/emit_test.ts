// `toka emit`: one event by the rules of runtime.emit, from every payload source; bad input
// creates nothing; and end to end, an agent hosted by `toka run` in another process handles it.
import assert from "node:assert/strict";
import { join } from "node:path";
import { MAX_PAYLOAD_BYTES } from "../../vault/mod.ts";
import { exists, runToka } from "./_fakes.ts";
import { eventsIn, toka as tokaProcess, TokaProcess, waitForEvent } from "./_process.ts";

const toka = (args: string[], stdin?: string) => runToka(args, { stdin });

Deno.test("toka emit", async (t) => {
  const dir = await Deno.makeTempDir();
  const db = join(dir, "v.kv");
  try {
    await t.step("prints the id; stream runtime and payload null by default", async () => {
      const { code, out, errLines } = await toka(["--db", db, "emit", "task.created"]);
      assert.equal(code, 0, errLines.join("\n"));
      assert.match(out, /^[0-9A-Z]{26}\n$/);
      const [event] = await eventsIn(db);
      assert.equal(event.id, out.trim());
      assert.equal(event.stream, "runtime");
      assert.equal(event.kind, "task.created");
      assert.equal(event.payload, null);
    });

    await t.step(
      "--payload, --payload-file and - (stdin); --stream, --intent, --json",
      async () => {
        const file = join(dir, "payload.json");
        await Deno.writeTextFile(file, '{"from": "file"}');
        const inline = await toka([
          "--db",
          db,
          "--json",
          "emit",
          "task.created",
          "--payload",
          '{"id": 1, "tags": ["a"]}',
          "--stream",
          "tasks/1",
          "--intent",
          "try it",
        ]);
        assert.equal(inline.code, 0);
        const record = JSON.parse(inline.out);
        const stored = (await eventsIn(db)).at(-1)!;
        assert.deepEqual(record, JSON.parse(JSON.stringify(stored)));
        assert.deepEqual(stored.payload, { id: 1, tags: ["a"] });
        assert.equal(stored.stream, "tasks/1");
        assert.equal(stored.version, 1);
        assert.equal(stored.intent, "try it");

        const fromFile = await toka(["--db", db, "emit", "a.b", "--payload-file", file]);
        assert.equal(fromFile.code, 0);
        assert.deepEqual((await eventsIn(db)).at(-1)!.payload, { from: "file" });
        const fromStdin = await toka(["--db", db, "emit", "a.b", "-"], '"from stdin"\n');
        assert.equal(fromStdin.code, 0);
        assert.equal((await eventsIn(db)).at(-1)!.payload, "from stdin");
      },
    );

    await t.step("bad input: 2 for arguments, 1 for unreadable input; no vault", async () => {
      const fresh = join(dir, "fresh.kv");
      const big = join(dir, "big.json");
      await Deno.writeTextFile(big, JSON.stringify("x".repeat(MAX_PAYLOAD_BYTES)));
      const cases: [string[], string | undefined, number, RegExp][] = [
        [
          ["emit", "bad kind"],
          undefined,
          2,
          /^error: command-argument value 'bad kind' is invalid/,
        ],
        [["emit", "a.b", "--stream", "bad stream!"], undefined, 2, /option '--stream <stream>'/],
        [
          ["emit", "a.b", "--payload", "{oops"],
          undefined,
          2,
          /^error: Invalid JSON in --payload: /,
        ],
        [["emit", "a.b", "--payload", "1", "-"], "2", 2, /^error: Give the payload once: /],
        [["emit", "a.b", "x"], undefined, 2, /'x' is invalid.*Expected "-"/],
        [["emit", "a.b", "--intent", "i".repeat(1025)], undefined, 2, /at most 1024 characters/],
        [
          ["emit", "a.b", "--payload-file", join(dir, "none.json")],
          undefined,
          1,
          /^error: Cannot read payload file ".*none.json": /,
        ],
        [["emit", "a.b", "-"], "{oops", 1, /^error: Invalid JSON in standard input: /],
        [
          ["emit", "a.b", "--payload-file", big],
          undefined,
          1,
          /^error: Payload in payload file ".*big\.json" is \d+ bytes, over the maximum of \d+$/,
        ],
      ];
      for (const [args, stdin, expected, line] of cases) {
        const { code, out, errLines } = await toka(["--db", fresh, ...args], stdin);
        assert.equal(code, expected, args.join(" "));
        assert.equal(out, "");
        assert.equal(errLines.length, 1, errLines.join("\n"));
        assert.match(errLines[0], line);
      }
      assert.equal(await exists(fresh), false);
    });

    await t.step(
      "a payload nested 10,000 deep is refused with one line and stores nothing; export still works",
      async () => {
        const deep = "[".repeat(10_000) + "]".repeat(10_000);
        const line =
          /^error: Invalid payload in (.+): \$(\[0\])+…(\[0\])+ is nested 257 deep, over the maximum of 256$/;
        const fresh = join(dir, "deep.kv");
        const refused = await toka(["--db", fresh, "emit", "a.b", "--payload", deep]);
        assert.equal(refused.code, 2);
        assert.deepEqual(refused.errLines.length, 1, refused.errLines.join("\n"));
        assert.match(refused.errLines[0], line);
        assert.equal(await exists(fresh), false, "a refused command creates no vault");

        const before = await eventsIn(db);
        assert.ok(before.length > 0);
        const file = join(dir, "deep.json");
        await Deno.writeTextFile(file, deep);
        for (const [args, stdin] of [[["--payload-file", file]], [["-"], deep]] as const) {
          const { code, out, errLines } = await toka(["--db", db, "emit", "a.b", ...args], stdin);
          assert.equal(code, 1, args.join(" "));
          assert.equal(out, "");
          assert.equal(errLines.length, 1, errLines.join("\n"));
          assert.match(errLines[0], line);
        }
        assert.deepEqual(await eventsIn(db), before, "nothing stored");
        const exported = await toka(["--db", db, "events", "export"]);
        assert.equal(exported.code, 0, exported.errLines.join("\n"));
        assert.equal(exported.out.trim().split("\n").length, before.length);
        const listed = await toka(["--db", db, "--json", "events", "list"]);
        assert.equal(listed.code, 0, listed.errLines.join("\n"));
      },
    );

    await t.step(
      "end to end: an agent hosted by `toka run` handles the emitted event",
      async () => {
        const shared = join(dir, "shared.kv");
        await Deno.writeTextFile(
          join(dir, "agents.ts"),
          `import { defineAgent } from "@toka/runtime";
export const ponger = defineAgent({
  name: "ponger",
  subscribe: ["ping"],
  async handle(event, ctx) { await ctx.emit({ kind: "pong", payload: event.payload }); },
});`,
        );
        const host = new TokaProcess(["--db", shared, "run", "agents.ts"], { cwd: dir });
        try {
          await host.waitFor(/Hosting "ponger" on/);
          const emitted = await tokaProcess(["--db", shared, "emit", "ping", "--payload", "42"]);
          assert.equal(emitted.code, 0, emitted.err);
          const id = emitted.out.trim();
          const pong = await waitForEvent(
            shared,
            (e) => e.kind === "pong" && e.parents.includes(id),
            "the pong",
          );
          assert.equal(pong.payload, 42);
          assert.equal(pong.stream, "agent/ponger");
          host.kill("SIGTERM");
          assert.equal((await host.exit()).code, 0, host.err);
        } finally {
          await host.close();
        }
      },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
