/**
 * `toka ui` measured in headless Chromium (playwright-core, Debian's /usr/bin/chromium or
 * $TOKA_CHROMIUM), each server a real `toka ui` process:
 *
 *   deno run -A --v8-flags=--expose-gc bench/ui_browser.ts [--large N] [--rounds R] [--appends A]
 *     [--follow F] [--server-heap-mb M]
 *
 * 1. Time to first rows: from navigation to the first event row, on a vault of 1,000 events and
 *    on one of N (1,000,000 by default), alternating, R rounds (10); medians and their ratio
 *    (target ≤ 1.5).
 * 2. Live: A appends (50) from another handle on the vault, at random gaps of 50–600 ms; the time
 *    from just before each append to its row in the page (a MutationObserver records it).
 *    Median and 90th percentile (target: median ≤ 250 ms).
 * 3. Memory: the server's resident set (VmRSS) while the page follows F appends (100,000), in
 *    batches of 100: after each tenth, once the page shows it, and the peak (sampled every 50 ms).
 *    Flat means the later samples are no higher than the first ones. With
 *    --v8-flags=--expose-gc, also the live heap after a forced GC with the server in this process
 *    (RSS alone also shows V8 growing its heap lazily). --server-heap-mb caps the `toka ui`
 *    processes' V8 old space (--max-old-space-size), to show that following fits in it.
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import { openVault } from "../vault/mod.ts";
import type { EventStore } from "../runtime/log/event_store.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    large: { type: "string" },
    rounds: { type: "string" },
    appends: { type: "string" },
    follow: { type: "string" },
    "server-heap-mb": { type: "string" },
  },
});
const count = (name: string, value: string | undefined, fallback: number) => {
  const n = Number(value ?? fallback);
  if (!Number.isSafeInteger(n) || n < 1) throw new TypeError(`--${name} expects a number ≥ 1`);
  return n;
};
const LARGE = count("large", values.large, 1_000_000);
const ROUNDS = count("rounds", values.rounds, 10);
const APPENDS = count("appends", values.appends, 50);
const FOLLOW = count("follow", values.follow, 100_000);
// Caps the servers' V8 old space: following in bounded memory must then still work.
const SERVER_HEAP_MB = values["server-heap-mb"] === undefined
  ? undefined
  : count("server-heap-mb", values["server-heap-mb"], 0);
const CHROMIUM = Deno.env.get("TOKA_CHROMIUM") ?? "/usr/bin/chromium";
const CLI = new URL("../cli.ts", import.meta.url).pathname;
const CONFIG = new URL("../deno.json", import.meta.url).pathname;

const median = (xs: number[]) => percentile(xs, 0.5);
function percentile(xs: number[], p: number): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}
const ms = (x: number) => `${x.toFixed(1)} ms`;

/** Writes `total` events across 1,000 streams, 250 to an append, 8 appends at a time. */
async function build(path: string, total: number): Promise<void> {
  const started = performance.now();
  await using vault = await openVault(path);
  let next = 0;
  await Promise.all(Array.from({ length: 8 }, async () => {
    for (;;) {
      const first = next;
      if (first >= total) return;
      next += 250;
      await vault.append(
        `stream-${(first / 250) % 1000}`,
        Array.from({ length: Math.min(250, total - first) }, (_, i) => ({
          kind: "bench.event",
          payload: { n: first + i, text: "x".repeat(64) },
          meta: { correlationId: `c-${first}` },
        })),
      );
    }
  }));
  console.log(
    `built ${total.toLocaleString("en-US")} events in ${
      ((performance.now() - started) / 1000).toFixed(1)
    } s`,
  );
}

/** A `toka ui` process on a vault, and its URL. */
async function server(path: string): Promise<{ url: string; pid: number; stop(): Promise<void> }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--quiet",
      ...(SERVER_HEAP_MB === undefined
        ? []
        : [`--v8-flags=--max-old-space-size=${SERVER_HEAP_MB}`]),
      "--config",
      CONFIG,
      CLI,
      "--db",
      path,
      "--json",
      "ui",
    ],
    stdout: "piped",
    stderr: "inherit",
    stdin: "null",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error("toka ui ended before printing its URL");
    text += value;
  }
  const { url } = JSON.parse(text.split("\n")[0]);
  return {
    url,
    pid: child.pid,
    async stop() {
      child.kill("SIGINT");
      await reader.cancel();
      await child.status;
    },
  };
}

function rssMb(pid: number, part = "VmRSS"): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(status.match(new RegExp(`${part}:\\s+(\\d+) kB`))![1]) / 1024;
}

// Resident memory in parts: anonymous (heaps), file-backed (mapped files such as the vault's),
// shared memory (SQLite's -shm).
function rssParts(pid: number): string {
  return ["RssAnon", "RssFile", "RssShmem"].map((part) => rssMb(pid, part).toFixed(1)).join("/");
}

if (!(await Deno.stat(CHROMIUM).then(() => true, () => false))) {
  console.log(`skipped: no Chromium at ${CHROMIUM}`);
  Deno.exit(0);
}
const { chromium } = await import("playwright-core");
const dir = await Deno.makeTempDir();
const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
try {
  const small = join(dir, "small.kv");
  const large = join(dir, "large.kv");
  await build(small, 1_000);
  await build(large, LARGE);
  const servers = { small: await server(small), large: await server(large) };
  const page = await browser.newPage();

  // 1. Time to first rows, alternating so that load drifts hit both alike.
  const firstRows = { small: [] as number[], large: [] as number[] };
  for (let round = 0; round < ROUNDS + 1; round++) {
    for (const size of ["small", "large"] as const) {
      await page.goto("about:blank");
      const started = performance.now();
      await page.goto(servers[size].url);
      await page.locator("tr.event").first().waitFor();
      // The first round warms both servers and the browser's cache up.
      if (round > 0) firstRows[size].push(performance.now() - started);
    }
  }
  const ratio = median(firstRows.large) / median(firstRows.small);
  console.log(
    `time to first rows: ${LARGE.toLocaleString("en-US")} events ${
      ms(median(firstRows.large))
    }, 1,000 events ${ms(median(firstRows.small))}: ratio ${ratio.toFixed(2)} (target ≤ 1.5)`,
  );

  // 2. Live: appended through another handle, as another process would.
  await page.goto(servers.small.url);
  await page.locator("#live.on").waitFor();
  // In the page: when each row appeared, by event id (Date.now, the clock the appends read).
  await page.evaluate(`
    globalThis.seen = {};
    new MutationObserver((records) => {
      const now = Date.now();
      for (const record of records) {
        for (const node of record.addedNodes) {
          const id = node.dataset && node.dataset.id;
          if (id !== undefined && globalThis.seen[id] === undefined) globalThis.seen[id] = now;
        }
      }
    }).observe(document.getElementById("events"), { childList: true });
  `);
  const writer: EventStore = await openVault(small);
  const latencies: number[] = [];
  for (let i = 0; i < APPENDS; i++) {
    await new Promise((resolve) => setTimeout(resolve, 50 + Math.random() * 550));
    const before = Date.now();
    const { events: [event] } = await writer.append("live", [{ kind: "bench.live" }]);
    const handle = await page.waitForFunction(
      (id) => (globalThis as unknown as { seen: Record<string, number> }).seen[id],
      event.id,
    );
    latencies.push((await handle.jsonValue() as number) - before);
  }
  console.log(
    `live append to row (other handle, ${APPENDS} appends): median ${ms(median(latencies))}, ` +
      `p90 ${ms(percentile(latencies, 0.9))} (target: median ≤ 250 ms)`,
  );

  // 3. Memory while following: each tenth of the appends, then (once the page shows the last
  // one) the server's RSS; and the peak over the whole phase, sampled every 50 ms.
  const samples: string[] = [];
  let peak = rssMb(servers.small.pid);
  const sampler = setInterval(() => peak = Math.max(peak, rssMb(servers.small.pid)), 50);
  const tenth = Math.max(100, Math.floor(FOLLOW / 1000) * 100);
  let rows = 0;
  for (let n = 0; n < FOLLOW;) {
    for (const end = Math.min(FOLLOW, n + tenth); n < end; n += 100) {
      await writer.append(
        `follow-${n % 64}`,
        Array.from({ length: 100 }, (_, i) => ({ kind: "bench.follow", payload: { n: n + i } })),
      );
    }
    const head = (await writer.head())!.position;
    await page.locator(`tr.event[data-position="${head}"]`).waitFor({ timeout: 600_000 });
    rows = await page.locator("tr.event").count();
    samples.push(
      `${n.toLocaleString("en-US")}: ${rssMb(servers.small.pid).toFixed(1)} MB (${
        rssParts(servers.small.pid)
      })`,
    );
  }
  clearInterval(sampler);
  console.log(
    `server RSS while the page followed ${FOLLOW.toLocaleString("en-US")} appends (after each ` +
      `tenth, once shown; anon/file/shmem in parentheses): ${samples.join(", ")}; peak ${
        peak.toFixed(1)
      } MB; page rows ${rows}`,
  );
  // 3b. The same in this process, where a garbage collection can be forced (run with
  // --v8-flags=--expose-gc): the live heap after each tenth is what the server keeps.
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) {
    console.log("heap after GC: skipped (run with --v8-flags=--expose-gc)");
  } else {
    const { startUiServer } = await import("../cli/_ui_server.ts");
    const reader = await openVault(small, { readOnly: true, create: false });
    const inProcess = await startUiServer({ store: reader });
    await page.goto(inProcess.url);
    await page.locator("#live.on").waitFor();
    const heaps: string[] = [];
    for (let n = 0; n < FOLLOW;) {
      for (const end = Math.min(FOLLOW, n + tenth); n < end; n += 100) {
        await writer.append(
          `heap-${n % 64}`,
          Array.from({ length: 100 }, (_, i) => ({ kind: "bench.heap", payload: { n: n + i } })),
        );
      }
      const head = (await writer.head())!.position;
      await page.locator(`tr.event[data-position="${head}"]`).waitFor({ timeout: 600_000 });
      gc();
      heaps.push(
        `${n.toLocaleString("en-US")}: ${(Deno.memoryUsage().heapUsed / 2 ** 20).toFixed(1)} MB`,
      );
    }
    console.log(
      `heap after GC, server in this process, while the page followed ${
        FOLLOW.toLocaleString("en-US")
      } appends: ${heaps.join(", ")}`,
    );
    await inProcess.shutdown();
    await reader.close();
  }
  await writer.close();
  await page.close();
  await servers.small.stop();
  await servers.large.stop();
} finally {
  await browser.close();
  await Deno.remove(dir, { recursive: true });
}
