// Runtime benches, as ratios to a baseline measured in the same run.
// Run: deno bench -A bench/runtime_bench.ts
//
// Group "kv": 64 concurrent writers emit 8 single-event appends each (512 events
// per iteration) to a Deno KV vault on a local file. Baseline: the vault's own
// append throughput. Measured: runtime.emit → handled by one agent (with its
// checkpoints written), until the agent has handled all 512. Target: ≥ 0.7×.
//
// Group "bus": one iteration delivers 1000 events, so deliveries/s = 1000 × iter/s.
// Targets: the in-memory bus with one subscriber at least 1,000,000 deliveries/s
// and at least 0.25× a bare loop awaiting the same handler on the same records.
// The baseline is strict: it reuses prebuilt records, while the bus must make
// each one (object, id and position strings, the promise emit returns: about
// twice the bare loop's cost per event on its own) and keeps 1000 of them alive
// across microtasks, which the young-generation GC has to copy.
import { defineAgent, EventBus, type EventRecord, Runtime } from "../runtime/mod.ts";
import { openVault } from "../vault/mod.ts";

const BATCH = 1000;
let sum = 0;
// The handler every variant calls: it returns a promise, as subscriber handlers usually do.
const handler = (event: EventRecord): Promise<void> => {
  sum += (event.payload as { n: number }).n;
  return Promise.resolve();
};
const input = { kind: "task.created", payload: { n: 1 } };

const memoryBus = new EventBus();
const records: EventRecord[] = [];
for (let i = 0; i < BATCH; i++) records.push(await memoryBus.emit(input));
const subscription = memoryBus.subscribe("task.*", handler);

Deno.bench({
  name: "bare loop: await handler(event) × 1000",
  group: "bus",
  baseline: true,
  async fn() {
    for (let i = 0; i < BATCH; i++) await handler(records[i]);
  },
});

Deno.bench({
  name: "in-memory EventBus: emit × 1000 → 1 subscriber",
  group: "bus",
  async fn() {
    for (let i = 0; i < BATCH; i++) memoryBus.emit(input);
    await subscription.idle();
  },
});

const WRITERS = 64;
const PER_WRITER = 8;
const dir = await Deno.makeTempDir();
const baselineVault = await openVault(`${dir}/baseline.kv`);
const runtimeVault = await openVault(`${dir}/runtime.kv`);
const runtime = await Runtime.create({ vault: runtimeVault });
let handled = 0;
let target = 0;
let reached: () => void = () => {};
runtime.register(defineAgent({
  name: "bench",
  subscribe: ["bench.*"],
  handle() {
    if (++handled === target) reached();
  },
}));
// Started by the first "kv" iteration, so its agent does not run during the "bus" group.
let started: Promise<void> | undefined;

function writers(append: (writer: number) => Promise<unknown>): Promise<unknown> {
  return Promise.all(Array.from({ length: WRITERS }, async (_, w) => {
    for (let i = 0; i < PER_WRITER; i++) await append(w);
  }));
}

Deno.bench({
  name: "vault.append: 64 writers × 8 events",
  group: "kv",
  baseline: true,
  async fn() {
    await writers((w) => baselineVault.append(`writer-${w}`, [{ kind: "bench.event" }]));
  },
});

Deno.bench({
  name: "runtime.emit → 1 agent handles: 64 writers × 8 events",
  group: "kv",
  async fn() {
    await (started ??= runtime.start());
    target = handled + WRITERS * PER_WRITER;
    const done = new Promise<void>((resolve) => reached = resolve);
    await writers((w) => runtime.emit({ kind: "bench.event", stream: `writer-${w}` }));
    await done;
  },
});

globalThis.addEventListener("unload", () => {
  if (sum < 0) console.log(sum);
});
// Deno.bench has no teardown hook; the temp folder is removed at exit.
globalThis.addEventListener("unload", () => {
  Deno.removeSync(dir, { recursive: true });
});
