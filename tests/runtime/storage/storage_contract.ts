// The contract every StorageAdapter meets (DESIGN.md §5.1), run against the
// in-memory, KV and file adapters by storage_contract_test.ts.
import assert from "node:assert/strict";
import { MAX_STORAGE_VALUE_BYTES, type StorageAdapter } from "../../../runtime/mod.ts";

const text = (bytes: Uint8Array | undefined) =>
  bytes === undefined ? undefined : new TextDecoder().decode(bytes);

const BAD_KEYS = ["", "../x", "a/../../x", "/etc/passwd", "a//b", "a/./b", "a\\b", "a/", "x\0y"];

/**
 * The contract every StorageAdapter meets: run it on a fresh, empty adapter.
 * Each step cleans up what it stored.
 */
export async function storageContract(
  t: Deno.TestContext,
  storage: StorageAdapter,
): Promise<void> {
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

  await t.step(`${storage.scheme}: values are copied, and at most 16 MiB`, async () => {
    const value = new Uint8Array([1, 2, 3]);
    await storage.put("copy", value);
    value[0] = 9;
    const read = await storage.get("copy");
    assert.deepEqual(read, new Uint8Array([1, 2, 3]), "a later change of the array is not stored");
    read![1] = 9;
    assert.deepEqual(await storage.get("copy"), new Uint8Array([1, 2, 3]));
    const error = await storage.put("copy", new Uint8Array(MAX_STORAGE_VALUE_BYTES + 1)).then(
      () => undefined,
      (e) => e,
    );
    assert.ok(error instanceof RangeError);
    assert.equal(
      error.message,
      `Invalid storage value: it has ${
        MAX_STORAGE_VALUE_BYTES + 1
      } bytes, at most 16777216 (16 MiB) allowed`,
    );
    assert.deepEqual(await storage.get("copy"), new Uint8Array([1, 2, 3]), "nothing changed");
    await assert.rejects(
      storage.put("copy", "€".repeat(MAX_STORAGE_VALUE_BYTES / 3 + 1)),
      RangeError,
    );
    assert.equal(await storage.delete("copy"), true);
  });

  await t.step(
    `${storage.scheme}: control characters in keys are stored, and escaped in errors`,
    async () => {
      await storage.put("line\nbreak\ttab", "v");
      assert.equal(text(await storage.get("line\nbreak\ttab")), "v");
      assert.deepEqual(await storage.list("line"), ["line\nbreak\ttab"]);
      assert.equal(await storage.delete("line\nbreak\ttab"), true);
      for (const key of ["a\n/../b", "x\u0085\u2028\u001b[31m/./y", "\r\n/"]) {
        const error = await storage.get(key).then(() => undefined, (e) => e);
        assert.ok(error instanceof TypeError);
        // deno-lint-ignore no-control-regex -- control characters are what is looked for
        assert.doesNotMatch(error.message, /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/);
      }
    },
  );

  await t.step(`${storage.scheme}: prefixes of list() are plain strings`, async () => {
    await storage.put("ab/c", "1");
    await storage.put("abc", "2");
    await storage.put("b", "3");
    assert.deepEqual(await storage.list("ab"), ["ab/c", "abc"]);
    assert.deepEqual(await storage.list("ab/"), ["ab/c"]);
    assert.deepEqual(await storage.list("zz"), []);
    for (const key of ["ab/c", "abc", "b"]) assert.equal(await storage.delete(key), true);
    assert.deepEqual(await storage.list("ab"), []);
  });
}
