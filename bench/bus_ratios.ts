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

const args = Deno.args;
const rounds = Number(args[args.indexOf("--rounds") + 1] || 31);
const BATCH = 1000;
const SAMPLES = 100;

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

// Nanoseconds per event over SAMPLES batches.
async function time(run: () => Promise<void>): Promise<number> {
  const started = performance.now();
  for (let i = 0; i < SAMPLES; i++) await run();
  return (performance.now() - started) * 1e6 / (SAMPLES * BATCH);
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[sorted.length >> 1];
};

// Warm-up: let both paths reach optimized code before measuring.
for (let i = 0; i < 5; i++) await time(bare), await time(viaBus);

const bareNs: number[] = [];
const busNs: number[] = [];
const ratios: number[] = [];
for (let round = 0; round < rounds; round++) {
  let b: number, m: number;
  if (round % 2 === 0) b = await time(bare), m = await time(viaBus);
  else m = await time(viaBus), b = await time(bare);
  bareNs.push(b);
  busNs.push(m);
  ratios.push(b / m);
}
await bus.close();
if (sum < 0) console.log(sum);

const ratio = median(ratios);
console.log(`rounds: ${rounds} × ${SAMPLES * BATCH} events each way`);
console.log(`bare loop:       ${median(bareNs).toFixed(1)} ns/event`);
console.log(
  `in-memory bus:   ${median(busNs).toFixed(1)} ns/event, ${
    (1e9 / median(busNs) / 1e6).toFixed(1)
  } M deliveries/s (target ≥ 1 M/s)`,
);
console.log(
  `ratio:           ${ratio.toFixed(3)}× the bare loop (median of rounds; range ${
    Math.min(...ratios).toFixed(3)
  }–${Math.max(...ratios).toFixed(3)}; target ≥ 0.25×)`,
);
