/**
 * storage("local") as a ratio to plain Deno file calls, measured in one process.
 *
 *   deno run -A bench/storage_ratios.ts [--rounds R]
 *
 * One sample puts then gets 100 values of 4 KiB at keys two folders deep
 * ("a/b/k<i>"):
 * - baseline: `Deno.writeFile` of a temporary file, `Deno.rename` over the
 *   key's path, then `Deno.readFile` (what the adapter did before it stopped
 *   following links, minus its checks);
 * - "fd" mode (Linux with -A): every folder and file opened relative to its
 *   parent's descriptor with O_NOFOLLOW (internal/safe_fs.ts);
 * - "checked" mode (without -A): paths checked with realPath and inodes.
 * The three alternate round by round (the order rotates) and the medians of
 * the per-round ratios are printed, so a noisy neighbour affects all of them.
 */
import { join } from "node:path";
import { LocalStorage } from "../runtime/storage/_local_storage.ts";

const args = Deno.args;
const rounds = Number(args[args.indexOf("--rounds") + 1] || 15);
const N = 100;
const value = new Uint8Array(4096).fill(7);

const dir = await Deno.makeTempDir();
const plainRoot = join(dir, "plain");
await Deno.mkdir(join(plainRoot, "a", "b"), { recursive: true });
const fd = new LocalStorage(join(dir, "fd"), "fd");
const checked = new LocalStorage(join(dir, "checked"), "checked");

async function plain(): Promise<void> {
  for (let i = 0; i < N; i++) {
    const temp = join(plainRoot, "a", "b", `.tmp-${crypto.randomUUID()}`);
    await Deno.writeFile(temp, value);
    await Deno.rename(temp, join(plainRoot, "a", "b", `k${i}`));
  }
  for (let i = 0; i < N; i++) await Deno.readFile(join(plainRoot, "a", "b", `k${i}`));
}

const viaAdapter = (storage: LocalStorage) => async (): Promise<void> => {
  for (let i = 0; i < N; i++) await storage.put(`a/b/k${i}`, value);
  for (let i = 0; i < N; i++) await storage.get(`a/b/k${i}`);
};

// Microseconds per put + get.
async function time(run: () => Promise<void>): Promise<number> {
  const started = performance.now();
  await run();
  return (performance.now() - started) * 1000 / N;
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[sorted.length >> 1];
};

const runs = { plain, fd: viaAdapter(fd), checked: viaAdapter(checked) };
for (let i = 0; i < 2; i++) for (const run of Object.values(runs)) await time(run);
const us: Record<string, number[]> = { plain: [], fd: [], checked: [] };
const names = Object.keys(runs) as (keyof typeof runs)[];
for (let round = 0; round < rounds; round++) {
  for (let j = 0; j < names.length; j++) {
    const name = names[(round + j) % names.length];
    us[name].push(await time(runs[name]));
  }
}
await Deno.remove(dir, { recursive: true });

const ratio = (name: string) => median(us.plain.map((p, i) => p / us[name][i]));
console.log(`rounds: ${rounds} × ${N} puts and gets of 4 KiB, two folders deep`);
console.log(`plain Deno calls: ${median(us.plain).toFixed(0)} µs per put + get`);
for (const name of ["fd", "checked"]) {
  console.log(
    `${name.padEnd(16)}: ${median(us[name]).toFixed(0)} µs per put + get, ${
      ratio(name).toFixed(2)
    }× the plain calls' speed (median of rounds)`,
  );
}
