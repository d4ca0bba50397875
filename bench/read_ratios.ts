/**
 * Reads of the vault as ratios to raw Deno KV, measured in one process and run
 * (issue 21, section 3).
 *
 *   deno run -A bench/read_ratios.ts [--replay N] [--rounds R]
 *
 * - latest: `read({ stream, direction: "backward", limit: 1 })` of a
 *   20,000-event stream (written among 63 other streams by concurrent
 *   appenders, so pages are shared), in the process that wrote it and in a
 *   store opened afresh, vs one raw `kv.get` of a 256-byte value. Figures are
 *   reads per second; the ratio printed is the time of one read over one get
 *   (target ≤ 2).
 * - replay: full `read()` of N events vs raw `kv.list` over one value per key
 *   (target ≥ 3 on Deno).
 * - newest: `read({ direction: "backward", limit: 51 })` of the same N
 *   events (`toka ui`'s events page), vs one raw `kv.get`, as the time of one
 *   read over one get.
 */
import { KvEventStore } from "../vault/mod.ts";
import { benchOptions } from "./_args.ts";
import { fmt, median } from "./_compare.ts";

const PAYLOAD = "x".repeat(256);
const STREAM_EVENTS = 20_000;
const GETS = 2000;
const NEWEST_READS = 200;
const { replay: replayCount, rounds } = benchOptions(Deno.args);

function rate(count: number, started: number): number {
  return count / ((performance.now() - started) / 1000);
}

const dir = await Deno.makeTempDir();
try {
  const path = `${dir}/latest.kv`;
  const kv = await Deno.openKv(path);
  for (let i = 0; i < 100; i++) await kv.set(["raw", i], PAYLOAD);
  const writer = await KvEventStore.open(kv);
  // 64 appenders, one event per append: "long" gets 20,000 of them.
  await Promise.all(Array.from({ length: 64 }, async (_, w) => {
    for (let v = 0; v < STREAM_EVENTS / 8; v++) {
      if (w !== 0 && v >= STREAM_EVENTS / 64) return;
      await writer.append(w === 0 ? "long" : `other-${w}`, [{ kind: "e", payload: PAYLOAD }]);
    }
  }));
  for (let v = STREAM_EVENTS / 8; v < STREAM_EVENTS; v += 100) {
    await writer.append(
      "long",
      Array.from({ length: 100 }, () => ({ kind: "e", payload: PAYLOAD })),
    );
  }
  const fresh = await KvEventStore.open(await Deno.openKv(path), { closeKv: true });

  const rawGets = async () => {
    const started = performance.now();
    for (let i = 0; i < GETS; i++) await kv.get(["raw", i % 100]);
    return rate(GETS, started);
  };
  const latest = (store: KvEventStore) => async () => {
    const started = performance.now();
    for (let i = 0; i < GETS; i++) {
      for await (const e of store.read({ stream: "long", direction: "backward", limit: 1 })) {
        if (e.version !== STREAM_EVENTS) throw new Error(`Read version ${e.version}`);
      }
    }
    return rate(GETS, started);
  };
  for (const [name, store] of [["writer", writer], ["fresh store", fresh]] as const) {
    const base: number[] = [];
    const ours: number[] = [];
    for (let round = 0; round < rounds; round++) {
      base.push(await rawGets());
      ours.push(await latest(store)());
    }
    const ratio = median(base) / median(ours);
    console.log(
      `latest event of a ${fmt(STREAM_EVENTS)}-event stream (${name}): ${
        fmt(median(ours))
      }/s vs raw kv.get ${fmt(median(base))}/s = ${ratio.toFixed(2)}x the time of a get ` +
        `(target ≤ 2.00x; ${rounds} rounds, medians)`,
    );
  }
  await fresh.close();
  await writer.close();
  kv.close();

  const replayKv = await Deno.openKv(`${dir}/replay.kv`);
  for (let n = 0; n < replayCount;) {
    const op = replayKv.atomic();
    for (let i = 0; i < 1000 && n < replayCount; i++) op.set(["raw", n++], PAYLOAD);
    await op.commit();
  }
  const store = await KvEventStore.open(replayKv);
  for (let n = 0; n < replayCount;) {
    const batch = [];
    for (let s = 0; s < 64 && n < replayCount; s++, n += 100) {
      const count = Math.min(100, replayCount - n);
      batch.push(store.append(
        `s-${s}`,
        Array.from({ length: count }, () => ({ kind: "bench.event", payload: PAYLOAD })),
      ));
    }
    await Promise.all(batch);
  }
  const raw: number[] = [];
  const read: number[] = [];
  for (let round = 0; round < rounds; round++) {
    let started = performance.now();
    let count = 0;
    for await (const _ of replayKv.list({ prefix: ["raw"] })) count++;
    raw.push(rate(count, started));
    started = performance.now();
    count = 0;
    for await (const _ of store.read()) count++;
    read.push(rate(count, started));
  }
  console.log(
    `replay ${fmt(replayCount)} events: read() ${fmt(median(read))}/s vs raw kv.list ${
      fmt(median(raw))
    }/s = ${(median(read) / median(raw)).toFixed(2)}x (target ≥ 3.00x; ${rounds} rounds, medians)`,
  );
  const newest: number[] = [];
  const gets: number[] = [];
  for (let round = 0; round < rounds; round++) {
    let started = performance.now();
    for (let i = 0; i < NEWEST_READS; i++) await replayKv.get(["raw", i]);
    gets.push(rate(NEWEST_READS, started));
    started = performance.now();
    for (let i = 0; i < NEWEST_READS; i++) {
      let count = 0;
      for await (const _ of store.read({ direction: "backward", limit: 51 })) count++;
      if (count !== Math.min(51, replayCount)) throw new Error(`Read ${count} events`);
    }
    newest.push(rate(NEWEST_READS, started));
  }
  console.log(
    `newest 51 of ${fmt(replayCount)} events: ${fmt(median(newest))}/s (${
      (1000 / median(newest)).toFixed(2)
    } ms) vs raw kv.get ${fmt(median(gets))}/s = ${
      (median(gets) / median(newest)).toFixed(2)
    }x the time of a get (${rounds} rounds, medians)`,
  );
  await store.close();
  replayKv.close();
} finally {
  await Deno.remove(dir, { recursive: true });
}
