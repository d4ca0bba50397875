// A process for the kill-anywhere test: emits the tasks not yet in the vault,
// then handles them with an agent that makes two steps, two journaled tool
// calls (one of them model.chat, on the parent's fake server at `baseUrl`), a
// state change and an emit per task. Each step's fn and the charge tool append
// `<what> <n> <generation>` to the effects file when they run. Prints
// "handling" at its first task and "done" once its agent passed the head of
// the log, then exits; the parent SIGKILLs it at random moments before that.
import { defineAgent } from "../../../runtime/mod.ts";
import { defineTool } from "../../../toolkit/mod.ts";
import { createRuntime } from "../../../mod.ts";

const [db, effects, generation, count, baseUrl] = Deno.args;
const TASKS = Number(count);

/** Records that `what` ran for task `n`, slowly enough that kills land inside. */
async function effect(what: string, n: number): Promise<void> {
  await Deno.writeTextFile(effects, `${what} ${n} ${generation}\n`, { append: true });
  await new Promise((resolve) => setTimeout(resolve, 3));
}

export type Tally = {
  count: number;
  sum: number;
  seen: number[];
};

const runtime = await createRuntime({
  db,
  // A killed process keeps its agent's lease until it runs out: a short one
  // lets the next process take over soon.
  agentLeaseSecs: 0.2,
  model: { baseUrl, model: "fake-model" },
  extraTools: [defineTool({
    name: "charge",
    description: "Charges task n",
    version: "1.0.0",
    inputSchema: { type: "object" },
    execute: async (input) => {
      const { n } = input as { n: number };
      await effect("tool", n);
      return { charged: n };
    },
  })],
});
const store = runtime.bus.store!;
let handling = false;
runtime.register(defineAgent({
  name: "worker",
  subscribe: ["task.created"],
  permissions: ["tool:charge:invoke", "tool:model.chat:invoke"],
  async handle(event, ctx) {
    const { n } = event.payload as { n: number };
    if (!handling) console.log("handling");
    handling = true;
    const a = await ctx.step("first", async () => {
      await effect("first", n);
      return 2 * n;
    });
    const b = await ctx.step("second", async () => {
      await effect("second", n);
      return a + 1;
    });
    const charged = await ctx.tools.call("charge", { n });
    const { message } = await ctx.tools.call("model.chat", {
      messages: [{ role: "user", content: `task ${n}` }],
    }) as { message: { content: string } };
    const tally = ctx.state.get<Tally>() ?? { count: 0, sum: 0, seen: [] };
    ctx.state.set({ count: tally.count + 1, sum: tally.sum + b, seen: [...tally.seen, n] });
    await ctx.emit({ kind: "task.done", payload: { n, a, b, charged, answer: message.content } });
  },
}));
await runtime.start();
const emitted = (await Array.fromAsync(store.read({ kinds: ["task.created"] }))).length;
for (let n = emitted + 1; n <= TASKS; n++) {
  await runtime.emit({ kind: "task.created", payload: { n } });
}
// Done when the agent has passed the head of the log (its own records too).
const head = async () =>
  (await Array.fromAsync(store.read({ direction: "backward", limit: 1 })))[0].position;
while (runtime.agents()[0].position !== await head()) {
  await new Promise((resolve) => setTimeout(resolve, 5));
}
await runtime.close();
console.log("done");
