// A process for the state crash test: `produce` emits the tasks and counts
// them in the agent's state (the parent SIGKILLs it mid-run); `resume` counts
// what is left, prints the final state as JSON and exits.
import { defineAgent, Runtime } from "../../../runtime/mod.ts";
import { openVault } from "../../../vault/mod.ts";
import { kvPorts } from "../_helpers.ts";

const [mode, db, count] = Deno.args;
const store = await openVault(db);
// The killed process keeps its agent's lease until it ends: a short one lets
// `resume` take over soon.
const runtime = await Runtime.create({ vault: store, ...kvPorts(store.kv), agentLeaseSecs: 1 });
runtime.register(defineAgent({
  name: "counter",
  subscribe: ["task.created"],
  async handle(event, ctx) {
    const n = (event.payload as { n: number }).n;
    // Slow enough that the parent kills it mid-run, even on a loaded machine.
    await new Promise((resolve) => setTimeout(resolve, 3));
    const count = ctx.state.get<{ count: number }>()?.count ?? 0;
    ctx.state.set({ count: count + 1, last: n });
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
  console.log(JSON.stringify(await runtime.stateAt("counter")));
  await store.close();
}
