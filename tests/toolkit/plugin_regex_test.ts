// A plugin's schema patterns cannot freeze the host: `pattern` and `patternProperties` run on a
// linear-time engine (RE2), and a pattern it cannot run is refused when the plugin is loaded.
// On a backtracking engine each call below takes minutes (2^34 steps).
import assert from "node:assert/strict";
import {
  defineTool,
  loadPlugins,
  type PluginSpec,
  ToolInputError,
  ToolRegistry,
} from "../../toolkit/mod.ts";

const child = new URL("_plugin_hostile_child.ts", import.meta.url).pathname;
const spec = (mode: string): PluginSpec => ({
  name: "evil",
  transport: { type: "stdio", command: Deno.execPath(), args: ["run", "--quiet", child, mode] },
});
const attack = "a".repeat(34) + "!";

Deno.test("plugin schema patterns run in linear time", async (t) => {
  const registry = new ToolRegistry();
  await using _host = await loadPlugins(registry, [spec("redos")]);

  await t.step('"^(a+)+$" against 34 "a" and a "!": refused as input, at once', async () => {
    await assert.rejects(registry.call("evil.act", { do: attack }), (error: Error) => {
      assert.ok(error instanceof ToolInputError);
      assert.match(error.message, /\/do must match pattern "\^\(a\+\)\+\$\|\^answer\$"/);
      return true;
    });
  });

  await t.step("input the pattern matches reaches the plugin", async () => {
    const answer = await registry.call("evil.act", { do: "answer" }) as { pid: number };
    assert.ok(answer.pid > 0);
  });

  await t.step("patternProperties: a hostile key is tested by RE2 too", async () => {
    const key = "b".repeat(34) + "!";
    const answer = await registry.call("evil.act", { do: "answer", [key]: "x" });
    assert.ok((answer as { pid: number }).pid > 0); // the key does not match: not checked
    await assert.rejects(registry.call("evil.act", { do: "answer", bbb: "x" }), {
      name: "ToolInputError",
      message: /\/bbb must be integer/,
    });
  });
});

Deno.test("a pattern RE2 cannot run is refused in one line", async (t) => {
  await t.step("a plugin declaring a lookahead is not loaded", async () => {
    const registry = new ToolRegistry();
    await assert.rejects(loadPlugins(registry, [spec("lookahead")]), {
      name: "PluginLoadError",
      message: 'Cannot load plugin "evil": Invalid input schema for tool "evil.act": ' +
        'unsupported pattern "^(?=a)answer$" (invalid or unsupported Perl syntax: `(?=`): ' +
        "patterns run in linear time, without lookarounds or backreferences",
    });
    assert.deepEqual(registry.list(), []);
  });

  await t.step("a backreference, in a tool defined in code", () => {
    assert.throws(
      () =>
        defineTool({
          name: "twice",
          description: "Twice",
          version: "1.0.0",
          inputSchema: {
            type: "object",
            properties: { s: { type: "string", pattern: "^(a)\\1$" } },
          },
          execute: () => null,
        }),
      {
        name: "TypeError",
        message: 'Invalid input schema for tool "twice": unsupported pattern "^(a)\\\\1$" ' +
          "(invalid escape sequence: `\\1`): " +
          "patterns run in linear time, without lookarounds or backreferences",
      },
    );
  });

  await t.step("a named backreference, which RE2 would read as letters", () => {
    const registry = new ToolRegistry();
    const tool = (pattern: string) => ({
      name: "named",
      description: "Named",
      version: "1.0.0",
      inputSchema: { type: "object", properties: { s: { type: "string", pattern } } },
      execute: () => "ok",
    });
    assert.throws(() => registry.register(tool("^(?<n>a)\\k<n>$")), {
      name: "TypeError",
      message:
        /^Invalid input schema for tool "named": unsupported pattern "\^\(\?<n>a\)\\\\k<n>\$" \(invalid named backreference/,
    });
    // An escaped backslash before "k" is a backslash and a letter: allowed.
    registry.register(tool("^\\\\k<n>$"));
  });

  await t.step("a property name the pattern would backtrack on is not run at load", () => {
    // Ajv's strict mode tests each named property against each patternProperties pattern
    // while compiling, with the backtracking engine.
    const registry = new ToolRegistry();
    registry.register({
      name: "keys",
      description: "Keys",
      version: "1.0.0",
      inputSchema: {
        type: "object",
        properties: { [attack]: { type: "string" } },
        patternProperties: { "^(a+)+$": { type: "string" } },
      },
      execute: () => "ok",
    });
    assert.equal(registry.list().length, 1);
  });

  await t.step("JavaScript escapes still work: \\u0041, \\d, \\/", async () => {
    const registry = new ToolRegistry();
    registry.register({
      name: "escapes",
      description: "Escapes",
      version: "1.0.0",
      inputSchema: {
        type: "object",
        properties: { s: { type: "string", pattern: "^\\u0041\\d+\\/$" } },
      },
      execute: () => "ok",
    });
    assert.equal(await registry.call("escapes", { s: "A12/" }), "ok");
    await assert.rejects(registry.call("escapes", { s: "B12/" }), { name: "ToolInputError" });
  });
});
