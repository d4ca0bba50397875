// model.chat against a fake OpenAI-compatible server on 127.0.0.1 that the test starts and
// that counts requests. Backoff waits go through an injected sleep that records them.
import assert from "node:assert/strict";
import {
  createModelChatTool,
  type ModelChatOptions,
  type ToolEvent,
  ToolInputError,
  ToolRegistry,
} from "../../toolkit/mod.ts";
import { FakeModelServer, textCompletion, toolCallCompletion } from "./fake_model_server.ts";

const KEY = "sk-test-0123456789abcdefSECRET";

/** The message of a failed call, checked to be one line. */
async function failure(call: Promise<unknown>): Promise<string> {
  const error = await call.then(() => undefined, (e: unknown) => e);
  assert.ok(error instanceof Error, "the call failed");
  assert.ok(!error.message.includes("\n"), `one line: ${error.message}`);
  return error.message;
}

function setup(server: FakeModelServer, options: Partial<ModelChatOptions> = {}) {
  const events: ToolEvent[] = [];
  const sleeps: number[] = [];
  const tool = createModelChatTool({
    baseUrl: server.baseUrl,
    model: "fake-model",
    env: (name) => name === "OPENAI_API_KEY" ? KEY : undefined,
    sleep: (ms) => {
      sleeps.push(ms);
      return Promise.resolve();
    },
    ...options,
  });
  const tools = new ToolRegistry({ tools: [tool], record: (event) => void events.push(event) });
  return { tools, events, sleeps };
}

const hello = { messages: [{ role: "user", content: "Say hi" }] };

Deno.test("model.chat", async (t) => {
  await using server = new FakeModelServer();

  await t.step("sends the request and returns the reply", async () => {
    const { tools } = setup(server);
    server.queue.push({ completion: textCompletion("Hi there") });
    const before = server.count;
    const output = await tools.call("model.chat", {
      ...hello,
      temperature: 0.2,
      maxTokens: 50,
      responseFormat: { type: "json_object" },
    });
    assert.deepEqual(output, {
      id: "chatcmpl-1",
      model: "fake-model",
      message: { role: "assistant", content: "Hi there" },
      finishReason: "stop",
      usage: { promptTokens: 12, completionTokens: 3, totalTokens: 15 },
    });
    assert.equal(server.count, before + 1);
    const sent = server.requests.at(-1)!;
    assert.equal(sent.authorization, `Bearer ${KEY}`);
    assert.equal(sent.body.model, "fake-model");
    assert.deepEqual(sent.body.messages, hello.messages);
    assert.equal(sent.body.temperature, 0.2);
    assert.equal(sent.body.max_tokens, 50);
    assert.deepEqual(sent.body.response_format, { type: "json_object" });
    assert.equal(sent.body.stream, undefined);
  });

  await t.step("passes tools and returns the tool calls the model asks for", async () => {
    const { tools } = setup(server);
    server.queue.push({ completion: toolCallCompletion("fs_read", { path: "notes.txt" }) });
    const functions = [{
      type: "function",
      function: {
        name: "fs_read",
        description: "Reads a file",
        parameters: { type: "object", properties: { path: { type: "string" } } },
      },
    }];
    const output = await tools.call("model.chat", {
      ...hello,
      tools: functions,
      toolChoice: "required",
    }) as { message: Record<string, unknown>; finishReason: string };
    assert.equal(output.finishReason, "tool_calls");
    assert.deepEqual(output.message, {
      role: "assistant",
      content: null,
      tool_calls: [{
        id: "call_1",
        type: "function",
        function: { name: "fs_read", arguments: '{"path":"notes.txt"}' },
      }],
    });
    const sent = server.requests.at(-1)!.body;
    assert.deepEqual(sent.tools, functions);
    assert.equal(sent.tool_choice, "required");

    // The reply's message goes back into the conversation as it is.
    server.queue.push({ completion: textCompletion("The notes say hello") });
    const messages = [
      ...hello.messages,
      output.message,
      { role: "tool", tool_call_id: "call_1", content: "hello" },
    ];
    const next = await tools.call("model.chat", { messages }) as { message: { content: string } };
    assert.equal(next.message.content, "The notes say hello");
    assert.deepEqual(server.requests.at(-1)!.body.messages, messages);
  });

  await t.step("retries 429 and 5xx with backoff, honouring Retry-After", async () => {
    const { tools, sleeps } = setup(server);
    server.queue.push(
      { status: 429, body: '{"error":{"message":"slow down"}}', headers: { "retry-after": "2" } },
      { status: 503, body: "busy" },
      { completion: textCompletion("finally") },
    );
    const before = server.count;
    const output = await tools.call("model.chat", hello) as { message: { content: string } };
    assert.equal(output.message.content, "finally");
    assert.equal(server.count, before + 3);
    assert.deepEqual(sleeps, [2000, 1000]);
  });

  await t.step("gives up after maxRetries, with one line", async () => {
    const { tools, sleeps, events } = setup(server, { maxRetries: 1 });
    server.queue.push({ status: 500, body: "oops" }, { status: 502, body: "oops" });
    const before = server.count;
    const message = await failure(tools.call("model.chat", hello));
    assert.match(
      message,
      /^Tool "model\.chat" failed: The model endpoint "http:\/\/127\.0\.0\.1:\d+" answered 502 after 2 attempts/,
    );
    assert.equal(server.count, before + 2);
    assert.deepEqual(sleeps, [500]);
    assert.deepEqual(events.map((e) => e.kind), ["tool.invoked", "tool.failed"]);
  });

  await t.step("a Retry-After beyond maxRetryAfterMs fails at once", async () => {
    const { tools, sleeps } = setup(server);
    server.queue.push({ status: 429, body: "{}", headers: { "retry-after": "3600" } });
    const before = server.count;
    const message = await failure(tools.call("model.chat", hello));
    assert.match(message, /answered 429 and asked to retry after 3600 s/);
    assert.equal(server.count, before + 1);
    assert.deepEqual(sleeps, []);
  });

  await t.step("a 4xx is not retried and says what the server said", async () => {
    const { tools, sleeps } = setup(server);
    server.queue.push({
      status: 400,
      body: JSON.stringify({ error: { message: "Unknown model fake-mdl" } }),
      headers: { "content-type": "application/json" },
    });
    const before = server.count;
    const message = await failure(tools.call("model.chat", hello));
    assert.match(message, /answered 400: Unknown model fake-mdl$/);
    assert.equal(server.count, before + 1);
    assert.deepEqual(sleeps, []);
  });

  await t.step("a missing key is one line and sends nothing", async () => {
    const { tools, events } = setup(server, { env: () => undefined, apiKeyEnv: "MY_MODEL_KEY" });
    const before = server.count;
    const message = await failure(tools.call("model.chat", hello));
    assert.equal(
      message,
      'Tool "model.chat" failed: No API key for the model: set the environment variable "MY_MODEL_KEY"',
    );
    assert.equal(server.count, before);
    assert.deepEqual(events.map((e) => e.kind), ["tool.invoked", "tool.failed"]);
  });

  await t.step("the key never appears in an error or an event", async () => {
    const { tools, events } = setup(server);
    // A server that echoes what it was sent, as some do in their error messages.
    server.queue.push({
      status: 401,
      body: JSON.stringify({
        error: { message: `Incorrect API key provided: ${KEY}. Header was Bearer ${KEY}` },
      }),
      headers: { "content-type": "application/json" },
    });
    const message = await failure(tools.call("model.chat", hello));
    assert.match(message, /answered 401: Incorrect API key provided: <key>/);
    assert.ok(!message.includes(KEY) && !message.includes("0123456789abcdef"), message);
    assert.ok(!JSON.stringify(events).includes("0123456789abcdef"));
  });

  await t.step("a key that is no valid header value is not quoted in the error", async () => {
    // fetch's own error quotes the header value it refused ("Invalid header value: ...").
    for (const key of [`${KEY}\nwrapped`, `${KEY}\u0000`, `${KEY}\u043a\u043b`]) {
      const { tools, events } = setup(server, { env: () => key });
      const before = server.count;
      const message = await failure(tools.call("model.chat", hello));
      assert.ok(!message.includes("0123456789abcdef"), message);
      assert.ok(!JSON.stringify(events).includes("0123456789abcdef"), JSON.stringify(events));
      assert.equal(
        message,
        'Tool "model.chat" failed: The API key in "OPENAI_API_KEY" is not a valid header value: ' +
          "expected printable ASCII",
      );
      assert.equal(server.count, before);
    }
    // Whitespace around it, as a line read from a file has, is no line break in it.
    server.queue.push({ completion: textCompletion("Hi") });
    const { tools } = setup(server, { env: () => ` ${KEY}\r\n` });
    const output = await tools.call("model.chat", hello) as { message: { content: string } };
    assert.equal(output.message.content, "Hi");
  });

  await t.step("a non-JSON reply is one line", async () => {
    const { tools } = setup(server);
    server.queue.push({
      status: 200,
      body: "<html>hi</html>",
      headers: { "content-type": "text/html" },
    });
    assert.match(
      await failure(tools.call("model.chat", hello)),
      /^Tool "model\.chat" failed: The model endpoint "http:\/\/127\.0\.0\.1:\d+" sent a reply that is not a chat completion$/,
    );
    server.queue.push({
      status: 200,
      body: "{not json",
      headers: { "content-type": "application/json" },
    });
    assert.match(
      await failure(tools.call("model.chat", hello)),
      /sent a reply that is not a chat completion$/,
    );
    server.queue.push({ completion: { id: "x", choices: [] } });
    assert.match(
      await failure(tools.call("model.chat", hello)),
      /sent a reply that is not a chat completion$/,
    );
  });

  await t.step("an unreachable endpoint is one line", async () => {
    const closed = new FakeModelServer();
    const baseUrl = closed.baseUrl;
    await closed.close();
    const { tools, sleeps } = setup(server, { baseUrl });
    const message = await failure(tools.call("model.chat", hello));
    assert.match(
      message,
      /^Tool "model\.chat" failed: Cannot reach the model endpoint "http:\/\/127\.0\.0\.1:\d+"/,
    );
    assert.deepEqual(sleeps, []);
  });

  await t.step("a request that takes longer than timeoutMs fails with one line", async () => {
    const release = Promise.withResolvers<void>();
    const slow = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async () => {
      await release.promise;
      return Response.json(textCompletion("late"));
    });
    try {
      const { tools } = setup(server, {
        baseUrl: `http://127.0.0.1:${slow.addr.port}/v1`,
        timeoutMs: 100,
        maxRetries: 0,
      });
      assert.match(
        await failure(tools.call("model.chat", hello)),
        /^Tool "model\.chat" failed: The model endpoint "http:\/\/127\.0\.0\.1:\d+" did not answer within 100 ms$/,
      );
    } finally {
      release.resolve();
      await slow.shutdown();
    }
  });

  await t.step("bad input is refused before anything is sent", async () => {
    const { tools } = setup(server);
    const before = server.count;
    for (
      const input of [
        { messages: [] },
        { messages: [{ role: "wizard", content: "x" }] },
        { ...hello, temperature: 3 },
        { ...hello, maxTokens: 0 },
        { ...hello, tools: [{ type: "function", function: { name: "has space" } }] },
        { ...hello, model: "other" },
      ]
    ) {
      const error = await tools.call("model.chat", input).catch((e: unknown) => e);
      assert.ok(error instanceof ToolInputError, JSON.stringify(input));
    }
    assert.equal(server.count, before);
  });

  await t.step("the prompt is recorded as a digest unless recordPrompt is true", async () => {
    const secretPrompt = { messages: [{ role: "user", content: "my private question" }] };
    const plain = setup(server);
    await plain.tools.call("model.chat", secretPrompt);
    const invoked = plain.events.find((e) => e.kind === "tool.invoked")!;
    assert.match(invoked.payload.inputDigest!, /^sha256:[0-9a-f]{64}$/);
    assert.ok(!JSON.stringify(plain.events).includes("my private question"));

    const recorded = setup(server, { recordPrompt: true });
    await recorded.tools.call("model.chat", secretPrompt);
    const withPrompt = recorded.events.find((e) => e.kind === "tool.invoked")!;
    assert.deepEqual(withPrompt.payload.input, secretPrompt);
    assert.equal(withPrompt.payload.inputDigest, invoked.payload.inputDigest);
  });
});

Deno.test("createModelChatTool refuses bad options with one line", async (t) => {
  const cases: [Partial<ModelChatOptions>, RegExp][] = [
    [{ model: "" }, /^Invalid model "": expected a model name, e.g\. "gpt-4o-mini"$/],
    [
      { model: "m", baseUrl: "ftp://example.com/v1" },
      /^Invalid baseUrl "ftp:\/\/example\.com\/v1"/,
    ],
    [{ model: "m", baseUrl: "not a url" }, /^Invalid baseUrl "not a url": not a URL$/],
    [
      { model: "m", baseUrl: "https://user:pw@example.com/v1" },
      /^Invalid baseUrl: credentials in the URL are not allowed, use apiKeyEnv$/,
    ],
    [{ model: "m", apiKeyEnv: "1BAD" }, /^Invalid apiKeyEnv "1BAD": expected a variable name$/],
    [{ model: "m", timeoutMs: 0 }, /^Invalid timeoutMs 0/],
    [{ model: "m", maxRetries: 11 }, /^Invalid maxRetries 11/],
  ];
  for (const [options, pattern] of cases) {
    await t.step(JSON.stringify(options), () => {
      assert.throws(
        () => createModelChatTool(options as ModelChatOptions),
        (error: Error) => {
          assert.ok(error instanceof TypeError || error instanceof RangeError);
          assert.ok(!error.message.includes("\n"));
          assert.match(error.message, pattern);
          assert.ok(!error.message.includes("pw@"));
          return true;
        },
      );
    });
  }
});
