/**
 * The in-memory event bus against a Node `EventEmitter` (node:events) that
 * gives each event a fresh id, measured in one process.
 *
 *   deno run -A bench/bus_vs_emitter.ts [--rounds R]
 *
 * One sample delivers 1,000 events to one listener whose handler returns a
 * promise (as handlers usually do):
 * - emitter: each event is a new record `{ id, kind, payload, timestamp }`
 *   with an id of the bus's own layout (the same id maker), passed to
 *   `emitter.emit()`, which calls the listener synchronously (it does not
 *   wait for the promise, keep order across awaits, buffer, or make a position
 *   or version);
 * - bus: `bus.emit()` × 1,000 without awaiting, then `subscription.idle()`.
 *
 * Both alternate round by round (the order flips each round) and the medians
 * are compared. The ratio is emitter time / bus time: above 1 the bus is ahead.
 */
import { EventEmitter } from "node:events";
import { EventBus, type EventRecord } from "../runtime/mod.ts";
import { BATCH, interleaved, median, range } from "./_interleaved.ts";
import { IdMaker } from "../internal/ids.ts";

const args = Deno.args;
const rounds = Number(args[args.indexOf("--rounds") + 1] || 31);

let sum = 0;
const handler = (event: { payload: unknown }): Promise<void> => {
  sum += (event.payload as { n: number }).n;
  return Promise.resolve();
};
const input = { kind: "task.created", payload: { n: 1 } };

const bus = new EventBus();
const subscription = bus.subscribe("task.*", handler as (event: EventRecord) => Promise<void>);
const emitter = new EventEmitter();
emitter.on("task.created", handler);
const ids = new IdMaker();
let count = 0;

function viaEmitter(): Promise<void> {
  for (let i = 0; i < BATCH; i++) {
    const n = ++count;
    const timestamp = Date.now();
    emitter.emit(input.kind, {
      id: ids.next(timestamp, n),
      kind: input.kind,
      payload: input.payload,
      timestamp,
    });
  }
  return Promise.resolve();
}

async function viaBus(): Promise<void> {
  for (let i = 0; i < BATCH; i++) bus.emit(input);
  await subscription.idle();
}

const { events, baselineNs, candidateNs, ratios } = await interleaved(viaEmitter, viaBus, rounds);
await bus.close();
if (sum < 0) console.log(sum);

console.log(`rounds: ${rounds} × ${events} events each way`);
console.log(`EventEmitter, fresh ids: ${median(baselineNs).toFixed(1)} ns/event`);
console.log(
  `in-memory bus:           ${median(candidateNs).toFixed(1)} ns/event, ${
    (1e9 / median(candidateNs) / 1e6).toFixed(1)
  } M deliveries/s`,
);
console.log(
  `ratio: the bus is ${median(ratios).toFixed(2)}× the EventEmitter's speed (median; range ${
    range(ratios, 2)
  }; must stay > 1)`,
);
