// One child process for the Node tests, run the same way under both runtimes:
// `deno run -A tests/node/_child.ts MODE ...` and, once built by
// scripts/build_node.ts, `node .node-build/tests/node/_child.js MODE ...`.
// It uses only the package's public entry points and node: built-ins, and
// prints its result as one JSON line.
import assert from "node:assert/strict";
import process from "node:process";
import { isDeepStrictEqual } from "node:util";
import { lstat, mkdir, stat, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createRuntime } from "@toka/runtime";
import { defineAgent, type EventRecord, VersionConflictError } from "@toka/runtime/runtime";
import { KvCheckpointStore, KvLeaseStore, Runtime } from "@toka/runtime/runtime";
import { KvTokenAuthority } from "@toka/runtime/auth";
import {
  createHttpFetchTool,
  createModelChatTool,
  parsePluginManifest,
  ToolRegistry,
} from "@toka/runtime/toolkit";
import { createServer, type Server } from "node:http";
import { forkVault, openVault } from "@toka/runtime/vault";

const [mode, db, ...rest] = process.argv.slice(2);
const print = (value: unknown) => console.log(JSON.stringify(value));
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function collect(iterable: AsyncIterable<EventRecord>): Promise<EventRecord[]> {
  const out: EventRecord[] = [];
  for await (const event of iterable) out.push(event);
  return out;
}

// The crash scenario: `produce` emits the tasks and handles them slowly until
// it is killed; `resume` handles what is left and prints what it handled.
async function crash(resume: boolean, count: number): Promise<void> {
  const store = await openVault(db);
  const kv = store.kv;
  // The killed process keeps its agent's lease until it expires: a short one lets `resume` go on.
  const runtime = await Runtime.create({
    vault: store,
    checkpoints: new KvCheckpointStore(kv),
    leases: new KvLeaseStore(kv),
    agentLeaseSecs: 1,
  });
  const handled: number[] = [];
  runtime.register(defineAgent({
    name: "worker",
    subscribe: ["task.created"],
    async handle(event, ctx) {
      const n = (event.payload as { n: number }).n;
      await ctx.emit({ kind: "task.started", payload: { n } });
      await sleep(3);
      await ctx.emit({ kind: "task.done", payload: { n } });
      handled.push(n);
      if (!resume) console.log(`handled ${n}`);
    },
  }));
  await runtime.start();
  if (!resume) {
    for (let n = 1; n <= count; n++) await runtime.emit({ kind: "task.created", payload: { n } });
    console.log("produced");
    await new Promise(() => {}); // Runs until killed.
  }
  const [last] = await collect(
    store.read({ kinds: ["task.created"], direction: "backward", limit: 1 }),
  );
  while (runtime.agents()[0].position !== last.position) await sleep(5);
  await runtime.stop();
  await store.close();
  print(handled);
}

// Appends `count` events to `stream` one at a time, each with the version it
// read as expected version; a conflict (another process got there first)
// reads again and retries.
async function append(stream: string, count: number, tag: string, peer?: string): Promise<void> {
  const store = await openVault(db);
  if (peer !== undefined) {
    // Start together with the peer process: say so, then wait for it to say so.
    await writeFile(`${db}.${tag}.ready`, "");
    while (!(await stat(`${db}.${peer}.ready`).then(() => true, () => false))) await sleep(5);
  }
  let conflicts = 0;
  const latest = async () =>
    (await collect(store.read({ stream, direction: "backward", limit: 1 })))[0]?.version ?? 0;
  let version = await latest();
  for (let i = 1; i <= count; i++) {
    for (;;) {
      try {
        const result = await store.append(stream, [{ kind: "note.added", payload: { tag, i } }], {
          expectedVersion: version,
        });
        version = result.version;
        break;
      } catch (error) {
        if (!(error instanceof VersionConflictError)) throw error;
        conflicts++;
        version = await latest();
      }
    }
  }
  await store.close();
  print({ appended: count, conflicts });
}

// Everything a test needs to compare what two runtimes see.
async function check(): Promise<void> {
  const store = await openVault(db, { create: false });
  const verdict = await store.verify();
  const events = await collect(store.read());
  const head = await store.head();
  await store.close();
  print({
    ok: verdict.ok,
    checked: verdict.checked,
    problems: verdict.problems,
    head,
    events: events.map((e) => [e.stream, e.version, e.position, e.digest, e.kind, e.payload]),
  });
}

async function tokens(action: string, args: string[]): Promise<void> {
  const store = await openVault(db);
  const auth = await KvTokenAuthority.open(store.kv, { vault: "shared", masterKey: undefined });
  try {
    if (action === "issue") {
      print(await auth.issue({ sub: args[0], permissions: ["tool:echo:invoke"], ttlSecs: 600 }));
    } else if (action === "verify") {
      const claims = await auth.verify(args[0]).catch((error: Error) => ({ error: error.message }));
      print(claims);
    } else if (action === "rotate") {
      const kids: string[] = [];
      for (let i = 0; i < Number(args[0]); i++) kids.push((await auth.rotate()).kid);
      print(kids);
    } else {
      const status = await auth.status();
      print(status.secrets.map((s) => ({ kid: s.kid, state: s.state })));
    }
  } finally {
    await store.close();
  }
}

// A tool call from an agent, checked against its token and recorded, with
// the fs tools' path rules: an escaping path and a link below the root are refused.
async function tool(root: string): Promise<void> {
  await mkdir(join(root, "files"), { recursive: true });
  await symlink("/etc", join(root, "files", "link"));
  const vault = await openVault(db);
  const runtime = await createRuntime({
    vault,
    fs: { root: join(root, "files") },
    auth: { masterKey: null },
  });
  const results: unknown[] = [];
  runtime.register(defineAgent({
    name: "writer",
    subscribe: ["job.start"],
    permissions: ["tool:fs.write:invoke", "tool:fs.read:invoke"],
    async handle(_event, ctx) {
      const call = (name: string, input: unknown) =>
        ctx.tools.call(name, input).catch((error: Error) => ({ error: error.message }));
      results.push(await call("fs.write", { path: "notes/a.txt", content: "from node" }));
      results.push(await call("fs.read", { path: "notes/a.txt" }));
      results.push(await call("fs.read", { path: "../secret" }));
      results.push(await call("fs.read", { path: "link/hostname" }));
      results.push(await call("fs.list", {}));
    },
  }));
  await runtime.start();
  await runtime.emit({ kind: "job.start" });
  while (results.length < 5) await sleep(5);
  await runtime.close();
  const kinds = (await collect(vault.read({ stream: "toolkit" }))).map((e) => e.kind);
  await vault.close();
  const onDisk = (await lstat(join(root, "files", "notes", "a.txt"))).size;
  print({ results, kinds, onDisk });
}

// http.fetch under this runtime's node:http: a resolver answers 127.0.0.2 for the check and
// 127.0.0.1 afterwards (DNS rebinding), with a server on each address at one port, and
// HTTP_PROXY points at a third server. Prints which servers were reached.
async function httpFetch(): Promise<void> {
  const hits: string[] = [];
  const listen = (host: string, port: number, name: string) =>
    new Promise<Server>((resolve, reject) => {
      const server = createServer((req, res) => {
        hits.push(`${name} ${req.headers.host}`);
        res.end(name);
      });
      server.once("error", reject);
      server.listen(port, host, () => resolve(server));
    });
  let checked: Server, rebound: Server | undefined, port: number;
  do { // until the port 127.0.0.2 got is free on 127.0.0.1 too
    checked = await listen("127.0.0.2", 0, "checked");
    port = (checked.address() as { port: number }).port;
    rebound = await listen("127.0.0.1", port, "rebound").catch(() => checked.close() && undefined);
  } while (rebound === undefined);
  const proxy = await listen("127.0.0.3", 0, "proxy");
  process.env.HTTP_PROXY = `http://127.0.0.3:${(proxy.address() as { port: number }).port}`;
  process.env.http_proxy = process.env.HTTP_PROXY;
  const calls: string[] = [];
  const tools = new ToolRegistry({
    tools: [createHttpFetchTool({
      allow: ["rebind.test"],
      allowPrivate: ["127.0.0.2"],
      resolve: (host) => {
        calls.push(host);
        return Promise.resolve([calls.length === 1 ? "127.0.0.2" : "127.0.0.1"]);
      },
    })],
  });
  const out = await tools.call("http.fetch", { url: `http://rebind.test:${port}/` }) as {
    body: string;
  };
  for (const server of [checked, rebound, proxy]) server.close();
  print({ body: out.body, hits: hits.map((hit) => hit.replace(`:${port}`, ":PORT")), calls });
}

// A stdio plugin started by this runtime (node:child_process under Node): a call, a bad
// input refused by the plugin's schema, and the events recorded.
async function plugin(command: string, script: string): Promise<void> {
  const vault = await openVault(db);
  const plugins = parsePluginManifest({
    plugins: {
      weather: { transport: { type: "stdio", command, args: ["run", "--quiet", script] } },
    },
  }, "node test");
  const runtime = await createRuntime({ vault, plugins, auth: { masterKey: null } });
  const auth = await KvTokenAuthority.open(vault.kv, { masterKey: undefined });
  const token = await auth.issue({ sub: "node", permissions: ["tool:weather.forecast:invoke"] });
  const forecast = await runtime.tools.call("weather.forecast", { city: "Oslo" }, { token });
  const bad = await runtime.tools.call("weather.forecast", { days: 1 }, { token })
    .catch((error: Error) => error.name);
  await runtime.close();
  const kinds = (await collect(vault.read({ stream: "toolkit" }))).map((e) => e.kind);
  await vault.close();
  print({ forecast, bad, kinds });
}

async function checkpoint(): Promise<void> {
  const store = await openVault(db, { create: false });
  const saved = await new KvCheckpointStore(store.kv).load(rest[0]);
  await store.close();
  print(saved?.position ?? null);
}

// An agent's ctx.state: `state write N` has a counter handle N ticks; `state read`
// prints what runtime.stateAt reads back, at each tick and at the head.
async function agentState(write: boolean, count: number): Promise<void> {
  const store = await openVault(db);
  const runtime = await Runtime.create({ vault: store });
  if (write) {
    runtime.register(defineAgent({
      name: "counter",
      subscribe: ["tick"],
      handle(_event, ctx) {
        ctx.state.set({ count: (ctx.state.get<{ count: number }>()?.count ?? 0) + 1 });
      },
    }));
    for (let n = 0; n < count; n++) await runtime.emit({ kind: "tick" });
    await runtime.start();
    await runtime.stop();
  }
  const ticks = await collect(store.read({ kinds: ["tick"] }));
  const states = [];
  for (const tick of ticks) states.push(await runtime.stateAt("counter", tick.position));
  states.push(await runtime.stateAt("counter"));
  await store.close();
  print(states);
}

// Every kind of value Toka keeps in KV, written by one runtime and read by the other.
const VALUES: Record<string, unknown> = {
  text: "héllo ✓ 𝄞",
  long: "x".repeat(60_000),
  int: -7,
  u32: 4_000_000_000,
  double: 1.5,
  big: 12_345_678_901_234_567_890n,
  flags: [true, false, null],
  object: { a: 1, b: [1, { c: "d" }], bytes: new Uint8Array([1, 2, 3]) },
  bytes: new Uint8Array([0, 255, 7]),
  date: new Date(1_767_225_600_000),
};

async function values(write: boolean): Promise<void> {
  const store = await openVault(db);
  const kv = store.kv;
  if (write) {
    for (const [key, value] of Object.entries(VALUES)) await kv.set(["values", key], value);
  }
  const seen: string[] = [];
  for (const [key, value] of Object.entries(VALUES)) {
    const read = (await kv.get(["values", key])).value;
    try {
      assert.deepStrictEqual(read, value);
      seen.push(key);
    } catch {
      seen.push(`${key}: ${String(read).slice(0, 40)}`);
    }
  }
  // The same values through list() and getMany().
  const listed = new Map<string, unknown>();
  for await (const entry of kv.list({ prefix: ["values"] })) {
    listed.set(entry.key[1] as string, entry.value);
  }
  const many = await kv.getMany(Object.keys(VALUES).map((key) => ["values", key]));
  for (const [i, [key, value]] of Object.entries(VALUES).entries()) {
    if (!isDeepStrictEqual(listed.get(key), value)) seen.push(`${key}: differs in list()`);
    if (!isDeepStrictEqual(many[i].value, value)) seen.push(`${key}: differs in getMany()`);
  }
  await store.close();
  print(seen);
}

// model.chat against a Chat Completions endpoint served here by node:http, the key read from
// the environment the way the runtime reads it (process.env on Node, Deno.env on Deno).
async function modelChat(): Promise<void> {
  const seen: { auth?: string; model?: unknown }[] = [];
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (chunk) => body += chunk);
    req.on("end", () => {
      seen.push({ auth: req.headers.authorization, model: JSON.parse(body).model });
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({
        id: "chatcmpl-node",
        model: "node-model",
        choices: [{
          index: 0,
          message: { role: "assistant", content: "hi" },
          finish_reason: "stop",
        }],
      }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  process.env.TOKA_NODE_TEST_KEY = "sk-from-env";
  const tools = new ToolRegistry({
    tools: [createModelChatTool({
      baseUrl: `http://127.0.0.1:${(server.address() as { port: number }).port}/v1`,
      model: "node-model",
      apiKeyEnv: "TOKA_NODE_TEST_KEY",
    })],
  });
  const reply = await tools.call("model.chat", { messages: [{ role: "user", content: "Hi" }] });
  server.close();
  print({ reply, seen });
}

// Forks `db` at a position into a new file: what forkVault returns.
async function fork(at: string, into: string): Promise<void> {
  print(await forkVault(db, { at, into }));
}

if (mode === "produce" || mode === "resume") await crash(mode === "resume", Number(rest[0]));
else if (mode === "append") await append(rest[0], Number(rest[1]), rest[2], rest[3]);
else if (mode === "check") await check();
else if (mode === "values") await values(rest[0] === "write");
else if (mode === "checkpoint") await checkpoint();
else if (mode === "tokens") await tokens(rest[0], rest.slice(1));
else if (mode === "tool") await tool(rest[0]);
else if (mode === "plugin") await plugin(rest[0], rest[1]);
else if (mode === "http") await httpFetch();
else if (mode === "model") await modelChat();
else if (mode === "state") await agentState(rest[0] === "write", Number(rest[1]));
else if (mode === "fork") await fork(rest[0], rest[1]);
else throw new TypeError(`Unknown mode "${mode}"`);
