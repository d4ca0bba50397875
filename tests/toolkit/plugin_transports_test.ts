// One working plugin per transport, from examples/plugins/, loaded from a manifest and called
// through the registry: gated, validated and recorded like a built-in.
import assert from "node:assert/strict";
import { WebStandardStreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js";
import {
  CapabilityDeniedError,
  loadPlugins,
  parsePluginManifest,
  type ToolEvent,
  ToolInputError,
  ToolRegistry,
} from "../../toolkit/mod.ts";
import { FakeAuthority } from "./_fakes.ts";
import { handler as unitsHandler } from "../../examples/plugins/units_http.ts";
import { createServer as createNotesServer } from "../../examples/plugins/notes_mcp.ts";

const examples = new URL("../../examples/plugins/", import.meta.url);
const manifestPath = new URL("plugins.json", examples).pathname;
const deno = Deno.execPath();

function recordingRegistry(grants: Record<string, string[]> = {}) {
  const events: ToolEvent[] = [];
  const authority = Object.keys(grants).length === 0 ? undefined : new FakeAuthority(
    Object.fromEntries(
      Object.entries(grants).map(([token, permissions]) => [token, { sub: token, permissions }]),
    ),
  );
  const registry = new ToolRegistry({
    authority,
    record: (event) => void events.push(event),
  });
  return { registry, events };
}

Deno.test("module plugin: its defineTool exports, prefixed and gated", async (t) => {
  const { registry, events } = recordingRegistry({
    right: ["tool:weather.wind_chill:invoke"],
    bare: ["tool:wind_chill:invoke"],
  });
  const specs = parsePluginManifest({
    plugins: { weather: { transport: { type: "module", module: "./weather_tools.ts" } } },
  }, manifestPath);
  await using host = await loadPlugins(registry, specs);
  assert.deepEqual(host.plugins, [{
    name: "weather",
    type: "module",
    tools: ["weather.wind_chill"],
  }]);

  await t.step("listed with its schema, annotations and prefixed permission", () => {
    const info = registry.get("weather.wind_chill")!;
    assert.equal(info.version, "1.0.0");
    assert.deepEqual(info.permissions, ["tool:weather.wind_chill:invoke"]);
    assert.deepEqual(info.annotations, { readOnlyHint: true, idempotentHint: true });
    assert.equal(info.timeoutMs, 30_000);
  });

  await t.step("a call with the prefixed permission runs and is recorded", async () => {
    const out = await registry.call("weather.wind_chill", { tempC: -5, windKmh: 30 }, {
      token: "right",
    });
    assert.deepEqual(out, { feelsLikeC: -13 });
    assert.deepEqual(events.map((e) => [e.kind, e.payload.tool]), [
      ["tool.invoked", "weather.wind_chill"],
      ["tool.completed", "weather.wind_chill"],
    ]);
  });

  await t.step("the bare name's permission does not open it", async () => {
    await assert.rejects(
      registry.call("weather.wind_chill", { tempC: 1, windKmh: 1 }, { token: "bare" }),
      CapabilityDeniedError,
    );
    assert.equal(events.at(-1)?.kind, "tool.denied");
  });

  await t.step("input is validated against its schema", async () => {
    await assert.rejects(
      registry.call("weather.wind_chill", { tempC: "cold", windKmh: 1 }, { token: "right" }),
      ToolInputError,
    );
  });

  await t.step("close unregisters its tools", async () => {
    await host.close();
    assert.equal(registry.get("weather.wind_chill"), undefined);
  });
});

Deno.test("stdio plugin: a JSON-RPC child process", async (t) => {
  const { registry, events } = recordingRegistry({ ok: ["tool:weather.forecast:invoke"] });
  const specs = parsePluginManifest({
    plugins: {
      weather: {
        transport: { type: "stdio", command: deno, args: ["run", "weather_stdio.ts"] },
        timeoutMs: 20_000,
      },
    },
  }, manifestPath);
  await using host = await loadPlugins(registry, specs);
  assert.deepEqual(host.plugins[0].tools, ["weather.forecast"]);

  await t.step("its tools/list is the registry's description", () => {
    const info = registry.get("weather.forecast")!;
    assert.equal(info.description, "A (made-up, deterministic) forecast for a city");
    assert.deepEqual(info.permissions, ["tool:weather.forecast:invoke"]);
    assert.equal(info.timeoutMs, 20_000);
    assert.deepEqual(info.annotations, { readOnlyHint: true });
  });

  await t.step("a call goes to the child and back, recorded", async () => {
    const out = await registry.call("weather.forecast", { city: "Oslo", days: 2 }, {
      token: "ok",
    });
    assert.deepEqual(out, {
      city: "Oslo",
      days: [{ day: 0, sky: "snow", tempC: 3 }, { day: 1, sky: "sunny", tempC: 10 }],
    });
    assert.deepEqual(events.map((e) => e.kind), ["tool.invoked", "tool.completed"]);
  });

  await t.step("concurrent calls are matched to their answers", async () => {
    const cities = ["Lima", "Pune", "Kyiv", "Accra", "Quito"];
    const outs = await Promise.all(
      cities.map((city) => registry.call("weather.forecast", { city }, { token: "ok" })),
    );
    assert.deepEqual(outs.map((out) => (out as { city: string }).city), cities);
  });

  await t.step("bad input is refused before it reaches the child", async () => {
    await assert.rejects(
      registry.call("weather.forecast", { city: "" }, { token: "ok" }),
      ToolInputError,
    );
  });

  await t.step("a call without the permission is refused", async () => {
    await assert.rejects(registry.call("weather.forecast", { city: "Oslo" }), {
      code: "capability_denied",
    });
  });
});

Deno.test("http plugin: a JSON-RPC endpoint", async (t) => {
  await using server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, unitsHandler);
  const { registry } = recordingRegistry();
  await using _host = await loadPlugins(registry, [{
    name: "units",
    transport: { type: "http", url: `http://127.0.0.1:${server.addr.port}/rpc` },
  }]);

  await t.step("a call is a POST", async () => {
    assert.deepEqual(
      await registry.call("units.convert", { value: 10, from: "km", to: "mi" }),
      { value: 6.213712, unit: "mi" },
    );
  });

  await t.step("input is validated by the registry", async () => {
    await assert.rejects(
      registry.call("units.convert", { value: 1, from: "km", to: "parsec" }),
      ToolInputError,
    );
  });
});

Deno.test("mcp plugin over stdio: every tool of an MCP server", async (t) => {
  const { registry, events } = recordingRegistry();
  await using host = await loadPlugins(registry, [{
    name: "notes",
    transport: {
      type: "mcp",
      command: deno,
      args: ["run", "--quiet", "notes_mcp.ts"],
      cwd: examples.pathname,
    },
  }]);

  await t.step("tool names become Toka names; version from the server", () => {
    assert.deepEqual(host.plugins[0].tools, ["notes.add_note", "notes.count_words"]);
    assert.equal(registry.get("notes.add_note")?.version, "1.2.0");
    assert.deepEqual(registry.get("notes.count_words")?.annotations, { readOnlyHint: true });
  });

  await t.step("a tool with an outputSchema returns its structured content", async () => {
    assert.deepEqual(await registry.call("notes.add_note", { text: "milk" }), { count: 1 });
    assert.deepEqual(await registry.call("notes.add_note", { text: "eggs" }), { count: 2 });
  });

  await t.step("a tool without one returns its content", async () => {
    assert.deepEqual(await registry.call("notes.count_words", { text: "one two three" }), {
      content: [{ type: "text", text: "3" }],
    });
    assert.equal(events.at(-1)?.kind, "tool.completed");
  });

  await t.step("input is validated by the registry", async () => {
    await assert.rejects(registry.call("notes.add_note", { text: "" }), ToolInputError);
  });
});

Deno.test("mcp plugin over Streamable HTTP", async () => {
  const transport = new WebStandardStreamableHTTPServerTransport({
    sessionIdGenerator: () => crypto.randomUUID(),
    enableJsonResponse: true,
  });
  const mcp = createNotesServer();
  await mcp.connect(transport);
  await using server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (request) => transport.handleRequest(request),
  );
  try {
    const { registry } = recordingRegistry();
    await using _host = await loadPlugins(registry, [{
      name: "notes",
      transport: { type: "mcp", url: `http://127.0.0.1:${server.addr.port}/mcp` },
    }]);
    assert.deepEqual(await registry.call("notes.add_note", { text: "x" }), { count: 1 });
    assert.deepEqual(await registry.call("notes.count_words", { text: "a b" }), {
      content: [{ type: "text", text: "2" }],
    });
  } finally {
    await mcp.close();
  }
});
