// Plugins in createRuntime, and the README's Plugins example run as a user runs it.
import assert from "node:assert/strict";
import { createRuntime, defineAgent, type EventRecord, openVault } from "../../mod.ts";
import { example } from "../docs/_readme.ts";

const root = new URL("../../", import.meta.url);
const manifest = new URL("examples/plugins/plugins.json", root).pathname;
const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

Deno.test("createRuntime({ plugins }): an agent calls a plugin's tool, recorded in the log", async () => {
  await using vault = await openVault(":memory:");
  const runtime = await createRuntime({ vault, plugins: manifest, auth: { masterKey: null } });
  try {
    const seen = Promise.withResolvers<EventRecord>();
    runtime.register(defineAgent({
      name: "forecaster",
      subscribe: ["trip.planned"],
      permissions: ["tool:weather.forecast:invoke"],
      async handle(event, ctx) {
        const forecast = await ctx.tools.call("weather.forecast", { city: event.payload });
        await ctx.emit({ kind: "trip.forecast", payload: forecast });
        // Not granted: refused like a built-in.
        await ctx.tools.call("notes.add_note", { text: "x" }).catch(() => {});
      },
    }));
    const sub = runtime.subscribe("trip.forecast", (event) => seen.resolve(event));
    await runtime.start();
    await runtime.emit({ kind: "trip.planned", payload: "Oslo" });
    const event = await seen.promise;
    await sub.close();
    await runtime.stop();
    assert.deepEqual(event.payload, { city: "Oslo", days: [{ day: 0, sky: "snow", tempC: 3 }] });
    const tools = [];
    for await (const e of vault.readStream("toolkit")) {
      tools.push([e.kind, (e.payload as { tool: string }).tool]);
    }
    assert.deepEqual(tools, [
      ["tool.invoked", "weather.forecast"],
      ["tool.completed", "weather.forecast"],
      ["tool.denied", "notes.add_note"],
    ]);
  } finally {
    await runtime.close();
  }
  assert.equal(runtime.tools.get("weather.forecast"), undefined, "close() unloads the plugins");
});

Deno.test("createRuntime({ plugins }) with a bad manifest opens nothing", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/plugins.json`;
    await Deno.writeTextFile(path, '{ "plugins": { "w": { "transport": { "type": "ftp" } } } }');
    await assert.rejects(createRuntime({ db: `${dir}/toka.kv`, plugins: path }), {
      message: `Invalid plugin manifest ${
        JSON.stringify(path)
      }: plugins.w.transport.type must be one of "module", "stdio", "http", "mcp"`,
    });
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["plugins.json"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("README: the Plugins example prints what its comments say", async () => {
  // The manifest shown is the one the example loads.
  const shown = JSON.parse(example("# Plugins", "json"));
  assert.deepEqual(shown, JSON.parse(await Deno.readTextFile(manifest)));
  const code = example("# Plugins");
  const dir = await Deno.makeTempDir();
  try {
    // As a user in a checkout runs it: from the checkout's root, importing the package by path.
    const file = `${dir}/example.ts`;
    await Deno.writeTextFile(
      file,
      code.replace(/"@toka\/runtime"/g, JSON.stringify(new URL("mod.ts", root).href)),
    );
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--quiet", "--config", new URL("deno.json", root).pathname, file],
      cwd: root.pathname,
      env: { TOKA_MASTER_KEY: "" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(output.code, 0, decode(output.stderr));
    const expected = [...code.matchAll(/console\.log\(.*\);(?: \/\/ (.*))?\n(?:\/\/ (.*)\n)?/g)]
      .map((m) => m[1] ?? m[2]);
    assert.equal(expected.length, 2);
    const squash = (text: string) => text.replace(/\s+/g, " ").trim();
    assert.equal(squash(decode(output.stdout)), squash(expected.join("\n")));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
