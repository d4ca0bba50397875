/**
 * The in-memory event bus as a ratio to a bare loop, measured in one process.
 *
 *   deno run -A bench/bus_ratios.ts [--rounds R]
 *
 * One sample delivers 1,000 events to one subscriber whose handler returns a
 * promise (as handlers usually do):
 * - baseline: a bare loop awaiting that handler on 1,000 prebuilt records;
 * - bus: `bus.emit()` × 1,000 without awaiting, then `subscription.idle()`.
 *
 * The baseline is strict: it reuses prebuilt records, while the bus makes each
 * one (object, id and position strings, timestamp, the promise `emit`
 * returns). Baseline and bus alternate round by round (the order flips each
 * round) and the medians are compared, so a noisy neighbour affects both.
 * Targets: at least 1,000,000 deliveries/s, and at least 0.25× the baseline.
 */
import { EventBus, type EventRecord } from "../runtime/mod.ts";
import { BATCH, interleaved, median, range } from "./_interleaved.ts";

const args = Deno.args;
const rounds = Number(args[args.indexOf("--rounds") + 1] || 31);

let sum = 0;
const handler = (event: EventRecord): Promise<void> => {
  sum += (event.payload as { n: number }).n;
  return Promise.resolve();
};
const input = { kind: "task.created", payload: { n: 1 } };

const bus = new EventBus();
const records: EventRecord[] = [];
for (let i = 0; i < BATCH; i++) records.push(await bus.emit(input));
const subscription = bus.subscribe("task.*", handler);

async function bare(): Promise<void> {
  for (let i = 0; i < BATCH; i++) await handler(records[i]);
}

async function viaBus(): Promise<void> {
  for (let i = 0; i < BATCH; i++) bus.emit(input);
  await subscription.idle();
}

const { events, baselineNs, candidateNs, ratios } = await interleaved(bare, viaBus, rounds);
await bus.close();
if (sum < 0) console.log(sum);

const ratio = median(ratios);
console.log(`rounds: ${rounds} × ${events} events each way`);
console.log(`bare loop:       ${median(baselineNs).toFixed(1)} ns/event`);
console.log(
  `in-memory bus:   ${median(candidateNs).toFixed(1)} ns/event, ${
    (1e9 / median(candidateNs) / 1e6).toFixed(1)
  } M deliveries/s (target ≥ 1 M/s)`,
);
console.log(
  `ratio:           ${ratio.toFixed(3)}× the bare loop (median of rounds; range ${
    range(ratios, 3)
  }; target ≥ 0.25×)`,
);
