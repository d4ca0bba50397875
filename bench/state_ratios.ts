/**
 * An agent's state at a past position (`runtime.stateAt`) as a ratio to one
 * raw Deno KV `get`, measured in one process and run (issue 21, section 2).
 *
 *   deno run -A bench/state_ratios.ts [--rounds R]
 *
 * A vault file holds two agents' state changes, recorded as the runner
 * records them (an `agent.state` event per change, appended with the
 * checkpoint store's effect, after the event it handled): "short" with 1,000
 * changes and "long" with 10,000, interleaved with the events they handled.
 * Each read asks for the state at a random position of the log. Figures are
 * reads per second; the ratio printed is the time of one `stateAt` over one
 * raw `kv.get` of a 256-byte value (target ≤ 5, the same for both agents:
 * flat as history grows).
 */
import { KvCheckpointStore, Runtime } from "../runtime/mod.ts";
import { KvEventStore } from "../vault/mod.ts";
import { benchOptions } from "./_args.ts";
import { fmt, median } from "./_compare.ts";

const READS = 2000;
const AGENTS = { short: 1_000, long: 10_000 };
const { rounds } = benchOptions(Deno.args);

function rate(count: number, started: number): number {
  return count / ((performance.now() - started) / 1000);
}

const dir = await Deno.makeTempDir();
try {
  const kv = await Deno.openKv(`${dir}/state.kv`);
  for (let i = 0; i < 100; i++) await kv.set(["raw", i], "x".repeat(256));
  const store = await KvEventStore.open(kv);
  const checkpoints = new KvCheckpointStore(kv);
  // One change per handled event, as the runner makes them; 64 at a time.
  const record = async (agent: string, n: number) => {
    const handled = await store.append("tasks", [{ kind: "task.done", payload: { agent, n } }]);
    const after = handled.position;
    const state = { count: n, notes: `change ${n} of agent ${agent}`.padEnd(160, ".") };
    const checkpoint = {
      position: after,
      failures: 0,
      updatedAt: Date.now(),
      subscribe: ["task.*"],
    };
    await store.append(`agent/${agent}`, [{
      kind: "agent.state",
      payload: { agent, after, state },
    }], {
      effect: checkpoints.withState(agent, checkpoint, JSON.stringify(state)),
    });
  };
  const total = AGENTS.short + AGENTS.long;
  let next = 0;
  await Promise.all(Array.from({ length: 64 }, async () => {
    for (let i = next++; i < total; i = next++) {
      // Every 11th change is the short agent's: spread over the whole log too.
      await record(i % 11 === 0 ? "short" : "long", i);
    }
  }));
  const counts = {
    short: (await Array.fromAsync(checkpoints.stateHistory("short"))).length,
    long: (await Array.fromAsync(checkpoints.stateHistory("long"))).length,
  };
  const head = Number((await store.head())!.position);
  const runtime = await Runtime.create({ vault: store });
  const positions = Array.from(
    { length: READS },
    () => String(1 + Math.floor(Math.random() * head)),
  );

  const rawGets = async () => {
    const started = performance.now();
    for (let i = 0; i < READS; i++) await kv.get(["raw", i % 100]);
    return rate(READS, started);
  };
  const stateAts = (agent: string) => async () => {
    const started = performance.now();
    for (const position of positions) await runtime.stateAt(agent, position);
    return rate(READS, started);
  };
  for (const agent of ["short", "long"] as const) {
    const base: number[] = [];
    const ours: number[] = [];
    for (let round = 0; round < rounds; round++) {
      base.push(await rawGets());
      ours.push(await stateAts(agent)());
    }
    const ratio = median(base) / median(ours);
    console.log(
      `stateAt of an agent with ${fmt(counts[agent])} state changes (log of ${fmt(head)} events): ${
        fmt(median(ours))
      }/s vs raw kv.get ${fmt(median(base))}/s = ${ratio.toFixed(2)}x the time of a get ` +
        `(target ≤ 5.00x; ${rounds} rounds, medians)`,
    );
  }
  await store.close();
  kv.close();
} finally {
  await Deno.remove(dir, { recursive: true });
}
