// What the runtime logs, seen through a recording LogTape sink.
import assert from "node:assert/strict";
import { reset } from "@logtape/logtape";
import { createRuntime, defineAgent } from "../../mod.ts";
import { recordLogs, until } from "./_helpers.ts";

Deno.test("the runtime logs its lifecycle at info and its work at debug, never a token", async () => {
  const records = await recordLogs();
  try {
    const secret = "c2VjcmV0LXRoYXQtaXMtbmV2ZXItbG9nZ2VkLTAxMjM0NTY3ODk";
    const runtime = await createRuntime({ db: ":memory:", auth: { initialSecret: secret } });
    const tokens: string[] = [];
    let done = false;
    runtime.register(defineAgent({
      name: "greeter",
      subscribe: ["user.joined"],
      permissions: ["tool:echo:invoke"],
      async handle(event, ctx) {
        tokens.push(ctx.token);
        await ctx.tools.call("echo", { text: `Hello ${event.payload}` });
        done = true;
      },
    }));
    await runtime.start();
    await runtime.emit({ kind: "user.joined", payload: "Ada" });
    await until(() => done);
    const { kid } = await runtime.rotateSecrets();
    await runtime.close();

    const lines = records.map((r) => ({
      level: r.level,
      category: r.category.join("."),
      text: r.message.map((part) => String(part))
        .join(""),
      properties: JSON.stringify(r.properties),
    }));
    const has = (level: string, pattern: RegExp) =>
      assert.ok(
        lines.some((l) => l.level === level && pattern.test(l.text)),
        `no ${level} line matching ${pattern} in:\n${lines.map((l) => l.text).join("\n")}`,
      );
    has("info", /^Runtime started with 1 agent\(s\)$/);
    has("info", /^Agent greeter started after position none$/);
    has("debug", /^Agent greeter took its lease for 10 s$/);
    has("debug", /^Agent greeter has a new token, due for renewal at \d{4}-/);
    has("debug", /^Agent greeter calls tool echo$/);
    has("debug", /^Tool echo returned to agent greeter$/);
    has("trace", /^Agent greeter handled event [0-9A-Z]{26} \(user\.joined\)$/);
    has("debug", /^Checkpoint of agent greeter moved to position \d{16}$/);
    has("info", new RegExp(`^Auth secrets rotated: new key id ${kid}, 1 agent tokens renewed$`));
    has("info", /^Agent greeter stopped at position \d{16}, 1 events handled$/);
    has("debug", /^Agent greeter released its lease$/);
    has("info", /^Runtime stopped$/);
    assert.ok(tokens.length > 0 && tokens[0].length > 20);
    for (const line of lines) {
      for (const token of tokens) {
        assert.ok(!line.text.includes(token) && !line.properties.includes(token), line.text);
      }
      assert.ok(!line.text.includes(secret) && !line.properties.includes(secret), line.text);
    }
  } finally {
    await reset();
  }
});
