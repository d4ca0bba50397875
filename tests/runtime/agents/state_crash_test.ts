// An agent's state and its checkpoint are one commit: after a SIGKILL at any
// point, the state at the checkpoint counts exactly the events up to it, and
// the resumed run records each event's change once.
import assert from "node:assert/strict";
import { join } from "node:path";
import { KvCheckpointStore } from "../../../runtime/mod.ts";
import { openVault } from "../../../vault/mod.ts";
import { all, killWhen, linesStarting, spawnChild } from "../_helpers.ts";

const CHILD = new URL("./_state_crash_child.ts", import.meta.url).pathname;
const TASKS = 300;

const child = (mode: string, db: string) => spawnChild(CHILD, [mode, db, String(TASKS)]);

Deno.test("after SIGKILL, the agent's state matches its checkpoint and resumes from it", async () => {
  const dir = await Deno.makeTempDir();
  const db = join(dir, "toka.kv");
  try {
    // Run 1: count, get killed mid-run.
    const first = child("produce", db);
    await killWhen(
      first,
      (text) => text.includes("produced") && linesStarting(text, "handled") >= 40,
    );
    assert.equal((await first.status).signal, "SIGKILL");

    // What was durable when it died: the state at the checkpoint counts the
    // tasks up to it, and every agent.state event has its index entry.
    const store = await openVault(db);
    const checkpoints = new KvCheckpointStore(store.kv);
    const checkpoint = await checkpoints.load("counter");
    assert.ok(checkpoint?.position != null);
    const tasks = await all(store, ["task.created"]);
    assert.equal(tasks.length, TASKS, "every acknowledged emit survived");
    const finished = tasks.filter((t) => t.position <= checkpoint.position!).length;
    assert.ok(finished >= 1 && finished < TASKS, `killed mid-run (${finished} finished)`);
    const change = await checkpoints.stateAt("counter", checkpoint.position!);
    assert.equal((change?.state as { count: number }).count, finished);
    const recorded = await all(store, ["agent.state"]);
    const indexed = await Array.fromAsync(checkpoints.stateHistory("counter"));
    assert.deepEqual(indexed.map((c) => c.position), recorded.map((e) => e.position));
    assert.equal(recorded.length, finished, "no change recorded past the checkpoint");
    await store.close();

    // Run 2: resume from the checkpoint's state.
    const second = child("resume", db);
    const output = await second.output();
    assert.equal(output.code, 0);
    assert.deepEqual(JSON.parse(new TextDecoder().decode(output.stdout)), {
      count: TASKS,
      last: TASKS,
    });
    const after = await openVault(db);
    const changes = await all(after, ["agent.state"]);
    await after.close();
    const counts = changes.map((e) => (e.payload as { state: { count: number } }).state.count);
    assert.deepEqual(counts, Array.from({ length: TASKS }, (_, i) => i + 1), "each change once");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
