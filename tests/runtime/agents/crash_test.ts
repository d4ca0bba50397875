import assert from "node:assert/strict";
import { join } from "node:path";
import { openVault } from "../../../vault/mod.ts";
import { all, killWhen, linesStarting, spawnChild } from "../_helpers.ts";

const CHILD = new URL("./_crash_child.ts", import.meta.url).pathname;
const TASKS = 40;

const child = (mode: string, db: string) => spawnChild(CHILD, [mode, db, String(TASKS)]);

Deno.test("after SIGKILL, a restarted runtime delivers what the agent had not finished", async () => {
  const dir = await Deno.makeTempDir();
  const db = join(dir, "toka.kv");
  try {
    // Run 1: produce, handle slowly, get killed mid-run.
    const first = child("produce", db);
    await killWhen(
      first,
      (text) => linesStarting(text, "handled") >= 10 && text.includes("produced"),
    );
    assert.equal((await first.status).signal, "SIGKILL");

    // What was durably finished when the process died.
    const store = await openVault(db);
    const checkpoint =
      (await store.kv.get<{ position: string }>(["runtime", "checkpoint", "worker"]))
        .value;
    const tasks = await all(store, ["task.created"]);
    await store.close();
    assert.equal(tasks.length, TASKS, "every acknowledged emit survived");
    assert.ok(checkpoint !== null);
    const finished = tasks.filter((t) => t.position <= checkpoint.position).length;
    assert.ok(finished >= 1 && finished < TASKS, `killed mid-run (${finished} finished)`);

    // Run 2: resume.
    const second = child("resume", db);
    const output = await second.output();
    assert.equal(output.code, 0);
    const resumed: number[] = JSON.parse(new TextDecoder().decode(output.stdout));
    const expected = Array.from({ length: TASKS - finished }, (_, i) => finished + i + 1);
    assert.deepEqual(resumed, expected, "exactly the events after the checkpoint, in order");

    // The log holds each effect once, even for events handled twice.
    const after = await openVault(db);
    const started = (await all(after, ["task.started"])).map((e) => (e.payload as { n: number }).n);
    const done = (await all(after, ["task.done"])).map((e) => (e.payload as { n: number }).n);
    await after.close();
    const every = Array.from({ length: TASKS }, (_, i) => i + 1);
    assert.deepEqual([...started].sort((a, b) => a - b), every);
    assert.deepEqual([...done].sort((a, b) => a - b), every);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
