// `toka tool list|describe|run` in-process on a temp KV file: what is printed, the exit
// codes, and the tool.* events each call leaves in the vault.
import assert from "node:assert/strict";
import { main } from "../../cli.ts";
import { openVault } from "../../vault/mod.ts";
import type { EventRecord } from "../../runtime/log/event_store.ts";
import { buildCliTools, DEFAULT_TOOL_ROOT } from "../../cli/_tool_registry.ts";
import { PluginLoadError, readPluginManifest } from "../../toolkit/mod.ts";
import { exists, issueArgs, recordingIo, runToka as toka } from "./_fakes.ts";
import type { CommandContext } from "../../cli/_context.ts";
import { example } from "../docs/_readme.ts";

async function toolEvents(db: string): Promise<EventRecord[]> {
  await using vault = await openVault(db, { create: false });
  return await Array.fromAsync(vault.read({ stream: "toolkit" }));
}

Deno.test("toka tool list and describe need no vault", async (t) => {
  const dir = await Deno.makeTempDir();
  const db = `${dir}/none.kv`;
  try {
    await t.step("list prints a table of the built-in and fs tools", async () => {
      const { code, io, out } = await toka(["--db", db, "tool", "list"]);
      assert.equal(code, 0, io.err.join(""));
      const lines = out.trimEnd().split("\n");
      assert.match(lines[0], /^NAME +PERMISSIONS +DESCRIPTION$/);
      assert.deepEqual(lines.slice(1).map((line) => line.split(/ +/)[0]), [
        "echo",
        "fs.delete",
        "fs.list",
        "fs.read",
        "fs.write",
        "hash",
        "now",
      ]);
      assert.match(lines[1], /^echo +tool:echo:invoke +Returns the text it is given$/);
      assert.equal(await exists(db), false);
    });

    await t.step("list --json gives every tool's description", async () => {
      const { code, out } = await toka(["--json", "tool", "list"]);
      assert.equal(code, 0);
      const tools = JSON.parse(out);
      const echo = tools.find((tool: { name: string }) => tool.name === "echo");
      assert.deepEqual(echo.permissions, ["tool:echo:invoke"]);
      assert.equal(echo.inputSchema.required[0], "text");
      assert.equal(echo.annotations.readOnlyHint, true);
    });

    await t.step("describe prints permissions, annotations and schemas", async () => {
      const { code, out } = await toka(["tool", "describe", "hash"]);
      assert.equal(code, 0);
      assert.match(out, /^name +hash\n/);
      assert.match(out, /\npermissions +tool:hash:invoke\n/);
      assert.match(out, /\nannotations +readOnlyHint=true idempotentHint=true/);
      assert.match(out, /\ninput schema:\n\{\n {2}"type": "object"/);
      assert.match(out, /\noutput schema:\n/);
      const json = await toka(["--json", "tool", "describe", "fs.read"]);
      assert.equal(JSON.parse(json.out).name, "fs.read");
      assert.equal(JSON.parse(json.out).timeoutMs, 30_000);
    });

    await t.step("describe of an unknown tool exits 1 with one line", async () => {
      const { code, io } = await toka(["tool", "describe", "nope"]);
      assert.equal(code, 1);
      assert.deepEqual(io.errLines(), ['error: No tool named "nope" is registered']);
      assert.deepEqual(io.out, []);
    });

    await t.step("http.fetch without an allowlist: the error says how to register it", async () => {
      // Issue 19 item 10: it said only "No tool named".
      const hint = 'error: No tool named "http.fetch" is registered: it is registered when ' +
        `toka.json's tools.http.allow (or TOKA_HTTP_ALLOW) lists the hosts it may reach`;
      const { code, io } = await toka(["--db", db, "tool", "describe", "http.fetch"]);
      assert.equal(code, 1);
      assert.deepEqual(io.errLines(), [hint]);
      const allowed = await toka(["tool", "describe", "http.fetch"], {
        env: { TOKA_HTTP_ALLOW: "example.com" },
      });
      assert.equal(allowed.code, 0, allowed.io.err.join(""));
      assert.match(allowed.out, /^name +http\.fetch$/m);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("toka tool run", async (t) => {
  const dir = await Deno.makeTempDir();
  const db = `${dir}/v.kv`;
  try {
    const issued = await toka(issueArgs(db, "tool:echo:invoke", "tool:now:invoke"));
    assert.equal(issued.code, 0);
    const token = issued.out.trim();
    const env = { TOKA_TOKEN: token };

    await t.step(
      "a call to http.fetch without an allowlist hints at tools.http.allow",
      async () => {
        const { code, io } = await toka(
          ["--db", db, "tool", "run", "http.fetch", "--input", '{"url":"https://example.com/"}'],
          { env },
        );
        assert.equal(code, 1);
        assert.deepEqual(io.errLines(), [
          'error: No tool named "http.fetch" is registered: it is registered when ' +
          `toka.json's tools.http.allow (or TOKA_HTTP_ALLOW) lists the hosts it may reach`,
        ]);
      },
    );

    await t.step("a permitted call prints the output and records invoked, completed", async () => {
      const { code, io, out } = await toka(
        ["--db", db, "tool", "run", "echo", "--input", '{"text":"hi"}'],
        { env },
      );
      assert.equal(code, 0, io.err.join(""));
      assert.equal(out, '{\n  "text": "hi"\n}\n');
      assert.deepEqual(io.err, []);
      const events = await toolEvents(db);
      assert.deepEqual(events.map((e) => e.kind), ["tool.invoked", "tool.completed"]);
      const [invoked, completed] = events.map((e) => e.payload as Record<string, unknown>);
      assert.equal(invoked.tool, "echo");
      assert.match(String(invoked.inputDigest), /^sha256:[0-9a-f]{64}$/);
      assert.equal(completed.callId, invoked.callId);
      assert.deepEqual(events[0].meta, { source: "cli" });
      // Neither the input nor the token is in the log.
      assert.ok(!JSON.stringify(events).includes('"hi"'));
      assert.ok(!JSON.stringify(events).includes(token));
    });

    await t.step("--token, --input-file, stdin and empty stdin", async () => {
      const file = `${dir}/input.json`;
      await Deno.writeTextFile(file, '{"text":"from a file"}');
      const fromFile = await toka([
        "--db",
        db,
        "--json",
        "tool",
        "run",
        "echo",
        "--input-file",
        file,
        "--token",
        token,
      ]);
      assert.equal(fromFile.code, 0, fromFile.io.err.join(""));
      assert.equal(fromFile.out, '{"text":"from a file"}\n');
      const fromStdin = await toka(["--db", db, "--json", "tool", "run", "echo"], {
        env,
        stdin: '{"text":"piped"}\n',
      });
      assert.equal(fromStdin.out, '{"text":"piped"}\n');
      const empty = await toka(["--db", db, "--json", "tool", "run", "now"], { env, stdin: "" });
      assert.equal(empty.code, 0, empty.io.err.join(""));
      assert.match(JSON.parse(empty.out).iso, /^\d{4}-\d\d-\d\dT/);
    });

    await t.step("a denied call exits 1 naming the reason and records tool.denied", async () => {
      const before = (await toolEvents(db)).length;
      const { code, io } = await toka(
        ["--db", db, "tool", "run", "hash", "--input", '{"text":"x"}'],
        { env },
      );
      assert.equal(code, 1);
      assert.deepEqual(io.errLines(), [
        'error: Permission "tool:hash:invoke" is not granted to "me"',
      ]);
      assert.deepEqual(io.out, []);
      const events = (await toolEvents(db)).slice(before);
      assert.deepEqual(events.map((e) => e.kind), ["tool.denied"]);
      assert.equal(
        (events[0].payload as { error: { code: string } }).error.code,
        "capability_denied",
      );
    });

    await t.step("invalid input exits 1 and records tool.failed", async () => {
      const before = (await toolEvents(db)).length;
      const { code, io } = await toka(
        ["--db", db, "--json", "tool", "run", "echo", "--input", '{"text":1}'],
        { env },
      );
      assert.equal(code, 1);
      assert.deepEqual(JSON.parse(io.errLines()[0]), {
        error: {
          code: "tool_input",
          message: 'Invalid input for tool "echo": /text must be string',
        },
      });
      const events = (await toolEvents(db)).slice(before);
      assert.deepEqual(events.map((e) => e.kind), ["tool.invoked", "tool.failed"]);
    });

    await t.step("a bad or missing token exits 1 in one line, never echoing it", async () => {
      const forged = `${token.slice(0, -4)}AAAA`;
      const bad = await toka(["--db", db, "tool", "run", "echo", "--input", "{}"], {
        env: { TOKA_TOKEN: forged },
      });
      assert.equal(bad.code, 1);
      assert.deepEqual(bad.io.errLines(), [
        "error: Invalid token: its signature does not match",
      ]);
      const none = await toka(["--db", db, "tool", "run", "echo", "--input", "{}"]);
      assert.equal(none.code, 1);
      assert.deepEqual(none.io.errLines(), [
        "error: Missing token: pass --token or set TOKA_TOKEN",
      ]);
    });

    await t.step("an interrupt while waiting for stdin exits 130 and calls nothing", async () => {
      const before = (await toolEvents(db)).length;
      const interrupt = new AbortController();
      const io = {
        ...recordingIo({ env, signal: interrupt.signal }),
        // A terminal nobody types into.
        stdin: new ReadableStream<Uint8Array>({ pull: () => new Promise<void>(() => {}) }),
      };
      const running = main(["--db", db, "tool", "run", "echo"], io);
      // Whether the abort comes before the read or while it waits, the read ends the same way.
      await new Promise((resolve) => setTimeout(resolve, 0));
      interrupt.abort();
      assert.equal(await running, 130);
      assert.deepEqual(io.errLines(), [
        "Interrupted while reading the input from standard input: nothing was called",
      ]);
      assert.equal((await toolEvents(db)).length, before);
    });

    await t.step("an interrupted call exits 130 and is recorded as failed", async () => {
      const before = (await toolEvents(db)).length;
      const interrupt = new AbortController();
      interrupt.abort();
      const io = recordingIo({ env, signal: interrupt.signal });
      const code = await main(["--db", db, "tool", "run", "echo", "--input", '{"text":"x"}'], io);
      assert.equal(code, 130);
      assert.deepEqual(io.errLines(), [
        'Interrupted: the call to "echo" was stopped (recorded as tool.failed)',
      ]);
      const events = (await toolEvents(db)).slice(before);
      assert.deepEqual(events.map((e) => e.kind), ["tool.invoked", "tool.failed"]);
    });

    await t.step("an unknown tool exits 1", async () => {
      const { code, io } = await toka(["--db", db, "tool", "run", "nope"], { env });
      assert.equal(code, 1);
      assert.deepEqual(io.errLines(), ['error: No tool named "nope" is registered']);
    });

    await t.step("a missing vault or one without a pool: exit 1, nothing written", async () => {
      const missing = `${dir}/missing.kv`;
      const noVault = await toka(["--db", missing, "tool", "run", "echo", "--input", "{}"], {
        env,
      });
      assert.equal(noVault.code, 1);
      assert.deepEqual(noVault.io.errLines(), [`error: No vault at "${missing}"`]);
      assert.equal(await exists(missing), false);

      const bare = `${dir}/bare.kv`;
      const vault = await openVault(bare);
      await vault.append("s", [{ kind: "a" }]);
      await vault.close();
      const noPool = await toka(["--db", bare, "tool", "run", "echo", "--input", "{}"], { env });
      assert.equal(noPool.code, 1);
      assert.match(noPool.io.errLines()[0], /^error: No secret pool in vault ".*bare\.kv"/);
      await using reopened = await openVault(bare);
      assert.equal((await reopened.stats()).events, 1);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("buildCliTools", async (t) => {
  await t.step("built-ins and fs tools by default; http.fetch only with an allowlist", async () => {
    await using plain = await buildCliTools();
    assert.deepEqual(plain.registry.list().map((tool) => tool.name), [
      "echo",
      "fs.delete",
      "fs.list",
      "fs.read",
      "fs.write",
      "hash",
      "now",
    ]);
    await using web = await buildCliTools({ httpAllow: ["api.example.com"] });
    assert.ok(web.registry.get("http.fetch"));
    const refused = await web.registry.call("http.fetch", { url: "http://127.0.0.1:9/" })
      .catch((error: Error) => error.message) as string;
    assert.match(refused, /Host "127\.0\.0\.1" is not on the http\.fetch allowlist/);
    // A local server stands in for an API that is allowed by name.
    const server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen() {} },
      () => new Response("pong"),
    );
    try {
      await using local = await buildCliTools({
        httpAllow: ["api.example.com"],
        httpAllowPrivate: ["127.0.0.1"],
      });
      const url = `http://127.0.0.1:${server.addr.port}/`;
      const reply = await local.registry.call("http.fetch", { url }) as { body: string };
      assert.equal(reply.body, "pong");
    } finally {
      await server.shutdown();
    }
  });

  await t.step("the fs tools work under storageRoot, made on the first write", async () => {
    const dir = await Deno.makeTempDir();
    try {
      const root = `${dir}/root`;
      await using tools = await buildCliTools({ storageRoot: root });
      assert.equal(await exists(root), false);
      await tools.registry.call("fs.write", { path: "a.txt", content: "A" });
      assert.equal(await Deno.readTextFile(`${root}/a.txt`), "A");
      assert.equal(DEFAULT_TOOL_ROOT, "./.toka/storage");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });

  await t.step("bad settings are one-line errors", async () => {
    await assert.rejects(() => buildCliTools({ storageRoot: "" }), TypeError);
    await assert.rejects(() => buildCliTools({ httpAllow: ["bad host!"] }), TypeError);
    await assert.rejects(
      // A spec that did not come through the manifest's checks.
      () => buildCliTools({ plugins: [{ name: "x", transport: { type: "ftp" } } as never] }),
      TypeError,
    );
    await assert.rejects(
      () =>
        buildCliTools({
          plugins: [{ name: "gone", transport: { type: "module", module: "/no/such/module.ts" } }],
        }),
      PluginLoadError,
    );
  });

  await t.step("plugins' tools join the registry, prefixed, and stop on close", async () => {
    const manifest = new URL("../../examples/plugins/plugins.json", import.meta.url).pathname;
    await using tools = await buildCliTools({ plugins: await readPluginManifest(manifest) });
    const names = tools.registry.list().map((tool) => tool.name);
    for (const name of ["climate.wind_chill", "notes.count_words", "weather.forecast"]) {
      assert.ok(names.includes(name), `${name} in ${names}`);
    }
    assert.ok(names.includes("echo") && names.includes("fs.read"));
    const counted = await tools.registry.call("notes.count_words", { text: "one two three" });
    assert.deepEqual(counted, { content: [{ type: "text", text: "3" }] });
    // The children are stopped by close() at the end of the block: the sanitizers see to it.
  });
});

Deno.test("README: the toka tool example prints what its comments say", async () => {
  const script = example("## Tools from the shell: `toka tool`", "sh");
  const dir = await Deno.makeTempDir();
  try {
    const cli = new URL("../../cli.ts", import.meta.url).pathname;
    // The example as a user runs it, with `toka` being this checkout's CLI.
    const { code, stdout, stderr } = await new Deno.Command("bash", {
      args: ["-c", `toka() { "${Deno.execPath()}" run -A "${cli}" "$@"; }\n${script}`],
      cwd: dir,
      // Whatever the caller's shell holds (TOKA_DB, TOKA_TOKEN, ...) must not leak in.
      clearEnv: true,
      env: {
        NO_COLOR: "1",
        PATH: Deno.env.get("PATH") ?? "",
        HOME: Deno.env.get("HOME") ?? dir,
        ...(Deno.env.get("DENO_DIR") && { DENO_DIR: Deno.env.get("DENO_DIR") }),
      },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const out = new TextDecoder().decode(stdout);
    const err = new TextDecoder().decode(stderr);
    assert.equal(code, 0, err); // the last command's
    assert.equal(err, 'error: Permission "tool:now:invoke" is not granted to "me"\n');
    assert.match(out, /^NAME +PERMISSIONS +DESCRIPTION\necho /);
    assert.match(out, /\nname +fs\.read\n/);
    assert.match(out, /\n\{\n {2}"text": "hi"\n\}\n/);
    assert.match(out, /\n\{"digest":"sha256:8f434346[0-9a-f]{56}"\}\n/);
    const kinds = [...out.matchAll(/ toolkit#\d+ +(tool\.\w+) /g)].map((m) => m[1]);
    assert.deepEqual(kinds, [
      "tool.invoked",
      "tool.completed",
      "tool.invoked",
      "tool.completed",
      "tool.denied",
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("tool list and describe escape control characters of a plugin's text", async () => {
  // Issue 17 item 10's rule for every command: what a plugin declares reaches no terminal raw.
  const dir = await Deno.makeTempDir();
  try {
    const module = `${dir}/evil_tools.ts`;
    const toolkit = new URL("../../toolkit/mod.ts", import.meta.url).href;
    await Deno.writeTextFile(
      module,
      `import { defineTool } from ${JSON.stringify(toolkit)};
export const evil = defineTool({
  name: "evil",
  description: "fine\\nforged line\\x1b[2J\\u009b31m",
  version: "1.0.0",
  inputSchema: { type: "object", description: "\\u009b2J\\u2028" },
  execute: () => null,
});
`,
    );
    const { describeTool, listTools } = await import("../../cli/tool.ts");
    const { defaultSettings } = await import("../../cli/_config.ts");
    const RAW = /[\p{Cc}\u2028\u2029]/u;
    for (const run of [listTools, (ctx: CommandContext) => describeTool(ctx, "evil.evil")]) {
      const io = recordingIo();
      const ctx: CommandContext = {
        io,
        json: false,
        dbLocation: ":memory:",
        settings: { ...defaultSettings(), db: ":memory:" },
        openStore: () => Promise.reject(new Error("no vault needed")),
        toolSettings: {
          plugins: [{ name: "evil", transport: { type: "module", module } }],
        },
      };
      assert.equal(await run(ctx), 0);
      const text = io.out.join("");
      for (const line of text.split("\n")) assert.doesNotMatch(line, RAW, line);
      assert.ok(!text.split("\n").some((line) => line.startsWith("forged line")), text);
      assert.ok(text.includes(String.raw`fine\u000aforged line\u001b[2J\u009b31m`), text);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
