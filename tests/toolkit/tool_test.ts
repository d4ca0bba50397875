import assert from "node:assert/strict";
import { defineTool, type Tool } from "../../toolkit/mod.ts";

const base: Tool<{ text: string }, string> = {
  name: "upper",
  description: "Upper-cases a text",
  version: "1.0.0",
  inputSchema: { type: "object", properties: { text: { type: "string" } }, required: ["text"] },
  execute: (input) => input.text.toUpperCase(),
};

Deno.test("defineTool", async (t) => {
  await t.step("fills in permissions and timeout and freezes the result", () => {
    const tool = defineTool(base);
    assert.deepEqual(tool.permissions, ["tool:upper:invoke"]);
    assert.equal(tool.timeoutMs, 30_000);
    assert.ok(Object.isFrozen(tool));
    assert.equal(tool.name, "upper");
  });

  await t.step("keeps given permissions and timeout", () => {
    const tool = defineTool({ ...base, permissions: ["fs:read:*"], timeoutMs: 5 });
    assert.deepEqual(tool.permissions, ["fs:read:*"]);
    assert.equal(tool.timeoutMs, 5);
  });

  await t.step("accepts names at the edges of the pattern", () => {
    // 52 is the longest name whose default permission "tool:<name>:invoke" fits in 64 characters.
    for (const name of ["a", "a".repeat(52), "my-tool_2", "fs.read", "weather.forecast-2"]) {
      assert.equal(defineTool({ ...base, name }).name, name);
    }
  });

  await t.step("rejects bad names with a TypeError naming them", () => {
    for (
      const name of [
        "",
        "Echo",
        "1abc",
        "_x",
        "a".repeat(53),
        "has space",
        "a.",
        ".a",
        "a..b",
        "a.1b",
        "a/b",
      ]
    ) {
      assert.throws(
        () => defineTool({ ...base, name }),
        (error: unknown) =>
          error instanceof TypeError &&
          error.message.startsWith(`Invalid tool name ${JSON.stringify(name)}`) &&
          error.message.includes("1 to 52 characters"),
      );
    }
    assert.throws(() => defineTool({ ...base, name: 42 as unknown as string }), TypeError);
  });

  await t.step("a control character in a name is escaped, never printed raw", () => {
    for (const name of ["a\nb", "x\u001b[31m", "tab\there"]) {
      assert.throws(() => defineTool({ ...base, name }), (error: unknown) => {
        assert.ok(error instanceof TypeError);
        assert.ok(error.message.startsWith(`Invalid tool name ${JSON.stringify(name)}:`));
        assert.ok(![...error.message].some((c) => c < " " || c === "\x7f"), "no control character");
        return true;
      });
    }
  });

  await t.step("validates declared permissions, in one line", () => {
    for (
      const [permission, shown] of [
        ["fs read", '"fs read"'],
        ["tool", '"tool"'],
        [`fs:read:${"x".repeat(60)}`, JSON.stringify(`fs:read:${"x".repeat(60)}`)],
        ["fs:read:\n*", '"fs:read:\\n*"'],
      ]
    ) {
      assert.throws(() => defineTool({ ...base, permissions: ["fs:read:*", permission] }), {
        name: "TypeError",
        message:
          `Invalid permission ${shown} of tool "upper": expected "resource:action[:target]" of at most 64 characters`,
      });
    }
  });

  await t.step("rejects an input schema that is not type object", () => {
    for (
      const inputSchema of [
        { type: "string" },
        { properties: {} },
        [] as unknown as Record<string, unknown>,
        null as unknown as Record<string, unknown>,
      ]
    ) {
      assert.throws(
        () => defineTool({ ...base, inputSchema }),
        { name: "TypeError", message: 'The input schema of tool "upper" must have type "object"' },
      );
    }
  });

  await t.step("rejects an invalid JSON Schema, compiled with Ajv", () => {
    assert.throws(
      () =>
        defineTool({
          ...base,
          inputSchema: { type: "object", properties: { text: { type: "strin" } } },
        }),
      (error: unknown) =>
        error instanceof TypeError &&
        error.message.startsWith('Invalid input schema for tool "upper": schema is invalid'),
    );
    assert.throws(
      () => defineTool({ ...base, inputSchema: { type: "object", requird: ["text"] } }),
      /unknown keyword: "requird"/,
    );
    assert.throws(
      () => defineTool({ ...base, outputSchema: { type: "nope" } }),
      /^TypeError: Invalid output schema for tool "upper"/,
    );
  });

  await t.step("rejects a bad description, version, permissions or execute", () => {
    assert.throws(() => defineTool({ ...base, description: " " }), TypeError);
    for (const version of ["1.0", "v1.0.0", "01.0.0", ""]) {
      assert.throws(() => defineTool({ ...base, version }), {
        name: "TypeError",
        message: `Invalid version "${version}" for tool "upper": use semver, e.g. "1.0.0"`,
      });
    }
    assert.equal(
      defineTool({ ...base, version: "2.1.0-beta.1+build.5" }).version,
      "2.1.0-beta.1+build.5",
    );
    for (const permissions of [[], [""], ["ok", 3 as unknown as string]]) {
      assert.throws(() => defineTool({ ...base, permissions }), TypeError);
    }
    assert.throws(
      () => defineTool({ ...base, execute: undefined as unknown as Tool["execute"] }),
      { name: "TypeError", message: 'Tool "upper" needs an execute function' },
    );
    assert.throws(() => defineTool(null as unknown as Tool), TypeError);
  });

  await t.step("rejects timeouts that are not positive integers in range", () => {
    for (const timeoutMs of [0, -1, 1.5, Number.NaN, Infinity, 2 ** 31]) {
      assert.throws(() => defineTool({ ...base, timeoutMs }), RangeError);
    }
  });

  await t.step("keeps `this` for a tool that is a class instance", async () => {
    class Counter implements Tool<Record<string, never>, number> {
      name = "counter";
      description = "Counts calls";
      version = "1.0.0";
      inputSchema = { type: "object" };
      count = 0;
      execute(): number {
        return ++this.count;
      }
    }
    const counter = new Counter();
    const tool = defineTool(counter);
    const ctx = {
      signal: new AbortController().signal,
      claims: { sub: "x", vault: "v", permissions: [], iat: 0, exp: 1, jti: "j" },
      callId: "c",
    };
    assert.equal(await tool.execute({}, ctx), 1);
    assert.equal(counter.count, 1);
  });
});
