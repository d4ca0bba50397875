// Runtime benches, as ratios to a baseline measured in the same run.
// Run: deno bench -A bench/runtime_bench.ts
//
// Group "kv": 64 concurrent writers emit 8 single-event appends each (512 events
// per iteration) to a Deno KV vault on a local file. Baseline: the vault's own
// append throughput. Measured: runtime.emit → handled by one agent (with its
// checkpoints written), until the agent has handled all 512. Target: ≥ 0.7×.
//
// The in-memory bus is measured by bench/bus_ratios.ts (a script: interleaved
// rounds and medians, as the ratio is small and sensitive to noise).
import { defineAgent, KvCheckpointStore, KvLeaseStore, Runtime } from "../runtime/mod.ts";
import { openVault } from "../vault/mod.ts";

const WRITERS = 64;
const PER_WRITER = 8;
const dir = await Deno.makeTempDir();
const baselineVault = await openVault(`${dir}/baseline.kv`);
const runtimeVault = await openVault(`${dir}/runtime.kv`);
const runtime = await Runtime.create({
  vault: runtimeVault,
  checkpoints: new KvCheckpointStore(runtimeVault.kv),
  leases: new KvLeaseStore(runtimeVault.kv),
});
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
// Started by the first measured iteration, not at load.
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

// Deno.bench has no teardown hook; the temp folder is removed at exit.
globalThis.addEventListener("unload", () => {
  Deno.removeSync(dir, { recursive: true });
});
