/**
 * Memory of `verify()` on a large vault file: the peak growth of the
 * process's resident set and of the V8 heap while verify runs, over what
 * they were just before (the store already open).
 *
 *   deno run -A bench/verify_memory.ts [--events N] [--streams S]
 *
 * Writes N events (1,000,000 by default) across S streams (1,000) in
 * appends of 250, closes (indexing everything), reopens and verifies.
 */
import { openVault } from "../vault/mod.ts";

const args = Deno.args;
const option = (name: string, fallback: number) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? Number(args[i + 1]) : fallback;
};
const total = option("--events", 1_000_000);
const streams = option("--streams", 1_000);
const PER_APPEND = 250;

const dir = await Deno.makeTempDir();
const path = `${dir}/verify.kv`;
const mb = (bytes: number) => (bytes / 2 ** 20).toFixed(1);
try {
  let started = performance.now();
  {
    await using vault = await openVault(path);
    const writers = 8;
    let next = 0;
    await Promise.all(Array.from({ length: writers }, async () => {
      for (;;) {
        const first = next;
        if (first >= total) return;
        next += PER_APPEND;
        const n = Math.min(PER_APPEND, total - first);
        await vault.append(
          `stream-${(first / PER_APPEND) % streams}`,
          Array.from({ length: n }, (_, i) => ({
            kind: "bench.event",
            payload: { n: first + i, text: "x".repeat(64) },
            meta: { correlationId: `c-${first}` },
          })),
        );
      }
    }));
  }
  console.log(
    `wrote ${total.toLocaleString("en-US")} events in ${
      ((performance.now() - started) / 1000).toFixed(1)
    } s`,
  );

  await using vault = await openVault(path, { create: false });
  const before = Deno.memoryUsage();
  let peakRss = before.rss;
  let peakHeap = before.heapUsed;
  const sampler = setInterval(() => {
    const now = Deno.memoryUsage();
    peakRss = Math.max(peakRss, now.rss);
    peakHeap = Math.max(peakHeap, now.heapUsed);
  }, 20);
  started = performance.now();
  const report = await vault.verify();
  const seconds = (performance.now() - started) / 1000;
  clearInterval(sampler);
  const after = Deno.memoryUsage();
  peakRss = Math.max(peakRss, after.rss);
  peakHeap = Math.max(peakHeap, after.heapUsed);
  console.log(
    `verify(): ok=${report.ok}, ${report.checked.toLocaleString("en-US")} events in ${
      seconds.toFixed(1)
    } s (${Math.round(report.checked / seconds).toLocaleString("en-US")}/s); ` +
      `peak growth: RSS +${mb(peakRss - before.rss)} MB, heap +${
        mb(peakHeap - before.heapUsed)
      } MB (heap before ${mb(before.heapUsed)} MB, RSS before ${mb(before.rss)} MB)`,
  );
} finally {
  await Deno.remove(dir, { recursive: true });
}
