import assert from "node:assert/strict";
import { jwtVerify } from "jose";
import {
  createRuntime,
  defineAgent,
  type EventRecord,
  type EventStore,
  generateMasterKey,
  KvTokenAuthority,
  MemoryEventStore,
  openVault,
  vaultKv,
} from "../mod.ts";

Deno.test("createRuntime", async (t) => {
  await t.step("tool events are caused by the event the agent was handling", async () => {
    const runtime = await createRuntime({ db: ":memory:" });
    let done = false;
    runtime.register(defineAgent({
      name: "caller",
      subscribe: ["task.created"],
      permissions: ["tool:echo:invoke"],
      async handle(_event, ctx) {
        await ctx.tools.call("echo", { text: "hi" });
        await assert.rejects(ctx.tools.call("echo", { wrong: true }));
        done = true;
      },
    }));
    await runtime.start();
    const task = await runtime.emit({ kind: "task.created" });
    for (let i = 0; i < 500 && !done; i++) await new Promise((r) => setTimeout(r, 5));
    assert.equal(done, true);
    // A call from outside any handler has no cause.
    const store = runtime.bus.store!;
    await assert.rejects(
      runtime.tools.call("echo", { text: "x" }, { cause: { id: 1 } as never }),
      { name: "TypeError", message: "Invalid cause: expected the event record being handled" },
    );
    const auth = await KvTokenAuthority.open(vaultKv(store)!);
    await runtime.tools.call("echo", { text: "direct" }, {
      token: await auth.issue({ sub: "test", permissions: ["tool:*:invoke"] }),
    });
    const tool: EventRecord[] = await Array.fromAsync(store.read({ kinds: ["tool.*"] }));
    assert.deepEqual(tool.map((e) => e.kind), [
      "tool.invoked",
      "tool.completed",
      "tool.invoked",
      "tool.failed",
      "tool.invoked",
      "tool.completed",
    ]);
    for (const event of tool.slice(0, 4)) {
      assert.deepEqual(event.parents, [task.id]);
      assert.equal(event.meta.correlationId, task.id);
      assert.equal(event.meta.causationId, task.id);
    }
    for (const event of tool.slice(4)) {
      assert.deepEqual(event.parents, []);
      assert.equal(event.meta.causationId, undefined);
    }
    await runtime.close();
  });

  await t.step("a read-only tool call is recorded in one append of both events", async () => {
    const store = new MemoryEventStore();
    const appends: string[][] = [];
    const append = store.append.bind(store);
    store.append = (stream, events, options) => {
      appends.push(events.map((e) => e.kind));
      return append(stream, events, options);
    };
    const runtime = await createRuntime({ vault: store });
    assert.deepEqual(await runtime.tools.call("echo", { text: "hi" }), { text: "hi" });
    await assert.rejects(runtime.tools.call("echo", { wrong: true }));
    assert.deepEqual(appends, [
      ["tool.invoked", "tool.completed"],
      ["tool.invoked", "tool.failed"],
    ]);
    await runtime.close();
    await store.close();
  });

  await t.step("auth options go in the auth section", async () => {
    const masterKey = generateMasterKey();
    const initialSecret = "s".repeat(43);
    let now = Date.parse("2030-01-01T00:00:00Z");
    const runtime = await createRuntime({
      db: ":memory:",
      clock: () => now,
      auth: { masterKey, initialSecret, retiredTtlSecs: 60 },
    });
    const kv = vaultKv(runtime.bus.store!)!;
    const auth = await KvTokenAuthority.open(kv, { masterKey, clock: () => now });
    assert.equal((await auth.status()).wrapped, true);
    const token = await auth.issue({ sub: "s", permissions: ["tool:echo:invoke"] });
    const secret = Uint8Array.fromBase64(initialSecret, { alphabet: "base64url" });
    assert.equal((await jwtVerify(token, secret)).payload.sub, "s", "signed with initialSecret");
    const call = () => runtime.tools.call("echo", { text: "x" }, { token });
    assert.deepEqual(await call(), { text: "x" });
    await runtime.rotateSecrets();
    now += 59_000;
    assert.deepEqual(await call(), { text: "x" });
    now += 1_000;
    await assert.rejects(call(), { reason: "key_expired" }, "retiredTtlSecs 60 applies");
    await runtime.close();
  });

  await t.step("bad auth options are one-line errors and open nothing", async () => {
    for (
      const [auth, message] of [
        [{ retiredTtlSecs: -1 }, 'Option "retiredTtlSecs" must be a number from 0 to 86400'],
        [
          { initialSecret: 42 },
          'Option "initialSecret" must be base64url text or bytes of at least 32 bytes',
        ],
        [{ masterKey: "short" }, /^Invalid master key: expected base64url of 32 bytes/],
        ["nope", "Invalid auth: expected a TokenAuthority or auth options"],
      ] as const
    ) {
      await assert.rejects(createRuntime({ db: ":memory:", auth: auth as never }), {
        message,
      });
    }
  });

  await t.step("without env access TOKA_MASTER_KEY is an error, not a raw pool", async () => {
    const run = async (arg: string) => {
      const child = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--no-prompt",
          "--allow-read",
          new URL("./_create_runtime_child.ts", import.meta.url).pathname,
          arg,
        ],
        stdout: "piped",
        stderr: "piped",
      });
      const { stdout } = await child.output();
      return new TextDecoder().decode(stdout).trim();
    };
    assert.equal(
      await run("env"),
      "NotCapable: Cannot read TOKA_MASTER_KEY: grant --allow-env=TOKA_MASTER_KEY, " +
        "or pass auth.masterKey (null to keep the secrets unwrapped)",
    );
    assert.equal(await run("none"), "opened");
  });

  await t.step("await using closes the runtime and the vault it opened", async () => {
    const dir = await Deno.makeTempDir();
    try {
      const db = `${dir}/toka.kv`;
      let greeted = false;
      {
        await using runtime = await createRuntime({ db });
        runtime.register(defineAgent({
          name: "greeter",
          subscribe: ["user.joined"],
          async handle(_event, ctx) {
            await ctx.emit({ kind: "user.greeted" });
            greeted = true;
          },
        }));
        await runtime.start();
        await runtime.emit({ kind: "user.joined" });
      }
      assert.equal(greeted, true, "drained before the block ended");
      // Had the vault stayed open, the resource sanitizer would fail this test.
      const vault = await openVault(db);
      const kinds = (await Array.fromAsync(vault.read())).map((e) => e.kind);
      await vault.close();
      assert.deepEqual(kinds, ["user.joined", "user.greeted"]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
});

// Nothing outside the vault reaches into its KV through the port: the event
// store interface has no `kv`; the vault hands its KV out by vaultKv().
Deno.test("the EventStore port has no kv; vaultKv() hands out a vault's", async () => {
  const runtime = await createRuntime({ db: ":memory:" });
  const store: EventStore = runtime.bus.store!;
  // @ts-expect-error: `kv` is not part of the EventStore interface.
  assert.ok(store.kv === undefined || store.kv !== null);
  const kv = vaultKv(store);
  assert.ok(kv instanceof Deno.Kv);
  assert.equal(await KvTokenAuthority.hasPool(kv), true);
  assert.equal(vaultKv(new MemoryEventStore()), undefined);
  await runtime.close();
});
