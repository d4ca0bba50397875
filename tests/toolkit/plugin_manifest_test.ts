import assert from "node:assert/strict";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import {
  loadPlugins,
  parsePluginManifest,
  readPluginManifest,
  ToolRegistry,
} from "../../toolkit/mod.ts";

const prefix = 'Invalid plugin manifest "plugins.json": ';

Deno.test("parsePluginManifest: valid manifests", async (t) => {
  await t.step("each transport, with paths resolved against the manifest's folder", () => {
    const specs = parsePluginManifest({
      $schema: "https://jsr.io/@toka/runtime/toolkit/plugins.schema.json",
      plugins: {
        local: { transport: { type: "module", module: "./tools/local.ts" }, tools: ["a"] },
        remote: { transport: { type: "module", module: "https://example.com/tools.ts" } },
        weather: {
          transport: { type: "stdio", command: "deno", args: ["run", "w.ts"], env: { K: "v" } },
          timeoutMs: 5000,
        },
        units: { transport: { type: "http", url: "http://127.0.0.1:8787/rpc" } },
        notes: { transport: { type: "mcp", command: "deno", cwd: "servers" } },
        docs: { transport: { type: "mcp", url: "https://example.com/mcp", headers: { a: "b" } } },
      },
    }, "/etc/toka/plugins.json");
    assert.deepEqual(specs, [
      {
        name: "local",
        transport: { type: "module", module: "file:///etc/toka/tools/local.ts" },
        tools: ["a"],
        source: "/etc/toka/plugins.json",
      },
      {
        name: "remote",
        transport: { type: "module", module: "https://example.com/tools.ts" },
        source: "/etc/toka/plugins.json",
      },
      {
        name: "weather",
        transport: {
          type: "stdio",
          command: "deno",
          args: ["run", "w.ts"],
          env: { K: "v" },
          cwd: "/etc/toka",
        },
        timeoutMs: 5000,
        source: "/etc/toka/plugins.json",
      },
      {
        name: "units",
        transport: { type: "http", url: "http://127.0.0.1:8787/rpc" },
        source: "/etc/toka/plugins.json",
      },
      {
        name: "notes",
        transport: { type: "mcp", command: "deno", cwd: "/etc/toka/servers" },
        source: "/etc/toka/plugins.json",
      },
      {
        name: "docs",
        transport: { type: "mcp", url: "https://example.com/mcp", headers: { a: "b" } },
        source: "/etc/toka/plugins.json",
      },
    ]);
  });

  await t.step("an empty plugins object is no plugins", () => {
    assert.deepEqual(parsePluginManifest({ plugins: {} }, "toka.json"), []);
  });

  await t.step("the input is not changed", () => {
    const manifest = { plugins: { w: { transport: { type: "stdio", command: "x" } } } };
    const before = structuredClone(manifest);
    parsePluginManifest(manifest, "plugins.json");
    assert.deepEqual(manifest, before);
  });
});

Deno.test("parsePluginManifest: each bad manifest is one line naming the field", async (t) => {
  const cases: [string, unknown, string][] = [
    [
      "an unknown transport type",
      { plugins: { weather: { transport: { type: "ftp" } } } },
      'plugins.weather.transport.type must be one of "module", "stdio", "http", "mcp"',
    ],
    [
      "no transport type",
      { plugins: { weather: { transport: {} } } },
      'plugins.weather.transport needs "type"',
    ],
    ["no transport", { plugins: { weather: {} } }, 'plugins.weather needs "transport"'],
    [
      "stdio without a command",
      { plugins: { weather: { transport: { type: "stdio" } } } },
      'plugins.weather.transport needs "command"',
    ],
    [
      "module without a module",
      { plugins: { w: { transport: { type: "module" } } } },
      'plugins.w.transport needs "module"',
    ],
    ["a misspelt field", {
      plugins: { weather: { transport: { type: "stdio", command: "x", arg: [] } } },
    }, 'plugins.weather.transport has an unknown field "arg"'],
    ["a field of another transport", {
      plugins: { w: { transport: { type: "http", url: "http://a", command: "x" } } },
    }, 'plugins.w.transport has an unknown field "command"'],
    [
      "mcp with neither command nor url",
      { plugins: { n: { transport: { type: "mcp" } } } },
      'plugins.n.transport needs either "command" (stdio) or "url" (Streamable HTTP), not both',
    ],
    ["mcp with both", {
      plugins: { n: { transport: { type: "mcp", command: "x", url: "http://a" } } },
    }, 'plugins.n.transport needs either "command" (stdio) or "url" (Streamable HTTP), not both'],
    ["an http URL of another scheme", {
      plugins: { u: { transport: { type: "http", url: "file:///etc/passwd" } } },
    }, "plugins.u.transport.url must be an http:// or https:// URL"],
    ["a non-string argument", {
      plugins: { w: { transport: { type: "stdio", command: "x", args: ["a", 1] } } },
    }, "plugins.w.transport.args[1] must be a string"],
    ["a non-string env value", {
      plugins: { w: { transport: { type: "stdio", command: "x", env: { K: 1 } } } },
    }, "plugins.w.transport.env.K must be a string"],
    ["a zero timeout", {
      plugins: { w: { transport: { type: "module", module: "m.ts" }, timeoutMs: 0 } },
    }, "plugins.w.timeoutMs must be >= 1"],
    ["a timeout as text", {
      plugins: { w: { transport: { type: "module", module: "m.ts" }, timeoutMs: "5" } },
    }, "plugins.w.timeoutMs must be an integer"],
    ["a tool listed twice", {
      plugins: { w: { transport: { type: "module", module: "m.ts" }, tools: ["a", "a"] } },
    }, "plugins.w.tools must not list the same name twice"],
    [
      "a plugin name with a capital and a space",
      {
        plugins: { "My Plugin": { transport: { type: "module", module: "m.ts" } } },
      },
      'plugins has an invalid plugin name "My Plugin": use 1 to 32 characters a-z, 0-9, "_" or "-", starting with a letter',
    ],
    [
      "a dotted plugin name",
      { plugins: { "a.b": { transport: { type: "module", module: "m" } } } },
      'plugins has an invalid plugin name "a.b": use 1 to 32 characters a-z, 0-9, "_" or "-", starting with a letter',
    ],
    ["plugins as a list", { plugins: [] }, "plugins must be an object"],
    ["no plugins", {}, 'the manifest needs "plugins"'],
    [
      "an unknown top-level field",
      { plugins: {}, plugin: {} },
      'the manifest has an unknown field "plugin"',
    ],
    ["not an object", [], "the manifest must be an object"],
    ["null", null, "the manifest must be an object"],
    ["a control character in a key is escaped", {
      plugins: { w: { transport: { type: "stdio", command: "x", "\u001b[31m": 1 } } },
    }, 'plugins.w.transport has an unknown field "\\u001b[31m"'],
  ];
  for (const [what, manifest, problem] of cases) {
    await t.step(what, () => {
      assert.throws(() => parsePluginManifest(manifest, "plugins.json"), (error: Error) => {
        assert.ok(error instanceof TypeError);
        assert.equal(error.message, prefix + problem);
        assert.ok(!error.message.includes("\n"));
        return true;
      });
    });
  }
});

Deno.test("readPluginManifest", async (t) => {
  const dir = await Deno.makeTempDir();
  try {
    await t.step("reads a file and resolves paths against its folder", async () => {
      const path = join(dir, "plugins.json");
      await Deno.writeTextFile(
        path,
        JSON.stringify({
          plugins: {
            tools: { transport: { type: "module", module: "./lib/tools.ts" } },
            weather: { transport: { type: "stdio", command: "deno", cwd: "bin" } },
          },
        }),
      );
      const [tools, weather] = await readPluginManifest(path);
      assert.equal(
        (tools.transport as { module: string }).module,
        pathToFileURL(join(dir, "lib/tools.ts")).href,
      );
      assert.equal((weather.transport as { cwd: string }).cwd, join(dir, "bin"));
      assert.equal(weather.source, path);
    });

    await t.step("a missing file", async () => {
      const path = join(dir, "nope.json");
      await assert.rejects(readPluginManifest(path), {
        name: "TypeError",
        message: `Cannot read plugin manifest ${JSON.stringify(path)}: no such file`,
      });
    });

    await t.step("a file that is not JSON", async () => {
      const path = join(dir, "bad.json");
      await Deno.writeTextFile(path, "{ plugins: }");
      await assert.rejects(readPluginManifest(path), (error: Error) => {
        assert.ok(error instanceof TypeError);
        assert.match(error.message, /^Invalid plugin manifest ".*bad\.json": not JSON \(.+\)$/);
        assert.ok(!error.message.includes("\n"));
        return true;
      });
    });

    await t.step("an invalid manifest names the file and the field", async () => {
      const path = join(dir, "plugins.json");
      await Deno.writeTextFile(
        path,
        '{ "plugins": { "weather": { "transport": { "type": "x" } } } }',
      );
      await assert.rejects(readPluginManifest(path), {
        message: `Invalid plugin manifest ${
          JSON.stringify(path)
        }: plugins.weather.transport.type must be one of "module", "stdio", "http", "mcp"`,
      });
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadPlugins checks specs built in code like a manifest", async (t) => {
  const registry = new ToolRegistry();
  await t.step("an unknown transport type", async () => {
    await assert.rejects(
      // deno-lint-ignore no-explicit-any
      loadPlugins(registry, [{ name: "w", transport: { type: "grpc" } as any }]),
      {
        name: "TypeError",
        message:
          'Invalid plugin manifest "plugins": plugins.w.transport.type must be one of "module", "stdio", "http", "mcp"',
      },
    );
  });
  await t.step("two plugins with one name", async () => {
    const spec = { name: "w", transport: { type: "module" as const, module: "./m.ts" } };
    await assert.rejects(loadPlugins(registry, [spec, spec]), {
      name: "TypeError",
      message: 'Invalid plugins: two are named "w"',
    });
  });
  await t.step("not a list", async () => {
    // deno-lint-ignore no-explicit-any
    await assert.rejects(loadPlugins(registry, {} as any), {
      message: "Invalid plugins: expected a list of plugin specs",
    });
  });
  assert.deepEqual(registry.list(), []);
});
