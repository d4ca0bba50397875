import assert from "node:assert/strict";
import { join } from "node:path";
import { Runtime, type StorageAdapter } from "../../runtime/mod.ts";
import { MemoryEventStore } from "../../vault/mod.ts";
import { withKv } from "./_helpers.ts";

const text = (bytes: Uint8Array | undefined) =>
  bytes === undefined ? undefined : new TextDecoder().decode(bytes);

const BAD_KEYS = ["", "../x", "a/../../x", "/etc/passwd", "a//b", "a/./b", "a\\b", "a/", "x\0y"];

async function contract(t: Deno.TestContext, storage: StorageAdapter): Promise<void> {
  await t.step(`${storage.scheme}: put, get, overwrite, list, delete`, async () => {
    assert.equal(await storage.get("missing"), undefined);
    await storage.put("notes/a.txt", "alpha");
    await storage.put("notes/b.txt", new Uint8Array([1, 2, 3]));
    await storage.put("top", "");
    assert.equal(text(await storage.get("notes/a.txt")), "alpha");
    assert.deepEqual(await storage.get("notes/b.txt"), new Uint8Array([1, 2, 3]));
    assert.deepEqual(await storage.get("top"), new Uint8Array());
    await storage.put("notes/a.txt", "beta");
    assert.equal(text(await storage.get("notes/a.txt")), "beta");
    assert.deepEqual(await storage.list(), ["notes/a.txt", "notes/b.txt", "top"]);
    assert.deepEqual(await storage.list("notes/"), ["notes/a.txt", "notes/b.txt"]);
    assert.equal(await storage.delete("notes/a.txt"), true);
    assert.equal(await storage.delete("notes/a.txt"), false);
    assert.equal(await storage.get("notes/a.txt"), undefined);
    assert.deepEqual(await storage.list("notes/"), ["notes/b.txt"]);
  });

  await t.step(`${storage.scheme}: large values round-trip`, async () => {
    const big = new Uint8Array(2 * 1024 * 1024 + 17).map((_, i) => i % 251);
    await storage.put("big.bin", big);
    assert.deepEqual(await storage.get("big.bin"), big);
    await storage.put("big.bin", big.subarray(0, 70_000));
    assert.deepEqual(await storage.get("big.bin"), big.subarray(0, 70_000));
    assert.equal(await storage.delete("big.bin"), true);
  });

  await t.step(`${storage.scheme}: refuses bad keys and values`, async () => {
    for (const key of BAD_KEYS) {
      await assert.rejects(storage.put(key, "x"), TypeError, `put ${JSON.stringify(key)}`);
      await assert.rejects(storage.get(key), TypeError, `get ${JSON.stringify(key)}`);
      await assert.rejects(storage.delete(key), TypeError, `delete ${JSON.stringify(key)}`);
    }
    await assert.rejects(storage.put("k", 42 as never), /expected a string or a Uint8Array/);
  });

  await t.step(`${storage.scheme}: limits keys by UTF-8 bytes, with one-line errors`, async () => {
    // Under 1,000 characters but over 2,000 bytes: over Deno KV's key limit.
    const tooLong = `${"€".repeat(85)}/`.repeat(11).slice(0, -1);
    const longSegment = "é".repeat(128); // 256 bytes
    const refused: [string, RegExp][] = [
      [tooLong, /^Invalid storage key ".*…": it has \d+ UTF-8 bytes, at most 1500 allowed$/],
      ["€".repeat(1000), /at most 1500 allowed$/],
      [`a/${longSegment}`, /segment "é+…" has 256 UTF-8 bytes, at most 255 allowed$/],
      ["x\uD800", /lone surrogate/],
    ];
    for (const [key, pattern] of refused) {
      for (
        const op of [() => storage.put(key, "x"), () => storage.get(key), () => storage.delete(key)]
      ) {
        const error = await op().then(() => undefined, (e) => e);
        assert.ok(error instanceof TypeError, `${error}`);
        assert.match(error.message, pattern);
        assert.ok(!error.message.includes("\n"));
      }
    }
    // The longest allowed keys and segments work.
    const longest = Array.from({ length: 6 }, (_, i) => `${i}`.repeat(249)).join("/");
    const segment = `${"é".repeat(127)}a`;
    assert.equal(new TextEncoder().encode(longest).length, 1499);
    for (const key of [longest, segment, `${segment}/${"€".repeat(85)}`]) {
      await storage.put(key, "v");
      assert.equal(text(await storage.get(key)), "v");
      assert.ok((await storage.list()).includes(key));
      assert.equal(await storage.delete(key), true);
    }
  });

  await t.step(`${storage.scheme}: keys ending in .tmp are listed; .tmp- is reserved`, async () => {
    await storage.put("notes.tmp", "x");
    await storage.put("dir.tmp/a.tmp", "y");
    await storage.put("x.0123456789abcdef0123456789abcdef0123.tmp", "z");
    assert.equal(text(await storage.get("notes.tmp")), "x");
    assert.deepEqual(await storage.list(".tmp"), []);
    assert.deepEqual(
      (await storage.list()).filter((k) => k.includes(".tmp")),
      ["dir.tmp/a.tmp", "notes.tmp", "x.0123456789abcdef0123456789abcdef0123.tmp"],
    );
    for (const key of [".tmp-1", "a/.tmp-", ".tmp-/b"]) {
      await assert.rejects(storage.put(key, "x"), /segments starting with ".tmp-" are reserved/);
    }
    assert.equal(await storage.get(".tmp"), undefined, '".tmp" alone is an ordinary key');
    for (
      const key of ["notes.tmp", "dir.tmp/a.tmp", "x.0123456789abcdef0123456789abcdef0123.tmp"]
    ) {
      assert.equal(await storage.delete(key), true);
    }
  });
}

Deno.test('storage("local")', async (t) => {
  const dir = await Deno.makeTempDir();
  const outside = await Deno.makeTempDir();
  try {
    const root = join(dir, "root");
    const runtime = await Runtime.create({ storageRoot: root });
    const storage = runtime.storage("local") as StorageAdapter;
    assert.equal(runtime.storage("local"), storage, "one adapter per scheme");
    assert.deepEqual(await storage.list(), [], "a missing root is empty");
    assert.equal(await storage.get("x"), undefined);
    await contract(t, storage);

    await t.step("refuses symbolic links, out of the root or not", async () => {
      await Deno.writeTextFile(join(outside, "secret.txt"), "secret");
      await Deno.symlink(outside, join(root, "escape"));
      await Deno.symlink(join(outside, "secret.txt"), join(root, "file-link"));
      await Deno.mkdir(join(root, "real"));
      await Deno.writeTextFile(join(root, "real", "in.txt"), "in");
      await Deno.symlink(join(root, "real"), join(root, "inner"));
      const refused =
        /Invalid storage key "[^"]+": it goes through a symbolic link, which storage\("local"\) never follows$/;
      await assert.rejects(storage.get("escape/secret.txt"), refused);
      await assert.rejects(storage.put("escape/new.txt", "x"), refused);
      await assert.rejects(storage.delete("escape/secret.txt"), refused);
      await assert.rejects(storage.get("file-link"), refused);
      await assert.rejects(storage.delete("file-link"), refused);
      await assert.rejects(storage.get("inner/in.txt"), refused);
      assert.equal(text(await storage.get("real/in.txt")), "in");
      assert.equal(await Deno.readTextFile(join(outside, "secret.txt")), "secret");
      await assert.rejects(Deno.stat(join(outside, "new.txt")), Deno.errors.NotFound);
      assert.ok(!(await storage.list()).some((k) => k.startsWith("escape")));
    });

    await t.step("leaves no temporary file behind and hides only its own", async () => {
      await storage.put("kept.txt", "x");
      await storage.put("kept.txt", "y");
      const names = await Array.fromAsync(Deno.readDir(root), (e) => e.name);
      assert.ok(!names.some((n) => n.startsWith(".tmp-")), names.join(", "));
      // A temporary file of a writer that died is not a key.
      await Deno.writeTextFile(join(root, `.tmp-${crypto.randomUUID()}`), "partial");
      assert.ok((await storage.list()).includes("kept.txt"));
      assert.ok(!(await storage.list()).some((k) => k.includes(".tmp-")));
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(outside, { recursive: true });
  }
});

Deno.test('storage("vault")', async (t) => {
  const kv = await Deno.openKv(":memory:");
  const store = withKv(new MemoryEventStore(), kv);
  try {
    const runtime = await Runtime.create({ vault: store });
    const storage = runtime.storage("vault") as StorageAdapter;
    assert.equal(storage.scheme, "vault");
    await contract(t, storage);

    await t.step('keeps every KV value within 64 KiB, under ["storage", ...]', async () => {
      await storage.put("chunked", new Uint8Array(1_000_000));
      let chunks = 0;
      for await (const entry of kv.list<Uint8Array>({ prefix: ["storage", "chunk", "chunked"] })) {
        assert.ok(entry.value.byteLength <= 64 * 1024);
        chunks++;
      }
      assert.equal(chunks, Math.ceil(1_000_000 / (60 * 1024)));
      await storage.put("chunked", "small");
      let left = 0;
      for await (const _ of kv.list({ prefix: ["storage", "chunk", "chunked"] })) left++;
      assert.equal(left, 1, "the replaced generation is deleted");
      for await (const entry of kv.list({ prefix: [] })) assert.equal(entry.key[0], "storage");
    });
  } finally {
    kv.close();
    await store.close();
  }
});
