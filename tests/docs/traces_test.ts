// The README's Traces section: with exactly the two environment variables it shows (the
// endpoint pointed at a receiver run here), `toka emit` and `toka run` export one trace in
// Deno's default protocol (OTLP/HTTP protobuf), the handling and its tool call included.
import assert from "node:assert/strict";
import { join } from "node:path";
import { example, section } from "./_readme.ts";
import { CONFIG } from "../cli/_process.ts";
import { toka, TokaProcess, until, waitForEvent } from "../cli/_process.ts";
import { OtlpReceiver } from "../cli/_otlp_receiver.ts";

const AGENTS = `import { defineAgent, defineTool } from "@toka/runtime";
export const shout = defineTool({
  name: "shout", description: "Upper-cases a text", version: "1.0.0",
  inputSchema: { type: "object" }, execute: () => ({ text: "HI" }),
});
export const worker = defineAgent({
  name: "worker", subscribe: ["job.created"], permissions: ["tool:shout:invoke"],
  async handle(event, ctx) {
    await ctx.tools.call("shout", {});
    await ctx.emit({ kind: "job.done" });
  },
});
`;

/** The `export NAME=value` lines of a shell block, comments dropped. */
function exports(block: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of block.split("\n")) {
    const match = /^export ([A-Z_]+)=(\S+)/.exec(line.trim());
    if (match) env[match[1]] = match[2];
  }
  return env;
}

function holds(body: Uint8Array, bytes: Uint8Array): boolean {
  outer: for (let i = 0; i + bytes.length <= body.length; i++) {
    for (let j = 0; j < bytes.length; j++) if (body[i + j] !== bytes[j]) continue outer;
    return true;
  }
  return false;
}

Deno.test("README: Traces", async (t) => {
  const block = example("## Traces", "sh");
  const env = exports(block);

  await t.step("two variables, the same on the Traces page", () => {
    assert.deepEqual(Object.keys(env), ["OTEL_DENO", "OTEL_EXPORTER_OTLP_ENDPOINT"]);
    assert.equal(env.OTEL_DENO, "true");
    assert.ok(section("## With Deno: two environment variables").includes(block));
  });

  await t.step("with them, toka emit and toka run export one trace", async () => {
    const dir = await Deno.makeTempDir();
    const receiver = new OtlpReceiver();
    const traced = { ...env, OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint };
    const db = join(dir, "v.kv");
    await Deno.writeTextFile(join(dir, "agents.ts"), AGENTS);
    const host = new TokaProcess(["--db", db, "run", "agents.ts"], { cwd: dir, env: traced });
    try {
      await host.waitFor(/Hosting "worker" on/);
      const emitted = await toka(["--db", db, "--json", "emit", "job.created"], {
        cwd: dir,
        env: traced,
      });
      assert.equal(emitted.code, 0, emitted.err);
      const job = JSON.parse(emitted.out);
      await waitForEvent(db, (e) => e.kind === "job.done", "job.done");
      host.kill("SIGTERM");
      assert.equal((await host.exit()).code, 0, host.err);

      const traceId = /^00-([0-9a-f]{32})-/.exec(job.meta.traceparent)![1];
      const id = Uint8Array.from(traceId.match(/../g)!, (hex) => parseInt(hex, 16));
      const text = new TextEncoder();
      const exported = (name: string) =>
        receiver.protobuf.some((body) => holds(body, id) && holds(body, text.encode(name)));
      const names = [
        "emit job.created",
        "handle job.created",
        "execute_tool shout",
        "emit job.done",
      ];
      await until(() => names.every(exported), () => `spans of trace ${traceId}: ${names}`);
    } finally {
      await host.close();
      await receiver.close();
      await Deno.remove(dir, { recursive: true });
    }
  });
});

Deno.test("docs/traces.md: log records written through console land in the handling's span", async () => {
  const dir = await Deno.makeTempDir();
  const receiver = new OtlpReceiver();
  try {
    const code = example("## Log records in the trace").replaceAll(
      '"@toka/runtime/runtime"',
      JSON.stringify(new URL("../../runtime/mod.ts", import.meta.url).href),
    );
    await Deno.writeTextFile(join(dir, "main.ts"), code);
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--quiet", "--config", CONFIG, "main.ts"],
      cwd: dir,
      env: { ...receiver.env, NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
    await until(
      () =>
        receiver.spans.some((span) => span.name === "handle job.created") &&
        receiver.logs.some((log) => log.body.includes("Working on")),
      () => `the handle span and the log record; logs: ${JSON.stringify(receiver.logs)}`,
    );
    const handle = receiver.spans.find((span) => span.name === "handle job.created")!;
    const line = receiver.logs.find((log) => log.body.includes("Working on"))!;
    assert.equal(line.traceId, handle.traceId);
    assert.equal(line.spanId, handle.spanId);
  } finally {
    await receiver.close();
    await Deno.remove(dir, { recursive: true });
  }
});
