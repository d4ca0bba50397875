/**
 * Vault throughput as ratios to raw Deno KV, measured in one process and run.
 *
 *   deno run -A bench/vault_ratios.ts [--replay N] [--rounds R]
 *
 * - concurrent: 64 concurrent single-event appends to distinct streams with
 *   expected-version checks, vs raw batched `set` (1,000 per atomic commit).
 * - sequential: one awaited append at a time, vs sequential `await kv.set`.
 * - replay: full `read()` of N events, vs raw `kv.list` over one value per key;
 *   with the memory growth of the replay.
 */
import { KvEventStore } from "../vault/mod.ts";
import { benchOptions } from "./_args.ts";
import { compare, fmt } from "./_compare.ts";

const PAYLOAD = "x".repeat(256);
const { replay: replayCount, rounds } = benchOptions(Deno.args);

async function withKv<T>(run: (kv: Deno.Kv) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir();
  const kv = await Deno.openKv(`${dir}/bench.kv`);
  try {
    return await run(kv);
  } finally {
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
}

function rate(count: number, started: number): number {
  return count / ((performance.now() - started) / 1000);
}

async function rawBatchedSets(total: number): Promise<number> {
  return await withKv(async (kv) => {
    const started = performance.now();
    for (let n = 0; n < total;) {
      const op = kv.atomic();
      for (let i = 0; i < 1000; i++) op.set(["raw", n++], PAYLOAD);
      await op.commit();
    }
    return rate(total, started);
  });
}

async function concurrentAppends(total: number): Promise<number> {
  return await withKv(async (kv) => {
    const store = await KvEventStore.open(kv);
    const perWriter = Math.ceil(total / 64);
    const started = performance.now();
    await Promise.all(Array.from({ length: 64 }, async (_, w) => {
      for (let v = 0; v < perWriter; v++) {
        await store.append(`writer-${w}`, [{ kind: "bench.event", payload: PAYLOAD }], {
          expectedVersion: v,
        });
      }
    }));
    const result = rate(perWriter * 64, started);
    await store.close();
    return result;
  });
}

async function rawSequentialSets(total: number): Promise<number> {
  return await withKv(async (kv) => {
    const started = performance.now();
    for (let i = 0; i < total; i++) await kv.set(["raw", i], PAYLOAD);
    return rate(total, started);
  });
}

async function sequentialAppends(total: number): Promise<number> {
  return await withKv(async (kv) => {
    const store = await KvEventStore.open(kv);
    const started = performance.now();
    for (let v = 0; v < total; v++) {
      await store.append("sequential", [{ kind: "bench.event", payload: PAYLOAD }], {
        expectedVersion: v,
      });
    }
    const result = rate(total, started);
    await store.close();
    return result;
  });
}

async function replay(total: number): Promise<{ raw: number; read: number; growthMb: number }> {
  return await withKv(async (kv) => {
    for (let n = 0; n < total;) {
      const op = kv.atomic();
      for (let i = 0; i < 1000 && n < total; i++) op.set(["raw", n++], PAYLOAD);
      await op.commit();
    }
    const store = await KvEventStore.open(kv);
    const streams = 64;
    for (let n = 0; n < total;) {
      const batch = [];
      for (let s = 0; s < streams && n < total; s++, n += 100) {
        const count = Math.min(100, total - n);
        batch.push(store.append(
          `s-${s}`,
          Array.from({ length: count }, () => ({
            kind: "bench.event",
            payload: PAYLOAD,
          })),
        ));
      }
      await Promise.all(batch);
    }
    let started = performance.now();
    let count = 0;
    for await (const _ of kv.list({ prefix: ["raw"] })) count++;
    const raw = rate(count, started);
    const before = Deno.memoryUsage().rss;
    let peak = before;
    started = performance.now();
    count = 0;
    for await (const _ of store.read()) {
      if (++count % 50_000 === 0) peak = Math.max(peak, Deno.memoryUsage().rss);
    }
    const read = rate(count, started);
    await store.close();
    return { raw, read, growthMb: (peak - before) / 2 ** 20 };
  });
}

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
const r = await replay(replayCount);
console.log(
  `replay ${fmt(replayCount)} events: read() ${fmt(r.read)}/s vs raw kv.list ${fmt(r.raw)}/s = ${
    (r.read / r.raw).toFixed(2)
  }x (target 1.50x), memory growth ${r.growthMb.toFixed(1)} MB`,
);
