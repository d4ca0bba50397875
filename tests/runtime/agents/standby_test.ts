import assert from "node:assert/strict";
import { join } from "node:path";
import { openVault } from "../../../vault/mod.ts";

const CHILD = new URL("./_standby_child.ts", import.meta.url).pathname;
const TASKS = 60;

// A child process and what it printed so far.
function child(db: string) {
  const process = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CHILD, db],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = process.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const lines: string[] = [];
  let buffer = "";
  const reading = (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      const parts = buffer.split("\n");
      buffer = parts.pop()!;
      lines.push(...parts);
    }
  })();
  const handled = () =>
    lines.filter((l) => l.startsWith("handled ")).map((l) => Number(l.slice(8)));
  return { process, lines, handled, reading };
}

async function until(condition: () => boolean, what: string, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

Deno.test("a standby process takes an agent over when the running one is killed", async () => {
  const dir = await Deno.makeTempDir();
  const db = join(dir, "toka.kv");
  const store = await openVault(db);
  const a = child(db);
  let b: ReturnType<typeof child> | undefined;
  try {
    await until(() => a.lines.includes("running"), "the first process runs the agent");
    b = child(db);
    await until(() => b!.lines.includes("standby"), "the second one stands by");
    for (let n = 1; n <= TASKS; n++) {
      await store.append("tasks", [{ kind: "task.created", payload: { n } }]);
    }
    await until(() => a.handled().length >= 10, "the first process handled some tasks");
    assert.deepEqual(b!.handled(), [], "the standby handles nothing while the other runs");
    a.process.kill("SIGKILL");
    await a.process.status;
    await a.reading.catch(() => {});
    assert.ok(a.handled().length < TASKS, "killed mid-run");
    await until(
      () => new Set([...a.handled(), ...b!.handled()]).size === TASKS,
      "every task is handled",
    );
    const first = a.handled();
    const second = b!.handled();
    assert.ok(second.length > 0, "the standby took over");
    // The second process resumes at the first one's checkpoint: it may repeat
    // only the tasks finished last before the kill, never earlier ones.
    const repeated = second.filter((n) => first.includes(n));
    assert.deepEqual(repeated, first.slice(first.length - repeated.length));
    assert.deepEqual(second, [...second].sort((x, y) => x - y), "in order");
  } finally {
    for (const c of [a, b]) {
      if (c === undefined) continue;
      try {
        c.process.kill("SIGKILL");
      } catch {
        // Already ended.
      }
      await c.process.status;
      await c.reading.catch(() => {});
    }
    await store.close();
    await Deno.remove(dir, { recursive: true });
  }
});
