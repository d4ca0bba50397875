// A real process's agent schedules a reminder and is killed before it is due; after the due
// time two processes start on the same vault file: the reminder fires exactly once, although
// the agent handles its task again there (the killed process had not saved its checkpoint).
import assert from "node:assert/strict";
import { join } from "node:path";
import type { ScheduledTimer } from "../../toolkit/mod.ts";
import { openVault } from "../../vault/mod.ts";
import { killWhen } from "../runtime/_helpers.ts";

const CHILD = new URL("./_schedule_child.ts", import.meta.url).pathname;
// Long enough that the first process is surely killed before the reminder is due; the
// processes that start after it run on a clock past the due time instead of waiting for it.
const DELAY_MS = 600_000;

function child(args: string[]): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", CHILD, ...args],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/** The reminders in the log (timer id, parents, who scheduled) and the timers still pending. */
async function state(db: string): Promise<{ fired: string[][]; pending: number }> {
  const vault = await openVault(db);
  try {
    const [task] = await Array.fromAsync(vault.read({ kinds: ["task.created"] }));
    const events = await Array.fromAsync(vault.read({ kinds: ["reminder.due"] }));
    const timers = await Array.fromAsync(vault.kv!.list({ prefix: ["schedule", "timer"] }));
    return {
      fired: events.map((e) => [
        e.meta.scheduleId,
        e.meta.scheduledBy,
        String(e.parents[0] === task.id),
      ]),
      pending: timers.length,
    };
  } finally {
    await vault.close();
  }
}

Deno.test("a reminder scheduled by a killed process fires once after a restart", async () => {
  const dir = await Deno.makeTempDir();
  const db = join(dir, "toka.kv");
  const children: Deno.ChildProcess[] = [];
  try {
    const first = child(["schedule", db, String(DELAY_MS)]);
    children.push(first);
    const text = await killWhen(
      first,
      (text) => text.includes("\n"),
      "The scheduling child ended before it printed its timer",
    );
    await first.stderr.cancel();
    assert.equal((await first.status).signal, "SIGKILL");
    const timer: ScheduledTimer = JSON.parse(text.split("\n")[0]);
    assert.equal(timer.kind, "reminder.due");

    assert.deepEqual(await state(db), { fired: [], pending: 1 }, "killed before it was due");
    // The due time passes with no process running: the next ones start 100 ms past it.
    const ahead = String(Date.parse(timer.due) + 100 - Date.now());

    // Two processes race for it; each runs until it sees the reminder in the log.
    const racers = [child(["serve", db, ahead]), child(["serve", db, ahead])];
    children.push(...racers);
    const outputs = await Promise.all(racers.map((racer) => racer.output()));
    for (const output of outputs) {
      const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
      assert.equal(output.code, 0, decode(output.stderr));
      assert.equal(decode(output.stdout), "fired\n");
    }
    assert.deepEqual(await state(db), {
      fired: [[timer.id, "agent/planner", "true"]],
      pending: 0,
    });
  } finally {
    for (const process of children) {
      try {
        process.kill("SIGKILL");
      } catch {
        // Already ended.
      }
    }
    await Deno.remove(dir, { recursive: true });
  }
});
