// The README's library examples, run as a user runs them (a module of their
// own, importing the package by name) and checked for what they print or store.
import assert from "node:assert/strict";
import { openVault } from "../../vault/mod.ts";
import { decode, example, run } from "./_readme.ts";

const root = new URL("../../", import.meta.url);
/** Runs `main.ts` in a project of its own, configured only by its own deno.json. */
async function runProject(
  dir: string,
  config: unknown,
  code: string,
): Promise<{ code: number; out: string; err: string }> {
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(`${dir}/deno.json`, JSON.stringify(config, null, 2));
  await Deno.writeTextFile(`${dir}/main.ts`, code);
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", "main.ts"],
    cwd: dir,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: output.code, out: decode(output.stdout), err: decode(output.stderr) };
}

/** Every event kind in a vault file. */
async function kinds(db: string): Promise<string[]> {
  const vault = await openVault(db);
  try {
    return (await Array.fromAsync(vault.read())).map((e) => e.kind);
  } finally {
    await vault.close();
  }
}

Deno.test("README: use it in your project", async (t) => {
  const dir = await Deno.makeTempDir();
  try {
    // The README's deno.json, with a link to this checkout in place of JSR.
    const config = JSON.parse(example("## Use it in your project", "json"));
    assert.equal(config.imports["@toka/runtime"], "jsr:@toka/runtime@^0.1.0");
    assert.deepEqual(config.unstable, ["kv"]);
    const linked = { ...config, links: [new URL(".", root).pathname] };
    const whole = example("## The whole stack");

    await t.step("a project that imports the package runs the whole-stack example", async () => {
      const db = `${dir}/app/toka.kv`;
      const code = whole.replace(`":memory:"`, JSON.stringify(db));
      const result = await runProject(`${dir}/app`, linked, code);
      assert.equal(result.code, 0, result.err);
      assert.ok((await kinds(db)).includes("user.greeted"));
    });

    await t.step("subpath imports resolve too", async () => {
      const result = await runProject(`${dir}/sub`, linked, example("## The runtime"));
      assert.equal(result.code, 0, result.err);
      assert.equal(result.out, "work.done\n");
    });

    await t.step("without unstable kv it fails as the README says", async () => {
      const { unstable: _, ...withoutKv } = linked;
      const result = await runProject(`${dir}/nokv`, withoutKv, whole);
      assert.equal(result.code, 1);
      assert.match(
        result.err,
        /Cannot open the vault at ":memory:": Deno\.openKv is not a function/,
      );
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("README examples print and store what they say", async (t) => {
  const dir = await Deno.makeTempDir();
  try {
    await t.step("The whole stack: the agent greets the user before close() returns", async () => {
      const code = example("## The whole stack");
      // The same code on a file vault, so the log can be read after the example ended.
      const db = `${dir}/whole.kv`;
      assert.ok(code.includes(`createRuntime({ db: ":memory:" })`));
      const result = await run(code.replace(`":memory:"`, JSON.stringify(db)), dir);
      assert.equal(result.code, 0, result.err);
      const vault = await openVault(db);
      try {
        const events = await Array.fromAsync(vault.read());
        const kinds = events.map((e) => e.kind);
        assert.deepEqual(kinds, ["user.joined", "tool.invoked", "tool.completed", "user.greeted"]);
        const greeted = events[3];
        assert.deepEqual(greeted.payload, { text: "Hello Ada" });
        assert.deepEqual(greeted.parents, [events[0].id]);
        assert.equal(greeted.meta.correlationId, events[0].id);
      } finally {
        await vault.close();
      }
    });

    await t.step("The runtime: the subscriber prints work.done", async () => {
      const result = await run(example("## The runtime"), dir);
      assert.equal(result.code, 0, result.err);
      assert.equal(result.out, "work.done\n");
    });

    await t.step("Durable steps: the retry is served the recorded receipt", async () => {
      const result = await run(example("## Durable steps and the tool journal"), dir);
      assert.equal(result.code, 0, result.err);
      assert.equal(result.out, `{ receipt: "receipt-1" }\n2 attempts, 1 charge\n`);
    });

    await t.step("Auth: issue, authorize, attenuate and rotate run without error", async () => {
      const code = example("## Auth");
      const result = await run(
        `${code}\nconsole.log(JSON.stringify(child.split(".").length));`,
        dir,
      );
      assert.equal(result.code, 0, result.err);
      assert.equal(result.out, "3\n");
    });

    await t.step("The toolkit: records, then prints the tool's output", async () => {
      const result = await run(example("## The toolkit"), dir);
      assert.equal(result.code, 0, result.err);
      assert.equal(result.out, `tool.invoked\ntool.completed\n{ text: "HI" }\n`);
    });

    await t.step("The vault: versions, verify, the kept head, then the live event", async () => {
      const result = await run(example("## The vault"), dir);
      assert.equal(result.code, 0, result.err);
      assert.equal(
        result.out,
        `1 order.placed\n2 order.paid\n{ ok: true, checked: 2, problems: [] }\ntrue\nnew order.shipped\n`,
      );
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
