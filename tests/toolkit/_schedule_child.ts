// A process for the schedule restart test. `schedule <db> <delayMs>`: an agent
// schedules a reminder, the process prints its timer as JSON and runs until killed.
// `serve <db>` runs the runtime (without that agent) until the reminder is in the
// log, then stops and prints "fired".
import { createRuntime, defineAgent } from "../../mod.ts";

const [mode, db, delayMs] = Deno.args;
// Fail rather than hang the test when something is wrong.
const deadline = setTimeout(() => {
  console.error(`The ${mode} child gave up after 120 s`);
  Deno.exit(2);
}, 120_000);
const runtime = await createRuntime({
  db,
  auth: { masterKey: null },
  schedule: { pollIntervalMs: 50 },
});
if (mode === "schedule") {
  runtime.register(defineAgent({
    name: "planner",
    subscribe: ["task.created"],
    permissions: ["tool:schedule:invoke"],
    async handle(_event, ctx) {
      const timer = await ctx.tools.call("schedule", {
        kind: "reminder.due",
        payload: { text: "Stand up" },
        delayMs: Number(delayMs),
      });
      console.log(JSON.stringify(timer));
    },
  }));
  await runtime.start();
  await runtime.emit({ kind: "task.created" });
  await new Promise(() => {}); // Runs until killed.
} else {
  await runtime.start();
  const vault = runtime.bus.store!;
  while ((await Array.fromAsync(vault.read({ kinds: ["reminder.due"] }))).length === 0) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await runtime.close();
  clearTimeout(deadline);
  console.log("fired");
}
