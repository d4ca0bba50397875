/**
 * `toka events fork` throughput as a ratio to `toka events import` of the same
 * events, measured in one process and run (issue 21: fork ≥ 0.5× import).
 *
 *   deno run -A bench/fork_ratios.ts [--events N] [--rounds R]
 *
 * - source: N events (64 streams, 256-byte payloads) appended 100 at a time
 *   by 64 concurrent appenders into a vault file, and exported as JSON Lines.
 * - import: `events import` (in-process `main()`, the export as standard
 *   input) into a new vault file.
 * - fork: `events fork --at N` (in-process `main()`) of the source into a new
 *   vault file: the same N events.
 *
 * Each figure is events per second, the median of its rounds; import and fork
 * alternate round by round.
 */
import { openVault } from "../vault/mod.ts";
import { fmt, median } from "./_compare.ts";
import { appendBatches, eventsAndRounds, exportJsonLines, tokaQuiet as toka } from "./_events.ts";

const { total, rounds } = eventsAndRounds(Deno.args);
const PAYLOAD = "x".repeat(256);

const rate = (count: number, started: number) => count / ((performance.now() - started) / 1000);

const dir = await Deno.makeTempDir();
try {
  const source = `${dir}/source.kv`;
  const store = await openVault(source);
  await appendBatches(store, total, PAYLOAD);
  await exportJsonLines(store, `${dir}/export.jsonl`);
  await store.close();

  const imports: number[] = [];
  const forks: number[] = [];
  for (let round = 0; round < rounds; round++) {
    {
      using input = await Deno.open(`${dir}/export.jsonl`);
      const started = performance.now();
      await toka(["--db", `${dir}/imported-${round}.kv`, "events", "import"], input.readable);
      imports.push(rate(total, started));
    }
    const started = performance.now();
    await toka([
      "--db",
      source,
      "events",
      "fork",
      "--at",
      String(total),
      "--into",
      `${dir}/fork-${round}.kv`,
    ]);
    forks.push(rate(total, started));
    for (const name of [`imported-${round}.kv`, `fork-${round}.kv`]) {
      await Deno.remove(`${dir}/${name}`);
    }
  }
  const ours = median(forks);
  console.log(
    `fork of ${fmt(total)} events: ${fmt(ours)}/s vs events import ${fmt(median(imports))}/s = ${
      (ours / median(imports)).toFixed(2)
    }x (target ≥ 0.50x; ${rounds} rounds, medians)`,
  );
} finally {
  await Deno.remove(dir, { recursive: true });
}
