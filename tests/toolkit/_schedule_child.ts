// A process for the schedule restart test, on a vault file. `schedule <db> <delayMs>`:
// the planner agent schedules a reminder for a new task, the process prints the timer
// as JSON and runs until killed. `serve <db> <aheadMs>`: runs the same agent (which handles
// the task again if the killed process had not saved its checkpoint) on a clock `aheadMs`
// ahead of the real one (so a timer is due without waiting for it) until the reminder is in
// the log and the task is handled, then stops and prints "fired".
import { createRuntime, defineAgent } from "../../mod.ts";

const [mode, db, ms] = Deno.args;
const ahead = mode === "serve" ? Number(ms) : 0;
// Fail rather than hang the test when something is wrong.
const deadline = setTimeout(() => {
  console.error(`The ${mode} child gave up after 120 s`);
  Deno.exit(2);
}, 120_000);
const runtime = await createRuntime({
  db,
  auth: { masterKey: null },
  clock: () => Date.now() + ahead,
  schedule: { pollIntervalMs: 50 },
  // The killed process holds the agent's lease until it ends: a short one is taken over soon.
  agentLeaseSecs: 1,
});
runtime.register(defineAgent({
  name: "planner",
  subscribe: ["task.created"],
  permissions: ["tool:schedule:invoke"],
  async handle(event, ctx) {
    const timer = await ctx.tools.call("schedule", {
      kind: "reminder.due",
      payload: { text: "Stand up" },
      delayMs: (event.payload as { delayMs: number }).delayMs,
    });
    if (mode === "schedule") console.log(JSON.stringify(timer));
  },
}));
await runtime.start();
if (mode === "schedule") {
  await runtime.emit({ kind: "task.created", payload: { delayMs: Number(ms) } });
  await new Promise(() => {}); // Runs until killed.
} else {
  const vault = runtime.bus.store!;
  const [task] = await Array.fromAsync(vault.read({ kinds: ["task.created"] }));
  const done = async () => {
    const fired = await Array.fromAsync(vault.read({ kinds: ["reminder.due"] }));
    const [planner] = runtime.agents();
    const handled = planner.standby ||
      (planner.position !== null && planner.position >= task.position);
    return fired.length > 0 && handled;
  };
  while (!(await done())) await new Promise((resolve) => setTimeout(resolve, 50));
  await runtime.close();
  clearTimeout(deadline);
  console.log("fired");
}
