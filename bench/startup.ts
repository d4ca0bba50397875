/**
 * Start-up time of the `toka` CLI as ratios to `deno eval 'console.log(1)'`, measured in one
 * run: each round runs every command once, in turn, so that machine load touches all alike.
 *
 *   deno run -A bench/startup.ts [--events N] [--rounds R]
 *
 * - `toka --help`: parsing and help only.
 * - `toka events head` on a vault of N events (100,000 by default): opening the vault (its
 *   SQLite quick_check included) and reading its last page.
 * - `toka events stats` on the same vault: which reads every page to count.
 *
 * Each figure is the median wall time of its rounds, process start to exit, after one
 * unmeasured warm-up round (module cache).
 */
import { parseArgs } from "node:util";
import { openVault } from "../vault/mod.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { events: { type: "string" }, rounds: { type: "string" } },
});
const total = Number(values.events ?? 100_000);
const rounds = Number(values.rounds ?? 15);
if (!(Number.isSafeInteger(total) && total >= 1 && Number.isSafeInteger(rounds) && rounds >= 1)) {
  throw new TypeError("--events and --rounds expect whole numbers ≥ 1");
}
const CLI = new URL("../cli.ts", import.meta.url).pathname;

async function timed(args: string[]): Promise<number> {
  const started = performance.now();
  const output = await new Deno.Command(Deno.execPath(), {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const ms = performance.now() - started;
  if (!output.success) {
    throw new Error(`${args.join(" ")}: ${new TextDecoder().decode(output.stderr)}`);
  }
  return ms;
}

const dir = await Deno.makeTempDir();
try {
  const db = `${dir}/startup.kv`;
  const vault = await openVault(db);
  for (let n = 0; n < total;) {
    const appends = [];
    for (let s = 0; s < 64 && n < total; s++) {
      const count = Math.min(100, total - n);
      n += count;
      appends.push(vault.append(
        `s-${s}`,
        Array.from({ length: count }, () => ({ kind: "bench.event", payload: "x".repeat(256) })),
      ));
    }
    await Promise.all(appends);
  }
  await vault.close();

  const commands: [string, string[]][] = [
    ["deno eval 'console.log(1)'", ["eval", "console.log(1)"]],
    ["toka --help", ["run", "-A", CLI, "--help"]],
    [`toka events head (${total.toLocaleString("en-US")} events)`, [
      "run",
      "-A",
      CLI,
      "--db",
      db,
      "events",
      "head",
    ]],
    [`toka events stats (${total.toLocaleString("en-US")} events)`, [
      "run",
      "-A",
      CLI,
      "--db",
      db,
      "events",
      "stats",
    ]],
  ];
  const times = commands.map(() => [] as number[]);
  for (let round = -1; round < rounds; round++) {
    for (const [i, [, args]] of commands.entries()) {
      const ms = await timed(args);
      if (round >= 0) times[i].push(ms);
    }
  }
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[values.length >> 1];
  const base = median(times[0]);
  for (const [i, [name]] of commands.entries()) {
    const ms = median(times[i]);
    console.log(
      `${name}: ${ms.toFixed(0)} ms` + (i === 0 ? " (baseline)" : ` = ${(ms / base).toFixed(2)}x`),
    );
  }
  console.log(`(${rounds} rounds, medians)`);
} finally {
  await Deno.remove(dir, { recursive: true });
}
