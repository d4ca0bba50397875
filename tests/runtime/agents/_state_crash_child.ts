// A process for the state crash test: `produce` emits the tasks and counts
// them in the agent's state (the parent SIGKILLs it mid-run); `resume` counts
// what is left, prints the final state as JSON and exits.
import { defineAgent } from "../../../runtime/mod.ts";
import { crashChild } from "../_helpers.ts";

const { runtime, store } = await crashChild((mode) =>
  defineAgent({
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
  })
);
console.log(JSON.stringify(await runtime.stateAt("counter")));
await store.close();
