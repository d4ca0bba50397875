// examples/research_agent as a user runs it: `toka run` in its folder, as a real subprocess,
// against a fake OpenAI-compatible server that counts requests. The README's commands run as
// written (the endpoint and key swapped for the fake's); a process killed after the first model
// reply leaves a second one that finishes with one more model request, not two.
import assert from "node:assert/strict";
import { join } from "node:path";
import { eventsIn, toka, TokaProcess, until, waitForEvent } from "../cli/_process.ts";
import {
  type FakeAnswer,
  FakeModelServer,
  type FakeRequest,
  textCompletion,
  toolCallCompletion,
} from "../toolkit/fake_model_server.ts";

const EXAMPLE = new URL("../../examples/research_agent/", import.meta.url).pathname;
const KEY = "sk-example-test-77aa66bb55cc44dd";

// A model that reads before it answers: it asks for the URL in the question (http_fetch) or
// for notes.txt (fs_read), then answers with what the tool returned.
function model(request: FakeRequest): FakeAnswer {
  const messages = request.body.messages as { role: string; content: string }[];
  const last = messages.at(-1)!;
  if (last.role === "tool") {
    return { completion: textCompletion(`From the tool: ${last.content}`, "chatcmpl-answer") };
  }
  const url = /https?:\/\/\S+/.exec(last.content)?.[0];
  return {
    completion: url === undefined
      ? toolCallCompletion("fs_read", { path: "notes.txt" })
      : toolCallCompletion("http_fetch", { url }),
  };
}

/** The words of a shell command line, with '...' quoting. */
function words(line: string): string[] {
  return [...line.matchAll(/'([^']*)'|(\S+)/g)].map((m) => m[1] ?? m[2]);
}

Deno.test("the research agent", async (t) => {
  const dir = await Deno.makeTempDir();
  await using server = new FakeModelServer();
  server.responder = model;
  // The example's folder is used as it is; only the vault goes elsewhere.
  const base = { TOKA_DB: join(dir, "toka.kv"), TOKA_AGENT_LEASE_SECS: "1" };
  try {
    await t.step("the README's commands, pointed at an endpoint, give an answer", async () => {
      const readme = await Deno.readTextFile(join(EXAMPLE, "README.md"));
      const block = readme.split("```sh\n")[1].split("```")[0];
      const lines = block.split("\n").map((line) => line.replace(/\s+#.*$/, "").trim())
        .filter((line) => line !== "");
      const env: Record<string, string> = { ...base };
      const commands: string[][] = [];
      for (const line of lines) {
        const exported = /^export (\w+)=(\S+)$/.exec(line);
        if (exported) env[exported[1]] = exported[2];
        else if (!line.startsWith("cd ")) commands.push(words(line));
      }
      assert.deepEqual(Object.keys(env).sort(), [
        "OPENAI_API_KEY",
        "TOKA_AGENT_LEASE_SECS",
        "TOKA_DB",
        "TOKA_MODEL",
        "TOKA_MODEL_BASE_URL",
      ]);
      assert.equal(lines[0], "cd examples/research_agent");
      // The fake stands in for the real endpoint, with a key of its own.
      env.TOKA_MODEL_BASE_URL = server.baseUrl;
      env.OPENAI_API_KEY = KEY;
      const [run, emit, list] = commands;
      assert.deepEqual(run, ["toka", "run", "&"]);
      const host = new TokaProcess(["run"], { cwd: EXAMPLE, env });
      try {
        await host.waitFor(/Hosting "researcher" on/);
        const emitted = await toka(emit.slice(1), { cwd: EXAMPLE, env });
        assert.equal(emitted.code, 0, emitted.err);
        const answer = await waitForEvent(
          base.TOKA_DB,
          (e) => e.kind === "answer.given",
          "an answer",
        );
        assert.deepEqual(Object.keys(answer.payload as object), ["answer", "question", "turns"]);
        assert.match(
          (answer.payload as { answer: string }).answer,
          /^From the tool: .*Toka journals every model call/,
        );
        const listed = await toka(list.slice(1), { cwd: EXAMPLE, env });
        assert.equal(listed.code, 0, listed.err);
        assert.match(
          listed.out,
          /agent\/researcher#1 {2}answer\.given {2}\{"answer":"From the tool: /,
        );
        assert.deepEqual(server.requests.map((r) => r.authorization), [
          `Bearer ${KEY}`,
          `Bearer ${KEY}`,
        ]);
        assert.equal(server.requests[0].body.model, "gpt-4o-mini");
        const tools = (server.requests[0].body.tools as { function: { name: string } }[])
          .map((tool) => tool.function.name).sort();
        assert.deepEqual(tools, ["fs_read", "http_fetch"]);
      } finally {
        host.kill("SIGINT");
        assert.equal((await host.exit()).code, 0, host.err);
      }
      const all = JSON.stringify(await eventsIn(base.TOKA_DB));
      assert.ok(!all.includes("77aa66bb55cc44dd"), "the key is not in the log");
    });

    await t.step(
      "killed after the first model reply, the next process asks once more",
      async () => {
        const db = join(dir, "crash.kv");
        // The page the model asks for: the first request is held until the test says.
        let pageRequests = 0;
        const release = Promise.withResolvers<void>();
        const page = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async () => {
          if (++pageRequests === 1) await release.promise;
          return new Response("Durable steps make agents crash-proof.");
        });
        const env = {
          ...base,
          TOKA_DB: db,
          TOKA_MODEL_BASE_URL: server.baseUrl,
          OPENAI_API_KEY: KEY,
          TOKA_HTTP_ALLOW_PRIVATE: "127.0.0.1",
        };
        const before = server.count;
        const url = `http://127.0.0.1:${page.addr.port}/steps`;
        const first = new TokaProcess(["run"], { cwd: EXAMPLE, env });
        let second: TokaProcess | undefined;
        try {
          await first.waitFor(/Hosting "researcher" on/);
          const question = JSON.stringify({ question: `What does ${url} say?` });
          const emitted = await toka(["emit", "question.asked", "--payload", question], {
            cwd: EXAMPLE,
            env,
          });
          assert.equal(emitted.code, 0, emitted.err);
          // The model replied (asking for the page) and the agent is fetching it: kill it there.
          await until(() => pageRequests === 1, "the agent fetching the page");
          assert.equal(server.count - before, 1);
          first.kill("SIGKILL");
          await first.exit();
          release.resolve();

          second = new TokaProcess(["run"], { cwd: EXAMPLE, env });
          const answer = await waitForEvent(db, (e) => e.kind === "answer.given", "an answer");
          assert.match(
            (answer.payload as { answer: string }).answer,
            /^From the tool: .*Durable steps make agents crash-proof\./,
          );
          // The first reply came from the journal; only the second model call was sent again.
          assert.equal(server.count - before, 2);
          const sent = server.requests.slice(before).map((r) =>
            (r.body.messages as unknown[]).length
          );
          assert.deepEqual(sent, [2, 4], "the question, then the question with the page");
          assert.equal(pageRequests, 2, "the unfinished fetch ran again");
          second.kill("SIGINT");
          assert.equal((await second.exit()).code, 0, second.err);
        } finally {
          release.resolve();
          await first.close();
          await second?.close();
          await page.shutdown();
        }
      },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
