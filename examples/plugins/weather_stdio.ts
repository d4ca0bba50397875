/**
 * A `stdio` plugin: a process that speaks JSON-RPC 2.0 on stdin and stdout, one message per
 * line, answering `tools/list` and `tools/call`. Run by Toka as
 * `{ "type": "stdio", "command": "deno", "args": ["run", "weather_stdio.ts"] }`; needs no
 * permission.
 *
 * @module
 */

const tools = [{
  name: "forecast",
  description: "A (made-up, deterministic) forecast for a city",
  version: "1.0.0",
  inputSchema: {
    type: "object",
    properties: { city: { type: "string", minLength: 1 }, days: { type: "integer", minimum: 1 } },
    required: ["city"],
    additionalProperties: false,
  },
  outputSchema: {
    type: "object",
    properties: {
      city: { type: "string" },
      days: { type: "array", items: { type: "object" } },
    },
    required: ["city", "days"],
  },
  annotations: { readOnlyHint: true },
}];

const SKIES = ["sunny", "cloudy", "rain", "snow"];

function forecast({ city, days = 1 }: { city: string; days?: number }) {
  // The same city always gets the same weather, so tests can check it.
  let seed = 0;
  for (const char of city) seed = (seed * 31 + char.codePointAt(0)!) % 1000;
  return {
    city,
    days: Array.from({ length: days }, (_, day) => ({
      day,
      sky: SKIES[(seed + day) % SKIES.length],
      tempC: (seed + 7 * day) % 35 - 5,
    })),
  };
}

function handle(request: { id: number; method: string; params?: Record<string, unknown> }) {
  switch (request.method) {
    case "tools/list":
      return { result: { tools } };
    case "tools/call": {
      const { name, arguments: input } = request.params as { name: string; arguments: never };
      if (name !== "forecast") return { error: { code: -32602, message: `No tool "${name}"` } };
      return { result: forecast(input) };
    }
    default:
      return { error: { code: -32601, message: `Method not found: ${request.method}` } };
  }
}

const encoder = new TextEncoder();
let buffer = "";
for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
  buffer += chunk;
  let end: number;
  while ((end = buffer.indexOf("\n")) >= 0) {
    const line = buffer.slice(0, end);
    buffer = buffer.slice(end + 1);
    if (line.trim() === "") continue;
    const request = JSON.parse(line);
    const answer = { jsonrpc: "2.0", id: request.id, ...handle(request) };
    await Deno.stdout.write(encoder.encode(JSON.stringify(answer) + "\n"));
  }
}
