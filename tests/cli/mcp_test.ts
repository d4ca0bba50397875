// `toka mcp serve` as a real child process, driven by the MCP SDK's own client over stdio
// (StdioClientTransport), on a temp vault whose token is issued through the auth API; and
// its refusals in-process.
import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import type { Tool as McpTool } from "@modelcontextprotocol/sdk/types.js";
import type { ChildProcess } from "node:child_process";
import { main, type MainOptions } from "../../cli.ts";
import { LineTransport } from "../../cli/_mcp_transport.ts";
import { KvTokenAuthority } from "../../auth/mod.ts";
import { openVault } from "../../vault/mod.ts";
import type { EventRecord } from "../../runtime/log/event_store.ts";
import { hasNoStackTrace, recordingIo } from "./_fakes.ts";
import { section } from "../docs/_readme.ts";

const CLI = new URL("../../cli.ts", import.meta.url).pathname;
// Generous: a child's start-up on a loaded machine can take many seconds.
const TIMEOUT_MS = 120_000;

interface ClientConfig {
  command: string;
  args: string[];
  env: Record<string, string>;
}

/** A vault with a secret pool, and a token granting `permissions`. */
async function vaultWithToken(
  db: string,
  permissions: string[],
  ttlSecs?: number,
): Promise<string> {
  await using vault = await openVault(db);
  const auth = await KvTokenAuthority.open(vault.kv!, { masterKey: undefined });
  return await auth.issue({ sub: "mcp-test", permissions, ttlSecs });
}

/** The client configuration the README shows, made to run this checkout. */
function readmeConfig(db: string, token: string): ClientConfig {
  const json = section("## An MCP server: `toka mcp serve`").match(/```json\n([\s\S]*?)```/)![1];
  const config = JSON.parse(json).mcpServers.toka as ClientConfig;
  assert.equal(config.command, "toka");
  assert.deepEqual(config.args.slice(2), ["mcp", "serve"]);
  assert.deepEqual(Object.keys(config.env), ["TOKA_TOKEN"]);
  return {
    // `toka` is this checkout's cli.ts here, as the README says for a checkout.
    command: Deno.execPath(),
    // Logs on, to show they go to stderr and never into the protocol on stdout.
    args: ["run", "-A", CLI, "--db", db, "--log-level", "debug", ...config.args.slice(2)],
    env: { TOKA_TOKEN: token, NO_COLOR: "1" },
  };
}

/** Calls a tool through the client, allowing for a slow child. */
function callTool(client: Client, name: string, input: Record<string, unknown>) {
  return client.callTool({ name, arguments: input }, undefined, { timeout: TIMEOUT_MS });
}

/**
 * Trusts the project in `dir` (found, not named: as an MCP client's workspace must be,
 * trust_test.ts) in a trust file the client's server is then given.
 */
async function trustProject(dir: string, config: ClientConfig): Promise<void> {
  const trustFile = `${dir}/trusted.json`;
  const trusted = recordingIo({ env: { TOKA_TRUST_FILE: trustFile } });
  assert.equal(await main(["trust"], trusted, { cwd: dir }), 0, trusted.err.join(""));
  config.env.TOKA_TRUST_FILE = trustFile;
}

/**
 * Ends a child server by closing its stdin, as a client does first, and returns its exit code
 * (client.close() alone would leave the SDK's 2 s timers waiting for the child).
 */
async function endServer(transport: StdioClientTransport): Promise<number | null> {
  const child = (transport as unknown as { _process: ChildProcess })._process;
  const exited = new Promise<number | null>((resolve) => child.once("close", resolve));
  child.stdin!.end();
  return await exited;
}

/** Runs `toka <args>` in-process with an empty stdin: its exit code and stderr lines. */
async function serveOnce(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number; err: string[] }> {
  const io = recordingIo({ env, stdin: "" });
  const code = await main(args, io);
  assert.ok(hasNoStackTrace(io));
  assert.deepEqual(io.out, [], "nothing on stdout");
  return { code, err: io.errLines() };
}

async function toolEvents(db: string): Promise<EventRecord[]> {
  await using vault = await openVault(db, { create: false });
  return await Array.fromAsync(vault.read({ stream: "toolkit" }));
}

Deno.test("toka mcp serve, driven by the SDK's client in a real child process", async (t) => {
  const dir = await Deno.makeTempDir();
  const db = `${dir}/v.kv`;
  const token = await vaultWithToken(db, [
    "tool:echo:invoke",
    "tool:now:invoke",
    "tool:climate.wind_chill:invoke",
  ]);
  const config = readmeConfig(db, token);
  // A project whose toka.json brings a plugin: the server serves its tools beside the built-ins.
  const module = new URL("../../examples/plugins/weather_tools.ts", import.meta.url).pathname;
  await Deno.writeTextFile(
    `${dir}/toka.json`,
    JSON.stringify({ plugins: { climate: { transport: { type: "module", module } } } }),
  );
  await trustProject(dir, config);
  const transport = new StdioClientTransport({ ...config, cwd: dir, stderr: "pipe" });
  let stderr = "";
  transport.stderr!.on("data", (chunk: Uint8Array) => stderr += new TextDecoder().decode(chunk));
  const client = new Client({ name: "toka-test", version: "1.0.0" });
  // A line on stdout that is not a JSON-RPC message would be reported here.
  const protocolErrors: Error[] = [];
  client.onerror = (error: Error) => void protocolErrors.push(error);
  const options = { timeout: TIMEOUT_MS };
  try {
    await client.connect(transport, options);

    await t.step("it lists only the tools the token grants, with schemas", async () => {
      assert.equal(client.getServerVersion()?.name, "toka");
      const { tools } = await client.listTools(undefined, options);
      // The plugin's tool by its wire name, its Toka name as its title.
      assert.deepEqual(tools.map((tool: McpTool) => [tool.name, tool.title]), [
        ["climate_wind_chill", "climate.wind_chill"],
        ["echo", "echo"],
        ["now", "now"],
      ]);
      const echo = tools[1];
      assert.equal(echo.description, "Returns the text it is given");
      assert.deepEqual(echo.inputSchema.required, ["text"]);
      assert.equal(echo.outputSchema?.type, "object");
      assert.deepEqual(echo.annotations, {
        readOnlyHint: true,
        idempotentHint: true,
        openWorldHint: false,
      });
    });

    await t.step("a permitted call returns the output, as text and structured", async () => {
      const result = await callTool(client, "echo", { text: "hi" });
      assert.equal(result.isError, undefined);
      assert.deepEqual(result.structuredContent, { text: "hi" });
      assert.deepEqual(result.content, [{ type: "text", text: '{"text":"hi"}' }]);
    });

    await t.step("a plugin's tool is called like a built-in", async () => {
      const result = await callTool(client, "climate_wind_chill", { tempC: -10, windKmh: 20 });
      assert.equal(result.isError, undefined);
      assert.deepEqual(result.structuredContent, { feelsLikeC: -17.9 });
    });

    await t.step("a tool the token does not grant is refused as a tool error", async () => {
      const result = await callTool(client, "hash", { text: "hi" });
      assert.equal(result.isError, true);
      assert.deepEqual(result.content, [{
        type: "text",
        text: 'Permission "tool:hash:invoke" is not granted to "mcp-test"',
      }]);
    });

    await t.step("invalid input is a tool error naming the problem", async () => {
      const result = await callTool(client, "echo", { text: 42 });
      assert.equal(result.isError, true);
      assert.deepEqual(result.content, [{
        type: "text",
        text: 'Invalid input for tool "echo": /text must be string',
      }]);
    });

    await t.step("an unknown tool is a protocol error", async () => {
      await assert.rejects(
        () => callTool(client, "nope", {}),
        /No tool named "nope" is registered/,
      );
      // The Toka name is not a wire name: a client calls the names it was given.
      await assert.rejects(
        () => callTool(client, "climate.wind_chill", {}),
        /No tool named "climate.wind_chill" is listed: its name on MCP is "climate_wind_chill"/,
      );
    });

    await t.step("closing its stdin ends the server by itself, exit 0", async () => {
      assert.equal(await endServer(transport), 0);
    });
  } finally {
    await client.close();
  }

  try {
    await t.step("the calls are in the vault's log", async () => {
      const events = await toolEvents(db);
      assert.deepEqual(events.map((e) => [e.kind, (e.payload as { tool: string }).tool]), [
        ["tool.invoked", "echo"],
        ["tool.completed", "echo"],
        ["tool.invoked", "climate.wind_chill"],
        ["tool.completed", "climate.wind_chill"],
        ["tool.denied", "hash"],
        ["tool.invoked", "echo"],
        ["tool.failed", "echo"],
      ]);
      assert.ok(events.every((e) => e.meta.source === "mcp"));
      assert.ok(!JSON.stringify(events).includes(token));
      assert.deepEqual(protocolErrors, [], "nothing but protocol on stdout");
      assert.match(stderr, /Serving 3 tools over MCP for "?mcp-test"?/, "logs go to stderr");
      assert.ok(!stderr.includes(token), "no token in the logs");
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("toka mcp serve refuses a missing or bad token in one line", async (t) => {
  const dir = await Deno.makeTempDir();
  const db = `${dir}/v.kv`;
  try {
    const token = await vaultWithToken(db, ["tool:echo:invoke"]);
    const serve = (env: Record<string, string>, at = db) =>
      serveOnce(["--db", at, "mcp", "serve"], env);

    await t.step("no token", async () => {
      assert.deepEqual(await serve({}), {
        code: 1,
        err: [
          'error: Missing token: set TOKA_TOKEN to a capability token ("toka auth issue" makes one)' +
          " or TOKA_TOKEN_FILE to a file holding one",
        ],
      });
    });

    await t.step("a bad token, never echoed", async () => {
      const forged = `${token.slice(0, -4)}AAAA`;
      assert.deepEqual(await serve({ TOKA_TOKEN: forged }), {
        code: 1,
        err: ["error: Invalid token: its signature does not match"],
      });
      const garbage = await serve({ TOKA_TOKEN: "garbage" });
      assert.equal(garbage.code, 1);
      assert.equal(garbage.err.length, 1);
      assert.match(garbage.err[0], /^error: Invalid token: it is not a well-formed compact JWS/);
    });

    await t.step("a missing vault is not created", async () => {
      const missing = `${dir}/missing.kv`;
      assert.deepEqual(await serve({ TOKA_TOKEN: token }, missing), {
        code: 1,
        err: [`error: No vault at "${missing}"`],
      });
      assert.equal(await Deno.stat(missing).then(() => true, () => false), false);
    });

    await t.step("an interrupt stops serving, exit 0", async () => {
      const interrupt = new AbortController();
      const io = {
        ...recordingIo({ env: { TOKA_TOKEN: token }, signal: interrupt.signal }),
        // A client that keeps the connection open and sends nothing.
        stdin: new ReadableStream<Uint8Array>({ pull: () => new Promise<void>(() => {}) }),
      };
      const serving = main(["--db", db, "mcp", "serve"], io);
      await new Promise((resolve) => setTimeout(resolve, 0));
      interrupt.abort();
      assert.equal(await serving, 0);
      assert.deepEqual([io.out, io.err], [[], []]);
    });

    await t.step("a valid token and a closed stdin: serves nothing, exits 0", async () => {
      assert.deepEqual(await serve({ TOKA_TOKEN: token }), { code: 0, err: [] });
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// What the Claude and OpenAI APIs accept as a tool name; MCP clients pass names on to them.
const MODEL_API_NAME = /^[a-zA-Z0-9_-]{1,64}$/;

/** The names and titles the README's MCP section says a client sees. */
function readmeWireNames(): string[][] {
  const block = section("## An MCP server: `toka mcp serve`").match(
    /client\s+sees\s+\(name,\s+then\s+title\):\s*```text\n([\s\S]*?)```/,
  );
  assert.ok(block, "the README's MCP section lists the names a client sees");
  return block[1].trim().split("\n").map((line) => line.split(/\s+/));
}

Deno.test("toka mcp serve: every tool it lists has a name model APIs accept, and answers to it", async (t) => {
  const dir = await Deno.makeTempDir();
  const db = `${dir}/v.kv`;
  const token = await vaultWithToken(db, ["tool:*:invoke"]);
  const config = readmeConfig(db, token);
  await using web = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () => new Response("ok"),
  );
  // The plugins of examples/plugins (a stdio, a module and an MCP plugin), and http.fetch.
  const examples = new URL("../../examples/plugins/", import.meta.url).pathname;
  const manifest = JSON.parse(await Deno.readTextFile(`${examples}plugins.json`));
  for (const plugin of Object.values(manifest.plugins) as { transport: Record<string, string> }[]) {
    const transport = plugin.transport;
    if (transport.type === "module") transport.module = `${examples}${transport.module}`;
    else transport.cwd = examples;
  }
  await Deno.writeTextFile(
    `${dir}/toka.json`,
    JSON.stringify({
      plugins: manifest.plugins,
      tools: { http: { allow: ["127.0.0.1"], allowPrivate: ["127.0.0.1"] } },
    }),
  );
  await trustProject(dir, config);
  // Each tool's input, by its Toka name, in an order that works (written before read).
  const inputs: Record<string, Record<string, unknown>> = {
    "echo": { text: "hi" },
    "hash": { text: "hi" },
    "now": {},
    "fs.write": { path: "a.txt", content: "a" },
    "fs.read": { path: "a.txt" },
    "fs.list": {},
    "fs.delete": { path: "a.txt" },
    "http.fetch": { url: `http://127.0.0.1:${web.addr.port}/` },
    "climate.wind_chill": { tempC: -10, windKmh: 20 },
    "weather.forecast": { city: "Oslo" },
    "notes.add_note": { text: "remember" },
    "notes.count_words": { text: "two words" },
  };
  const transport = new StdioClientTransport({ ...config, cwd: dir, stderr: "pipe" });
  const client = new Client({ name: "toka-test", version: "1.0.0" });
  const options = { timeout: TIMEOUT_MS };
  try {
    await client.connect(transport, options);
    const tools: McpTool[] = (await client.listTools(undefined, options)).tools;

    await t.step("each name matches the pattern, also behind a client's prefix", () => {
      for (const tool of tools) {
        assert.match(tool.name, MODEL_API_NAME);
        assert.match(`mcp__toka__${tool.name}`, MODEL_API_NAME);
      }
    });

    await t.step("each title is the tool's Toka name, and every tool is listed", () => {
      for (const tool of tools) assert.equal(tool.title?.replaceAll(".", "_"), tool.name);
      assert.deepEqual(tools.map((tool) => tool.title).sort(), Object.keys(inputs).sort());
    });

    await t.step("the MCP docs show the names a client sees", () => {
      assert.deepEqual(readmeWireNames(), tools.map((tool) => [tool.name, tool.title]));
    });

    await t.step("each tool answers to its listed name", async () => {
      const byTitle = new Map(tools.map((tool) => [tool.title, tool.name]));
      for (const [title, input] of Object.entries(inputs)) {
        const name = byTitle.get(title)!;
        const result = await callTool(client, name, input);
        assert.equal(result.isError, undefined, `${name}: ${JSON.stringify(result.content)}`);
      }
      const note = await callTool(client, byTitle.get("notes.add_note")!, { text: "again" });
      // The MCP server got "addNote", its own name: it kept both notes.
      assert.deepEqual(note.structuredContent, { count: 2 });
    });

    assert.equal(await endServer(transport), 0);
  } finally {
    await client.close();
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * `toka mcp serve` run in-process by `main(args, io, options)`, and the SDK's client connected
 * to its standard input and output through pipes. `stop()` closes the client's side, which ends
 * the server, and returns its exit code.
 */
async function serveInProcess(
  args: string[],
  options: MainOptions,
): Promise<{ client: Client; err: string[]; stop(): Promise<number> }> {
  const encoder = new TextEncoder();
  const toServer = new TransformStream<Uint8Array, Uint8Array>();
  const toClient = new TransformStream<Uint8Array, Uint8Array>();
  const serverOut = toClient.writable.getWriter();
  const clientOut = toServer.writable.getWriter();
  const io = {
    ...recordingIo({ env: { NO_COLOR: "1" } }),
    stdin: toServer.readable,
    stdout: (text: string) => void serverOut.write(encoder.encode(text)).catch(() => {}),
  };
  const serving = main(args, io, options);
  const transport = new LineTransport(
    toClient.readable,
    (text) => void clientOut.write(encoder.encode(text)).catch(() => {}),
  );
  const client = new Client({ name: "toka-test", version: "1.0.0" });
  try {
    await client.connect(transport, { timeout: TIMEOUT_MS });
  } catch (error) {
    await clientOut.close();
    throw new Error(`not served (exit ${await serving}): ${io.err.join("")}`, { cause: error });
  }
  return {
    client,
    err: io.err,
    async stop() {
      await clientOut.close();
      const code = await serving;
      await serverOut.close();
      await client.close();
      return code;
    },
  };
}

Deno.test("toka mcp serve --token-file: a refreshed file outlives any one token", async (t) => {
  const dir = await Deno.makeTempDir();
  const db = `${dir}/v.kv`;
  const file = `${dir}/mcp.token`;
  // A short life, as a day is in use; the server's clock is moved past it, not waited for.
  const TTL_SECS = 20;
  const first = await vaultWithToken(db, ["tool:echo:invoke", "tool:hash:invoke"], TTL_SECS);
  let now = Date.now();
  const clock = () => now;
  const expires = now + TTL_SECS * 1000;
  await Deno.writeTextFile(file, `${first}\n`, { mode: 0o600 });
  await Deno.chmod(file, 0o600);
  // The client configuration docs/mcp.md shows, run in-process on the temp files.
  const json = section("### A token that outlives a day: `--token-file`")
    .match(/```json\n([\s\S]*?)```/)![1];
  const shown = JSON.parse(json).mcpServers.toka as ClientConfig;
  assert.equal(shown.command, "toka");
  assert.equal(shown.env, undefined, "no token in the client's settings");
  assert.deepEqual(shown.args.slice(2, 5), ["mcp", "serve", "--token-file"]);
  const server = await serveInProcess(["--db", db, ...shown.args.slice(2, 5), file], { clock });
  const client = server.client;
  const options = { timeout: TIMEOUT_MS };
  const echo = () => callTool(client, "echo", { text: "hi" });
  let second = "";
  const names = async () =>
    (await client.listTools(undefined, options)).tools.map((tool: McpTool) => tool.name);
  try {
    await t.step("a call works with the file's token", async () => {
      assert.deepEqual(await names(), ["echo", "hash"]);
      assert.deepEqual((await echo()).structuredContent, { text: "hi" });
    });

    await t.step("once that token expires, calls are refused (the daily break)", async () => {
      now = expires + 1_500;
      const result = await echo();
      assert.equal(result.isError, true);
      assert.match(JSON.stringify(result.content), /expired/i);
    });

    await t.step(
      "the docs' refresh puts a new token in the file: used without restart",
      async () => {
        // The docs' command, its `toka ... > PATH.new` run in-process on the temp vault.
        const sh = section("### A token that outlives a day: `--token-file`")
          .match(/```sh\n([\s\S]*?)```/)![1].replaceAll("\\\n", " ");
        const words = sh.match(/toka (.*?) >/)![1].split(/\s+/);
        assert.deepEqual(words.slice(0, 2), ["--db", "/home/me/project/.toka/toka.kv"]);
        const io = recordingIo();
        assert.equal(
          await main(["--db", db, ...words.slice(2)], io, { clock }),
          0,
          io.err.join(""),
        );
        await Deno.writeTextFile(`${file}.new`, io.out.join(""), { mode: 0o600 });
        await Deno.rename(`${file}.new`, file);
        second = io.out.join("").trim();
        // It grants another set of tools: the next listing shows it.
        assert.deepEqual(await names(), ["echo"]);
        assert.deepEqual((await echo()).structuredContent, { text: "hi" });
        const hash = await callTool(client, "hash", { text: "hi" });
        assert.equal(hash.isError, true);
      },
    );

    await t.step("revoking the file's token refuses the next call", async () => {
      const payload = second.split(".")[1].replaceAll("-", "+").replaceAll("_", "/");
      const { jti } = JSON.parse(atob(payload));
      const io = recordingIo();
      assert.equal(
        await main(["--db", db, "auth", "revoke", jti], io, { clock }),
        0,
        io.err.join(""),
      );
      // Verification re-reads revocations at most once a second, by the server's clock.
      assert.equal((await echo()).isError, undefined, "not re-read yet");
      now += 1_500;
      const result = await echo();
      assert.equal(result.isError, true);
      assert.match(JSON.stringify(result.content), /revoked/i);
    });

    await t.step("a file that goes away is a tool error naming it, never the token", async () => {
      await Deno.remove(file);
      const result = await echo();
      assert.equal(result.isError, true);
      assert.deepEqual(result.content, [{ type: "text", text: `No token file at "${file}"` }]);
    });

    assert.equal(await server.stop(), 0);
    const stderr = server.err.join("");
    assert.ok(!stderr.includes(first) && !stderr.includes(second), "no token on stderr");
    assert.ok(!stderr.includes("open to other accounts"), stderr);
  } finally {
    await client.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("toka mcp serve --token-file refuses a bad file in one line", async (t) => {
  const dir = await Deno.makeTempDir();
  const db = `${dir}/v.kv`;
  try {
    const token = await vaultWithToken(db, ["tool:echo:invoke"]);
    const serve = (args: string[], env: Record<string, string> = {}) =>
      serveOnce(["--db", db, "mcp", "serve", ...args], env);

    await t.step("a missing file: exit 2, created by nothing", async () => {
      const missing = `${dir}/missing.token`;
      assert.deepEqual(await serve(["--token-file", missing]), {
        code: 2,
        err: [`error: No token file at "${missing}"`],
      });
      assert.equal(await Deno.stat(missing).then(() => true, () => false), false);
    });

    await t.step("a folder: exit 2", async () => {
      assert.deepEqual(await serve(["--token-file", dir]), {
        code: 2,
        err: [`error: The token file "${dir}" is a folder`],
      });
    });

    await t.step("an empty file: exit 1", async () => {
      await Deno.writeTextFile(`${dir}/empty.token`, "\n", { mode: 0o600 });
      assert.deepEqual(await serve([], { TOKA_TOKEN_FILE: `${dir}/empty.token` }), {
        code: 1,
        err: [`error: The token file "${dir}/empty.token" is empty`],
      });
    });

    await t.step("a bad token in the file, never echoed: exit 1", async () => {
      await Deno.writeTextFile(`${dir}/bad.token`, `${token.slice(0, -4)}AAAA`, { mode: 0o600 });
      assert.deepEqual(await serve(["--token-file", `${dir}/bad.token`]), {
        code: 1,
        err: ["error: Invalid token: its signature does not match"],
      });
    });

    await t.step("a file other accounts may read: served, with one warning line", async () => {
      const shared = `${dir}/shared.token`;
      await Deno.writeTextFile(shared, token);
      await Deno.chmod(shared, 0o644);
      // The flag wins over the variable.
      assert.deepEqual(
        await serve(["--token-file", shared], { TOKA_TOKEN_FILE: `${dir}/missing.token` }),
        {
          code: 0,
          err: [
            `The token file "${shared}" is open to other accounts (mode 0644): run chmod 600 on it`,
          ],
        },
      );
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
