/**
 * Checkpoint-with-state writes and reads of the latest state, Toka beside
 * LangGraph.js's SQLite checkpointer, in one script (issue 21).
 *
 *   deno run -A --no-lock bench/langgraph_checkpoint.ts [--rounds R]
 *
 * (`--no-lock`: the peer's packages stay out of deno.json and deno.lock.)
 *
 * - put: LangGraph `SqliteSaver.put` of the next checkpoint of a thread (its
 *   state in `channel_values`), on a SQLite file through `libsql` (what
 *   `SqliteSaver` needs under Deno; on Node it opens `better-sqlite3`),
 *   against what Toka's runner does for one state change: the `agent.state`
 *   event appended to a Deno KV vault file with the checkpoint store's effect
 *   (the agent's checkpoint and state index in the same commit). One awaited
 *   write at a time, the same ~200-byte state on both sides.
 * - get-latest: `SqliteSaver.getTuple` of the thread against
 *   `runtime.stateAt(agent)` (the state at the head of the log).
 *
 * - the floor of both on Deno KV: a raw atomic commit of four sets of the same
 *   sizes (event, checkpoint, index entry, latest entry) on its own KV file, and
 *   one raw `kv.get`, so that one run shows how much of the gap is Deno KV's
 *   against SQLite through libsql rather than Toka's.
 *
 * Rounds alternate, medians compared; a ratio above 1 means Toka is faster
 * (target: at least 1 for both).
 */
import { SqliteSaver } from "npm:@langchain/langgraph-checkpoint-sqlite@1.0.4";
import Database from "npm:libsql@0.5.29";
import { KvCheckpointStore, Runtime } from "../runtime/mod.ts";
import { KvEventStore } from "../vault/mod.ts";
import { fmt, median } from "./_compare.ts";

const PUTS = 300;
const GETS = 1000;
const args = Deno.args;
const rounds = Number(args[args.indexOf("--rounds") + 1] || 7);

const state = (n: number) => ({ step: n, notes: `state after step ${n}`.padEnd(180, ".") });

async function timed(count: number, run: (i: number) => Promise<unknown>): Promise<number> {
  const started = performance.now();
  for (let i = 0; i < count; i++) await run(i);
  return count / ((performance.now() - started) / 1000);
}

const dir = await Deno.makeTempDir();
try {
  // LangGraph: one thread, each checkpoint the child of the one before.
  const saver = new SqliteSaver(new Database(`${dir}/langgraph.sqlite`) as never);
  let config = { configurable: { thread_id: "agent", checkpoint_ns: "" } };
  let step = 0;
  const langgraphPut = () => {
    const n = ++step;
    const checkpoint = {
      v: 4,
      id: crypto.randomUUID(),
      ts: new Date().toISOString(),
      channel_values: { state: state(n) },
      channel_versions: { state: n },
      versions_seen: {},
    };
    return saver.put(
      config,
      checkpoint as never,
      { source: "loop", step: n, parents: {} } as never,
      {
        state: n,
      },
    ).then((next) => void (config = next as typeof config));
  };
  const langgraphGet = async () => {
    const tuple = await saver.getTuple({ configurable: { thread_id: "agent", checkpoint_ns: "" } });
    if (tuple === undefined) throw new Error("No checkpoint");
  };

  // Toka: the agent.state event with the checkpoint and index entry, as the runner appends it.
  const kv = await Deno.openKv(`${dir}/toka.kv`);
  const store = await KvEventStore.open(kv);
  const checkpoints = new KvCheckpointStore(kv);
  const runtime = await Runtime.create({ vault: store });
  let changes = 0;
  const tokaPut = async () => {
    const n = ++changes;
    // The event it handled: the runner knows its position (here, no such event is stored).
    const after = String(n).padStart(16, "0");
    const value = state(n);
    const checkpoint = { position: after, failures: 0, updatedAt: Date.now(), subscribe: ["step"] };
    await store.append("agent/agent", [{
      kind: "agent.state",
      payload: { agent: "agent", after, state: value },
    }], { effect: checkpoints.withState("agent", checkpoint, JSON.stringify(value)) });
  };
  const tokaGet = async () => {
    if (await runtime.stateAt("agent") === undefined) throw new Error("No state");
  };

  // Raw Deno KV, the floor under Toka: the same four writes and one read, no log.
  const raw = await Deno.openKv(`${dir}/raw.kv`);
  let rawChanges = 0;
  const rawPut = async () => {
    const n = ++rawChanges;
    const value = JSON.stringify(state(n));
    const result = await raw.atomic()
      .set(["events", n], { kind: "agent.state", payload: value, meta: {}, digest: "x".repeat(71) })
      .set(["checkpoints", "agent"], { position: n, failures: 0, updatedAt: Date.now() })
      .set(["state", "agent", n], { p: n, s: value })
      .set(["state", "agent", "latest"], { p: n, s: value, a: n })
      .commit();
    if (!result.ok) throw new Error("Raw commit failed");
  };
  const rawGet = async () => {
    if ((await raw.get(["state", "agent", "latest"])).value === null) throw new Error("No state");
  };

  const figures = { put: [[], [], []] as number[][], get: [[], [], []] as number[][] };
  for (let round = 0; round < rounds; round++) {
    const sides = [
      async () => {
        figures.put[0].push(await timed(PUTS, langgraphPut));
        figures.get[0].push(await timed(GETS, langgraphGet));
      },
      async () => {
        figures.put[1].push(await timed(PUTS, tokaPut));
        figures.get[1].push(await timed(GETS, tokaGet));
      },
      async () => {
        figures.put[2].push(await timed(PUTS, rawPut));
        figures.get[2].push(await timed(GETS, rawGet));
      },
    ];
    if (round % 2 === 1) sides.reverse();
    for (const side of sides) await side();
  }
  for (const what of ["put", "get"] as const) {
    const [theirs, ours, floor] = figures[what].map(median);
    console.log(
      `${what === "put" ? "checkpoint-with-state put" : "get latest state"}: Toka ${
        fmt(ours)
      }/s vs LangGraph SqliteSaver ${fmt(theirs)}/s = ${(ours / theirs).toFixed(2)}x ` +
        `(target ≥ 1.00x; ${rounds} rounds, medians); raw Deno KV ${fmt(floor)}/s = ${
          (floor / theirs).toFixed(2)
        }x SqliteSaver, Toka = ${(ours / floor).toFixed(2)}x raw Deno KV`,
    );
  }
  raw.close();
  await store.close();
  kv.close();
} finally {
  await Deno.remove(dir, { recursive: true });
}
