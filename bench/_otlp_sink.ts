// A local OTLP/HTTP receiver for bench/traces_ratios.ts, in its own process as a collector
// would be: it parses each JSON export, counts the spans, and prints the count when its
// standard input closes. Its port is the first line it prints.
let spans = 0;
const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
  const body = await req.text();
  if (new URL(req.url).pathname === "/v1/traces") {
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
console.log(spans);
await server.shutdown();
