/**
 * How long a stdio plugin's output can hold up the host's event loop: the longest gap between
 * ticks of a 10 ms interval timer while the plugin sends a 40 MB line without a newline (refused
 * once past the 16 MiB line cap) and while it sends 40 MB of valid notifications, as a ratio to
 * the gap while a bare reader in this process drains the same 40 MB from the same program.
 *
 *   deno run -A bench/plugin_output.ts [--mb M] [--rounds R]
 *
 * Goal: a longest gap under 50 ms on a quiet machine, whatever the plugin sends. Each figure is
 * the median of R rounds (3 by default); the time from the call to its refusal or answer beside.
 */
import { loadPlugins, ToolRegistry } from "../toolkit/mod.ts";
import { median } from "./_interleaved.ts";

const args = Deno.args;
const flag = (name: string, fallback: number) => {
  const i = args.indexOf(name);
  const n = i < 0 ? fallback : Number(args[i + 1]);
  if (!Number.isInteger(n) || n < 1) throw new TypeError(`${name} expects a whole number ≥ 1`);
  return n;
};
const bytes = flag("--mb", 40) * 1_000_000;
const rounds = flag("--rounds", 3);
const child = new URL("../tests/toolkit/_plugin_hostile_child.ts", import.meta.url).pathname;
const args0 = ["run", "--quiet", child];

// Runs `work` with a 10 ms interval timer beside it; returns the longest gap between ticks
// (or between the start and the first tick, or the last tick and the end) and the time taken.
async function gapDuring(work: () => Promise<unknown>): Promise<{ gapMs: number; ms: number }> {
  let last = performance.now();
  let gapMs = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    gapMs = Math.max(gapMs, now - last);
    last = now;
  }, 10);
  const started = performance.now();
  try {
    await work();
  } finally {
    clearInterval(timer);
  }
  const ended = performance.now();
  return { gapMs: Math.max(gapMs, ended - last), ms: ended - started };
}

// The baseline: the same child, asked for the same output, read by a loop that only counts.
async function bare(action: "line" | "notify"): Promise<void> {
  const proc = new Deno.Command(Deno.execPath(), {
    args: args0,
    stdin: "piped",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const writer = proc.stdin.getWriter();
  const call = { jsonrpc: "2.0", id: 1, method: "tools/call" };
  const params = { name: "act", arguments: { do: action, bytes } };
  await writer.write(new TextEncoder().encode(JSON.stringify({ ...call, params }) + "\n"));
  let seen = 0;
  for await (const chunk of proc.stdout) {
    seen += chunk.length;
    if (seen >= Math.min(bytes, 16 * 1024 * 1024 + 1) && action === "line") break;
    if (seen >= bytes && action === "notify") break;
  }
  proc.kill("SIGKILL");
  await writer.close().catch(() => {});
  await proc.status;
}

const registry = new ToolRegistry();
const host = await loadPlugins(registry, [{
  name: "flood",
  transport: { type: "stdio", command: Deno.execPath(), args: args0 },
  timeoutMs: 120_000,
}]);
const viaHost = async (action: "line" | "notify") => {
  try {
    return await registry.call("flood.act", { do: action, bytes });
  } catch (error) {
    if (action === "line" && /longer than/.test((error as Error).message)) return "refused";
    throw error;
  }
};
const figures: Record<string, { base: number[]; gap: number[]; ms: number[] }> = {};
for (const action of ["line", "notify"] as const) {
  const f = figures[action] = { base: [] as number[], gap: [] as number[], ms: [] as number[] };
  for (let round = 0; round < rounds; round++) {
    f.base.push((await gapDuring(() => bare(action))).gapMs);
    const measured = await gapDuring(() => viaHost(action));
    f.gap.push(measured.gapMs);
    f.ms.push(measured.ms);
  }
}
await host.close();

const mb = (bytes / 1_000_000).toFixed(0);
for (
  const [action, what] of [["line", `one ${mb} MB line`], ["notify", `${mb} MB of notifications`]]
) {
  const f = figures[action];
  console.log(
    `${what}: longest event-loop gap ${median(f.gap).toFixed(0)} ms through the plugin host ` +
      `vs ${median(f.base).toFixed(0)} ms for a bare reader = ${
        (median(f.gap) / median(f.base)).toFixed(1)
      }x (goal < 50 ms); call ${action === "line" ? "refused" : "answered"} after ` +
      `${median(f.ms).toFixed(0)} ms (${rounds} rounds, medians)`,
  );
}
