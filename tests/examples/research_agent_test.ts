// examples/research_agent as a user runs it: `toka run` in its folder, as a real subprocess,
// against a fake OpenAI-compatible server that counts requests. The README's commands run as
// written (the endpoint and key swapped for the fake's).
import assert from "node:assert/strict";
import { join } from "node:path";
import { eventsIn, toka, TokaProcess, waitForEvent } from "../cli/_process.ts";
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
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
