// createRuntime() registers the fs and http tools only when asked, wired to
// the runtime's auth and event log like the other built-ins.
import assert from "node:assert/strict";
import { join } from "node:path";
import { createRuntime, defineAgent } from "../../mod.ts";
import { AllowAllAuthority } from "../../toolkit/mod.ts";

Deno.test("createRuntime with the fs tools", async (t) => {
  const dir = await Deno.realPath(await Deno.makeTempDir());
  try {
    await t.step("not registered unless asked", async () => {
      const runtime = await createRuntime({ db: ":memory:", storageRoot: dir });
      assert.deepEqual(runtime.tools.list().map((i) => i.name), ["echo", "hash", "now"]);
      await runtime.close();
    });

    await t.step("fs: {} works under storageRoot, for agents granted each tool", async () => {
      const storageRoot = join(dir, "storage");
      const runtime = await createRuntime({ db: ":memory:", storageRoot, fs: {} });
      assert.deepEqual(runtime.tools.list().map((i) => i.name), [
        "echo",
        "fs.delete",
        "fs.list",
        "fs.read",
        "fs.write",
        "hash",
        "now",
      ]);
      const seen: unknown[] = [];
      const done = Promise.withResolvers<void>();
      runtime.register(defineAgent({
        name: "scribe",
        subscribe: ["note.taken"],
        permissions: ["tool:fs.write:invoke", "tool:fs.read:invoke"],
        async handle(event, ctx) {
          try {
            await ctx.tools.call("fs.write", {
              path: "notes/n.txt",
              content: String(event.payload),
            });
            seen.push(await ctx.tools.call("fs.read", { path: "notes/n.txt" }));
            // Not granted: refused, and the file stays.
            await assert.rejects(ctx.tools.call("fs.delete", { path: "notes/n.txt" }), {
              name: "CapabilityDeniedError",
            });
            done.resolve();
          } catch (error) {
            done.reject(error);
          }
        },
      }));
      await runtime.start();
      await runtime.emit({ kind: "note.taken", payload: "remember" });
      await done.promise;
      const kinds = (await Array.fromAsync(runtime.bus.store!.read())).map((e) => e.kind);
      await runtime.close();
      assert.deepEqual(seen, [
        { path: "notes/n.txt", encoding: "utf8", content: "remember", size: 8 },
      ]);
      assert.equal(await Deno.readTextFile(join(storageRoot, "notes/n.txt")), "remember");
      assert.deepEqual(kinds.filter((k) => k.startsWith("tool.")), [
        "tool.invoked",
        "tool.completed",
        "tool.invoked",
        "tool.completed",
        "tool.denied",
      ]);
    });

    await t.step("fs.root overrides storageRoot", async () => {
      const runtime = await createRuntime({
        db: ":memory:",
        storageRoot: join(dir, "storage"),
        fs: { root: join(dir, "files"), maxWriteBytes: 4 },
        auth: new AllowAllAuthority(), // the host calls without a token
      });
      await runtime.tools.call("fs.write", { path: "a", content: "1234" });
      await assert.rejects(runtime.tools.call("fs.write", { path: "b", content: "12345" }), {
        message: 'Tool "fs.write" failed: Content for "b" has 5 bytes, more than the 4 allowed',
      });
      await runtime.close();
      assert.equal(await Deno.readTextFile(join(dir, "files", "a")), "1234");
    });

    await t.step("bad fs options are one-line errors", async () => {
      await assert.rejects(createRuntime({ db: ":memory:", fs: { maxReadBytes: -1 } }), {
        name: "RangeError",
        message: "Invalid maxReadBytes -1: expected an integer from 0 to 16777216",
      });
      await assert.rejects(
        createRuntime({ db: ":memory:", fs: "yes" as unknown as Record<string, never> }),
        { name: "TypeError", message: "Invalid fs: expected the options of the fs tools, e.g. {}" },
      );
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("createRuntime with http.fetch", async (t) => {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () => new Response("pong"),
  );
  const url = `http://127.0.0.1:${server.addr.port}/ping`;
  try {
    await t.step("http: {} registers it, refusing every host", async () => {
      const runtime = await createRuntime({
        db: ":memory:",
        http: {},
        auth: new AllowAllAuthority(),
      });
      assert.ok(runtime.tools.get("http.fetch"));
      await assert.rejects(runtime.tools.call("http.fetch", { url }), {
        message: 'Tool "http.fetch" failed: Host "127.0.0.1" is not on the http.fetch allowlist',
      });
      await runtime.close();
    });

    await t.step("an agent granted it reaches an allowed host; events are logged", async () => {
      const runtime = await createRuntime({
        db: ":memory:",
        http: { allowPrivate: ["127.0.0.1"] },
      });
      const done = Promise.withResolvers<unknown>();
      runtime.register(defineAgent({
        name: "fetcher",
        subscribe: ["ping.wanted"],
        permissions: ["tool:http.fetch:invoke"],
        async handle(_event, ctx) {
          try {
            done.resolve(await ctx.tools.call("http.fetch", { url }));
          } catch (error) {
            done.reject(error);
          }
        },
      }));
      await runtime.start();
      await runtime.emit({ kind: "ping.wanted" });
      const out = await done.promise as { status: number; body: string };
      const kinds = (await Array.fromAsync(runtime.bus.store!.read())).map((e) => e.kind);
      await runtime.close();
      assert.equal(out.status, 200);
      assert.equal(out.body, "pong");
      assert.deepEqual(kinds.filter((k) => k.startsWith("tool.")), [
        "tool.invoked",
        "tool.completed",
      ]);
    });

    await t.step("bad http options are one-line errors", async () => {
      await assert.rejects(createRuntime({ db: ":memory:", http: { allow: ["a.test/x"] } }), {
        name: "TypeError",
        message:
          'Invalid http allow entry "a.test/x": expected a host name, "*.<domain>" or an IP address, with an optional ":<port>" ("[<IPv6>]:<port>"), without scheme or path',
      });
      await assert.rejects(createRuntime({ db: ":memory:", http: { allow: ["a.test:0"] } }), {
        name: "RangeError",
        message: 'Invalid http allow entry "a.test:0": the port must be from 1 to 65535',
      });
      await assert.rejects(
        createRuntime({ db: ":memory:", http: [] as unknown as Record<string, never> }),
        TypeError,
      );
    });
  } finally {
    await server.shutdown();
  }
});
