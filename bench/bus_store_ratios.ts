/**
 * What one delivery path costs a runtime without a vault: its bus appends
 * every event to an in-memory `MemoryEventStore` (validation, a frozen copy of
 * the payload, the chained sha256 digest, an index by id) before fanning it
 * out, where a bare `EventBus` only makes the record. Measured in one process.
 *
 *   deno run -A bench/bus_store_ratios.ts [--rounds R]
 *
 * One sample delivers 1,000 events to one subscriber whose handler returns a
 * promise: `bus.emit()` × 1,000 without awaiting, then `subscription.idle()`,
 * on a bare bus (the baseline) and on a bus over a MemoryEventStore (what
 * `Runtime.create()` without a vault uses, and what its agents consume).
 * Both alternate round by round (the order flips each round) and the medians
 * are compared. The ratio is bare time / store time: below 1 the store costs.
 */
import { EventBus, type EventRecord, MemoryEventStore } from "../runtime/mod.ts";
import { BATCH, interleaved, median, range } from "./_interleaved.ts";

const args = Deno.args;
const rounds = Number(args[args.indexOf("--rounds") + 1] || 9);

let sum = 0;
const handler = (event: EventRecord): Promise<void> => {
  sum += (event.payload as { n: number }).n;
  return Promise.resolve();
};
const input = { kind: "task.created", payload: { n: 1 } };

const bare = new EventBus();
const bareSubscription = bare.subscribe("task.*", handler);
const store = new MemoryEventStore();
const stored = new EventBus({ store });
const storedSubscription = stored.subscribe("task.*", handler);

async function viaBare(): Promise<void> {
  for (let i = 0; i < BATCH; i++) bare.emit(input);
  await bareSubscription.idle();
}

async function viaStore(): Promise<void> {
  for (let i = 0; i < BATCH; i++) stored.emit(input);
  await storedSubscription.idle();
}

// Ten batches per timing: a batch on the store takes milliseconds.
const { events, baselineNs, candidateNs, ratios } = await interleaved(
  viaBare,
  viaStore,
  rounds,
  10,
);
await bare.close();
await stored.close();
await store.close();
if (sum < 0) console.log(sum);

console.log(`rounds: ${rounds} × ${events} events each way`);
console.log(`bare bus:                ${median(baselineNs).toFixed(1)} ns/event`);
console.log(
  `bus on MemoryEventStore: ${median(candidateNs).toFixed(1)} ns/event, ${
    (1e9 / median(candidateNs) / 1e3).toFixed(0)
  } k events/s`,
);
console.log(
  `ratio: ${median(ratios).toFixed(3)}× the bare bus's speed (median; range ${range(ratios, 3)})`,
);
