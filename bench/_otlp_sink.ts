// A local OTLP/HTTP receiver for bench/traces_ratios.ts, in its own process as a collector
// would be: it counts the spans of each JSON export (protobuf ones only by their bytes) and
// prints what it got when its standard input closes. Its port is the first line it prints.
let spans = 0;
let bytes = 0;
const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
  const body = await req.text();
  if (new URL(req.url).pathname !== "/v1/traces") return Response.json({});
  bytes += body.length;
  if (req.headers.get("content-type")?.includes("json")) {
    const request = JSON.parse(body) as {
      resourceSpans?: { scopeSpans?: { spans?: unknown[] }[] }[];
    };
    for (const resource of request.resourceSpans ?? []) {
      for (const scope of resource.scopeSpans ?? []) spans += scope.spans?.length ?? 0;
    }
  }
  return Response.json({});
});
console.log(server.addr.port);
for await (const _ of Deno.stdin.readable);
console.log(`${spans} spans in ${(bytes / 1e6).toFixed(1)} MB`);
await server.shutdown();
