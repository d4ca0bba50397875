// A toka.json that was found rather than named is not trusted until `toka trust` records it:
// it sends DENO_KV_ACCESS_TOKEN nowhere, and `tool`, `mcp serve`, `events` … start none of its
// plugins and import none of its modules. toka.json is looked for upwards, as git does, and the
// tools agents.ts exports are offered by `tool` and `mcp serve` when the config may be loaded.
import assert from "node:assert/strict";
import { join } from "node:path";
import { main } from "../../cli.ts";
import { KvTokenAuthority } from "../../auth/mod.ts";
import { openVault } from "../../vault/mod.ts";
import { exists, recordingIo, runToka as toka } from "./_fakes.ts";
import { toka as tokaProcess } from "./_process.ts";
import { example } from "../docs/_readme.ts";

const WEATHER = new URL("../../examples/plugins/weather_stdio.ts", import.meta.url).href;
const TOOLKIT = new URL("../../toolkit/mod.ts", import.meta.url).href;
const RUNTIME = new URL("../../runtime/mod.ts", import.meta.url).href;
const decoder = new TextDecoder();

/** A TCP listener on 127.0.0.1 that records every connection and what came first on it. */
function fakeServer() {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const received: string[] = [];
  const accepting = (async () => {
    try {
      for await (const conn of listener) {
        const buffer = new Uint8Array(8192);
        const n = await conn.read(buffer).catch(() => null);
        received.push(n === null ? "" : decoder.decode(buffer.subarray(0, n)));
        try {
          conn.close();
        } catch {
          // Already closed by the other side.
        }
      }
    } catch {
      // The listener was closed.
    }
  })();
  return {
    port: listener.addr.port,
    received,
    async close() {
      listener.close();
      await accepting;
    },
  };
}

/** Names of the tools `toka --json tool list` prints. */
function names(out: string): string[] {
  return (JSON.parse(out) as { name: string }[]).map((tool) => tool.name);
}

Deno.test("a discovered toka.json is not trusted until toka trust", async (t) => {
  const dir = await Deno.realPath(await Deno.makeTempDir());
  const project = join(dir, "cloned");
  await Deno.mkdir(join(project, "src", "deep"), { recursive: true });
  const config = join(project, "toka.json");
  const trustFile = join(dir, "home", "trusted.json");
  const env = { TOKA_TRUST_FILE: trustFile };
  const marker = join(dir, "plugin-started");
  const moduleMarker = join(dir, "module-imported");
  // A stdio plugin that leaves a marker when it starts, then serves the weather tools.
  await Deno.writeTextFile(
    join(project, "plugin.ts"),
    `Deno.writeTextFileSync(${JSON.stringify(marker)}, "started");
await import(${JSON.stringify(WEATHER)});`,
  );
  // The project's agents module: one agent and one tool, and a marker when imported.
  await Deno.writeTextFile(
    join(project, "agents.ts"),
    `import { defineTool } from ${JSON.stringify(TOOLKIT)};
import { defineAgent } from ${JSON.stringify(RUNTIME)};
Deno.writeTextFileSync(${JSON.stringify(moduleMarker)}, "imported");
export const shout = defineTool({
  name: "shout", description: "Upper-cases text", version: "1.0.0",
  inputSchema: { type: "object", properties: { text: { type: "string" } }, required: ["text"] },
  execute: ({ text }: { text: string }) => ({ text: text.toUpperCase() }),
});
export const greeter = defineAgent({ name: "greeter", subscribe: ["x"], handle() {} });`,
  );
  const planted = {
    agents: ["./agents.ts"],
    plugins: {
      weather: {
        transport: {
          type: "stdio",
          command: Deno.execPath(),
          args: ["run", "-A", "--quiet", "plugin.ts"],
        },
      },
    },
  };
  const plant = (value: unknown) => Deno.writeTextFile(config, JSON.stringify(value, null, 2));
  const server = fakeServer();
  try {
    await t.step("an http db in a discovered file: refused, the URL never contacted", async () => {
      await plant({ db: `http://127.0.0.1:${server.port}` });
      const result = await tokaProcess(["events", "list"], {
        cwd: project,
        env: { ...env, DENO_KV_ACCESS_TOKEN: "kv-secret-token" },
      });
      assert.deepEqual(server.received, [], "the listener was contacted");
      assert.equal(result.code, 2, result.err);
      assert.deepEqual(result.err.trim().split("\n"), [
        `error: Invalid field "db" in config "${config}": a remote vault must be an https:// URL (plain http would send DENO_KV_ACCESS_TOKEN in clear); name a local denokv with --db or TOKA_DB`,
      ]);
      assert.ok(!result.err.includes("kv-secret-token"));
    });

    await t.step("an https db in an untrusted discovered file: refused, nothing sent", async () => {
      await plant({ db: `https://127.0.0.1:${server.port}` });
      const result = await tokaProcess(["events", "list"], {
        cwd: project,
        env: { ...env, DENO_KV_ACCESS_TOKEN: "kv-secret-token" },
      });
      assert.deepEqual(server.received, [], "the listener was contacted");
      assert.equal(result.code, 1, result.err);
      assert.deepEqual(result.err.trim().split("\n"), [
        `error: Untrusted config "${config}" names the remote vault "https://127.0.0.1:${server.port}": DENO_KV_ACCESS_TOKEN goes only to a vault named by --db or TOKA_DB or by a trusted config; check the file, then run "toka trust"`,
      ]);
    });

    await t.step("after toka trust, the https db is used", async () => {
      const trusted = await toka(["trust"], { cwd: project, env });
      assert.equal(trusted.code, 0, trusted.errLines.join("\n"));
      const result = await tokaProcess(["events", "list"], {
        cwd: project,
        env: { ...env, DENO_KV_ACCESS_TOKEN: "kv-secret-token" },
      });
      assert.equal(result.code, 1);
      assert.equal(server.received.length > 0, true, "the vault was not even tried");
      server.received.length = 0;
    });

    await t.step("tool list starts no plugin and imports no module of the file", async () => {
      await plant(planted);
      const { code, out, errLines } = await toka(["--json", "tool", "list"], {
        cwd: project,
        env,
      });
      assert.equal(code, 0, errLines.join("\n"));
      assert.ok(names(out).includes("echo"));
      assert.ok(!names(out).includes("weather.forecast"));
      assert.ok(!names(out).includes("shout"));
      assert.equal(await exists(marker), false, "the plugin was started");
      assert.equal(await exists(moduleMarker), false, "the module was imported");
      assert.deepEqual(errLines, [
        `note: untrusted config "${config}": did not start its plugins nor import its agents modules; check the file, then run "toka trust" (or name it with --config)`,
      ]);
    });

    await t.step("from a subfolder too, and events list runs no plugin either", async () => {
      const { code, errLines } = await toka(["--json", "tool", "list"], {
        cwd: join(project, "src", "deep"),
        env,
      });
      assert.equal(code, 0);
      assert.equal(errLines.length, 1);
      assert.match(errLines[0], new RegExp(`"${config}"`));
      assert.equal(await exists(marker), false);
    });

    await t.step("toka trust: then the plugin and the agents' tools load", async () => {
      const trusted = await toka(["trust"], { cwd: join(project, "src"), env });
      assert.equal(trusted.code, 0, trusted.errLines.join("\n"));
      assert.match(trusted.out, new RegExp(`^Trusted "${config}" \\(sha256:[0-9a-f]{64}\\)`));
      // The output has the README's shape: what the file may now start and import.
      const readme = example("## Settings and toka.json", "sh").split("\n")
        .filter((line) => line.startsWith("# ")).map((line) => line.slice(2));
      const shape = [
        /^Trusted "\/\S+\/toka\.json" \(sha256:(…|[0-9a-f]{64})\) in "\/\S+\/trusted\.json"$/,
        /^ {2}plugin "weather" \(stdio\): starts \S*deno run /,
        /^ {2}agents: imports \/\S+\/agents\.ts$/,
      ];
      for (const lines of [readme, trusted.out.trimEnd().split("\n")]) {
        assert.equal(lines.length, shape.length, lines.join("\n"));
        lines.forEach((line, i) => assert.match(line, shape[i]));
      }
      const { code, out, errLines } = await toka(["--json", "tool", "list"], {
        cwd: project,
        env,
      });
      assert.equal(code, 0, errLines.join("\n"));
      assert.deepEqual(errLines, []);
      assert.ok(names(out).includes("weather.forecast"), out);
      assert.ok(names(out).includes("shout"), out);
      assert.equal(await exists(marker), true);
      assert.equal(await exists(moduleMarker), true);
      await Deno.remove(marker);
    });

    await t.step("an edited file is untrusted again", async () => {
      await Deno.writeTextFile(config, `${await Deno.readTextFile(config)}\n`);
      const { code, out, errLines } = await toka(["--json", "tool", "list"], {
        cwd: project,
        env,
      });
      assert.equal(code, 0);
      assert.ok(!names(out).includes("weather.forecast"));
      assert.equal(errLines.length, 1);
      assert.equal(await exists(marker), false);
    });

    await t.step("a file named by --config or TOKA_CONFIG is trusted", async () => {
      const other = { TOKA_TRUST_FILE: join(dir, "elsewhere", "trusted.json") };
      for (
        const [args, extra] of [
          [["--config", "toka.json"], {}],
          [[], { TOKA_CONFIG: config }],
        ] as const
      ) {
        const { code, out, errLines } = await toka([...args, "--json", "tool", "list"], {
          cwd: project,
          env: { ...other, ...extra },
        });
        assert.equal(code, 0, errLines.join("\n"));
        assert.deepEqual(errLines, []);
        assert.ok(names(out).includes("weather.forecast"));
        assert.equal(await exists(marker), true);
        await Deno.remove(marker);
      }
      assert.equal(await exists(other.TOKA_TRUST_FILE), false, "naming a file records nothing");
    });

    await t.step("an http db is refused in a named file too", async () => {
      await plant({ db: "http://127.0.0.1:1" });
      const { code, errLines } = await toka(["--config", config, "events", "list"], {
        cwd: dir,
        env,
      });
      assert.equal(code, 2);
      assert.equal(errLines.length, 1);
      assert.match(errLines[0], /must be an https:\/\/ URL/);
      // --db names what the user chose: a local denokv over http stays possible there.
      await plant({});
    });
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("toka trust refuses what it cannot trust, and records nothing then", async (t) => {
  const dir = await Deno.realPath(await Deno.makeTempDir());
  const trustFile = join(dir, "conf", "trusted.json");
  const env = { TOKA_TRUST_FILE: trustFile };
  try {
    await t.step("no toka.json here or above", async () => {
      const { code, errLines } = await toka(["trust"], { cwd: dir, env });
      assert.equal(code, 1);
      assert.deepEqual(errLines, [
        `error: No toka.json in "${dir}" or above it: name the file ("toka trust path/to/toka.json")`,
      ]);
    });

    await t.step("a missing file", async () => {
      const { code, errLines } = await toka(["trust", "nope.json"], { cwd: dir, env });
      assert.equal(code, 2);
      assert.equal(errLines.length, 1);
      assert.match(errLines[0], /^error: Cannot read config ".*nope\.json": /);
    });

    await t.step("an invalid file: its first bad field", async () => {
      await Deno.writeTextFile(join(dir, "toka.json"), JSON.stringify({ db: "http://x" }));
      const { code, errLines } = await toka(["trust"], { cwd: dir, env });
      assert.equal(code, 2);
      assert.equal(errLines.length, 1);
      assert.match(errLines[0], /Invalid field "db" in config/);
    });

    await t.step("nowhere to record it", async () => {
      await Deno.writeTextFile(join(dir, "toka.json"), "{}");
      const { code, errLines } = await toka(["trust"], { cwd: dir, env: {} });
      assert.equal(code, 1);
      assert.deepEqual(errLines, [
        "error: Nowhere to record trusted configs: set TOKA_TRUST_FILE, XDG_CONFIG_HOME or HOME",
      ]);
    });

    await t.step("an unreadable trust file is left as it was", async () => {
      await Deno.mkdir(join(dir, "conf"));
      await Deno.writeTextFile(trustFile, "not json");
      const { code, errLines } = await toka(["trust"], { cwd: dir, env });
      assert.equal(code, 1);
      assert.equal(errLines.length, 1);
      assert.match(errLines[0], /^error: Cannot read the trusted configs in ".*trusted\.json": /);
      assert.equal(await Deno.readTextFile(trustFile), "not json");
      await Deno.remove(join(dir, "conf"), { recursive: true });
    });

    assert.equal(await exists(trustFile), false);

    await t.step("the record: outside the folder, private, keyed by real path", async () => {
      const { code } = await toka(["--json", "trust"], { cwd: dir, env });
      assert.equal(code, 0);
      assert.equal((await Deno.stat(trustFile)).mode! & 0o077, 0);
      assert.equal((await Deno.stat(join(dir, "conf"))).mode! & 0o077, 0);
      const record = JSON.parse(await Deno.readTextFile(trustFile));
      assert.deepEqual(Object.keys(record.trusted), [join(dir, "toka.json")]);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("toka.json is looked for upwards; its paths are relative to it", async (t) => {
  const dir = await Deno.realPath(await Deno.makeTempDir());
  const deep = join(dir, "a", "b");
  await Deno.mkdir(deep, { recursive: true });
  try {
    await t.step("the vault of a parent folder's toka.json", async () => {
      await Deno.writeTextFile(join(dir, "toka.json"), JSON.stringify({ db: "data/v.kv" }));
      const vault = await openVault(join(dir, "data", "v.kv"));
      await vault.append("s", [{ kind: "a" }]);
      await vault.close();
      const { code, out, errLines } = await toka(["--json", "events", "stats"], { cwd: deep });
      assert.equal(code, 0, errLines.join("\n"));
      assert.equal(JSON.parse(out).events, 1);
    });

    await t.step("without db in it, the default vault beside the file", async () => {
      await Deno.writeTextFile(join(dir, "toka.json"), "{}");
      const vault = await openVault(join(dir, ".toka", "toka.kv"));
      await vault.append("s", [{ kind: "a" }, { kind: "b" }]);
      await vault.close();
      const { code, out, errLines } = await toka(["--json", "events", "stats"], { cwd: deep });
      assert.equal(code, 0, errLines.join("\n"));
      assert.equal(JSON.parse(out).events, 2);
      assert.equal(await exists(join(deep, ".toka")), false);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("toka mcp serve offers agents.ts's tools when the config may be loaded", async (t) => {
  const dir = await Deno.realPath(await Deno.makeTempDir());
  const trustFile = join(dir, "trusted.json");
  await Deno.writeTextFile(
    join(dir, "mcp_agents.ts"),
    `import { defineTool } from ${JSON.stringify(TOOLKIT)};
export const whisper = defineTool({
  name: "whisper", description: "Lower-cases text", version: "1.0.0",
  inputSchema: { type: "object", properties: { text: { type: "string" } }, required: ["text"] },
  execute: ({ text }: { text: string }) => ({ text: text.toLowerCase() }),
});`,
  );
  await Deno.writeTextFile(
    join(dir, "toka.json"),
    JSON.stringify({ db: "v.kv", agents: ["./mcp_agents.ts"] }),
  );
  const vault = await openVault(join(dir, "v.kv"));
  const auth = await KvTokenAuthority.open(vault.kv!, { masterKey: undefined });
  const token = await auth.issue({ sub: "mcp", permissions: ["tool:*:invoke"] });
  await vault.close();
  const serve = async () => {
    let input!: ReadableStreamDefaultController<Uint8Array>;
    const io = {
      ...recordingIo({ env: { TOKA_TOKEN: token, TOKA_TRUST_FILE: trustFile } }),
      stdin: new ReadableStream<Uint8Array>({ start: (c) => void (input = c) }),
    };
    const send = (message: unknown) =>
      input.enqueue(new TextEncoder().encode(`${JSON.stringify(message)}\n`));
    const serving = main(["mcp", "serve"], io, { cwd: dir });
    send({
      jsonrpc: "2.0",
      id: 1,
      method: "initialize",
      params: {
        protocolVersion: "2025-06-18",
        capabilities: {},
        clientInfo: { name: "t", version: "1" },
      },
    });
    await io.waitForLines(1);
    send({ jsonrpc: "2.0", method: "notifications/initialized" });
    send({ jsonrpc: "2.0", id: 2, method: "tools/list" });
    await io.waitForLines(2);
    input.close();
    assert.equal(await serving, 0, io.err.join(""));
    const listed = JSON.parse(io.outLines()[1]).result.tools as { name: string }[];
    return { tools: listed.map((tool) => tool.name), err: io.errLines() };
  };
  try {
    await t.step("untrusted: the built-ins only, and one line saying why", async () => {
      const { tools, err } = await serve();
      assert.ok(tools.includes("echo"));
      assert.ok(!tools.includes("whisper"));
      assert.equal(err.length, 1);
      assert.match(err[0], /^note: untrusted config ".*toka\.json": did not import its agents/);
    });

    await t.step("trusted: agents.ts's tools beside the built-ins", async () => {
      const trusted = await toka(["trust"], { cwd: dir, env: { TOKA_TRUST_FILE: trustFile } });
      assert.equal(trusted.code, 0, trusted.errLines.join("\n"));
      const { tools, err } = await serve();
      assert.deepEqual(err, []);
      assert.ok(tools.includes("whisper"), tools.join());
      assert.ok(tools.includes("echo"));
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
