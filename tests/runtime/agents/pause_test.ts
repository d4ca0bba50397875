// A lease holder paused past its lease (its event loop blocked mid-handler)
// while another process takes the agent over: once resumed, its emit is
// refused, so the log holds one task.done.
import assert from "node:assert/strict";
import { join } from "node:path";
import { defineAgent, Runtime } from "../../../runtime/mod.ts";
import { openVault } from "../../../vault/mod.ts";
import { kvPorts } from "../_helpers.ts";

const CHILD = new URL("./_pause_child.ts", import.meta.url).pathname;

async function until(condition: () => boolean, what: string, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

Deno.test("a holder paused past its lease appends nothing once resumed", async () => {
  const dir = await Deno.makeTempDir();
  const db = join(dir, "toka.kv");
  const store = await openVault(db);
  const process = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CHILD, db],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const lines: string[] = [];
  const reading = (async () => {
    let buffer = "";
    for await (const chunk of process.stdout.pipeThrough(new TextDecoderStream())) {
      const parts = (buffer + chunk).split("\n");
      buffer = parts.pop()!;
      lines.push(...parts);
    }
  })();
  const handledHere: number[] = [];
  const standby = await Runtime.create({ vault: store, ...kvPorts(store.kv), agentLeaseSecs: 1 });
  standby.register(defineAgent({
    name: "worker",
    subscribe: ["task.created"],
    async handle(event, ctx) {
      const n = (event.payload as { n: number }).n;
      await ctx.emit({ kind: "task.done", payload: { n } });
      handledHere.push(n);
    },
  }));
  try {
    await until(() => lines.includes("running"), "the child runs the agent");
    await standby.start();
    assert.equal(standby.agents()[0].standby, true);
    await store.append("tasks", [{ kind: "task.created", payload: { n: 1 } }]);
    await until(() => lines.includes("handling 1"), "the child is paused in its handler");
    await until(() => handledHere.includes(1), "this process took over and handled task 1");
    await Deno.writeTextFile(`${db}.go`, "");
    await until(() => lines.some((l) => /^(refused|emitted) 1/.test(l)), "the child resumed");
    assert.deepEqual(lines.filter((l) => /^(refused|emitted)/.test(l)), [
      `refused 1 LeaseLostError: Agent "worker" lost its lease to another process: nothing it emits is appended`,
    ]);
    await standby.stop();
    const done = await Array.fromAsync(store.read({ kinds: ["task.done"] }));
    assert.deepEqual(done.map((e) => e.payload), [{ n: 1 }], "one task.done in the log");
  } finally {
    process.kill("SIGKILL");
    await process.status;
    await reading.catch(() => {});
    await standby.stop();
    await store.close();
    await Deno.remove(dir, { recursive: true });
  }
});
