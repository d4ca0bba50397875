import assert from "node:assert/strict";
import { join } from "node:path";
import {
  createKvStorage,
  createLocalStorage,
  createMemoryStorage,
  Runtime,
  type StorageAdapter,
  TokaError,
} from "../../../runtime/mod.ts";
import { storageContract } from "./storage_contract.ts";

const text = (bytes: Uint8Array | undefined) =>
  bytes === undefined ? undefined : new TextDecoder().decode(bytes);

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
    await storageContract(t, storage);

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

    await t.step("errors are one line and name no path of the root (issue 10)", async () => {
      await storage.put("plain.txt", "x");
      await Deno.mkdir(join(root, "folder"));
      const file = join(dir, "a-file");
      await Deno.writeTextFile(file, "not a folder");
      const onFile = createLocalStorage(file);
      const cases: [() => Promise<unknown>, string][] = [
        [
          () => storage.put("plain.txt/x", "v"),
          'Cannot put storage key "plain.txt/x": a file is where a folder is needed',
        ],
        [
          () => storage.put("folder", "v"),
          'Cannot put storage key "folder": a folder is where the file would go',
        ],
        [
          () => onFile.put("k", "v"),
          'Cannot put storage key "k": the file system refused it (EEXIST)',
        ],
        [
          () => onFile.get("k"),
          'Cannot get storage key "k": the file system refused it (ENOTDIR)',
        ],
      ];
      for (const [op, message] of cases) {
        const error = await op().then(() => undefined, (e) => e);
        assert.ok(error instanceof TokaError, String(error));
        assert.equal(error.message, message);
      }
      assert.equal(await storage.get("plain.txt/x"), undefined, "nothing there to read");
      assert.equal(text(await storage.get("plain.txt")), "x", "nothing changed");
      assert.equal(await Deno.readTextFile(file), "not a folder");
      assert.equal(await storage.delete("plain.txt"), true);
      await Deno.remove(join(root, "folder"));
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
  try {
    const runtime = await Runtime.create({ storage: { vault: createKvStorage(kv) } });
    const storage = runtime.storage("vault") as StorageAdapter;
    assert.equal(storage.scheme, "vault");
    await storageContract(t, storage);

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
  }
});

Deno.test("Runtime.create takes storage adapters by scheme, and refuses what is not one", async () => {
  const memory = createMemoryStorage("vault");
  const extra = createMemoryStorage();
  const runtime = await Runtime.create({ storage: { vault: memory, memory: extra } });
  assert.equal(runtime.storage("vault"), memory);
  assert.equal(runtime.storage("memory"), extra);
  assert.equal(runtime.storage("local")?.scheme, "local", "the default stays");
  for (const storage of [null, 1, { vault: {} }, { vault: { put() {} } }]) {
    await assert.rejects(
      Runtime.create({ storage: storage as never }),
      /^TypeError: Invalid storage( "vault")?: expected (a StorageAdapter|an object of storage adapters by scheme)$/,
    );
  }
});
