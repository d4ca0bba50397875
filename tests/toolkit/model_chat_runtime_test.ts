// model.chat wired by createRuntime({ model }) and called by an agent: the call is recorded in
// the log, and the API key (read from the environment) is in no event and no log line, even
// when the endpoint echoes it back in an error.
import assert from "node:assert/strict";
import { reset } from "@logtape/logtape";
import { createRuntime, defineAgent, openVault } from "../../mod.ts";
import { FakeModelServer, textCompletion } from "./fake_model_server.ts";
import { recordLogs, until } from "../runtime/_helpers.ts";

const KEY = "sk-runtime-test-9f8e7d6c5b4a39281706";
const KEY_ENV = `TOKA_TEST_MODEL_KEY_${crypto.randomUUID().replaceAll("-", "_")}`;

Deno.test("model.chat in a runtime", async (t) => {
  await using server = new FakeModelServer();
  Deno.env.set(KEY_ENV, KEY);
  const records = await recordLogs();
  try {
    await using vault = await openVault(":memory:");
    await using runtime = await createRuntime({
      vault,
      model: { baseUrl: server.baseUrl, model: "fake-model", apiKeyEnv: KEY_ENV },
      retry: { attempts: 1 },
    });
    const replies: unknown[] = [];
    runtime.register(defineAgent({
      name: "asker",
      subscribe: ["question.asked"],
      permissions: ["tool:model.chat:invoke"],
      async handle(event, ctx) {
        const reply = await ctx.tools.call("model.chat", {
          messages: [{ role: "user", content: String(event.payload) }],
        }) as { message: { content: string } };
        replies.push(reply.message.content);
        await ctx.emit({ kind: "answer.given", payload: reply.message.content });
      },
    }));
    await runtime.start();
    const failures = () => Array.fromAsync(vault.read({ kinds: ["agent.failed"] }));

    await t.step("an agent's call is sent with the key and recorded", async () => {
      server.queue.push({ completion: textCompletion("42") });
      const question = await runtime.emit({ kind: "question.asked", payload: "Meaning?" });
      await until(() => replies.length === 1);
      assert.equal(replies[0], "42");
      assert.equal(server.requests[0].authorization, `Bearer ${KEY}`);
      const events = await Array.fromAsync(vault.read({ stream: "toolkit" }));
      const kinds = events.map((e) => `${e.kind}:${(e.payload as { tool: string }).tool}`);
      assert.deepEqual(kinds, ["tool.invoked:model.chat", "tool.completed:model.chat"]);
      assert.ok(events.every((e) => e.parents.includes(question.id)));
    });

    await t.step("the key is in no event and no log line, even when echoed", async () => {
      server.queue.push({
        status: 401,
        body: JSON.stringify({ error: { message: `Incorrect API key provided: ${KEY}` } }),
        headers: { "content-type": "application/json" },
      });
      await runtime.emit({ kind: "question.asked", payload: "Again?" });
      for (let waited = 0; (await failures()).length === 0; waited += 5) {
        assert.ok(waited < 60_000, "the agent gave up on the event");
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      const all = await Array.fromAsync(vault.read({}));
      const text = JSON.stringify(all);
      assert.match(text, /answered 401: Incorrect API key provided: <key>/);
      assert.ok(!text.includes("9f8e7d6c5b4a"), "no event holds the key");
      const logged = records.map((r) =>
        r.message.map(String).join("") + JSON.stringify(r.properties)
      )
        .join("\n");
      assert.match(logged, /answered 401: Incorrect API key provided: <key>/);
      assert.ok(!logged.includes("9f8e7d6c5b4a"), "no log line holds the key");
    });
  } finally {
    Deno.env.delete(KEY_ENV);
    await reset();
  }
});

Deno.test("createRuntime refuses bad model options with one line and opens nothing", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const db = `${dir}/vault/toka.kv`;
    for (
      const [model, pattern] of [
        ["gpt-4o-mini", /^Invalid model: expected the options of model\.chat/],
        [{ model: "" }, /^Invalid model "": expected a model name/],
        [{ model: "m", baseUrl: "localhost:11434" }, /^Invalid baseUrl "localhost:11434"/],
      ] as const
    ) {
      await assert.rejects(
        // deno-lint-ignore no-explicit-any
        () => createRuntime({ db, model: model as any }),
        (error: Error) => {
          assert.match(error.message, pattern);
          assert.ok(!error.message.includes("\n"));
          return true;
        },
      );
    }
    assert.deepEqual(await Array.fromAsync(Deno.readDir(dir)), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
