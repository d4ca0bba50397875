// model.chat in the CLI: registered by toka.json's tools.model or TOKA_MODEL (with
// TOKA_MODEL_BASE_URL), called by `toka tool run` against a fake server, bad settings refused.
import assert from "node:assert/strict";
import { join } from "node:path";
import { openVault } from "../../vault/mod.ts";
import { issueArgs, runToka as toka } from "./_fakes.ts";
import { FakeModelServer, textCompletion } from "../toolkit/fake_model_server.ts";

const KEY = "sk-cli-test-5a4b3c2d1e0f99887766";

Deno.test("toka and model.chat", async (t) => {
  const dir = await Deno.makeTempDir();
  await using server = new FakeModelServer();
  const db = join(dir, "v.kv");
  const write = (value: unknown) =>
    Deno.writeTextFile(join(dir, "toka.json"), JSON.stringify(value));
  try {
    const issued = await toka(issueArgs(db, "tool:model.chat:invoke"));
    assert.equal(issued.code, 0);
    const env = {
      TOKA_TOKEN: issued.out.trim(),
      TOKA_MODEL: "fake-model",
      TOKA_MODEL_BASE_URL: server.baseUrl,
      OPENAI_API_KEY: KEY,
    };
    const input = JSON.stringify({ messages: [{ role: "user", content: "Hi" }] });

    await t.step(
      "TOKA_MODEL and TOKA_MODEL_BASE_URL register it; a call prints the reply",
      async () => {
        server.queue.push({ completion: textCompletion("Hello from the fake") });
        const run = await toka(["--db", db, "tool", "run", "model.chat", "--input", input], {
          env,
          cwd: dir,
        });
        assert.equal(run.code, 0, run.errLines.join("\n"));
        assert.equal(JSON.parse(run.out).message.content, "Hello from the fake");
        assert.equal(server.requests.at(-1)!.authorization, `Bearer ${KEY}`);
        assert.equal(server.requests.at(-1)!.body.model, "fake-model");
        await using vault = await openVault(db, { create: false });
        const events = await Array.fromAsync(vault.read({ stream: "toolkit" }));
        assert.deepEqual(events.map((e) => e.kind), ["tool.invoked", "tool.completed"]);
        assert.ok(!JSON.stringify(events).includes("5a4b3c2d1e0f"));
      },
    );

    await t.step("a missing key is one line, exit 1, nothing sent", async () => {
      const before = server.count;
      const { OPENAI_API_KEY: _, ...withoutKey } = env;
      const run = await toka(["--db", db, "tool", "run", "model.chat", "--input", input], {
        env: withoutKey,
        cwd: dir,
      });
      assert.equal(run.code, 1);
      assert.deepEqual(run.errLines, [
        'error: Tool "model.chat" failed: No API key for the model: set the environment variable "OPENAI_API_KEY"',
      ]);
      assert.equal(server.count, before);
    });

    await t.step("toka.json's tools.model, with its own key variable", async () => {
      await write({
        tools: {
          model: { model: "file-model", baseUrl: server.baseUrl, apiKeyEnv: "MY_MODEL_KEY" },
        },
      });
      const config = ["--config", join(dir, "toka.json")];
      const list = await toka([...config, "--json", "tool", "list"], { cwd: dir });
      assert.equal(list.code, 0, list.errLines.join("\n"));
      assert.ok((JSON.parse(list.out) as { name: string }[]).some((t) => t.name === "model.chat"));
      server.queue.push({ completion: textCompletion("from the file's model") });
      const run = await toka(
        [...config, "--db", db, "tool", "run", "model.chat", "--input", input],
        {
          env: { TOKA_TOKEN: env.TOKA_TOKEN, MY_MODEL_KEY: KEY },
          cwd: dir,
        },
      );
      assert.equal(run.code, 0, run.errLines.join("\n"));
      assert.equal(server.requests.at(-1)!.body.model, "file-model");
      // The variable beats the file.
      server.queue.push({ completion: textCompletion("env wins") });
      const beaten = await toka([
        ...config,
        "--db",
        db,
        "tool",
        "run",
        "model.chat",
        "--input",
        input,
      ], {
        env: { TOKA_TOKEN: env.TOKA_TOKEN, MY_MODEL_KEY: KEY, TOKA_MODEL: "env-model" },
        cwd: dir,
      });
      assert.equal(beaten.code, 0, beaten.errLines.join("\n"));
      assert.equal(server.requests.at(-1)!.body.model, "env-model");

      // Found, not named nor trusted: the key would go where a cloned file says. Refused.
      const before = server.count;
      const found = await toka(["--db", db, "tool", "run", "model.chat", "--input", input], {
        env: {
          TOKA_TOKEN: env.TOKA_TOKEN,
          MY_MODEL_KEY: KEY,
          TOKA_TRUST_FILE: join(dir, "t.json"),
        },
        cwd: dir,
      });
      assert.equal(found.code, 1);
      assert.deepEqual(found.errLines, [
        `error: Untrusted config "${join(dir, "toka.json")}" sends the model's API key ` +
        `(MY_MODEL_KEY) to "${new URL(server.baseUrl).origin}": the key goes only where ` +
        `TOKA_MODEL_BASE_URL or a trusted config says; check the file, then run "toka trust"`,
      ]);
      assert.equal(server.count, before);
      await Deno.remove(join(dir, "toka.json"));
    });

    await t.step("without a model, the error says how to register it", async () => {
      const { TOKA_MODEL: _, ...withoutModel } = env;
      const run = await toka(["--db", db, "tool", "run", "model.chat", "--input", input], {
        env: withoutModel,
        cwd: dir,
      });
      assert.equal(run.code, 1);
      assert.deepEqual(run.errLines, [
        'error: No tool named "model.chat" is registered: it is registered when ' +
        "toka.json's tools.model.model (or TOKA_MODEL) names a model",
      ]);
    });

    await t.step("bad settings: exit 2, one line, nothing sent nor stored", async () => {
      const config = join(dir, "toka.json");
      const before = server.count;
      const files: [unknown, string][] = [
        [
          { model: "m", baseUrl: "ftp://example.com/v1" },
          `error: Invalid field "tools.model.baseUrl" in config "${config}": expected an http or https URL`,
        ],
        [
          { model: "m", baseUrl: "https://me:pw@example.com/v1" },
          `error: Invalid field "tools.model.baseUrl" in config "${config}": credentials in the URL are not allowed, name the key's variable instead`,
        ],
        [
          { baseUrl: "http://localhost:11434/v1" },
          `error: Missing field "tools.model.model" in config "${config}": name the model (or set TOKA_MODEL)`,
        ],
        [
          { model: "m", apiKey: KEY },
          `error: Unknown field "tools.model.apiKey" in config "${config}"`,
        ],
        [
          { model: "m", apiKeyEnv: "MY KEY" },
          `error: Invalid field "tools.model.apiKeyEnv" in config "${config}": must match pattern "^[A-Za-z_][A-Za-z0-9_]*$"`,
        ],
      ];
      const other = join(dir, "never.kv");
      for (const [model, line] of files) {
        await write({ db: other, tools: { model } });
        const run = await toka(["tool", "run", "model.chat", "--input", input], {
          env: { TOKA_TOKEN: env.TOKA_TOKEN, OPENAI_API_KEY: KEY },
          cwd: dir,
        });
        assert.equal(run.code, 2, line);
        assert.deepEqual(run.errLines, [line]);
        assert.ok(!run.errLines.join("").includes("5a4b3c2d1e0f"));
      }
      await Deno.remove(config);
      for (
        const [vars, line] of [
          [
            { TOKA_MODEL_BASE_URL: "localhost:11434" },
            'error: Invalid TOKA_MODEL_BASE_URL "localhost:11434": expected an http or https URL',
          ],
          [{ TOKA_MODEL: "" }, "error: TOKA_MODEL is set but empty: unset it or give a value"],
        ] as const
      ) {
        const run = await toka(["--db", other, "tool", "run", "model.chat", "--input", input], {
          env: { ...env, ...vars },
          cwd: dir,
        });
        assert.equal(run.code, 2, line);
        assert.deepEqual(run.errLines, [line]);
      }
      assert.equal(server.count, before);
      await assert.rejects(Deno.stat(other));
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
