/**
 * `toka events import` throughput as a ratio to the vault's own appends, measured in one
 * process and run.
 *
 *   deno run -A bench/import_ratios.ts [--events N] [--rounds R]
 *
 * - baselines: N events (64 streams, 256-byte payloads) appended through the API into a
 *   new vault file, by 64 concurrent appenders, (a) one event per append with its expected
 *   version (this vault is also the export that is imported), (b) 100 events per append,
 *   the vault's fastest way in.
 * - import: the same events exported to a JSON Lines file and stored by the CLI's
 *   `events import` (in-process `main()`, reading the file as standard input) into a new
 *   vault file: parsing, checks and all.
 *
 * Each figure is the median of its rounds; baseline and import alternate round by round.
 */
import { openVault } from "../vault/mod.ts";
import { fmt, median } from "./_compare.ts";
import { appendBatches, eventsAndRounds, exportJsonLines, tokaQuiet } from "./_events.ts";

const { total, rounds } = eventsAndRounds(Deno.args);
const PAYLOAD = "x".repeat(256);
const WRITERS = 64;

const rate = (count: number, started: number) => count / ((performance.now() - started) / 1000);

async function appendAll(path: string): Promise<number> {
  const store = await openVault(path);
  const perWriter = Math.ceil(total / WRITERS);
  const started = performance.now();
  await Promise.all(Array.from({ length: WRITERS }, async (_, w) => {
    for (let v = 0; v < perWriter && v * WRITERS + w < total; v++) {
      await store.append(`writer-${w}`, [{ kind: "bench.event", payload: PAYLOAD }], {
        expectedVersion: v,
      });
    }
  }));
  const result = rate(total, started);
  await store.close();
  return result;
}

// The vault's best case: 64 streams appended concurrently, 100 events per append.
async function appendBatched(path: string): Promise<number> {
  const store = await openVault(path);
  const started = performance.now();
  await appendBatches(store, total, PAYLOAD, WRITERS);
  const result = rate(total, started);
  await store.close();
  return result;
}

async function exportTo(db: string, file: string): Promise<void> {
  const store = await openVault(db, { create: false });
  await exportJsonLines(store, file);
  await store.close();
}

async function importFrom(file: string, db: string): Promise<number> {
  using input = await Deno.open(file);
  const started = performance.now();
  await tokaQuiet(["--db", db, "events", "import"], input.readable);
  return rate(total, started);
}

const dir = await Deno.makeTempDir();
try {
  const appends: number[] = [];
  const batched: number[] = [];
  const imports: number[] = [];
  for (let round = 0; round < rounds; round++) {
    const source = `${dir}/source-${round}.kv`;
    appends.push(await appendAll(source));
    batched.push(await appendBatched(`${dir}/batched-${round}.kv`));
    await Deno.remove(`${dir}/batched-${round}.kv`);
    if (round === 0) await exportTo(source, `${dir}/export.jsonl`);
    imports.push(await importFrom(`${dir}/export.jsonl`, `${dir}/imported-${round}.kv`));
    for (const name of [source, `${dir}/imported-${round}.kv`]) {
      await Deno.remove(name).catch(() => {});
    }
  }
  const ours = median(imports);
  console.log(
    `import ${fmt(total)} events: ${fmt(ours)}/s (${rounds} rounds, medians)\n` +
      `  vs 64 concurrent one-event appends ${fmt(median(appends))}/s = ${
        (ours / median(appends)).toFixed(2)
      }x (target 0.50x)\n` +
      `  vs 64 concurrent 100-event appends ${fmt(median(batched))}/s = ${
        (ours / median(batched)).toFixed(2)
      }x (target 0.50x)`,
  );
} finally {
  await Deno.remove(dir, { recursive: true });
}
