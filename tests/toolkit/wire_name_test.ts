// Tool names on a wire (MCP, model APIs): one mapping, and no two tools with the same wire name.
import assert from "node:assert/strict";
import {
  loadPlugins,
  PluginLoadError,
  type Tool,
  ToolRegistry,
  wireName,
} from "../../toolkit/mod.ts";

// What the Claude and OpenAI APIs accept as a tool name.
const MODEL_API_NAME = /^[a-zA-Z0-9_-]{1,64}$/;

function tool(name: string, output: unknown = name): Tool {
  return {
    name,
    description: "A test tool",
    version: "1.0.0",
    inputSchema: { type: "object" },
    execute: () => output,
  };
}

Deno.test("wireName", async (t) => {
  await t.step("dots become underscores; the rest is kept", () => {
    assert.equal(wireName("fs.read"), "fs_read");
    assert.equal(wireName("weather.forecast"), "weather_forecast");
    assert.equal(wireName("a.b-c.d_e"), "a_b-c_d_e");
    assert.equal(wireName("echo"), "echo");
  });

  await t.step("the longest tool name still fits behind a client's prefix", () => {
    const longest = `${"a".repeat(25)}.${"b".repeat(26)}`;
    assert.equal(new ToolRegistry().register(tool(longest)).name, longest);
    const wire = wireName(longest);
    assert.equal(wire.length, 52);
    assert.match(wire, MODEL_API_NAME);
    assert.match(`mcp__toka__${wire}`, MODEL_API_NAME);
  });

  await t.step("what is not a tool name is refused in one line", () => {
    for (const name of ["", "Fs.Read", "fs..read", "fs.", "1fs", "fs read", "a".repeat(53)]) {
      assert.throws(() => wireName(name), (error: Error) => {
        assert.ok(error instanceof TypeError);
        assert.ok(error.message.startsWith(`Invalid tool name ${JSON.stringify(name)}:`));
        assert.ok(!error.message.includes("\n"));
        return true;
      });
    }
    assert.throws(() => wireName(42 as unknown as string), /^TypeError: Invalid tool name 42:/);
  });
});

Deno.test("ToolRegistry: wire names", async (t) => {
  await t.step("a tool whose wire name another has is refused, naming both", async () => {
    const tools = new ToolRegistry({ tools: [tool("a.b_c", "first")] });
    assert.throws(() => tools.register(tool("a_b.c")), {
      name: "TypeError",
      message: 'Cannot register tool "a_b.c": tool "a.b_c" has the same wire name "a_b_c"',
    });
    assert.throws(() => tools.register(tool("a_b_c")), /tool "a\.b_c" has the same wire name/);
    assert.deepEqual(tools.list().map((info) => info.name), ["a.b_c"]);
    assert.equal(await tools.call("a.b_c", {}), "first");
    assert.throws(() => new ToolRegistry({ tools: [tool("x_y"), tool("x.y")] }), TypeError);
  });

  await t.step("fromWireName leads back to the tool, and only by its wire name", () => {
    const tools = new ToolRegistry({ tools: [tool("fs.read"), tool("echo")] });
    assert.equal(tools.fromWireName("fs_read"), "fs.read");
    assert.equal(tools.fromWireName("echo"), "echo");
    assert.equal(tools.fromWireName("fs.read"), undefined);
    assert.equal(tools.fromWireName("nope"), undefined);
  });

  await t.step("unregistering frees the wire name", () => {
    const tools = new ToolRegistry({ tools: [tool("a.b_c")] });
    assert.equal(tools.unregister("a.b_c"), true);
    assert.equal(tools.fromWireName("a_b_c"), undefined);
    assert.equal(tools.register(tool("a_b.c")).name, "a_b.c");
    assert.equal(tools.fromWireName("a_b_c"), "a_b.c");
  });
});

Deno.test("loadPlugins: a plugin tool whose wire name is taken is refused", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(
      `${dir}/chill.ts`,
      `export const chill = {
        name: "chill", description: "Chills", version: "1.0.0",
        inputSchema: { type: "object" }, execute: () => ({}),
      };`,
    );
    const climate = new URL("../../examples/plugins/weather_tools.ts", import.meta.url).pathname;
    const registry = new ToolRegistry();
    await assert.rejects(
      loadPlugins(registry, [
        { name: "climate", transport: { type: "module", module: climate } },
        { name: "climate_wind", transport: { type: "module", module: `${dir}/chill.ts` } },
      ]),
      (error: Error) => {
        assert.ok(error instanceof PluginLoadError);
        assert.equal(
          error.message,
          'Cannot load plugin "climate_wind": Cannot register tool "climate_wind.chill": tool "climate.wind_chill" has the same wire name "climate_wind_chill"',
        );
        return true;
      },
    );
    assert.deepEqual(registry.list(), [], "nothing stays registered");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
