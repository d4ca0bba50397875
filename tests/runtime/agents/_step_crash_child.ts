// A process for the step crash test: `first` emits a task, records its step
// (which appends a line to the effects file) and waits to be killed; `resume`
// handles the task again, prints the step's result as JSON and exits.
import { defineAgent, Runtime } from "../../../runtime/mod.ts";
import { openVault } from "../../../vault/mod.ts";
import { kvPorts } from "../_helpers.ts";

const [mode, db, effects] = Deno.args;
const store = await openVault(db);
const runtime = await Runtime.create({ vault: store, ...kvPorts(store.kv), agentLeaseSecs: 1 });
let result: unknown;
runtime.register(defineAgent({
  name: "worker",
  subscribe: ["task.created"],
  async handle(_event, ctx) {
    result = await ctx.step("charge", async () => {
      await Deno.writeTextFile(effects, `charged by ${mode}\n`, { append: true });
      return { charged: mode };
    });
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
  await runtime.stop();
  await store.close();
  console.log(JSON.stringify(result));
}
