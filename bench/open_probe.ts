/**
 * What the damage probe costs when a vault is opened: `openVault(path)` (SQLite's
 * quick_check through node:sqlite, then Deno KV) as a ratio to a bare
 * `Deno.openKv(path)` plus the same store open, on a vault of N events.
 *
 *   deno run -A bench/open_probe.ts [--events N] [--rounds R]
 */
import { parseArgs } from "node:util";
import { KvEventStore, openVault } from "../vault/mod.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { events: { type: "string" }, rounds: { type: "string" } },
});
const events = Number(values.events ?? 100_000);
const rounds = Number(values.rounds ?? 5);
if (!Number.isSafeInteger(events) || events < 1 || !Number.isSafeInteger(rounds) || rounds < 1) {
  throw new TypeError("--events and --rounds expect whole numbers ≥ 1");
}

const dir = await Deno.makeTempDir();
const path = `${dir}/probe.kv`;
try {
  const vault = await openVault(path);
  const payload = { text: "x".repeat(200) };
  for (let done = 0; done < events; done += 500) {
    const n = Math.min(500, events - done);
    await vault.append(
      `s/${done % 50}`,
      Array.from({ length: n }, () => ({ kind: "a.b", payload })),
    );
  }
  await vault.close();
  const size = (await Deno.stat(path)).size;

  const time = async (open: () => Promise<{ close(): Promise<void> }>) => {
    const started = performance.now();
    const store = await open();
    await store.close();
    return performance.now() - started;
  };
  const base: number[] = [];
  const probed: number[] = [];
  for (let round = 0; round < rounds; round++) {
    base.push(
      await time(async () => KvEventStore.open(await Deno.openKv(path), { closeKv: true })),
    );
    probed.push(await time(() => openVault(path)));
  }
  const median = (v: number[]) => [...v].sort((a, b) => a - b)[v.length >> 1];
  console.log(
    `open of ${events.toLocaleString("en-US")} events (${(size / 2 ** 20).toFixed(1)} MB): ` +
      `openVault ${median(probed).toFixed(1)} ms vs bare Deno.openKv ${
        median(base).toFixed(1)
      } ms ` +
      `= ${(median(probed) / median(base)).toFixed(2)}x (${rounds} rounds, medians)`,
  );
} finally {
  await Deno.remove(dir, { recursive: true });
}
