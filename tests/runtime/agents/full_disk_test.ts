// A full disk must not drop an agent's inputs (issue 18 #18): an event is
// passed only once its outcome (the handler's work, or `agent.failed`) is in
// the log; while neither can be appended, the agent stops and tries again.
import assert from "node:assert/strict";
import {
  defineAgent,
  type EventRecord,
  type EventStore,
  MemoryEventStore,
  Runtime,
} from "../../../runtime/mod.ts";
import { until } from "../_helpers.ts";

/** A store whose next `failing` appends fail as on a full disk, then recover. */
function filling(store: EventStore): EventStore & { fail(n: number): void; failed: number } {
  let failing = 0;
  const state = { failed: 0 };
  const append: EventStore["append"] = (stream, events, options) => {
    if (failing > 0) {
      failing--;
      state.failed++;
      return Promise.reject(new Error("No space left on device (os error 28)"));
    }
    return store.append(stream, events, options);
  };
  return new Proxy(store, {
    get(target, key) {
      if (key === "append") return append;
      if (key === "fail") return (n: number) => failing = n;
      if (key === "failed") return state.failed;
      const value = Reflect.get(target, key);
      return typeof value === "function" ? value.bind(target) : value;
    },
  }) as EventStore & { fail(n: number): void; failed: number };
}

async function run(failures: number, jobs: number): Promise<void> {
  const inner = new MemoryEventStore();
  const store = filling(inner);
  const runtime = await Runtime.create({
    vault: store,
    retry: { attempts: 3, backoffMs: () => 1 },
  });
  const handled: string[] = [];
  runtime.register(defineAgent({
    name: "worker",
    subscribe: ["job.run"],
    async handle(event, ctx) {
      await ctx.emit({ kind: "job.done", payload: event.id });
      handled.push(event.id);
    },
  }));
  const backlog: EventRecord[] = [];
  for (let i = 0; i < jobs; i++) backlog.push(await runtime.emit({ kind: "job.run" }));
  store.fail(failures);
  await runtime.start();
  const outcomes = async () => {
    const done = new Set<string>();
    for await (const e of inner.read({ kinds: ["job.done", "agent.failed"] })) {
      done.add(
        e.kind === "job.done" ? e.payload as string : (e.payload as { eventId: string }).eventId,
      );
    }
    return done;
  };
  // Done once it passed the last job, however (the position moves only forward).
  const last = backlog.at(-1)!.position;
  await until(() => (runtime.agents()[0].position ?? "") >= last, 20_000);
  await runtime.stop();
  const done = await outcomes();
  const skipped = backlog.filter((e) => !done.has(e.id));
  assert.equal(store.failed, failures, "the disk was full for that many appends");
  assert.deepEqual(skipped.map((e) => e.id), [], "no job passed without an outcome in the log");
}

Deno.test("a full disk drops no agent input", async (t) => {
  await t.step(
    "the emit fails three times and agent.failed once: the event is tried again",
    () => run(4, 5),
  );
  await t.step(
    "the disk stays full for several rounds: nothing is passed meanwhile",
    () => run(25, 20),
  );
  await t.step(
    "agent.failed is recorded once the handler has failed every attempt",
    () => run(3, 5),
  );
});

Deno.test("a read of the log that fails is tried again, not the agent's end", async () => {
  const inner = new MemoryEventStore();
  let failures = 2;
  const store = new Proxy(inner, {
    get(target, key) {
      if (key === "subscribe") {
        return (options: Parameters<EventStore["subscribe"]>[0]) => {
          if (failures-- > 0) {
            return (async function* () {
              yield* [];
              throw new Error("disk I/O error");
            })();
          }
          return target.subscribe(options);
        };
      }
      const value = Reflect.get(target, key);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  const runtime = await Runtime.create({ vault: store, retry: { backoffMs: () => 1 } });
  const handled: unknown[] = [];
  runtime.register(defineAgent({
    name: "worker",
    subscribe: ["job.run"],
    handle: (event) => void handled.push(event.payload),
  }));
  await runtime.emit({ kind: "job.run", payload: 1 });
  await runtime.start();
  await runtime.emit({ kind: "job.run", payload: 2 });
  await until(() => handled.length === 2, 5_000);
  await runtime.stop();
  assert.deepEqual(handled, [1, 2]);
});
