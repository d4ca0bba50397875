// Registry overhead per call, as a ratio against calling the tool directly.
import { echoTool, ToolRegistry } from "../toolkit/mod.ts";

const tools = new ToolRegistry({ tools: [echoTool], record: () => {} });
const ctx = {
  signal: new AbortController().signal,
  claims: { sub: "bench", vault: "bench", permissions: ["*"], iat: 0, exp: 1, jti: "bench" },
  callId: "bench",
};

Deno.bench("echo: direct execute", { group: "call", baseline: true }, async () => {
  await echoTool.execute({ text: "hello" }, ctx);
});

Deno.bench("echo: ToolRegistry.call (validate, authorize, timeout, events)", {
  group: "call",
}, async () => {
  await tools.call("echo", { text: "hello" });
});
