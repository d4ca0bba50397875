// A process for the crash test: `produce` emits the tasks and handles them
// slowly (the parent SIGKILLs it mid-run); `resume` handles what is left,
// prints what it handled as JSON and exits.
import { defineAgent, Runtime } from "../../../runtime/mod.ts";
import { openVault } from "../../../vault/mod.ts";
import { kvPorts } from "../_helpers.ts";

const [mode, db, count] = Deno.args;
const store = await openVault(db);
// The killed process keeps its agent's lease until it ends: a short one lets
// `resume` take over soon.
const runtime = await Runtime.create({ vault: store, ...kvPorts(store.kv), agentLeaseSecs: 1 });
const handled: number[] = [];
runtime.register(defineAgent({
  name: "worker",
  subscribe: ["task.created"],
  async handle(event, ctx) {
    const n = (event.payload as { n: number }).n;
    await ctx.emit({ kind: "task.started", payload: { n } });
    await new Promise((resolve) => setTimeout(resolve, 3));
    await ctx.emit({ kind: "task.done", payload: { n } });
    handled.push(n);
    if (mode === "produce") console.log(`handled ${n}`);
  },
}));
await runtime.start();
if (mode === "produce") {
  for (let n = 1; n <= Number(count); n++) {
    await runtime.emit({ kind: "task.created", payload: { n } });
  }
  console.log("produced");
  await new Promise(() => {}); // Runs until killed.
} else {
  const [last] = await Array.fromAsync(
    store.read({ kinds: ["task.created"], direction: "backward", limit: 1 }),
  );
  while (runtime.agents()[0].position !== last.position) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  await runtime.stop();
  await store.close();
  console.log(JSON.stringify(handled));
}
