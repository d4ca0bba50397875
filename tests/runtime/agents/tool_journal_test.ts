// Tool calls made while handling are steps (issue 20 §2): the n-th journaled
// call's output is recorded in tool.completed and served back when the event
// is handled again; tools with `journal: false` run again.
import assert from "node:assert/strict";
import {
  defineAgent,
  type EventStore,
  MemoryCheckpointStore,
  MemoryLeaseStore,
  Runtime,
  type ToolInfo,
  type ToolRegistry as ToolRegistryContract,
} from "../../../runtime/mod.ts";
import { MemoryEventStore } from "../../../vault/mod.ts";
import { defineTool, type Tool, ToolRegistry } from "../../../toolkit/mod.ts";
import { createRuntime } from "../../../mod.ts";
import { all, until } from "../_helpers.ts";

// A tool that counts its runs, with a given journal option and output.
function counting(
  name: string,
  options: Partial<Tool> = {},
  output?: (n: number) => unknown,
): { runs: number; definition: Tool } {
  const tool: { runs: number; definition: Tool } = {
    runs: 0,
    definition: defineTool({
      name,
      description: `Counts its runs (${name})`,
      version: "1.0.0",
      inputSchema: { type: "object" },
      execute: (): unknown => {
        tool.runs++;
        return output === undefined ? { run: tool.runs } : output(tool.runs);
      },
      ...options,
    }),
  };
  return tool;
}

interface Setup {
  runtime: Runtime;
  store: EventStore;
  close(): Promise<void>;
}

async function memory(tools: Tool[]): Promise<Setup> {
  const store = new MemoryEventStore();
  const leases = new MemoryLeaseStore();
  const registry = new ToolRegistry({
    tools,
    record: (event, cause) => runtime.bus.emit({ ...event, stream: "toolkit" }, cause),
  });
  const runtime: Runtime = await Runtime.create({
    vault: store,
    leases,
    checkpoints: new MemoryCheckpointStore(leases),
    tools: registry,
    retry: { attempts: 3, backoffMs: () => 1 },
  });
  return { runtime, store, close: () => store.close() };
}

async function kv(tools: Tool[]): Promise<Setup> {
  const runtime = await createRuntime({
    db: ":memory:",
    extraTools: tools,
    retry: { attempts: 3, backoffMs: () => 1 },
  });
  return { runtime, store: runtime.bus.store!, close: () => runtime.close() };
}

const SETUPS = [["in memory", memory], ["Deno KV", kv]] as const;
const PERMISSIONS = ["tool:pay:invoke", "tool:clock:invoke", "tool:dump:invoke"];

// Registers an agent, emits one task and waits until it is passed.
async function run(
  setup: Setup,
  handle: (
    ctx: Parameters<Parameters<typeof defineAgent>[0]["handle"]>[1],
    attempt: number,
  ) => Promise<void>,
): Promise<void> {
  let attempt = 0;
  setup.runtime.register(defineAgent({
    name: "worker",
    subscribe: ["task.created"],
    permissions: PERMISSIONS,
    handle: (_event, ctx) => handle(ctx, ++attempt),
  }));
  await setup.runtime.start();
  const task = await setup.runtime.emit({ kind: "task.created" });
  await until(() => setup.runtime.agents()[0].position === task.position);
  await setup.runtime.stop();
}

for (const [where, open] of SETUPS) {
  Deno.test(`tool journal (${where})`, async (t) => {
    await t.step("a retry serves the recorded output without calling the tool", async () => {
      const pay = counting("pay");
      const setup = await open([pay.definition]);
      const outputs: unknown[] = [];
      await run(setup, async (ctx, attempt) => {
        outputs.push(await ctx.tools.call("pay", { amount: 5 }));
        outputs.push(await ctx.step("after", () => "stepped"));
        if (attempt === 1) throw new Error("flaky");
      });
      assert.equal(pay.runs, 1, "the tool ran once");
      assert.deepEqual(outputs, [{ run: 1 }, "stepped", { run: 1 }, "stepped"]);
      const completed = await all(setup.store, ["tool.completed"]);
      assert.equal(completed.length, 1);
      const payload = completed[0].payload as Record<string, unknown>;
      assert.deepEqual(payload.output, { run: 1 });
      assert.match(String(payload.inputDigest), /^sha256:[0-9a-f]{64}$/);
      assert.deepEqual([completed[0].meta.actor, completed[0].meta.step], ["agent/worker", "0"]);
      const [step] = await all(setup.store, ["step.completed"]);
      assert.equal((step.payload as { index: number }).index, 1, "one sequence with steps");
      await setup.close();
    });

    await t.step("another input at a recorded call is a NonDeterminismError", async () => {
      const pay = counting("pay");
      const setup = await open([pay.definition]);
      const errors: Error[] = [];
      await run(setup, async (ctx, attempt) => {
        if (attempt === 1) {
          await ctx.tools.call("pay", { amount: 5 });
          throw new Error("flaky");
        }
        await ctx.tools.call("pay", { amount: 6 }).catch((error) => errors.push(error));
        await ctx.step("other", () => 1).catch((error) => errors.push(error));
      });
      assert.equal(pay.runs, 1);
      assert.deepEqual(errors.map((e) => e.name), ["NonDeterminismError"]);
      assert.match(
        errors[0].message,
        /^Event "\w+" is handled unlike before: step 0 was tool "pay" with input sha256:[0-9a-f]{16}…, now tool "pay" with input sha256:[0-9a-f]{16}…$/,
      );
      await setup.close();
    });

    await t.step("journal: false runs again and takes no step index", async () => {
      const clock = counting("clock", { journal: false, annotations: { readOnlyHint: true } });
      const setup = await open([clock.definition]);
      assert.equal(setup.runtime.tools.get("clock")?.journal, false);
      let calls = 0;
      await run(setup, async (ctx, attempt) => {
        await ctx.tools.call("clock", {});
        await ctx.step("work", () => ++calls);
        if (attempt === 1) throw new Error("flaky");
      });
      assert.deepEqual([clock.runs, calls], [2, 1]);
      const completed = await all(setup.store, ["tool.completed"]);
      assert.ok(completed.every((e) => !("output" in (e.payload as object))), "no output recorded");
      await setup.close();
    });

    await t.step("an output over the payload limit fails the call in one line", async () => {
      const dump = counting("dump", {}, () => ({ text: "x".repeat(4 * 1024 * 1024) }));
      const setup = await open([dump.definition]);
      const errors: Error[] = [];
      await run(setup, async (ctx) => {
        await ctx.tools.call("dump", {}).catch((error) => errors.push(error));
      });
      assert.equal(errors.length, 1);
      assert.equal(errors[0].name, "RangeError");
      assert.match(
        errors[0].message,
        /^Payload of tool "dump" output \(index 0\) is \d+ bytes, over the maximum of 4194304: put a big output in storage\("vault"\) and return its key$/,
      );
      assert.deepEqual((await all(setup.store, ["tool.*"])).map((e) => e.kind), [
        "tool.invoked",
        "tool.failed",
      ]);
      await setup.close();
    });
  });
}

Deno.test("a registry that ignores recordOutcome is journaled by the agent", async () => {
  const store = new MemoryEventStore();
  let runs = 0;
  const info: ToolInfo = {
    name: "pay",
    description: "Pays",
    version: "1.0.0",
    inputSchema: { type: "object" },
    permissions: ["tool:pay:invoke"],
    timeoutMs: 1000,
  };
  // A registry of one's own that runs the tool and records nothing.
  const tools: ToolRegistryContract = {
    get: (name) => name === "pay" ? info : undefined,
    list: () => [info],
    call: () => Promise.resolve({ run: ++runs }),
  };
  const runtime = await Runtime.create({
    vault: store,
    tools,
    retry: { attempts: 2, backoffMs: () => 1 },
  });
  const outputs: unknown[] = [];
  let attempt = 0;
  runtime.register(defineAgent({
    name: "worker",
    subscribe: ["task.created"],
    async handle(_event, ctx) {
      outputs.push(await ctx.tools.call("pay", { amount: 5 }));
      if (++attempt === 1) throw new Error("flaky");
    },
  }));
  await runtime.start();
  const task = await runtime.emit({ kind: "task.created" });
  await until(() => runtime.agents()[0].position === task.position);
  await runtime.stop();
  assert.deepEqual([runs, outputs], [1, [{ run: 1 }, { run: 1 }]]);
  const [completed] = await all(store, ["tool.completed"]);
  assert.deepEqual((completed.payload as { output: unknown }).output, { run: 1 });
  assert.deepEqual(completed.parents, [task.id]);
  await store.close();
});

// A store that counts the appends made to each stream.
class CountingStore extends MemoryEventStore {
  appends = new Map<string, number>();
  override append(...args: Parameters<MemoryEventStore["append"]>) {
    this.appends.set(args[0], (this.appends.get(args[0]) ?? 0) + 1);
    return super.append(...args);
  }
}

Deno.test("appends per journaled tool call", async (t) => {
  // Calls the tool three times while handling; `seen` gets the number of
  // appends to "toolkit" each time the tool runs.
  async function calls(
    annotations: Tool["annotations"],
  ): Promise<{ appends: number; seen: number[]; store: CountingStore }> {
    const store = new CountingStore();
    const seen: number[] = [];
    const tool = defineTool({
      name: "pay",
      description: "Notes how many appends came before it",
      version: "1.0.0",
      inputSchema: { type: "object" },
      annotations,
      execute: () => seen.push(store.appends.get("toolkit") ?? 0),
    });
    const registry = new ToolRegistry({
      tools: [tool],
      record: (event, cause) => runtime.bus.emit({ ...event, stream: "toolkit" }, cause),
      recordBatch: (events, cause) =>
        runtime.bus.emitBatch(events.map((event) => ({ ...event, stream: "toolkit" })), cause),
    });
    const runtime: Runtime = await Runtime.create({ vault: store, tools: registry });
    await run({ runtime, store, close: () => store.close() }, async (ctx) => {
      for (let i = 0; i < 3; i++) await ctx.tools.call("pay", { i });
    });
    return { appends: store.appends.get("toolkit") ?? 0, seen, store };
  }

  await t.step("a read-only tool's call is one append, after it ran", async () => {
    const { appends, seen, store } = await calls({ readOnlyHint: true });
    assert.equal(appends, 3, "one append per call");
    assert.deepEqual(seen, [0, 1, 2], "nothing recorded before the tool runs");
    const events = await all(store, ["tool.*"]);
    assert.deepEqual(events.map((e) => `${e.kind}@${e.meta.step}`), [
      "tool.invoked@0",
      "tool.completed@0",
      "tool.invoked@1",
      "tool.completed@1",
      "tool.invoked@2",
      "tool.completed@2",
    ]);
    assert.ok(events.every((e) => e.meta.actor === "agent/worker"));
    assert.equal(
      (events[0].payload as { callId: string }).callId,
      (events[1].payload as { callId: string }).callId,
    );
    await store.close();
  });

  await t.step("a tool with effects records tool.invoked before it runs", async () => {
    const { appends, seen, store } = await calls(undefined);
    assert.equal(appends, 6, "two appends per call");
    assert.deepEqual(seen, [1, 3, 5], "tool.invoked stored before each run");
    await store.close();
  });
});
