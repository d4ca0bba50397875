// Issue 22: the terminal counterparts of `toka ui`'s run and event views:
// `toka events list --correlation ID` and `toka events tree ID`.
import assert from "node:assert/strict";
import { main } from "../../cli.ts";
import { MemoryEventStore } from "../../vault/mod.ts";
import { formatEventLine } from "../../cli/_format.ts";
import { readCorrelation, readDescendants } from "../../cli/_event_queries.ts";
import { opener, recordingIo, unclosable } from "./_fakes.ts";
import { seedRun } from "./_ui_fixture.ts";

Deno.test("toka events list --correlation and events tree", async (t) => {
  let now = Date.parse("2026-12-06T12:00:00.000Z");
  const store = new MemoryEventStore({ clock: () => now += 10 });
  const first = await seedRun(store, "one");
  const second = await seedRun(store, "two");
  // A grandchild of the first run, and an event naming a correlation that is no event's id.
  const [followUp] = (await store.append("agent/reviewer", [{
    kind: "review.done",
    parents: [first.done.id],
    meta: { correlationId: first.created.id, causationId: first.done.id },
  }])).events;
  const [tagged] = (await store.append("misc", [{
    kind: "note.added",
    meta: { correlationId: "batch-7" },
  }])).events;
  const toka = async (...args: string[]) => {
    const io = recordingIo();
    const code = await main(args, io, { openStore: opener(unclosable(store)) });
    return { code, io };
  };

  await t.step(
    "list --correlation prints the run oldest first, its first event included",
    async () => {
      const { code, io } = await toka("events", "list", "--correlation", first.created.id);
      assert.equal(code, 0);
      assert.deepEqual(
        io.outLines(),
        [first.created, first.invoked, first.completed, first.done, followUp].map(formatEventLine),
      );
    },
  );

  await t.step("with --json, --kind, --limit and an id that is no event's", async () => {
    const json = await toka("--json", "events", "list", "--correlation", second.created.id);
    assert.deepEqual(json.io.outLines().map((line) => JSON.parse(line)), [
      second.created,
      second.invoked,
      second.completed,
      second.done,
    ]);
    const tools = await toka(
      "events",
      "list",
      "--correlation",
      second.created.id,
      "--kind",
      "tool.*",
      "--limit",
      "1",
    );
    assert.deepEqual(tools.io.outLines(), [formatEventLine(second.invoked)]);
    const named = await toka("events", "list", "--correlation", "batch-7");
    assert.deepEqual(named.io.outLines(), [formatEventLine(tagged)]);
    const none = await toka("events", "list", "--correlation", "nothing-here");
    assert.equal(none.code, 0);
    assert.deepEqual(none.io.out, []);
  });

  await t.step("a blank --correlation is a usage error", async () => {
    const { code, io } = await toka("events", "list", "--correlation", " ");
    assert.equal(code, 2);
    assert.match(io.err.join(""), /^error: .*Expected a correlation id of 1 to 256 characters\n$/);
  });

  await t.step("tree prints the parents, the event and what it caused, indented", async () => {
    const { code, io } = await toka("events", "tree", first.done.id.toLowerCase());
    assert.equal(code, 0);
    assert.deepEqual(io.outLines(), [
      `↑ ${formatEventLine(first.created)}`,
      formatEventLine(first.done),
      `└─ ${formatEventLine(followUp)}`,
    ]);
    const root = await toka("events", "tree", String(Number(first.created.position)));
    assert.deepEqual(root.io.outLines(), [
      formatEventLine(first.created),
      `├─ ${formatEventLine(first.invoked)}`,
      `├─ ${formatEventLine(first.completed)}`,
      `└─ ${formatEventLine(first.done)}`,
      `   └─ ${formatEventLine(followUp)}`,
    ]);
  });

  await t.step("tree --json nests the events; an unknown one is one line, exit 1", async () => {
    const { io } = await toka("--json", "events", "tree", first.done.id);
    assert.deepEqual(JSON.parse(io.outLines()[0]), {
      parents: [first.created],
      tree: { event: first.done, children: [{ event: followUp, children: [] }] },
    });
    const missing = await toka("events", "tree", "01M96G4BJS000000000YGXEQRS");
    assert.equal(missing.code, 1);
    assert.deepEqual(missing.io.errLines(), [
      'error: No event with id "01M96G4BJS000000000YGXEQRS"',
    ]);
    const bad = await toka("events", "tree", "nope");
    assert.equal(bad.code, 2);
  });

  await t.step("the scans stop at their budget and say so", async () => {
    const cut = await readDescendants(store, first.created, { scanLimit: 2 });
    assert.equal(cut.complete, false);
    assert.deepEqual(cut.tree.children.map((c) => c.event.id), [
      first.invoked.id,
      first.completed.id,
    ]);
    const page = await readCorrelation(store, first.created.id, {
      direction: "backward",
      scanLimit: 3,
    });
    // Positions 10, 9 and 8 were read (9 is the follow-up); the next page starts at 7.
    assert.deepEqual(page.events.map((e) => e.id), [followUp.id]);
    assert.equal(page.next, "0000000000000007");
  });
});

Deno.test("toka events tree of a long causal chain", async () => {
  // Each event caused by the one before: 20,000 levels deep.
  const store = new MemoryEventStore({ clock: () => 0 });
  let parent: string | undefined;
  for (let i = 0; i < 20_000; i++) {
    const [event] = (await store.append("chain", [{
      kind: "link.made",
      parents: parent === undefined ? [] : [parent],
    }])).events;
    parent = event.id;
  }
  const toka = async (...args: string[]) => {
    const io = recordingIo();
    const code = await main(args, io, { openStore: opener(unclosable(store)) });
    return { code, io };
  };
  const json = await toka("--json", "events", "tree", "1");
  assert.equal(json.code, 0, json.io.err.join(""));
  let node = JSON.parse(json.io.out.join("")).tree;
  for (let depth = 1; depth < 20_000; depth++) {
    assert.equal(node.children.length, 1);
    node = node.children[0];
  }
  assert.equal(node.event.position, "0000000000020000");
  assert.deepEqual(node.children, []);
  const text = await toka("events", "tree", "1");
  assert.equal(text.code, 0);
  const lines = text.io.outLines();
  assert.equal(lines.length, 20_000);
  // Indentation stops growing past a depth, so that the output stays linear in size.
  assert.ok(lines.every((line) => line.length < 400), `${Math.max(...lines.map((l) => l.length))}`);
  assert.match(lines[19_999], /^ *└─ \(depth 19999\) 0000000000020000 /);
});
