// A process for the crash test: `produce` emits the tasks and handles them
// slowly (the parent SIGKILLs it mid-run); `resume` handles what is left,
// prints what it handled as JSON and exits.
import { defineAgent } from "../../../runtime/mod.ts";
import { crashChild } from "../_helpers.ts";

const handled: number[] = [];
const { store } = await crashChild((mode) =>
  defineAgent({
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
  })
);
await store.close();
console.log(JSON.stringify(handled));
