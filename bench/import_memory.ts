/**
 * Peak resident memory of `toka events import` (a real process reading a file on standard
 * input), for an export and one four times its size: flat memory means about the same peak.
 *
 *   deno run -A bench/import_memory.ts [--events N]
 *
 * The peak is the child's VmHWM (Linux /proc), read every 20 ms while it runs.
 */
import { parseArgs } from "node:util";
import { MemoryEventStore } from "../vault/mod.ts";
import { exportJsonLines } from "./_events.ts";

const { values } = parseArgs({ args: Deno.args, options: { events: { type: "string" } } });
const base = Number(values.events ?? 50_000);
if (!Number.isSafeInteger(base) || base < 100) throw new TypeError("--events expects ≥ 100");
const CLI = new URL("../cli.ts", import.meta.url).pathname;

async function writeExport(path: string, count: number): Promise<number> {
  const store = new MemoryEventStore();
  for (let n = 0; n < count; n += 100) {
    await store.append(
      `s-${(n / 100) % 64}`,
      Array.from({ length: Math.min(100, count - n) }, () => ({
        kind: "bench.event",
        payload: "x".repeat(256),
      })),
    );
  }
  await exportJsonLines(store, path);
  await store.close();
  return (await Deno.stat(path)).size;
}

function peakKb(pid: number): number | undefined {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    const kb = status.match(/^VmHWM:\s+(\d+) kB/m)?.[1];
    return kb === undefined ? undefined : Number(kb); // a zombie has none
  } catch {
    return undefined; // exited
  }
}

async function importPeak(file: string, db: string): Promise<{ peakMb: number; seconds: number }> {
  using input = await Deno.open(file);
  const started = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, "--db", db, "events", "import"],
    stdin: "piped",
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  let peak = 0;
  const done = child.status;
  let exited = false;
  done.then(() => (exited = true));
  const feeding = input.readable.pipeTo(child.stdin);
  while (!exited) {
    peak = Math.max(peak, peakKb(child.pid) ?? 0);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  await feeding;
  const status = await done;
  if (!status.success) throw new Error(`import exited ${status.code}`);
  return { peakMb: peak / 1024, seconds: (performance.now() - started) / 1000 };
}

const dir = await Deno.makeTempDir();
try {
  for (const count of [base, 4 * base]) {
    const file = `${dir}/export-${count}.jsonl`;
    const bytes = await writeExport(file, count);
    const { peakMb, seconds } = await importPeak(file, `${dir}/import-${count}.kv`);
    console.log(
      `import ${count.toLocaleString("en-US")} events (${(bytes / 2 ** 20).toFixed(0)} MB): ` +
        `peak RSS ${peakMb.toFixed(0)} MB, ${seconds.toFixed(1)} s`,
    );
  }
} finally {
  await Deno.remove(dir, { recursive: true });
}
