// Plugins that die, hang, answer garbage or lie: the caller gets a ToolExecutionError (or the
// matching error class), the process goes on, and the next call tries again.
import assert from "node:assert/strict";
import {
  loadPlugins,
  type PluginLoadError,
  type PluginSpec,
  ToolExecutionError,
  ToolNotFoundError,
  ToolOutputError,
  ToolRegistry,
  ToolTimeoutError,
} from "../../toolkit/mod.ts";

import { WebStandardStreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js";
import { createServer as createNotesServer } from "../../examples/plugins/notes_mcp.ts";
import { gone, manualTimer } from "./_fakes.ts";

const deno = Deno.execPath();
const child = new URL("_plugin_child.ts", import.meta.url).pathname;
const mcpChild = new URL("_mcp_child.ts", import.meta.url).pathname;
const root = new URL("../../", import.meta.url).pathname;

function stdio(mode = "ok", timeoutMs = 20_000): PluginSpec {
  return {
    name: "moody",
    transport: { type: "stdio", command: deno, args: ["run", "--quiet", child, mode] },
    timeoutMs,
  };
}

type Act = { pid: number; n: number };
const act = (registry: ToolRegistry, what: string) =>
  registry.call("moody.act", { do: what }) as Promise<Act>;

Deno.test("stdio plugin failures", async (t) => {
  const registry = new ToolRegistry();
  await using _host = await loadPlugins(registry, [stdio()], { restartDelayMs: 10 });
  const first = await act(registry, "answer");

  await t.step("a child that exits mid-call: ToolExecutionError, then a new child", async () => {
    await assert.rejects(act(registry, "exit"), (error: Error) => {
      assert.ok(error instanceof ToolExecutionError);
      assert.equal(
        error.message,
        'Tool "moody.act" failed: the plugin process exited with code 3 (stderr: "about to exit")',
      );
      return true;
    });
    const next = await act(registry, "answer");
    assert.notEqual(next.pid, first.pid);
    assert.equal(next.n, 1);
    assert.ok(await gone(first.pid));
  });

  await t.step("a child that prints garbage is stopped; the next call restarts it", async () => {
    const before = await act(registry, "answer");
    await assert.rejects(act(registry, "garbage"), {
      name: "ToolExecutionError",
      message:
        'Tool "moody.act" failed: the plugin process printed "<html>oops</html>", which is not JSON, and was stopped',
    });
    const after = await act(registry, "answer");
    assert.notEqual(after.pid, before.pid);
  });

  await t.step("output that breaks the declared outputSchema: ToolOutputError", async () => {
    const before = await act(registry, "answer");
    await assert.rejects(act(registry, "lie"), (error: Error) => {
      assert.ok(error instanceof ToolOutputError);
      assert.equal(error.message, 'Invalid output from tool "moody.act": /pid must be integer');
      return true;
    });
    const after = await act(registry, "answer");
    assert.equal(after.pid, before.pid); // a lie is not a crash: the child stays
  });

  await t.step("a JSON-RPC error answer: ToolExecutionError with its message", async () => {
    await assert.rejects(act(registry, "error"), {
      name: "ToolExecutionError",
      message: 'Tool "moody.act" failed: the plugin answered error -32000: Out of coffee',
    });
  });
});

Deno.test("stdio plugin: a call that hangs times out, and the stuck child is replaced", async () => {
  // The timeout fires when the test says: no waiting, and no other call times out under load.
  const timer = manualTimer();
  const registry = new ToolRegistry({ startTimer: timer.start });
  await using _host = await loadPlugins(registry, [stdio("ok", 15_000)], { restartDelayMs: 10 });
  const before = await act(registry, "answer");
  const hanging = act(registry, "hang");
  await timer.started();
  timer.fire();
  await assert.rejects(hanging, (error: Error) => {
    assert.ok(error instanceof ToolTimeoutError);
    assert.equal(error.message, 'Tool "moody.act" timed out after 15000 ms');
    return true;
  });
  const after = await act(registry, "answer");
  assert.notEqual(after.pid, before.pid);
  assert.ok(await gone(before.pid));
});

Deno.test("stdio plugin: restarts back off while the child keeps dying", async () => {
  const registry = new ToolRegistry();
  await using _host = await loadPlugins(registry, [stdio()], {
    restartDelayMs: 400,
    maxRestartDelayMs: 400,
  });
  await assert.rejects(act(registry, "exit"), ToolExecutionError);
  const started = performance.now();
  await act(registry, "answer");
  assert.ok(performance.now() - started >= 390, "the restart waited for the backoff");
});

Deno.test("stdio plugin: close kills the child and unregisters its tools", async () => {
  const registry = new ToolRegistry();
  const host = await loadPlugins(registry, [stdio()]);
  const { pid } = await act(registry, "answer");
  const pending = assert.rejects(act(registry, "hang"), (error: Error) => {
    assert.ok(error instanceof ToolExecutionError);
    assert.match(error.message, /^Tool "moody.act" failed: the plugin (process was|is) closed$/);
    return true;
  });
  await host.close();
  await pending;
  assert.ok(await gone(pid));
  await assert.rejects(act(registry, "answer"), ToolNotFoundError);
});

Deno.test("mcp plugin failures", async (t) => {
  const timer = manualTimer();
  const registry = new ToolRegistry({ startTimer: timer.start });
  await using _host = await loadPlugins(registry, [{
    name: "moody",
    transport: { type: "mcp", command: deno, args: ["run", "--quiet", mcpChild], cwd: root },
    timeoutMs: 15_000, // fired by the test
  }], { restartDelayMs: 10 });
  const first = await act(registry, "answer");

  await t.step("a server that exits mid-call: ToolExecutionError, then a new one", async () => {
    await assert.rejects(act(registry, "exit"), ToolExecutionError);
    const next = await act(registry, "answer");
    assert.notEqual(next.pid, first.pid);
  });

  await t.step("structured content that breaks the outputSchema is refused", async () => {
    await assert.rejects(act(registry, "lie"), (error: Error) => {
      assert.ok(error instanceof ToolExecutionError || error instanceof ToolOutputError);
      return true;
    });
  });

  await t.step("an isError result: ToolExecutionError with its text", async () => {
    await assert.rejects(act(registry, "error"), {
      name: "ToolExecutionError",
      message: 'Tool "moody.act" failed: the MCP tool answered an error: No luck',
    });
  });

  await t.step("a hang times out, and the next call reaches a new server", async () => {
    const before = await act(registry, "answer");
    const hanging = act(registry, "hang");
    await timer.started();
    timer.fire();
    await assert.rejects(hanging, ToolTimeoutError);
    const after = await act(registry, "answer");
    assert.notEqual(after.pid, before.pid);
    assert.ok(await gone(before.pid));
  });
});

Deno.test("mcp plugin over Streamable HTTP: a restarted server is reached again", async () => {
  const start = async () => {
    const mcp = createNotesServer();
    const transport = new WebStandardStreamableHTTPServerTransport({
      sessionIdGenerator: () => crypto.randomUUID(),
      enableJsonResponse: true,
    });
    await mcp.connect(transport);
    return { mcp, transport };
  };
  let current = await start();
  await using server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (request) => current.transport.handleRequest(request),
  );
  try {
    const registry = new ToolRegistry();
    await using _host = await loadPlugins(registry, [{
      name: "notes",
      transport: { type: "mcp", url: `http://127.0.0.1:${server.addr.port}/mcp` },
    }], { restartDelayMs: 10 });
    assert.deepEqual(await registry.call("notes.add_note", { text: "a" }), { count: 1 });
    // The server restarts: our session is unknown to it.
    await current.mcp.close();
    current = await start();
    await assert.rejects(registry.call("notes.add_note", { text: "b" }), ToolExecutionError);
    assert.deepEqual(await registry.call("notes.add_note", { text: "c" }), { count: 1 });
  } finally {
    await current.mcp.close();
  }
});

Deno.test("http plugin failures", async (t) => {
  let mode = "ok";
  const release = Promise.withResolvers<void>();
  await using server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    async (request) => {
      const message = await request.json();
      if (message.method === "tools/list") {
        return Response.json({
          jsonrpc: "2.0",
          id: message.id,
          result: { tools: [{ name: "act", inputSchema: { type: "object" } }] },
        });
      }
      if (mode === "500") return new Response("Internal error", { status: 500 });
      if (mode === "garbage") return new Response("<html>oops</html>");
      if (mode === "wrong id") return Response.json({ jsonrpc: "2.0", id: 99, result: {} });
      if (mode === "hang") await release.promise;
      return Response.json({ jsonrpc: "2.0", id: message.id, result: { ok: true } });
    },
  );
  const timer = manualTimer();
  const registry = new ToolRegistry({ startTimer: timer.start });
  await using _host = await loadPlugins(registry, [{
    name: "remote",
    transport: { type: "http", url: `http://127.0.0.1:${server.addr.port}/` },
    timeoutMs: 2000,
  }]);
  const cases: [string, string | RegExp][] = [
    ["500", 'Tool "remote.act" failed: the plugin endpoint answered HTTP 500'],
    [
      "garbage",
      /^Tool "remote.act" failed: the plugin endpoint answered .*oops.*, which is not JSON$/,
    ],
    ["wrong id", /not the answer to request \d+$/],
  ];
  for (const [what, message] of cases) {
    await t.step(
      `an endpoint answering ${what}: ToolExecutionError, then a good call`,
      async () => {
        mode = what;
        await assert.rejects(registry.call("remote.act", {}), (error: Error) => {
          assert.ok(error instanceof ToolExecutionError);
          if (typeof message === "string") assert.equal(error.message, message);
          else assert.match(error.message, message);
          return true;
        });
        mode = "ok";
        assert.deepEqual(await registry.call("remote.act", {}), { ok: true });
      },
    );
  }
  await t.step("an endpoint that takes too long: ToolTimeoutError", async () => {
    mode = "hang";
    const hanging = registry.call("remote.act", {});
    await timer.started();
    timer.fire();
    await assert.rejects(hanging, ToolTimeoutError);
    mode = "ok";
    release.resolve(); // the server still holds the abandoned request
    assert.deepEqual(await registry.call("remote.act", {}), { ok: true });
  });
});

Deno.test("plugins that cannot be loaded: one line each, nothing left registered", async (t) => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/empty.ts`, "export const answer = 42;\n");
  await Deno.writeTextFile(`${dir}/broken.ts`, "export const x = ;\n");
  // An endpoint that drops every connection. The port stays ours for the whole test: a
  // port closed at once could be taken by another process and answer (seen under load).
  const dropping = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const dropped = (async () => {
    for await (const connection of dropping) connection.close();
  })();
  const closedPort = dropping.addr.port;
  const weather = new URL("../../examples/plugins/weather_stdio.ts", import.meta.url).pathname;
  const cases: [string, PluginSpec, string | RegExp][] = [
    [
      "tools/list declares an invalid schema",
      { ...stdio("bad-schema") },
      /^Cannot load plugin "moody": Invalid input schema for tool "moody.act": .*properties\/do\/type/,
    ],
    [
      "tools/list never answers",
      { ...stdio("hang-list") },
      'Cannot load plugin "moody": its tools were not listed within 300 ms',
    ],
    [
      "the child prints garbage at once",
      { ...stdio("garbage-list") },
      'Cannot load plugin "moody": the plugin process printed "Starting up...", which is not JSON, and was stopped',
    ],
    [
      "the command does not exist",
      {
        name: "ghost",
        transport: { type: "stdio", command: "no-such-toka-plugin" },
      },
      'Cannot load plugin "ghost": cannot start the plugin process: command "no-such-toka-plugin" not found',
    ],
    ["a module without tools", {
      name: "empty",
      transport: { type: "module", module: `${dir}/empty.ts` },
    }, /^Cannot load plugin "empty": ".*empty\.ts" exports no tool made with defineTool$/],
    ["a module that does not compile", {
      name: "broken",
      transport: { type: "module", module: `${dir}/broken.ts` },
    }, /^Cannot load plugin "broken": cannot import ".*broken\.ts": /],
    ["an endpoint that drops every connection", {
      name: "gone",
      transport: { type: "http", url: `http://127.0.0.1:${closedPort}/rpc` },
    }, /^Cannot load plugin "gone": cannot reach the plugin endpoint: /],
    ["an mcp command that is not an MCP server", {
      name: "notmcp",
      transport: { type: "mcp", command: deno, args: ["run", "--quiet", weather] },
    }, /^Cannot load plugin "notmcp": cannot connect to the MCP server: /],
    [
      "an mcp command that fails at once: its stderr is in the message",
      {
        name: "crash",
        transport: { type: "mcp", command: deno, args: ["run", "--quiet", `${dir}/broken.ts`] },
      },
      /^Cannot load plugin "crash": cannot connect to the MCP server: .+ \(stderr: "error: .+"\)$/,
    ],
    [
      "a tool the plugin does not have",
      { ...stdio(), tools: ["fly"] },
      'Cannot load plugin "moody": it has no tool "fly" (it offers "act")',
    ],
  ];
  try {
    for (const [what, spec, message] of cases) {
      await t.step(what, async () => {
        const registry = new ToolRegistry();
        await assert.rejects(
          // A short start time only where the failure is the wait itself: that child never
          // lists its tools, however long it is given.
          loadPlugins(registry, [spec], { startTimeoutMs: what.includes("never") ? 300 : 60_000 }),
          (error: PluginLoadError) => {
            assert.equal(error.name, "PluginLoadError");
            assert.equal(error.code, "plugin_load");
            if (typeof message === "string") assert.equal(error.message, message);
            else assert.match(error.message, message);
            assert.ok(!error.message.includes("\n"), error.message);
            return true;
          },
        );
        assert.deepEqual(registry.list(), []);
      });
    }

    await t.step("a tool name already taken: the plugin registers nothing", async () => {
      const registry = new ToolRegistry();
      registry.register({
        name: "moody.act",
        description: "Taken",
        version: "1.0.0",
        inputSchema: { type: "object" },
        execute: () => "mine",
      });
      await assert.rejects(loadPlugins(registry, [stdio()]), {
        message: 'Cannot load plugin "moody": A tool named "moody.act" is already registered',
      });
      assert.equal(await registry.call("moody.act", {}), "mine");
    });

    await t.step("with onError, a failing plugin is skipped and the others load", async () => {
      const registry = new ToolRegistry();
      const errors: string[] = [];
      await using host = await loadPlugins(registry, [
        { name: "ghost", transport: { type: "stdio", command: "no-such-toka-plugin" } },
        stdio(),
      ], { onError: (error) => errors.push(error.message) });
      assert.deepEqual(host.plugins.map((p) => p.name), ["moody"]);
      assert.equal(errors.length, 1);
      assert.match(errors[0], /^Cannot load plugin "ghost"/);
      assert.ok((await act(registry, "answer")).pid > 0);
    });
  } finally {
    dropping.close();
    await dropped;
    await Deno.remove(dir, { recursive: true });
  }
});
