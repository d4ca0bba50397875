/**
 * An `http` plugin: a JSON-RPC 2.0 endpoint answering `tools/list` and `tools/call` by POST.
 * `deno run --allow-net units_http.ts` serves it on http://127.0.0.1:8787/rpc; the test serves
 * `handler` on a free port. Manifest entry:
 * `"units": { "transport": { "type": "http", "url": "http://127.0.0.1:8787/rpc" } }`.
 *
 * @module
 */

const FACTORS: Record<string, number> = { m: 1, km: 1000, mi: 1609.344, ft: 0.3048 };

const tools = [{
  name: "convert",
  description: "Converts a length between m, km, mi and ft",
  version: "1.0.0",
  inputSchema: {
    type: "object",
    properties: {
      value: { type: "number" },
      from: { enum: Object.keys(FACTORS) },
      to: { enum: Object.keys(FACTORS) },
    },
    required: ["value", "from", "to"],
    additionalProperties: false,
  },
  outputSchema: {
    type: "object",
    properties: { value: { type: "number" }, unit: { type: "string" } },
    required: ["value", "unit"],
  },
  annotations: { readOnlyHint: true, idempotentHint: true },
}];

function answer(request: { method?: string; params?: { name?: string; arguments?: never } }) {
  if (request.method === "tools/list") return { result: { tools } };
  if (request.method === "tools/call" && request.params?.name === "convert") {
    const { value, from, to } = request.params.arguments! as {
      value: number;
      from: string;
      to: string;
    };
    const converted = value * FACTORS[from] / FACTORS[to];
    return { result: { value: Math.round(converted * 1e6) / 1e6, unit: to } };
  }
  return { error: { code: -32601, message: "Method not found" } };
}

/** Serves one JSON-RPC request. */
export async function handler(request: Request): Promise<Response> {
  if (request.method !== "POST") return new Response("Use POST", { status: 405 });
  let message: { id?: unknown; method?: string };
  try {
    message = await request.json();
  } catch {
    const error = { code: -32700, message: "Parse error" };
    return Response.json({ jsonrpc: "2.0", id: null, error });
  }
  return Response.json({ jsonrpc: "2.0", id: message.id ?? null, ...answer(message) });
}

if (import.meta.main) {
  Deno.serve({ hostname: "127.0.0.1", port: 8787 }, handler);
}
