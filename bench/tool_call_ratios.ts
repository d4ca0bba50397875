/**
 * `call("echo")` with validation, authorisation and event recording on a KV
 * vault, as a ratio to the vault's own append throughput, in one process.
 *
 *   deno run -A bench/tool_call_ratios.ts [--rounds R] [--samples S]
 *
 * One batch is 1,000 operations from 50 concurrent callers (as agents and MCP
 * clients call), each on its own temp KV file:
 * - baseline: `vault.append(stream, [one event])`;
 * - CLI/MCP registry: `call("echo")` on the registry `toka tool run` and
 *   `toka mcp serve` build (cli/_tool_registry.ts): a capability token checked by
 *   `KvTokenAuthority` on the vault's KV, input and output validated with ajv,
 *   the timeout armed, `tool.invoked` and `tool.completed` appended to the vault
 *   (echo is read-only: both in one append, once it has run);
 * - runtime registry: `runtime.tools.call("echo")` of `createRuntime()`, whose
 *   two events go through the event bus in one append (`bus.emitBatch`).
 * Baseline and candidate alternate round by round (the order flips each round)
 * and the medians are compared. Target: the CLI/MCP registry ≥ 0.5×.
 */
import { parseArgs } from "node:util";
import { createRuntime } from "../mod.ts";
import { KvTokenAuthority } from "../auth/mod.ts";
import { openVault } from "../vault/mod.ts";
import { buildCliTools, storeRecorders } from "../cli/_tool_registry.ts";
import { BATCH, interleaved, median, range, type Rounds } from "./_interleaved.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { rounds: { type: "string" }, samples: { type: "string" } },
});
const rounds = Number(values.rounds ?? 7);
const samples = Number(values.samples ?? 10);
if (!(rounds >= 1 && samples >= 1)) throw new TypeError("--rounds and --samples expect N ≥ 1");

const CALLERS = 50;
const dir = await Deno.makeTempDir();
const baselineVault = await openVault(`${dir}/baseline.kv`);
const cliVault = await openVault(`${dir}/cli.kv`);
const authority = await KvTokenAuthority.open(cliVault.kv!, { masterKey: undefined });
const permissions = ["tool:echo:invoke"];
const cliToken = await authority.issue({ sub: "bench", permissions });
const cli = await buildCliTools({}, { authority, ...storeRecorders(cliVault, "bench") });
const runtimeVault = await openVault(`${dir}/runtime.kv`);
const runtimeAuth = await KvTokenAuthority.open(runtimeVault.kv!, { masterKey: undefined });
const runtime = await createRuntime({ vault: runtimeVault, auth: runtimeAuth });
const runtimeToken = await runtimeAuth.issue({ sub: "bench", permissions });

// BATCH operations from CALLERS concurrent callers.
function batch(operation: (caller: number) => Promise<unknown>): () => Promise<void> {
  return async () => {
    await Promise.all(Array.from({ length: CALLERS }, async (_, caller) => {
      for (let i = 0; i < BATCH / CALLERS; i++) await operation(caller);
    }));
  };
}

const append = batch((caller) =>
  baselineVault.append(`bench-${caller}`, [{ kind: "bench.appended", payload: { text: "hello" } }])
);
const input = { text: "hello" };
const cliCall = batch(() => cli.registry.call("echo", input, { token: cliToken }));
const runtimeCall = batch(() => runtime.tools.call("echo", input, { token: runtimeToken }));

function report(name: string, result: Rounds): void {
  const ratio = median(result.ratios);
  const perSecond = (ns: number) => Math.round(1e9 / ns).toLocaleString("en");
  console.log(
    `${name.padEnd(22)} ${ratio.toFixed(2)}× (range ${range(result.ratios, 2)}): ` +
      `${perSecond(median(result.candidateNs))} calls/s vs ${
        perSecond(median(result.baselineNs))
      } appends/s`,
  );
}

try {
  console.log(
    `rounds: ${rounds} × ${samples * BATCH} operations each way, ${CALLERS} concurrent callers`,
  );
  report("CLI/MCP registry", await interleaved(append, cliCall, rounds, samples));
  report("createRuntime registry", await interleaved(append, runtimeCall, rounds, samples));
  const recorded = await Array.fromAsync(cliVault.read({ stream: "toolkit", limit: 2 }));
  if (recorded.map((e) => e.kind).join() !== "tool.invoked,tool.completed") {
    throw new Error("The CLI registry did not record its calls");
  }
} finally {
  await cli.close();
  await runtime.close();
  await runtimeVault.close();
  await baselineVault.close();
  await cliVault.close();
  await Deno.remove(dir, { recursive: true });
}
