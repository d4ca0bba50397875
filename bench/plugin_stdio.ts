/**
 * A `stdio` plugin call through the registry as a ratio to a bare JSON-RPC round trip to the
 * same child program, with the MCP round trip beside it, measured in one process.
 *
 *   deno run -A bench/plugin_stdio.ts [--rounds R] [--calls K]
 *
 * - baseline: a bare client (write one line, read one line, JSON.parse) talking to its own
 *   `examples/plugins/weather_stdio.ts` child, one call at a time;
 * - stdio plugin: `registry.call("weather.forecast", …)` to another child of the same program,
 *   through the whole registry: a real capability token checked by `KvTokenAuthority`, input
 *   and output validated, `tool.*` events appended to an in-memory vault (one append per call,
 *   the tool being read-only, as the CLI and `toka mcp serve` record);
 * - mcp plugin: the same registry call to `examples/plugins/notes_mcp.ts` (`count_words`) over
 *   stdio through the `@modelcontextprotocol/sdk` client.
 *
 * Each timing is 100 samples of K sequential calls (10 by default); baseline and candidate
 * alternate round by round (the order flips each round) and the medians are compared.
 * Target: the stdio plugin at least 0.5× the bare round trip.
 */
import { KvTokenAuthority } from "../auth/mod.ts";
import { loadPlugins, ToolRegistry } from "../toolkit/mod.ts";
import { MemoryEventStore } from "../vault/mod.ts";
import { median } from "./_interleaved.ts";

const args = Deno.args;
const flag = (name: string, fallback: number) => {
  const i = args.indexOf(name);
  const n = i < 0 ? fallback : Number(args[i + 1]);
  if (!Number.isInteger(n) || n < 1) throw new TypeError(`${name} expects a whole number ≥ 1`);
  return n;
};
const rounds = flag("--rounds", 400);
const calls = flag("--calls", 5);
const examples = new URL("../examples/plugins/", import.meta.url).pathname;
const input = { city: "Oslo", days: 3 };

// The bare client: no Toka, the least a caller can do.
const child = new Deno.Command(Deno.execPath(), {
  args: ["run", "--quiet", `${examples}weather_stdio.ts`],
  stdin: "piped",
  stdout: "piped",
}).spawn();
const writer = child.stdin.getWriter();
const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
const encoder = new TextEncoder();
let buffer = "";
let nextId = 1;
async function bareCall(): Promise<unknown> {
  const id = nextId++;
  const request = {
    jsonrpc: "2.0",
    id,
    method: "tools/call",
    params: { name: "forecast", arguments: input },
  };
  await writer.write(encoder.encode(JSON.stringify(request) + "\n"));
  let end: number;
  while ((end = buffer.indexOf("\n")) < 0) buffer += (await reader.read()).value;
  const line = buffer.slice(0, end);
  buffer = buffer.slice(end + 1);
  return JSON.parse(line).result;
}

// The registry, as createRuntime wires it (minus the bus): auth, validation, events.
const kv = await Deno.openKv(":memory:");
const authority = await KvTokenAuthority.open(kv, { vault: "bench" });
const vault = new MemoryEventStore();
const registry = new ToolRegistry({
  authority,
  // As the CLI and `toka mcp serve` record: a read-only tool's events in one append.
  record: (event) => vault.append("toolkit", [event]),
  recordBatch: (events) => vault.append("toolkit", events),
});
const host = await loadPlugins(registry, [
  {
    name: "weather",
    transport: {
      type: "stdio",
      command: Deno.execPath(),
      args: ["run", "--quiet", "weather_stdio.ts"],
      cwd: examples,
    },
  },
  {
    name: "notes",
    transport: {
      type: "mcp",
      command: Deno.execPath(),
      args: ["run", "--quiet", "notes_mcp.ts"],
      cwd: examples,
    },
  },
]);
const token = await authority.issue({
  sub: "agent/bench",
  permissions: ["tool:weather.forecast:invoke", "tool:notes.count_words:invoke"],
});

const bare = async () => {
  for (let i = 0; i < calls; i++) await bareCall();
};
const viaStdio = async () => {
  for (let i = 0; i < calls; i++) await registry.call("weather.forecast", input, { token });
};
const viaMcp = async () => {
  for (let i = 0; i < calls; i++) {
    await registry.call("notes.count_words", { text: "one two three" }, { token });
  }
};

// Same answers both ways, or the comparison means nothing.
if (
  JSON.stringify(await bareCall()) !==
    JSON.stringify(await registry.call("weather.forecast", input, { token }))
) {
  throw new Error("The bare call and the plugin call disagree");
}

// Pairs of K calls each way, the order flipping each pair: on a shared machine both sides of a
// pair see the same load, so the median of the pairs' ratios is steadier than whole timings.
async function pairs(baseline: () => Promise<void>, candidate: () => Promise<void>) {
  for (let i = 0; i < 20; i++) await baseline(), await candidate(); // warm-up
  const baseUs: number[] = [], candUs: number[] = [], ratios: number[] = [];
  const time = async (run: () => Promise<void>) => {
    const started = performance.now();
    await run();
    return (performance.now() - started) * 1000 / calls;
  };
  for (let i = 0; i < rounds; i++) {
    let b: number, c: number;
    if (i % 2 === 0) b = await time(baseline), c = await time(candidate);
    else c = await time(candidate), b = await time(baseline);
    baseUs.push(b), candUs.push(c), ratios.push(b / c);
  }
  return { baseUs, candUs, ratios };
}
const stdio = await pairs(bare, viaStdio);
const mcp = await pairs(bare, viaMcp);

await host.close();
await writer.close();
await reader.cancel();
await child.status;
kv.close();

const q = (values: number[], p: number) =>
  [...values].sort((a, b) => a - b)[Math.floor(p * (values.length - 1))];
const spread = (values: number[]) => `${q(values, 0.25).toFixed(2)}–${q(values, 0.75).toFixed(2)}`;
console.log(`${rounds} pairs of ${calls} calls each way`);
console.log(`bare JSON-RPC round trip:   ${median(stdio.baseUs).toFixed(0)} µs/call`);
console.log(
  `stdio plugin via registry:  ${median(stdio.candUs).toFixed(0)} µs/call; ratio ${
    median(stdio.ratios).toFixed(2)
  }× the bare round trip (median of pairs, interquartile ${spread(stdio.ratios)}; target ≥ 0.5×)`,
);
console.log(
  `mcp plugin via registry:    ${median(mcp.candUs).toFixed(0)} µs/call; ratio ${
    median(mcp.ratios).toFixed(2)
  }× the bare stdio round trip (interquartile ${spread(mcp.ratios)})`,
);
