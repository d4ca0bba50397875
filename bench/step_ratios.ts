/**
 * Durable steps (`ctx.step`) on a Deno KV vault file, as ratios measured in
 * one process:
 *
 *   deno run -A bench/step_ratios.ts [--rounds R] [--steps N] [--together]
 *
 * - Recording: 64 agents handle one event at once and each records N steps in
 *   a row (one guarded append per step). Baseline: the vault's own rate, 64
 *   concurrent appenders each appending N events of the same size in a row
 *   (`vault.append`) to a vault file of their own, without a guard and with
 *   one checked against a KV key of each appender's (a Deno KV commit takes
 *   at most 4 such appends); and the same unguarded appends on the runtime's vault, where the agents' subscriptions, leases
 *   and checkpoints are live. Two runtimes: `createRuntime()` (leases and
 *   checkpoints in the vault's KV, each step's append checked against the
 *   agent's lease key in the commit, as in production) and `Runtime.create`
 *   on the same kind of vault with in-memory leases and checkpoints (a guard
 *   checked in-process). Target ≥ 0.8×. With `--together` each handler starts
 *   its N steps at once (`Promise.all`), and each appender its N appends: one
 *   agent's appends then share its lease's check in a commit.
 * - Serving: one agent records N steps, then fails; the retry is served the
 *   N steps from the journal. Time per recorded step ÷ time per served step.
 *   Target ≥ 5×.
 * Baseline and candidate alternate round by round; figures are medians.
 */
import { parseArgs } from "node:util";
import { createRuntime } from "../mod.ts";
import {
  defineAgent,
  type EventStore,
  MemoryCheckpointStore,
  MemoryLeaseStore,
  Runtime,
} from "../runtime/mod.ts";
import { openVault } from "../vault/mod.ts";
import { median } from "./_interleaved.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    rounds: { type: "string" },
    steps: { type: "string" },
    together: { type: "boolean" },
  },
});
const rounds = Number(values.rounds ?? 7);
const steps = Number(values.steps ?? 20);
if (!(rounds >= 1 && steps >= 1)) throw new TypeError("--rounds and --steps expect N ≥ 1");
const together = values.together === true;

/** Runs `steps` calls of `one`, in a row or (`--together`) all at once. */
async function each(one: (n: number) => Promise<unknown>): Promise<void> {
  if (together) await Promise.all(Array.from({ length: steps }, (_, n) => one(n)));
  else for (let n = 0; n < steps; n++) await one(n);
}

const HANDLERS = 64;
const dir = await Deno.makeTempDir();
const baseline = await openVault(`${dir}/baseline.kv`);

async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, 1));
}

/** A runtime whose HANDLERS agents record steps, and one agent that is served them on a retry. */
async function bench(runtime: Runtime) {
  let finished = 0;
  for (let i = 0; i < HANDLERS; i++) {
    runtime.register(defineAgent({
      name: `stepper-${i}`,
      subscribe: ["bench.go"],
      async handle(event, ctx) {
        const round = (event.payload as { round: number }).round;
        await each((n) => ctx.step(`step-${n}`, () => ({ round, n })));
        finished++;
      },
    }));
  }
  // Attempt 1 records `steps` steps and fails, attempt 2 is served them.
  const timings = { recordMs: 0, serveMs: 0 };
  let served = 0;
  runtime.register(defineAgent({
    name: "replayer",
    subscribe: ["bench.replay"],
    async handle(event, ctx) {
      const round = (event.payload as { round: number }).round;
      const started = performance.now();
      const first = timings.recordMs === 0;
      for (let n = 0; n < steps; n++) await ctx.step(`step-${n}`, () => ({ round, n }));
      if (first) {
        timings.recordMs = performance.now() - started;
        throw new Error("fail once, to be served on the retry");
      }
      timings.serveMs = performance.now() - started;
      served++;
    },
  }));
  await runtime.start();
  return {
    runtime,
    /** Steps recorded per second by HANDLERS agents at once. */
    async record(round: number): Promise<number> {
      const before = finished;
      const started = performance.now();
      await runtime.emit({ kind: "bench.go", payload: { round } });
      await until(() => finished === before + HANDLERS);
      return HANDLERS * steps * 1000 / (performance.now() - started);
    },
    /** Milliseconds to record `steps` steps and to be served them on the retry. */
    async replay(round: number): Promise<{ recordMs: number; serveMs: number }> {
      const before = served;
      timings.recordMs = 0;
      await runtime.emit({ kind: "bench.replay", payload: { round } });
      await until(() => served === before + 1);
      return { ...timings };
    },
  };
}

/**
 * Appends per second by HANDLERS concurrent appenders, each `steps` in a row;
 * `guarded`: each append checked against a KV key of its appender's, as a
 * lease guard is.
 */
async function appendRate(vault: EventStore, round: number, guarded = false): Promise<number> {
  const started = performance.now();
  await Promise.all(Array.from({ length: HANDLERS }, async (_, i) => {
    const guard = { check: { key: ["bench", "guard", i], versionstamp: null } };
    await each((n) =>
      vault.append(`bench-${i}`, [{
        kind: "step.completed",
        payload: { name: `step-${n}`, index: n, result: { round, n } },
      }], guarded ? { guard } : {})
    );
  }));
  return HANDLERS * steps * 1000 / (performance.now() - started);
}

// Each runtime runs alone: the other's agents (renewals, checkpoints) would load the vault too.
const setups: [string, () => Promise<Runtime>][] = [
  ["createRuntime (KV leases)", () => createRuntime({ db: `${dir}/kv.kv` })],
  ["in-memory leases", async () => {
    const leases = new MemoryLeaseStore();
    return await Runtime.create({
      vault: await openVault(`${dir}/memory.kv`),
      leases,
      checkpoints: new MemoryCheckpointStore(leases),
    });
  }],
];

const fmt = (n: number) => Math.round(n).toLocaleString("en-US");
try {
  for (const [name, open] of setups) {
    const setup = await bench(await open());
    const store = setup.runtime.bus.store!;
    try {
      // Warm-up.
      await setup.record(-1), await appendRate(baseline, -1), await appendRate(store, -1);
      await setup.replay(-1);
      const ours: number[] = [], base: number[] = [], shared: number[] = [], checked: number[] = [];
      const record: number[] = [], serve: number[] = [];
      for (let round = 0; round < rounds; round++) {
        if (round % 2 === 0) {
          base.push(await appendRate(baseline, round));
          shared.push(await appendRate(store, round));
          ours.push(await setup.record(round));
        } else {
          ours.push(await setup.record(round));
          shared.push(await appendRate(store, round));
          base.push(await appendRate(baseline, round));
        }
        checked.push(await appendRate(baseline, round, true));
        const { recordMs, serveMs } = await setup.replay(round);
        record.push(recordMs);
        serve.push(serveMs);
      }
      const rate = median(ours);
      console.log(
        `${name}: ${HANDLERS} handlers × ${steps} steps${together ? " at once" : ""}: ${
          fmt(rate)
        } steps/s = ` +
          `${(rate / median(base)).toFixed(2)}× the vault's own ${fmt(median(base))} appends/s, ` +
          `${(rate / median(shared)).toFixed(2)}× the ${
            fmt(median(shared))
          } appends/s on the runtime's vault (target ≥ 0.80×)`,
      );
      console.log(
        `${name}: = ${(rate / median(checked)).toFixed(2)}× the vault's own ${
          fmt(median(checked))
        } appends/s each checked against a KV key, as a lease guard is`,
      );
      const us = (ms: number) => (ms * 1000 / steps).toFixed(1);
      console.log(
        `${name}: ${us(median(record))} µs per recorded step vs ${us(median(serve))} µs per ` +
          `served step = ${(median(record) / median(serve)).toFixed(0)}× (target ≥ 5×)`,
      );
    } finally {
      await setup.runtime.close();
      await (store as EventStore & { close(): Promise<void> }).close().catch(() => {});
    }
  }
  console.log(`${rounds} rounds, medians`);
} finally {
  await baseline.close();
  await Deno.remove(dir, { recursive: true });
}
