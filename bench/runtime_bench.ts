// Runtime benches, as ratios to a baseline measured in the same run.
// Run: deno bench -A bench/runtime_bench.ts
//
// Group "bus": one iteration delivers 1000 events, so deliveries/s = 1000 × iter/s.
// Targets: the in-memory bus with one subscriber at least 1,000,000 deliveries/s
// and at least 0.25× a bare loop awaiting the same handler on the same records.
import { EventBus, type EventRecord } from "../runtime/mod.ts";

const BATCH = 1000;
let sum = 0;
// The handler every variant calls: async, as subscriber handlers usually are.
const handler = async (event: EventRecord): Promise<void> => {
  sum += (event.payload as { n: number }).n;
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

globalThis.addEventListener("unload", () => {
  if (sum < 0) console.log(sum);
});
