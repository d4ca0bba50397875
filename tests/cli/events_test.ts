import assert from "node:assert/strict";
import { main } from "../../cli.ts";
import { MemoryEventStore, openVault, TokaError } from "../../vault/mod.ts";
import type { EventRecord, EventStore } from "../../runtime/log/event_store.ts";
import { hasNoStackTrace, opener, recordingIo, unclosable } from "./_fakes.ts";

const T0 = Date.parse("2026-11-27T09:00:00.000Z");

type MakeStore = (clock?: () => number) => Promise<EventStore>;

// Every command runs against both stores the vault provides.
const STORES: [string, MakeStore][] = [
  ["memory store", (clock) => Promise.resolve(new MemoryEventStore({ clock }))],
  ["Deno KV store", (clock) => openVault(":memory:", { clock })],
];

async function seeded(make: MakeStore): Promise<EventStore> {
  let now = T0;
  const store = await make(() => now++);
  const created = await store.append("agent/planner", [{
    kind: "task.created",
    payload: { id: 1 },
  }]);
  await store.append("agent/planner", [{
    kind: "task.done",
    payload: { id: 1, note: "x".repeat(200) },
    parents: [created.events[0].id],
  }]);
  await store.append("agent/worker", [{ kind: "tool.completed", payload: null }]);
  return store;
}

function toka(store: EventStore, io = recordingIo()) {
  return {
    io,
    run: (...args: string[]) => main(args, io, { openStore: opener(unclosable(store)) }),
  };
}

for (const [name, make] of STORES) {
  Deno.test(`toka events on the ${name}`, async (t) => {
    const store = await seeded(make);
    const all: EventRecord[] = await Array.fromAsync(store.read());

    await t.step("list prints one line per event", async () => {
      const { io, run } = toka(store);
      assert.equal(await run("events", "list"), 0);
      const lines = io.outLines();
      assert.equal(lines.length, 3);
      // Issue 19 item 6: the id is shown, to pass to `events show`.
      assert.equal(
        lines[0],
        `0000000000000001  ${
          all[0].id
        }  2026-11-27T09:00:00.000Z  agent/planner#1  task.created  {"id":1}`,
      );
      assert.match(
        lines[1],
        /^0000000000000002 .* agent\/planner#2 {2}task\.done {2}\{"id":1,"note":"x+…$/,
      );
      assert.equal(lines[1].split("  ")[1], all[1].id);
      assert.equal(lines[1].split("  ")[5].length, 80, "the payload is cut at 80 characters");
      assert.match(lines[2], /agent\/worker#1 {2}tool\.completed {2}null$/);
      assert.deepEqual(io.err, []);
    });

    await t.step("list --json prints the records as JSON Lines", async () => {
      const { io, run } = toka(store);
      assert.equal(await run("--json", "events", "list"), 0);
      assert.deepEqual(io.outLines().map((line) => JSON.parse(line)), all);
    });

    await t.step("list filters by stream, kind, start position and limit", async () => {
      const ids = async (...args: string[]) => {
        const { io, run } = toka(store);
        assert.equal(await run("events", "list", "--json", ...args), 0, args.join(" "));
        return io.outLines().map((line) => JSON.parse(line).position);
      };
      const p = all.map((e) => e.position);
      assert.deepEqual(await ids("--stream", "agent/planner"), [p[0], p[1]]);
      assert.deepEqual(await ids("--kind", "task.*"), [p[0], p[1]]);
      assert.deepEqual(await ids("--kind", "task.done", "--kind", "tool.*"), [p[1], p[2]]);
      assert.deepEqual(await ids("--from", "2"), [p[1], p[2]]);
      assert.deepEqual(await ids("--from", "2", "--limit", "1"), [p[1]]);
      assert.deepEqual(await ids("--limit", "0"), []);
      assert.deepEqual(await ids("--stream", "nobody"), []);
    });

    await t.step("list with an invalid stream name is a usage error in one line", async () => {
      const { io, run } = toka(store);
      assert.equal(await run("events", "list", "--stream", "bad stream!"), 2);
      assert.equal(io.errLines().length, 1);
      assert.match(
        io.errLines()[0],
        /^error: option '--stream <name>' argument 'bad stream!' is invalid/,
      );
      assert.ok(hasNoStackTrace(io));
    });

    await t.step("show prints one event; --json prints the record", async () => {
      const human = toka(store);
      assert.equal(await human.run("events", "show", all[1].id), 0);
      const text = human.io.out.join("");
      assert.match(text, new RegExp(`^id +${all[1].id}$`, "m"));
      assert.match(text, new RegExp(`^parents +${all[0].id}$`, "m"));
      assert.match(text, /^stream +agent\/planner#2$/m);
      const json = toka(store);
      assert.equal(await json.run("--json", "events", "show", all[1].id), 0);
      assert.deepEqual(JSON.parse(json.io.out.join("")), all[1]);
    });

    await t.step("show accepts a position as list prints it, or without its zeros", async () => {
      for (const position of ["2", "0000000000000002", "002"]) {
        const { io, run } = toka(store);
        assert.equal(await run("--json", "events", "show", position), 0, position);
        assert.deepEqual(JSON.parse(io.out.join("")), all[1]);
      }
      const human = toka(store);
      assert.equal(await human.run("events", "show", "3"), 0);
      assert.match(human.io.out.join(""), new RegExp(`^id +${all[2].id}$`, "m"));
      for (const position of ["4", "0", "9999999999999999"]) {
        const { io, run } = toka(store);
        assert.equal(await run("events", "show", position), 1, position);
        assert.deepEqual(io.errLines(), [`error: No event at position "${position}"`]);
        assert.deepEqual(io.out, []);
      }
    });

    await t.step("show of an unknown id exits 1, of a malformed id 2", async () => {
      const unknown = "0".repeat(26);
      const missing = toka(store);
      assert.equal(await missing.run("events", "show", unknown), 1);
      assert.deepEqual(missing.io.errLines(), [`error: No event with id "${unknown}"`]);
      for (const id of ["nope", "", "U".repeat(26), `${all[0].id}0`, "1".repeat(17), "-1", "1.0"]) {
        const { io, run } = toka(store);
        assert.equal(await run("events", "show", id), 2, id);
        assert.equal(io.errLines().length, 1);
        assert.match(
          io.errLines()[0],
          /^error: command-argument value '.*' is invalid for argument 'id'\. Expected an event id \(26 characters of Crockford base32\) or a position \(up to 16 digits\)$/,
        );
        assert.deepEqual(io.out, []);
      }
    });

    await t.step("show accepts an id in any case (Crockford base32)", async () => {
      const lower = all[1].id.toLowerCase();
      // Crockford base32 reads O as 0 and I or L as 1.
      const lookalike = all[1].id.replaceAll("0", "o").replaceAll("1", "l");
      for (const id of [lower, lookalike]) {
        const { io, run } = toka(store);
        assert.equal(await run("--json", "events", "show", id), 0, id);
        assert.deepEqual(JSON.parse(io.out.join("")), all[1]);
      }
    });

    await t.step("stats counts events, streams and kinds", async () => {
      const human = toka(store);
      assert.equal(await human.run("events", "stats"), 0);
      assert.match(human.io.out.join(""), /^events +3\nstreams +2\nhead +0000000000000003\n/);
      assert.match(human.io.out.join(""), /^ +task\.created +1$/m);
      const json = toka(store);
      assert.equal(await json.run("events", "stats", "--json"), 0);
      assert.deepEqual(JSON.parse(json.io.out.join("")), await store.stats());
    });

    await t.step("verify exits 0 on an intact log", async () => {
      const human = toka(store);
      assert.equal(await human.run("events", "verify"), 0);
      assert.deepEqual(human.io.outLines(), ["OK: 3 events verified, no problem found"]);
      const json = toka(store);
      assert.equal(await json.run("--json", "events", "verify"), 0);
      assert.deepEqual(JSON.parse(json.io.out.join("")), { ok: true, checked: 3, problems: [] });
    });

    await t.step("verify exits 1 and lists the problems by id", async () => {
      const problems = [{ id: all[1].id, position: all[1].position, reason: "digest mismatch" }];
      const tampered = unclosable(store, {
        verify: () => Promise.resolve({ ok: false, checked: 3, problems }),
      });
      const io = recordingIo();
      assert.equal(await main(["events", "verify"], io, { openStore: opener(tampered) }), 1);
      assert.deepEqual(io.outLines(), [
        "FAILED: 1 problem in 3 events",
        `${all[1].id}  ${all[1].position}  digest mismatch`,
      ]);
      const json = recordingIo();
      await main(["events", "verify", "--json"], json, { openStore: opener(tampered) });
      assert.deepEqual(JSON.parse(json.out.join("")).problems, problems);
    });

    await t.step("head prints the last position and chain digest, to pass to verify", async () => {
      const head = await store.head();
      assert.deepEqual(head, { position: all[2].position, digest: all[2].digest });
      const human = toka(store);
      assert.equal(await human.run("events", "head"), 0);
      assert.deepEqual(human.io.outLines(), [`${all[2].position}@${all[2].digest}`]);
      const json = toka(store);
      assert.equal(await json.run("--json", "events", "head"), 0);
      assert.deepEqual(JSON.parse(json.io.out.join("")), head);

      const kept = human.io.outLines()[0];
      const ok = toka(store);
      assert.equal(await ok.run("events", "verify", "--expect-head", kept), 0);
      assert.deepEqual(ok.io.outLines(), ["OK: 3 events verified, no problem found"]);
      const short = toka(store);
      const unpadded = `${Number(all[1].position)}@${all[1].digest}`;
      assert.equal(await short.run("events", "verify", "--expect-head", unpadded), 0);
      const fromJson = toka(store);
      assert.equal(
        await fromJson.run("events", "verify", "--expect-head", JSON.stringify(head)),
        0,
      );

      const rewritten = toka(store);
      const wrong = `${all[2].position}@sha256:${"0".repeat(64)}`;
      assert.equal(await rewritten.run("events", "verify", "--expect-head", wrong), 1);
      assert.deepEqual(rewritten.io.outLines(), [
        "FAILED: 1 problem in 3 events",
        `${all[2].id}  ${
          all[2].position
        }  digest differs from the expected head: the log up to this event was rewritten`,
      ]);
      const cut = toka(store);
      assert.equal(
        await cut.run("events", "verify", "--expect-head", `7@${all[2].digest}`),
        1,
      );
      assert.ok(cut.io.outLines()[1].startsWith("-  0000000000000004  the log ends at position 3"));

      for (const bad of ["", "12", "x@sha256:00", `1@sha256:${"g".repeat(64)}`, "{}"]) {
        const { io, run } = toka(store);
        assert.equal(await run("events", "verify", "--expect-head", bad), 2, bad);
        assert.equal(io.errLines().length, 1);
        assert.match(io.errLines()[0], /Expected <position>@sha256:<64 hex digits>/);
      }
    });

    await t.step("head of an empty log", async () => {
      const empty = await make();
      const human = toka(empty);
      assert.equal(await human.run("events", "head"), 0);
      assert.deepEqual(human.io.outLines(), ["The log is empty"]);
      const json = toka(empty);
      assert.equal(await json.run("--json", "events", "head"), 0);
      assert.equal(JSON.parse(json.io.out.join("")), null);
      await empty.close();
    });

    await t.step("tail prints the last n events", async () => {
      const { io, run } = toka(store);
      assert.equal(await run("events", "tail", "-n", "2"), 0);
      assert.deepEqual(io.outLines().map((l) => l.slice(0, 16)), [
        all[1].position,
        all[2].position,
      ]);
      const { io: ten, run: runTen } = toka(store);
      assert.equal(await runTen("events", "tail", "--json"), 0);
      assert.deepEqual(ten.outLines().map((l) => JSON.parse(l)), all);
      const { io: planner, run: runPlanner } = toka(store);
      assert.equal(await runPlanner("events", "tail", "-n", "1", "--stream", "agent/planner"), 0);
      assert.equal(planner.outLines().length, 1);
      assert.match(planner.outLines()[0], /agent\/planner#2/);
    });

    await t.step("tail --follow prints new events until the signal aborts", async () => {
      const live = await seeded(make);
      const controller = new AbortController();
      const io = recordingIo({ signal: controller.signal });
      const running = main(
        ["events", "tail", "--follow", "-n", "1", "--stream", "agent/planner"],
        io,
        {
          openStore: opener(live),
        },
      );
      await io.waitForLines(1);
      await live.append("agent/worker", [{ kind: "ignored" }]);
      await live.append("agent/planner", [{ kind: "task.created", payload: { id: 2 } }]);
      await io.waitForLines(2);
      controller.abort();
      assert.equal(await running, 0);
      const lines = io.outLines();
      assert.equal(lines.length, 2);
      assert.match(lines[0], /agent\/planner#2 {2}task\.done/);
      assert.match(
        lines[1],
        /^0000000000000005 .* agent\/planner#3 {2}task\.created {2}\{"id":2\}$/,
      );
    });

    await t.step("tail --follow on an empty store starts at the beginning", async () => {
      const live = await make();
      const controller = new AbortController();
      const io = recordingIo({ signal: controller.signal });
      const running = main(["--json", "events", "tail", "-f"], io, { openStore: opener(live) });
      await live.append("s", [{ kind: "first" }]);
      await io.waitForLines(1);
      controller.abort();
      assert.equal(await running, 0);
      assert.equal(JSON.parse(io.outLines()[0]).kind, "first");
    });

    await t.step("export, then import into another store, twice", async () => {
      const exported = toka(store);
      assert.equal(await exported.run("events", "export"), 0);
      const text = exported.io.out.join("");
      assert.deepEqual(text.trimEnd().split("\n").map((l) => JSON.parse(l)), all);

      const copy = await make();
      // Chunks cut mid-line and inside a multi-byte character must not matter.
      const chunks = [text.slice(0, 7), text.slice(7, 300), text.slice(300)];
      const first = toka(copy, recordingIo({ stdin: chunks }));
      assert.equal(await first.run("events", "import"), 0);
      assert.deepEqual(first.io.outLines(), ["Imported 3 events, skipped 0 already stored"]);
      assert.deepEqual(await Array.fromAsync(copy.read()), all);

      const second = toka(copy, recordingIo({ stdin: text.replaceAll("\n", "\r\n") + "\n" }));
      assert.equal(await second.run("--json", "events", "import"), 0);
      assert.deepEqual(JSON.parse(second.io.out.join("")), { imported: 0, skipped: 3 });
      assert.equal((await copy.stats()).events, 3);
      await copy.close();
    });

    await t.step("import checks every line first: a malformed line stores nothing", async () => {
      const lines = all.map((e) => JSON.stringify(e));
      const copy = await make();
      const io = recordingIo({ stdin: `${lines[0]}\n\n{"id": oops\n${lines[1]}\n` });
      assert.equal(await toka(copy, io).run("events", "import"), 1);
      assert.equal(io.errLines().length, 1);
      assert.match(io.errLines()[0], /^error: Invalid JSON on line 3: .*; nothing was imported$/);
      assert.deepEqual(io.out, []);
      assert.equal((await copy.stats()).events, 0);
      await copy.close();
    });

    await t.step("import of something that is not a record stores nothing", async () => {
      const copy = await make();
      const io = recordingIo({ stdin: `${JSON.stringify(all[0])}\n\n42\n` });
      assert.equal(await toka(copy, io).run("events", "import"), 1);
      assert.deepEqual(io.errLines(), [
        "error: Invalid record on line 3: not an object; nothing was imported",
      ]);
      assert.equal((await copy.stats()).events, 0);
      assert.ok(hasNoStackTrace(io));
      await copy.close();
    });

    await t.step("a record the store refuses on line N: says how many were stored", async () => {
      const altered = { ...all[1], payload: { id: 666 } };
      const copy = await make();
      const io = recordingIo({ stdin: `${JSON.stringify(all[0])}\n${JSON.stringify(altered)}\n` });
      assert.equal(await toka(copy, io).run("events", "import"), 1);
      assert.equal(io.errLines().length, 1);
      assert.match(
        io.errLines()[0],
        new RegExp(
          `^error: Invalid record on line 2: digest does not match .*${all[1].id}.*; ` +
            `the 1 event before it is stored, and a re-run skips it$`,
        ),
      );
      assert.deepEqual((await Array.fromAsync(copy.read())).map((e) => e.id), [all[0].id]);
      // Fixed input: the re-run skips what was stored and adds the rest.
      const fixed = recordingIo({ stdin: all.map((e) => JSON.stringify(e)).join("\n") });
      assert.equal(await toka(copy, fixed).run("events", "import"), 0);
      assert.deepEqual(fixed.outLines(), ["Imported 2 events, skipped 1 already stored"]);
      await copy.close();
    });

    await t.step(
      "a store's refusal (a domain error) on line N names it and what was stored",
      async () => {
        const copy = await make();
        const refused = all[2].id;
        const strict = unclosable(copy, {
          importEvents: async (records) => {
            const list = await Array.fromAsync(records);
            if (list.some((r) => r.id === refused)) {
              throw new TokaError(
                "import_conflict",
                `Stream "agent/worker" already has other events`,
              );
            }
            return await copy.importEvents(list);
          },
        });
        const io = recordingIo({ stdin: all.map((e) => JSON.stringify(e)).join("\n") });
        const code = await main(["--json", "events", "import"], io, { openStore: opener(strict) });
        assert.equal(code, 1);
        assert.deepEqual(JSON.parse(io.errLines()[0]), {
          error: {
            code: "import_conflict",
            message: `Refused on line 3: Stream "agent/worker" already has other events; ` +
              `the 2 events before it are stored, and a re-run skips them`,
          },
        });
        assert.equal((await copy.stats()).events, 2);
        await copy.close();
      },
    );

    await t.step("import without stdin exits 1", async () => {
      const { io, run } = toka(store);
      assert.equal(await run("events", "import"), 1);
      assert.deepEqual(io.errLines(), ["error: No standard input to import from"]);
    });

    await t.step("every command closes the store it opened", async () => {
      let opened = 0;
      let closed = 0;
      const openStore = () => {
        opened++;
        return Promise.resolve(unclosable(store, { close: () => Promise.resolve(void closed++) }));
      };
      for (
        const args of [["list"], ["show", "0".repeat(26)], ["stats"], ["verify"], ["export"], [
          "tail",
        ]]
      ) {
        await main(["events", ...args], recordingIo(), { openStore });
      }
      assert.equal(opened, 6);
      assert.equal(closed, 6);
    });

    await store.close();
  });
}

Deno.test("events show and list escape control characters of stored text", async (t) => {
  // Issue 17 item 10: meta and intent reached the terminal raw (forged lines, escape sequences).
  const store = new MemoryEventStore({ clock: () => T0 });
  const evil = "ok\n0000000000000009  forged\r\x1b[2J\x1b]0;title\x07\u009b31m\u2028end";
  const { events: [event] } = await store.append("agent/a", [{
    kind: "task.created",
    payload: { note: "\u009b2J\u2029" },
    intent: evil,
    meta: { actor: evil },
  }]);
  // What a terminal may act on: C0 and C1 controls, line and paragraph separators.
  const RAW = /[\p{Cc}\u2028\u2029]/u;

  await t.step("show escapes the intent, meta values and the payload", async () => {
    const { io, run } = toka(store);
    assert.equal(await run("events", "show", event.id), 0);
    const text = io.out.join("");
    const lines = text.split("\n").slice(0, -1);
    for (const line of lines) assert.doesNotMatch(line, RAW, line);
    const escaped = String.raw`ok\u000a0000000000000009  forged\u000d\u001b[2J\u001b]0;title` +
      String.raw`\u0007\u009b31m\u2028end`;
    assert.ok(lines.includes(`intent      ${escaped}`), text);
    assert.ok(lines.includes(`meta.actor  ${escaped}`), text);
    assert.ok(!lines.some((line) => line.startsWith("0000000000000009")), "no forged line");
    assert.match(text, /"note": "\\u009b2J\\u2029"/);
  });

  await t.step("list escapes the payload; --json keeps the record exact", async () => {
    const { io, run } = toka(store);
    assert.equal(await run("events", "list"), 0);
    assert.equal(io.outLines().length, 1);
    assert.doesNotMatch(io.out.join("").slice(0, -1), RAW);
    const json = toka(store);
    assert.equal(await json.run("--json", "events", "show", event.id), 0);
    assert.equal(JSON.parse(json.io.out.join("")).intent, evil);
  });
});
