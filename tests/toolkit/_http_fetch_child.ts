// A child process for tests/toolkit/http_fetch_pinning_test.ts: makes one
// http.fetch call in a process whose environment the test chose (proxy
// variables, NODE_EXTRA_CA_CERTS) and prints `{ status, body }` or `{ error }`.
// Argument: JSON `{ url, allow, allowPrivate, answers }`, where `answers` maps a
// host name to the addresses the fake resolver gives for it.
import { createHttpFetchTool, ToolRegistry } from "../../toolkit/mod.ts";

const { url, allow, allowPrivate, answers } = JSON.parse(Deno.args[0]) as {
  url: string;
  allow?: string[];
  allowPrivate?: string[];
  answers?: Record<string, string[]>;
};
const tools = new ToolRegistry({
  tools: [createHttpFetchTool({
    allow,
    allowPrivate,
    resolve: (host) => Promise.resolve(answers?.[host] ?? []),
  })],
});
try {
  const out = await tools.call("http.fetch", { url }) as { status: number; body: string };
  console.log(JSON.stringify({ status: out.status, body: out.body }));
} catch (error) {
  console.log(JSON.stringify({ error: (error as Error).message }));
}
