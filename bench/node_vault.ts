/**
 * The vault on Node.js as ratios to raw `@deno/kv` in the same process and
 * run: the Node counterpart of bench/vault_ratios.ts, with the same targets.
 *
 *   deno run -A scripts/build_node.ts
 *   node .node-build/bench/node_vault.js [--replay N] [--rounds R]
 *
 * - concurrent: 64 concurrent single-event appends to distinct streams with
 *   expected-version checks, vs raw batched `set` (1,000 per atomic commit).
 * - sequential: one awaited append at a time, vs sequential `await kv.set`.
 * - replay: full `read()` of N events, vs raw `kv.list` over one value per key.
 *
 * The vault opens its KV with `openVault` (so through the platform module's
 * codec); the baselines use `@deno/kv`'s `openKv` as a Node user would.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { openKv } from "@deno/kv";
import { type KvEventStore, openVault } from "@toka/runtime/vault";
import { benchOptions } from "./_args.ts";
import { compare, fmt } from "./_compare.ts";

type RawKv = Awaited<ReturnType<typeof openKv>>;

const PAYLOAD = "x".repeat(256);
const { replay: replayCount, rounds } = benchOptions(process.argv.slice(2));

async function inTempDir<T>(run: (path: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), "toka-node-bench-"));
  try {
    return await run(join(dir, "bench.kv"));
  } finally {
    await rm(dir, { recursive: true });
  }
}

const withRaw = <T>(run: (kv: RawKv) => Promise<T>) =>
  inTempDir(async (path) => {
    const kv = await openKv(path);
    try {
      return await run(kv);
    } finally {
      kv.close();
    }
  });

const withVault = <T>(run: (store: KvEventStore) => Promise<T>) =>
  inTempDir(async (path) => {
    const store = await openVault(path);
    try {
      return await run(store);
    } finally {
      await store.close();
    }
  });

function rate(count: number, started: number): number {
  return count / ((performance.now() - started) / 1000);
}

const rawBatchedSets = (total: number) =>
  withRaw(async (kv) => {
    const started = performance.now();
    for (let n = 0; n < total;) {
      const op = kv.atomic();
      for (let i = 0; i < 1000; i++) op.set(["raw", n++], PAYLOAD);
      await op.commit();
    }
    return rate(total, started);
  });

const concurrentAppends = (total: number) =>
  withVault(async (store) => {
    const perWriter = Math.ceil(total / 64);
    const started = performance.now();
    await Promise.all(Array.from({ length: 64 }, async (_, w) => {
      for (let v = 0; v < perWriter; v++) {
        await store.append(`writer-${w}`, [{ kind: "bench.event", payload: PAYLOAD }], {
          expectedVersion: v,
        });
      }
    }));
    return rate(perWriter * 64, started);
  });

const rawSequentialSets = (total: number) =>
  withRaw(async (kv) => {
    const started = performance.now();
    for (let i = 0; i < total; i++) await kv.set(["raw", i], PAYLOAD);
    return rate(total, started);
  });

const sequentialAppends = (total: number) =>
  withVault(async (store) => {
    const started = performance.now();
    for (let v = 0; v < total; v++) {
      await store.append("sequential", [{ kind: "bench.event", payload: PAYLOAD }], {
        expectedVersion: v,
      });
    }
    return rate(total, started);
  });

const rawList = (total: number) =>
  withRaw(async (kv) => {
    for (let n = 0; n < total;) {
      const op = kv.atomic();
      for (let i = 0; i < 1000 && n < total; i++) op.set(["raw", n++], PAYLOAD);
      await op.commit();
    }
    const started = performance.now();
    let count = 0;
    for await (const _ of kv.list({ prefix: ["raw"] })) count++;
    return rate(count, started);
  });

const replay = (total: number) =>
  withVault(async (store) => {
    for (let n = 0; n < total;) {
      const batch = [];
      for (let s = 0; s < 64 && n < total; s++, n += 100) {
        const count = Math.min(100, total - n);
        const events = Array.from({ length: count }, () => ({
          kind: "bench.event",
          payload: PAYLOAD,
        }));
        batch.push(store.append(`s-${s}`, events));
      }
      await Promise.all(batch);
    }
    const started = performance.now();
    let count = 0;
    for await (const _ of store.read()) count++;
    return rate(count, started);
  });

console.log(`Node ${process.version}, @deno/kv on a local file`);
await compare(
  "concurrent (64 appenders, expected versions) vs raw batched set",
  0.4,
  () => rawBatchedSets(50_000),
  () => concurrentAppends(64 * 800),
  rounds,
);
await compare(
  "sequential awaited append vs raw await kv.set",
  0.8,
  () => rawSequentialSets(1500),
  () => sequentialAppends(1500),
  rounds,
);
await compare(
  `replay ${fmt(replayCount)} events: read() vs raw kv.list`,
  1.5,
  () => rawList(replayCount),
  () => replay(replayCount),
  Math.min(rounds, 3),
);
