// A process for the step crash test: `first` emits a task, records its step
// or tool call (`with`: "step" or "tool"; either appends a line to the effects
// file) and waits to be killed; `resume` handles the task again, prints the
// result as JSON and exits.
import { defineAgent } from "../../../runtime/mod.ts";
import { defineTool } from "../../../toolkit/mod.ts";
import { createRuntime } from "../../../mod.ts";

const [mode, db, effects, using] = Deno.args;
const charge = async () => {
  await Deno.writeTextFile(effects, `charged by ${mode}\n`, { append: true });
  return { charged: mode };
};
const runtime = await createRuntime({
  db,
  // The killed process keeps its agent's lease until it ends: a short one lets
  // `resume` take over soon.
  agentLeaseSecs: 1,
  extraTools: [defineTool({
    name: "charge",
    description: "Charges once per call",
    version: "1.0.0",
    inputSchema: { type: "object" },
    execute: charge,
  })],
});
const store = runtime.bus.store!;
let result: unknown;
runtime.register(defineAgent({
  name: "worker",
  subscribe: ["task.created"],
  permissions: ["tool:charge:invoke"],
  async handle(_event, ctx) {
    result = using === "tool"
      ? await ctx.tools.call("charge", { amount: 5 })
      : await ctx.step("charge", charge);
    if (mode === "first") {
      console.log("stepped");
      await new Promise(() => {}); // Runs until killed.
    }
    await ctx.emit({ kind: "task.done" });
  },
}));
await runtime.start();
if (mode === "first") {
  await runtime.emit({ kind: "task.created" });
  await new Promise(() => {});
} else {
  while ((await Array.fromAsync(store.read({ kinds: ["task.done"] }))).length === 0) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  await runtime.close();
  console.log(JSON.stringify(result));
}
