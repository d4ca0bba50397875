// model.chat is journaled like every tool an agent calls: when the event is handled again
// (here a retry after the handler failed past the call), the recorded reply is served back and
// the endpoint is not asked again. The reply is in the log; the prompt only as a digest.
import assert from "node:assert/strict";
import { createRuntime, defineAgent, openVault } from "../../mod.ts";
import { FakeModelServer, textCompletion } from "./fake_model_server.ts";
import { until } from "../runtime/_helpers.ts";

Deno.test("model.chat is served from the journal when its event is handled again", async () => {
  await using server = new FakeModelServer();
  await using vault = await openVault(":memory:");
  await using runtime = await createRuntime({
    vault,
    model: { baseUrl: server.baseUrl, model: "fake-model", env: () => "sk-journal-test" },
    retry: { attempts: 2 },
  });
  const replies: unknown[] = [];
  runtime.register(defineAgent({
    name: "asker",
    subscribe: ["question.asked"],
    permissions: ["tool:model.chat:invoke"],
    async handle(_event, ctx) {
      const reply = await ctx.tools.call("model.chat", {
        messages: [{ role: "user", content: "a private prompt" }],
      });
      replies.push(reply);
      // The first attempt dies after the model answered, as a crashing process would.
      if (replies.length === 1) throw new Error("failed after the model call");
      await ctx.emit({ kind: "answer.given", payload: reply as never });
    },
  }));
  await runtime.start();
  server.queue.push({ completion: textCompletion("Recorded once") });
  await runtime.emit({ kind: "question.asked", payload: "?" });
  await until(() => replies.length === 2, 30_000);

  assert.equal(server.count, 1, "the endpoint was asked once");
  assert.deepEqual(replies[1], replies[0]);
  assert.equal((replies[1] as { message: { content: string } }).message.content, "Recorded once");
  const completed = await Array.fromAsync(vault.read({ kinds: ["tool.completed"] }));
  assert.equal(completed.length, 1);
  assert.deepEqual((completed[0].payload as { output: unknown }).output, replies[0]);
  const log = JSON.stringify(await Array.fromAsync(vault.read({})));
  assert.ok(!log.includes("a private prompt"), "the prompt is recorded as a digest");
  assert.ok(!log.includes("sk-journal-test"), "the key is not in the log");
});
