// model.chat's span (issue 23): `chat <model>` inside the tool call's `execute_tool model.chat`,
// with the GenAI attributes (operation, requested and answering model, token usage, finish
// reasons) and never the prompt, the reply or the API key; a refusal sets the span status.
import assert from "node:assert/strict";
import { SpanKind, SpanStatusCode } from "@opentelemetry/api";
import { createModelChatTool, ToolRegistry } from "../../toolkit/mod.ts";
import { FakeModelServer, textCompletion } from "./fake_model_server.ts";
import { installTracing, type RecordedSpan } from "../runtime/_tracing.ts";

const KEY = "sk-tracing-test-0a1b2c3d4e5f6a7b8c9d";
const PROMPT = "What is the secret plan of project Mauve?";
const REPLY = "The plan is in the vault";

function only(spans: RecordedSpan[], name: string): RecordedSpan {
  const found = spans.filter((span) => span.name === name);
  assert.equal(found.length, 1, `${found.length} spans named "${name}"`);
  return found[0];
}

Deno.test("model.chat with tracing on", async (t) => {
  await using server = new FakeModelServer();
  const tools = new ToolRegistry({
    tools: [createModelChatTool({
      model: "fake-model",
      baseUrl: server.baseUrl,
      apiKeyEnv: "FAKE_KEY",
      env: () => KEY,
      maxRetries: 0,
    })],
  });
  const tracing = installTracing();
  try {
    await t.step("chat <model> is a client span inside execute_tool, with usage", async () => {
      server.queue.push({ completion: textCompletion(REPLY) });
      await tools.call("model.chat", { messages: [{ role: "user", content: PROMPT }] });
      const tool = only(tracing.spans, "execute_tool model.chat");
      const chat = only(tracing.spans, "chat fake-model");
      assert.equal(chat.kind, SpanKind.CLIENT);
      assert.equal(chat.parentSpanId, tool.spanId);
      assert.equal(chat.traceId, tool.traceId);
      assert.equal(chat.attributes["gen_ai.operation.name"], "chat");
      assert.equal(chat.attributes["gen_ai.request.model"], "fake-model");
      assert.equal(chat.attributes["gen_ai.response.model"], "fake-model");
      assert.equal(chat.attributes["gen_ai.response.id"], "chatcmpl-1");
      assert.deepEqual(chat.attributes["gen_ai.response.finish_reasons"], ["stop"]);
      assert.equal(chat.attributes["gen_ai.usage.input_tokens"], 12);
      assert.equal(chat.attributes["gen_ai.usage.output_tokens"], 3);
      assert.equal(chat.attributes["server.address"], "127.0.0.1");
      assert.ok(chat.ended);
      assert.notEqual(chat.status.code, SpanStatusCode.ERROR);
    });

    await t.step("a refusal sets the status; no prompt, reply or key in any span", async () => {
      server.queue.push({
        status: 401,
        body: JSON.stringify({ error: { message: `Incorrect API key provided: ${KEY}` } }),
        headers: { "content-type": "application/json" },
      });
      await assert.rejects(
        tools.call("model.chat", { messages: [{ role: "user", content: PROMPT }] }),
      );
      const chats = tracing.named("chat fake-model");
      assert.equal(chats.length, 2);
      assert.equal(chats[1].status.code, SpanStatusCode.ERROR);
      assert.equal(chats[1].attributes["error.type"], "model_refused");
      const text = JSON.stringify(tracing.spans);
      for (const secret of [KEY, "0a1b2c3d4e5f", PROMPT, "Mauve", REPLY]) {
        assert.ok(!text.includes(secret), `a span holds ${JSON.stringify(secret)}`);
      }
    });
  } finally {
    tracing.uninstall();
  }
});
