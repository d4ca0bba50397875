// Issue 10: each agent's storage is its own namespace; another agent's data
// is reached only with a permission "storage:<scheme>:<prefix>".
import assert from "node:assert/strict";
import { join } from "node:path";
import { createRuntime } from "../../../mod.ts";
import { type AgentContext, CapabilityDeniedError, Runtime } from "../../../runtime/mod.ts";
import { until } from "../_helpers.ts";

const text = (bytes: Uint8Array | undefined) =>
  bytes === undefined ? undefined : new TextDecoder().decode(bytes);

// Registers agents that only keep their context, and starts the runtime.
async function contexts(
  runtime: Runtime,
  agents: Record<string, string[]>,
): Promise<Record<string, AgentContext>> {
  const found: Record<string, AgentContext> = {};
  for (const [name, permissions] of Object.entries(agents)) {
    runtime.register({
      name,
      subscribe: ["never.happens"],
      permissions,
      init: (ctx) => void (found[name] = ctx),
      handle() {},
    });
  }
  await runtime.start();
  await until(() => Object.keys(found).length === Object.keys(agents).length);
  return found;
}

Deno.test("agents' storage is private by default, shared by permission (auth attached)", async (t) => {
  const dir = await Deno.makeTempDir();
  const runtime = await createRuntime({ db: ":memory:", storageRoot: join(dir, "storage") });
  try {
    const { alice, bob, carol } = await contexts(runtime, {
      alice: [],
      bob: [], // refused every tool and every shared prefix
      carol: ["storage:local:agents/alice", "storage:vault:shared"],
    });
    for (const scheme of ["local", "vault"]) {
      await t.step(`${scheme}: another agent can neither read, overwrite nor delete`, async () => {
        await alice.storage(scheme)!.put("notes.txt", "alice's");
        const mine = bob.storage(scheme)!;
        assert.equal(await mine.get("notes.txt"), undefined);
        assert.equal(await mine.delete("notes.txt"), false);
        await mine.put("notes.txt", "bob's");
        assert.deepEqual(await mine.list(), ["notes.txt"]);
        assert.equal(text(await alice.storage(scheme)!.get("notes.txt")), "alice's");
        assert.equal(text(await mine.get("notes.txt")), "bob's");
        assert.deepEqual(await runtime.storage(scheme)!.list("agents/"), [
          "agents/alice/notes.txt",
          "agents/bob/notes.txt",
        ]);
        // Nor through a prefix it was not granted.
        for (const prefix of ["agents/alice", "agents", "shared"]) {
          const other = bob.storage(scheme, { prefix })!;
          for (
            const op of [
              () => other.get("notes.txt"),
              () => other.put("agents/alice/notes.txt", "x"),
              () => other.delete("notes.txt"),
              () => other.list(),
            ]
          ) {
            const error = await op().then(() => undefined, (e) => e);
            assert.ok(error instanceof CapabilityDeniedError, `${prefix}: ${error}`);
            assert.equal(
              error.message,
              `Permission "storage:${scheme}:${prefix}" is not granted to "agent/bob"`,
            );
          }
        }
        assert.equal(text(await alice.storage(scheme)!.get("notes.txt")), "alice's");
        assert.deepEqual(await runtime.storage(scheme)!.list("shared"), []);
      });
    }

    await t.step("a permission grants its prefix and what is below it, in its scheme", async () => {
      const aliceFiles = carol.storage("local", { prefix: "agents/alice" })!;
      assert.equal(text(await aliceFiles.get("notes.txt")), "alice's");
      assert.deepEqual(await aliceFiles.list(), ["notes.txt"]);
      await assert.rejects(
        carol.storage("vault", { prefix: "agents/alice" })!.get("notes.txt"),
        CapabilityDeniedError,
      );
      const shared = carol.storage("vault", { prefix: "shared/reports" })!;
      await shared.put("q1.txt", "up");
      assert.deepEqual(await runtime.storage("vault")!.list("shared"), ["shared/reports/q1.txt"]);
      await assert.rejects(
        carol.storage("vault", { prefix: "sharedx" })!.get("a"),
        CapabilityDeniedError,
      );
      // Its own namespace needs no permission, by either path.
      await carol.storage("vault", { prefix: "agents/carol/deep" })!.put("k", "v");
      assert.equal(text(await carol.storage("vault")!.get("deep/k")), "v");
    });

    await t.step("a prefix no permission can name is a one-line TypeError", () => {
      for (const prefix of ["", "../x", "a b", "line\nbreak", 42]) {
        assert.throws(
          () => carol.storage("local", { prefix: prefix as string }),
          (e: Error) =>
            e instanceof TypeError && /^Invalid storage prefix /.test(e.message) &&
            !e.message.includes("\n"),
        );
      }
    });
  } finally {
    await runtime.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("without auth, agents still get their own namespaces; prefixes are allowed", async () => {
  const dir = await Deno.makeTempDir();
  const runtime = await Runtime.create({ storageRoot: dir });
  try {
    const { alice, bob } = await contexts(runtime, { alice: [], bob: [] });
    await alice.storage("local")!.put("a.txt", "A");
    assert.equal(await bob.storage("local")!.get("a.txt"), undefined);
    assert.equal(text(await bob.storage("local", { prefix: "agents/alice" })!.get("a.txt")), "A");
    assert.equal(alice.storage("s3"), undefined);
    assert.equal(alice.storage("vault"), undefined, "no vault storage without one given");
  } finally {
    await runtime.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
