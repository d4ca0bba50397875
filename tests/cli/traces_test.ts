// Traces across processes (issue 23): `toka emit` in one process and `toka run` in another,
// both with Deno's built-in OpenTelemetry exporting to an OTLP/HTTP JSON receiver run here,
// make one trace: emit → handle → execute_tool (a tool, and model.chat with its chat span) →
// emit, with the right parents. Without
// OTEL_DENO nothing is exported and no event carries a traceparent.
import assert from "node:assert/strict";
import { join } from "node:path";
import { eventsIn, toka, TokaProcess, until, waitForEvent } from "./_process.ts";
import { KIND, OtlpReceiver, type ReceivedSpan } from "./_otlp_receiver.ts";
import { FakeModelServer } from "../toolkit/fake_model_server.ts";

const SECRET = "sk-live-not-in-any-span-42";

const AGENTS = `import { defineAgent, defineTool } from "@toka/runtime";
export const shout = defineTool({
  name: "shout",
  description: "Upper-cases a text",
  version: "1.0.0",
  inputSchema: { type: "object", properties: { text: { type: "string" } } },
  execute: (input) => ({ text: input.text.toUpperCase() }),
});
export const worker = defineAgent({
  name: "worker",
  subscribe: ["job.created"],
  permissions: ["tool:shout:invoke", "tool:model.chat:invoke"],
  async handle(event, ctx) {
    await ctx.tools.call("shout", { text: event.payload.text });
    await ctx.tools.call("model.chat", { messages: [{ role: "user", content: event.payload.text }] });
    await ctx.emit({ kind: "job.done" });
  },
});
`;

function only(spans: ReceivedSpan[], name: string): ReceivedSpan {
  const found = spans.filter((span) => span.name === name);
  assert.equal(found.length, 1, `${found.length} spans named "${name}" in ${names(spans)}`);
  return found[0];
}

function names(spans: ReceivedSpan[]): string {
  return JSON.stringify(spans.map((span) => span.name));
}

// Hosts the worker, emits one job from another process, waits for its job.done, and stops
// the host (which exports what it still holds on the way out).
async function emitAndHandle(dir: string, env: Record<string, string>): Promise<string> {
  const db = join(dir, "v.kv");
  const host = new TokaProcess(["--db", db, "run", "agents.ts"], { cwd: dir, env });
  try {
    await host.waitFor(/Hosting "worker" on/);
    const payload = JSON.stringify({ text: SECRET });
    const emitted = await toka(["--db", db, "emit", "job.created", "--payload", payload], {
      cwd: dir,
      env,
    });
    assert.equal(emitted.code, 0, emitted.err);
    const id = emitted.out.trim();
    await waitForEvent(db, (e) => e.kind === "job.done" && e.parents.includes(id), "job.done");
    host.kill("SIGTERM");
    assert.equal((await host.exit()).code, 0, host.err);
    return db;
  } finally {
    await host.close();
  }
}

Deno.test("traces across processes", async (t) => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(join(dir, "agents.ts"), AGENTS);
  const receiver = new OtlpReceiver();
  await using model = new FakeModelServer();
  // model.chat, registered by toka run from these settings, against a fake endpoint.
  const chat = {
    TOKA_MODEL: "fake-model",
    TOKA_MODEL_BASE_URL: model.baseUrl,
    OPENAI_API_KEY: "sk-traces-test-not-in-a-span",
  };
  try {
    await t.step("with OTEL_DENO=true: one trace from toka emit to the tool call", async () => {
      const db = await emitAndHandle(dir, { ...receiver.env, ...chat });
      const want = [
        "emit job.created",
        "handle job.created",
        "execute_tool shout",
        "chat fake-model",
      ];
      await until(
        () => want.every((name) => receiver.spans.some((span) => span.name === name)),
        () => `the spans ${want.join(", ")}; received ${names(receiver.spans)}`,
      );
      assert.deepEqual(receiver.problems, []);
      const spans = receiver.spans.filter((span) => span.scope === "toka");
      const emit = only(spans, "emit job.created");
      const handle = only(spans, "handle job.created");
      const tool = only(spans, "execute_tool shout");
      const done = only(spans, "emit job.done");
      const calling = only(spans, "execute_tool model.chat");
      const chatting = only(spans, "chat fake-model");

      assert.equal(emit.kind, KIND.producer);
      assert.equal(emit.parentSpanId, "");
      assert.equal(handle.kind, KIND.consumer);
      assert.equal(handle.parentSpanId, emit.spanId);
      assert.equal(tool.parentSpanId, handle.spanId);
      assert.equal(done.parentSpanId, handle.spanId);
      assert.equal(calling.parentSpanId, handle.spanId);
      assert.equal(chatting.parentSpanId, calling.spanId);
      assert.equal(chatting.attributes["gen_ai.request.model"], "fake-model");
      for (const span of [handle, tool, done, calling, chatting]) {
        assert.equal(span.traceId, emit.traceId, span.name);
      }

      const events = await eventsIn(db);
      const job = events.find((e) => e.kind === "job.created")!;
      assert.equal(job.meta.traceparent, `00-${emit.traceId}-${emit.spanId}-01`);
      assert.equal(emit.attributes["toka.event.id"], job.id);
      assert.equal(handle.attributes["toka.event.position"], job.position);
      assert.equal(handle.attributes["toka.agent"], "worker");
      assert.equal(tool.attributes["gen_ai.operation.name"], "execute_tool");
      assert.equal(tool.attributes["gen_ai.tool.name"], "shout");
      assert.ok(!JSON.stringify(receiver.spans).includes(SECRET));
      assert.ok(!JSON.stringify(receiver.spans).includes(chat.OPENAI_API_KEY));
    });

    await t.step("without OTEL_DENO: no span exported, no traceparent written", async () => {
      const before = receiver.spans.length;
      const quiet = await Deno.makeTempDir({ dir });
      await Deno.copyFile(join(dir, "agents.ts"), join(quiet, "agents.ts"));
      const env = { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint, ...chat };
      const db = await emitAndHandle(quiet, env);
      const events = await eventsIn(db);
      assert.ok(events.some((e) => e.kind === "job.done"));
      for (const event of events) assert.equal(event.meta.traceparent, undefined, event.kind);
      assert.equal(receiver.spans.length, before, names(receiver.spans.slice(before)));
    });
  } finally {
    await receiver.close();
    await Deno.remove(dir, { recursive: true });
  }
});
