// A process for the kill-anywhere test: handles the tasks in the vault with
// an agent that makes two steps, two journaled tool calls (one of them
// model.chat, on the parent's fake server at `baseUrl`), a state change and
// an emit per task; every third task's first attempt then fails and is
// retried, and every fifth task's second step throws once. A second agent makes two steps at once and an emit. A third makes
// a step, a state change and an emit, then fails in the first generations
// (giving up after 3 attempts); the later ones ask it to retry what it gave
// up on. Each step's fn and the charge tool append
// `<what> <n> <generation>` to the effects file when they run, and return the
// generation, so the log says whose run was recorded. Prints "handling" at its
// first task and "done" once its agents passed the head of the log, then exits;
// the parent SIGKILLs or SIGSTOPs it at random moments before that.
import { defineAgent, readFailedEvents } from "../../../runtime/mod.ts";
import { defineTool } from "../../../toolkit/mod.ts";
import { createRuntime } from "../../../mod.ts";

const [db, effects, generation, baseUrl] = Deno.args;
const by = Number(generation);

/** Records that `what` ran for task `n`, slowly enough that kills land inside. */
async function effect(what: string, n: number): Promise<void> {
  await Deno.writeTextFile(effects, `${what} ${n} ${generation}\n`, { append: true });
  await new Promise((resolve) => setTimeout(resolve, 8));
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
  retry: { attempts: 3, backoffMs: () => 5 },
  model: { baseUrl, model: "fake-model" },
  extraTools: [defineTool({
    name: "charge",
    description: "Charges task n",
    version: "1.0.0",
    inputSchema: { type: "object" },
    execute: async (input) => {
      const { n } = input as { n: number };
      await effect("tool", n);
      return { charged: n, by };
    },
  })],
});
const store = runtime.bus.store!;
let handling = false;
// Every third task's first attempt in each process fails at its end.
const failed = new Set<number>();
const stepFailed = new Set<number>();
runtime.register(defineAgent({
  name: "worker",
  subscribe: ["task.created"],
  permissions: ["tool:charge:invoke", "tool:model.chat:invoke"],
  async handle(event, ctx) {
    const { n } = event.payload as { n: number };
    if (!handling) console.log("handling");
    handling = true;
    // Each result names the process whose run was recorded.
    const a = await ctx.step("first", async () => {
      await effect("first", n);
      return { value: 2 * n, by };
    });
    const b = await ctx.step("second", async () => {
      // Every fifth task's second step throws once per process (recorded as
      // step.failed), before its effect: the next attempt runs it again.
      if (n % 5 === 0 && !stepFailed.has(n)) {
        stepFailed.add(n);
        throw new Error(`Step of task ${n} failed once`);
      }
      await effect("second", n);
      return { value: a.value + 1, by };
    });
    const charged = await ctx.tools.call("charge", { n });
    const { message } = await ctx.tools.call("model.chat", {
      messages: [{ role: "user", content: `task ${n}` }],
    }) as { message: { content: string } };
    const tally = ctx.state.get<Tally>() ?? { count: 0, sum: 0, seen: [] };
    ctx.state.set({ count: tally.count + 1, sum: tally.sum + b.value, seen: [...tally.seen, n] });
    await ctx.emit({ kind: "task.done", payload: { n, a, b, charged, answer: message.content } });
    // After its state change and emit: the retry must see neither twice.
    if (n % 3 === 0 && !failed.has(n)) {
      failed.add(n);
      throw new Error(`Task ${n} failed once`);
    }
  },
}));
runtime.register(defineAgent({
  name: "pair",
  subscribe: ["task.created"],
  async handle(event, ctx) {
    const { n } = event.payload as { n: number };
    // Started together: numbered in the order of the calls.
    const [left, right] = await Promise.all([
      ctx.step("left", async () => {
        await effect("left", n);
        return { value: n, by };
      }),
      ctx.step("right", async () => {
        await effect("right", n);
        return { value: -n, by };
      }),
    ]);
    await ctx.emit({ kind: "pair.done", payload: { n, left, right } });
  },
}));
/** Generations before this one run a broken "flaky" agent. */
const FIXED = 6;
runtime.register(defineAgent({
  name: "flaky",
  subscribe: ["task.created"],
  async handle(event, ctx) {
    const { n } = event.payload as { n: number };
    const seen = await ctx.step("seen", async () => {
      await effect("seen", n);
      return { value: n, by };
    });
    const count = ctx.state.get<{ count: number }>()?.count ?? 0;
    ctx.state.set({ count: count + 1 });
    await ctx.emit({ kind: "flaky.done", payload: { n, seen } });
    if (by < FIXED) throw new Error(`Generation ${by} is broken`);
  },
}));
await runtime.start();
// Done when the agents have passed the head of the log (their own records
// too) and, once fixed, "flaky" has handled again every event it gave up on.
const head = async () =>
  (await Array.fromAsync(store.read({ direction: "backward", limit: 1 })))[0].position;
const behind = async () => {
  const failed = await readFailedEvents(store, "flaky");
  if (by >= FIXED) {
    for (const { eventId } of failed.filter((f) => !f.retryRequested)) {
      // Refused when an older process woken beside this one asked first.
      await runtime.retry("flaky", eventId).catch((error) => {
        if (error.code !== "retry_refused") throw error;
      });
    }
  }
  const at = await head();
  return failed.length > 0 || runtime.agents().some((agent) => agent.position !== at);
};
while (await behind()) {
  await new Promise((resolve) => setTimeout(resolve, 5));
}
await runtime.close();
console.log("done");
