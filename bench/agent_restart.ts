/**
 * How long an agent takes to start again after the log grew by events it
 * does not subscribe to, as a ratio to reading those events once.
 *
 *   deno run -A bench/agent_restart.ts [--events N]
 *
 * An agent subscribed to `rare.*` handles one event, then N `common.*` events
 * are appended while it runs, and the runtime stops. Baseline: one full
 * `read()` of the log, which is what a restart cost when the checkpoint
 * stayed at the last handled event (the agent scans the log after its
 * checkpoint for emits of an interrupted run). Measured: `start()` + `stop()`
 * of a new runtime on the same vault.
 */
import { defineAgent, KvCheckpointStore, KvLeaseStore, Runtime } from "../runtime/mod.ts";
import { openVault } from "../vault/mod.ts";

const args = Deno.args;
const count = Number(args[args.indexOf("--events") + 1] || 100_000);

const dir = await Deno.makeTempDir();
try {
  const store = await openVault(`${dir}/bench.kv`);
  const agent = defineAgent({ name: "rare", subscribe: ["rare.*"], handle() {} });
  const first = await Runtime.create({
    vault: store,
    checkpoints: new KvCheckpointStore(store.kv),
    leases: new KvLeaseStore(store.kv),
  });
  first.register(agent);
  await first.start();
  await first.emit({ kind: "rare.event" });
  for (let i = 0; i < count; i += 500) {
    const batch = Array.from({ length: Math.min(500, count - i) }, () => ({
      kind: "common.event",
      payload: { text: "x".repeat(100) },
    }));
    await store.append("common", batch);
  }
  await first.stop();

  let started = performance.now();
  let scanned = 0;
  for await (const _ of store.read()) scanned++;
  const scanMs = performance.now() - started;

  const next = await Runtime.create({
    vault: store,
    checkpoints: new KvCheckpointStore(store.kv),
    leases: new KvLeaseStore(store.kv),
  });
  next.register(agent);
  started = performance.now();
  await next.start();
  await next.stop();
  const restartMs = performance.now() - started;
  await store.close();

  console.log(`log: ${scanned} events, ${count} after the agent's last handled event`);
  console.log(`full read (baseline): ${scanMs.toFixed(0)} ms`);
  console.log(
    `restart: ${restartMs.toFixed(1)} ms, ${(restartMs / scanMs).toFixed(3)}× the full read`,
  );
} finally {
  await Deno.remove(dir, { recursive: true });
}
