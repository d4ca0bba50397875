// A stdio plugin that misbehaves on request, for the failure tests. `tools/call` of "act" with
// { do: "answer" | "exit" | "garbage" | "hang" | "lie" | "error" } answers { pid, n }, exits
// mid-call, prints a line that is not JSON, never answers, answers output that breaks the
// declared outputSchema, or answers a JSON-RPC error. Started with "bad-schema", tools/list
// declares an input schema Ajv refuses; with "hang-list", tools/list never answers; with
// "garbage-list", it prints garbage at once.
const mode = Deno.args[0] ?? "ok";
const encoder = new TextEncoder();
const write = (message: unknown) =>
  Deno.stdout.write(
    encoder.encode(JSON.stringify({ jsonrpc: "2.0", ...message as object }) + "\n"),
  );

const tools = [{
  name: "act",
  description: "Does what it is told",
  inputSchema: mode === "bad-schema" ? { type: "object", properties: { do: { type: "strng" } } } : {
    type: "object",
    properties: { do: { enum: ["answer", "exit", "garbage", "hang", "lie", "error"] } },
    required: ["do"],
  },
  outputSchema: {
    type: "object",
    properties: { pid: { type: "integer" }, n: { type: "integer" } },
    required: ["pid", "n"],
  },
}];

let calls = 0;
let buffer = "";
for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
  buffer += chunk;
  let end: number;
  while ((end = buffer.indexOf("\n")) >= 0) {
    const request = JSON.parse(buffer.slice(0, end));
    buffer = buffer.slice(end + 1);
    if (request.method === "tools/list") {
      if (mode === "hang-list") continue;
      if (mode === "garbage-list") {
        await Deno.stdout.write(encoder.encode("Starting up...\n"));
        continue;
      }
      await write({ id: request.id, result: { tools } });
      continue;
    }
    const action = request.params.arguments.do;
    calls++;
    if (action === "exit") {
      await Deno.stderr.write(encoder.encode("about to exit\n"));
      Deno.exit(3);
    }
    if (action === "garbage") await Deno.stdout.write(encoder.encode("<html>oops</html>\n"));
    if (action === "lie") {
      await write({ id: request.id, result: { pid: "not a number", n: calls } });
    }
    if (action === "error") {
      await write({ id: request.id, error: { code: -32000, message: "Out of coffee" } });
    }
    if (action === "answer") await write({ id: request.id, result: { pid: Deno.pid, n: calls } });
  }
}
