// Registry overhead per call, as a ratio against calling the tool directly.
import { CapabilityDeniedError, echoTool, ToolRegistry } from "../toolkit/mod.ts";

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

// A refused call costs the token check whatever the input: a denial with a
// 1,000,000-key input as a ratio to a denial with a one-key input.
const guarded = new ToolRegistry({
  tools: [echoTool],
  authority: {
    enforcing: true,
    issue: () => Promise.reject(new Error("unused")),
    verify: () => Promise.reject(new Error("unused")),
    authorize: (_token, permission) => Promise.reject(new CapabilityDeniedError(permission)),
  },
  record: () => {},
});
const huge: Record<string, number> = {};
for (let i = 0; i < 1_000_000; i++) huge[`k${i}`] = i;

Deno.bench("denied call, one-key input", { group: "denied", baseline: true }, async () => {
  await guarded.call("echo", { text: "hello" }).catch(() => {});
});

Deno.bench("denied call, 1,000,000-key input", { group: "denied" }, async () => {
  await guarded.call("echo", huge).catch(() => {});
});
