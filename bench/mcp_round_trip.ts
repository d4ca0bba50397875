/**
 * An MCP tool call through `toka mcp serve` as a ratio to the same call to an
 * MCP server made with the SDK alone, both real child processes driven by the
 * SDK's client over stdio, in one run.
 *
 *   deno run -A bench/mcp_round_trip.ts [--rounds R] [--samples S]
 *
 * One batch is 1,000 `callTool("echo")` round trips, one at a time, then 20
 * in flight (an agent calling tools in parallel):
 * - baseline: bench/_bare_mcp_server.ts, the SDK's stdio server with one echo
 *   tool that returns its arguments;
 * - toka: `deno run -A cli.ts --db <temp vault> mcp serve` with a token that
 *   grants echo: token check, input and output validation, timeout, and
 *   `tool.invoked` + `tool.completed` appended to the vault (one append).
 * The two alternate round by round (the order flips each round) and the
 * medians are compared. The stdio plugin bench (bench/plugin_stdio.ts) measures
 * Toka's plugin client against a bare JSON-RPC round trip; this is the server side.
 */
import { parseArgs } from "node:util";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { KvTokenAuthority } from "../auth/mod.ts";
import { openVault } from "../vault/mod.ts";
import { BATCH, interleaved, median, range } from "./_interleaved.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { rounds: { type: "string" }, samples: { type: "string" } },
});
const rounds = Number(values.rounds ?? 7);
const samples = Number(values.samples ?? 2);
if (!(rounds >= 1 && samples >= 1)) throw new TypeError("--rounds and --samples expect N ≥ 1");

const dir = await Deno.makeTempDir();
const db = `${dir}/v.kv`;
let token: string;
{
  await using vault = await openVault(db);
  const auth = await KvTokenAuthority.open(vault.kv!, { masterKey: undefined });
  token = await auth.issue({ sub: "bench", permissions: ["tool:echo:invoke"] });
}

async function connect(args: string[], env: Record<string, string> = {}): Promise<Client> {
  const client = new Client({ name: "bench", version: "1.0.0" });
  const transport = new StdioClientTransport({
    command: Deno.execPath(),
    args: ["run", "-A", ...args],
    env,
  });
  await client.connect(transport, { timeout: 120_000 });
  return client;
}

const here = (path: string) => new URL(path, import.meta.url).pathname;
const bare = await connect([here("./_bare_mcp_server.ts")]);
const toka = await connect([here("../cli.ts"), "--db", db, "mcp", "serve"], { TOKA_TOKEN: token });

// BATCH calls, `inFlight` at a time.
function batch(client: Client, inFlight: number): () => Promise<void> {
  return async () => {
    await Promise.all(Array.from({ length: inFlight }, async () => {
      for (let i = 0; i < BATCH / inFlight; i++) {
        const result = await client.callTool({ name: "echo", arguments: { text: "hello" } });
        if (result.isError) throw new Error(JSON.stringify(result.content));
      }
    }));
  };
}

try {
  console.log(`rounds: ${rounds} × ${samples * BATCH} calls each way`);
  for (const inFlight of [1, 20]) {
    const result = await interleaved(
      batch(bare, inFlight),
      batch(toka, inFlight),
      rounds,
      samples,
    );
    const us = (ns: number) => (ns / 1000).toFixed(0);
    console.log(
      `${inFlight === 1 ? "one call at a time" : `${inFlight} calls in flight`}: toka mcp serve ${
        us(median(result.candidateNs))
      } µs per call, bare SDK server ${us(median(result.baselineNs))} µs: ${
        median(result.ratios).toFixed(2)
      }× (range ${range(result.ratios, 2)})`,
    );
  }
} finally {
  await bare.close();
  await toka.close();
  await Deno.remove(dir, { recursive: true });
}
