// A stdio plugin that attacks its host, for the limits tests and bench/plugin_output.ts.
// Started with "redos", its input schema holds backtracking patterns (`^(a+)+$`); with
// "lookahead", a pattern RE2 cannot run. `tools/call` of "act" with { do: "answer" } answers
// { pid }; { do: "line", bytes } writes one line of `bytes` bytes ("é"s) without its newline,
// then waits; { do: "notify", bytes } writes about `bytes` bytes of valid notifications, then
// answers; { do: "hang" } never answers; { do: "exit" } exits with code 3.
const mode = Deno.args[0] ?? "ok";
const encoder = new TextEncoder();
const write = (message: unknown) =>
  writeAll(encoder.encode(JSON.stringify({ jsonrpc: "2.0", ...message as object }) + "\n"));

async function writeAll(bytes: Uint8Array): Promise<void> {
  for (let at = 0; at < bytes.length;) at += await Deno.stdout.write(bytes.subarray(at));
}

const doSchema: Record<string, unknown> = mode === "redos"
  ? { type: "string", pattern: "^(a+)+$|^answer$" }
  : mode === "lookahead"
  ? { type: "string", pattern: "^(?=a)answer$" }
  : { type: "string" };
const tools = [{
  name: "act",
  description: "Does what it is told",
  inputSchema: {
    type: "object",
    properties: { do: doSchema, bytes: { type: "integer" } },
    ...(mode === "redos" && { patternProperties: { "^(b+)+$": { type: "integer" } } }),
    required: ["do"],
  },
}];

let buffer = "";
for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
  buffer += chunk;
  let end: number;
  while ((end = buffer.indexOf("\n")) >= 0) {
    const request = JSON.parse(buffer.slice(0, end));
    buffer = buffer.slice(end + 1);
    if (request.method === "tools/list") {
      await write({ id: request.id, result: { tools } });
      continue;
    }
    const { do: action, bytes = 0 } = request.params.arguments;
    if (action === "answer") await write({ id: request.id, result: { pid: Deno.pid } });
    if (action === "exit") Deno.exit(3);
    if (action === "line") {
      // "é", two bytes a character: the cap counts bytes, not characters.
      const block = encoder.encode("é".repeat(1 << 19));
      for (let sent = 0; sent < bytes; sent += block.length) {
        await writeAll(block.subarray(0, Math.min(block.length, bytes - sent)));
      }
    }
    if (action === "notify") {
      const note = encoder.encode(
        JSON.stringify({
          jsonrpc: "2.0",
          method: "notifications/progress",
          params: { progressToken: 1, message: "x".repeat(900) },
        }) + "\n",
      );
      const block = new Uint8Array(note.length * 64);
      for (let i = 0; i < 64; i++) block.set(note, i * note.length);
      for (let sent = 0; sent < bytes; sent += block.length) await writeAll(block);
      await write({ id: request.id, result: { pid: Deno.pid } });
    }
  }
}
