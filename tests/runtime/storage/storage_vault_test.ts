// Issue 10: storage("vault") with a missing chunk, a put killed part-way and
// values over the size limit.
import assert from "node:assert/strict";
import { join } from "node:path";
import { KvStorage } from "../../../runtime/storage/_kv_storage.ts";

const CHILD = new URL("./_storage_put_child.ts", import.meta.url).pathname;

// Every chunk KV entry whose generation no value's metadata names.
async function orphans(kv: Deno.Kv): Promise<{ entries: number; bytes: number }> {
  const live = new Set<string>();
  for await (const entry of kv.list<{ generation: string }>({ prefix: ["storage", "meta"] })) {
    live.add(`${String(entry.key[2])}\0${entry.value.generation}`);
  }
  let entries = 0;
  let bytes = 0;
  for await (const entry of kv.list<Uint8Array>({ prefix: ["storage", "chunk"] })) {
    if (live.has(`${String(entry.key[2])}\0${String(entry.key[3])}`)) continue;
    entries++;
    bytes += entry.value.byteLength;
  }
  return { entries, bytes };
}

// Settles with the promise, or rejects after `ms`.
async function within<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`Still running after ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

Deno.test('storage("vault"): a missing chunk is a clear one-line error, not an endless loop', async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const storage = new KvStorage(kv);
    await storage.put("report.bin", new Uint8Array(200_000).fill(1));
    const chunks = await Array.fromAsync(kv.list({ prefix: ["storage", "chunk", "report.bin"] }));
    assert.equal(chunks.length, 4);
    await kv.delete(chunks[2].key);
    const error = await within(storage.get("report.bin"), 5000).then(() => undefined, (e) => e);
    assert.ok(error instanceof Error);
    assert.match(
      error.message,
      /^Cannot get storage key "report\.bin": its value is damaged \(chunk 3 of 4 is missing\)$/,
    );
    // The value can still be replaced or deleted.
    await storage.put("report.bin", "fresh");
    assert.equal(new TextDecoder().decode(await storage.get("report.bin")), "fresh");
  } finally {
    kv.close();
  }
});

Deno.test('storage("vault"): values over 16 MiB are refused in one line, storing nothing', async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const storage = new KvStorage(kv);
    await storage.put("kept", "old");
    for (const size of [16 * 1024 * 1024 + 1, 64 * 1024 * 1024]) {
      await assert.rejects(
        storage.put("kept", new Uint8Array(size)),
        (error: Error) =>
          error instanceof RangeError &&
          error.message ===
            `Invalid storage value: it has ${size} bytes, at most 16777216 (16 MiB) allowed`,
      );
    }
    assert.equal(new TextDecoder().decode(await storage.get("kept")), "old");
    assert.deepEqual(await orphans(kv), { entries: 0, bytes: 0 });
    // The limit itself is allowed.
    await storage.put("max", new Uint8Array(16 * 1024 * 1024));
    assert.equal((await storage.get("max"))?.byteLength, 16 * 1024 * 1024);
  } finally {
    kv.close();
  }
});

// A real process is killed with SIGKILL while it puts 8 MiB values: the test
// watches the file and kills it once a put's chunks are there without their
// metadata, then checks that the orphans survived the kill before the cleanup.
Deno.test('storage("vault"): chunks of a put killed part-way are cleaned up', async () => {
  const dir = await Deno.makeTempDir();
  const db = join(dir, "storage.kv");
  try {
    let found = { entries: 0, bytes: 0 };
    for (let attempt = 0; attempt < 5 && found.entries === 0; attempt++) {
      const child = new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", CHILD, db],
        stdout: "piped",
        stderr: "inherit",
      }).spawn();
      const reader = child.stdout.getReader();
      await reader.read(); // "ready"
      // Kill as soon as a put is seen part-way (chunks no metadata names yet),
      // however slow the machine is; give up on this attempt after 20 s.
      const watcher = await Deno.openKv(db);
      try {
        for (const end = Date.now() + 20_000; Date.now() < end;) {
          if ((await orphans(watcher)).entries > 0) break;
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
      } finally {
        watcher.close();
      }
      child.kill("SIGKILL");
      await reader.cancel();
      await child.status;
      const kv = await Deno.openKv(db);
      found = await orphans(kv);
      kv.close();
    }
    assert.ok(found.entries > 0, "the kill landed in the middle of a put");

    // A later put (of another key) in a process whose clock is past the
    // abandonment delay cleans them up, and the last complete value survives.
    const kv = await Deno.openKv(db);
    try {
      const later = new KvStorage(kv, () => Date.now() + 60 * 60 * 1000);
      const before = await later.get("big.bin");
      await later.put("other", "x");
      assert.deepEqual(await orphans(kv), { entries: 0, bytes: 0 }, `was ${found.bytes} bytes`);
      assert.deepEqual(await later.get("big.bin"), before);
    } finally {
      kv.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test('storage("vault"): a put swept as abandoned while still running fails in one line, leaving nothing', async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    // Pauses the second commit of the put: its publishing commit.
    let commits = 0;
    let reached!: () => void;
    const atPublish = new Promise<void>((resolve) => reached = resolve);
    let release!: () => void;
    const released = new Promise<void>((resolve) => release = resolve);
    const paused = new Proxy(kv, {
      get(target, prop) {
        if (prop === "atomic") {
          return () => {
            const op = target.atomic();
            const commit = op.commit.bind(op);
            op.commit = async () => {
              if (++commits === 2) {
                reached();
                await released;
              }
              return await commit();
            };
            return op;
          };
        }
        const value = Reflect.get(target, prop);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    const slow = new KvStorage(paused);
    const put = slow.put("big.bin", new Uint8Array(1_000_000)).then(() => undefined, (e) => e);
    await atPublish;
    // Another process, whose clock is past the abandonment delay, sweeps it.
    await new KvStorage(kv, () => Date.now() + 60 * 60 * 1000).put("other", "x");
    release();
    const error = await put;
    assert.ok(error instanceof Error);
    assert.equal(
      error.message,
      'Cannot put storage key "big.bin": it took so long that its chunks were swept as abandoned',
    );
    assert.equal(await slow.get("big.bin"), undefined);
    assert.deepEqual(await orphans(kv), { entries: 0, bytes: 0 });
    assert.deepEqual(await Array.fromAsync(kv.list({ prefix: ["storage", "pending"] })), []);
  } finally {
    kv.close();
  }
});

// Simulated with direct KV writes: the state a put or delete leaves when it is
// killed after its publishing commit and before it deleted the old chunks.
Deno.test('storage("vault"): chunks of a replaced value left by a killed put are swept at once', async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const storage = new KvStorage(kv);
    await storage.put("doc", new Uint8Array(100_000).fill(2));
    const meta = await kv.get<{ generation: string }>(["storage", "meta", "doc"]);
    const stale = crypto.randomUUID();
    await kv.set(["storage", "chunk", "doc", stale, 0], new Uint8Array(60 * 1024));
    await kv.set(["storage", "chunk", "doc", stale, 1], new Uint8Array(1000));
    await kv.set(["storage", "garbage", "doc", stale], true);
    assert.equal((await orphans(kv)).entries, 2);
    await storage.delete("missing"); // any put or delete sweeps
    assert.deepEqual(await orphans(kv), { entries: 0, bytes: 0 });
    assert.deepEqual(await Array.fromAsync(kv.list({ prefix: ["storage", "garbage"] })), []);
    assert.equal((await storage.get("doc"))?.byteLength, 100_000);
    assert.equal(
      (await kv.get<{ generation: string }>(["storage", "meta", "doc"])).value?.generation,
      meta.value?.generation,
    );
  } finally {
    kv.close();
  }
});

/** `kv` behind a proxy that counts what the adapter asks of it, and can fail calls first. */
function watched(kv: Deno.Kv, lockFirst = false) {
  const counts = { pendingScans: 0, metaEntriesRead: 0, locked: 0 };
  const failed = new Set<string>();
  const lock = (what: string) => {
    if (!lockFirst || failed.has(what)) return;
    failed.add(what);
    counts.locked++;
    throw new Error("database is locked");
  };
  const proxy = new Proxy(kv, {
    get(target, prop) {
      if (prop === "list") {
        return (selector: Deno.KvListSelector, options?: Deno.KvListOptions) => {
          const prefix = "prefix" in selector ? selector.prefix : selector.start;
          if (prefix?.[1] === "pending") counts.pendingScans++;
          const iterator = target.list(selector, options);
          return (async function* () {
            lock(`list ${String(prefix?.[1])}`);
            for await (const entry of iterator) {
              if (entry.key[1] === "meta") counts.metaEntriesRead++;
              yield entry;
            }
          })();
        };
      }
      if (prop === "atomic") {
        return () => {
          const op = target.atomic();
          const commit = op.commit.bind(op);
          op.commit = () => {
            try {
              lock("commit");
            } catch (error) {
              return Promise.reject(error);
            }
            return commit();
          };
          return op;
        };
      }
      const value = Reflect.get(target, prop);
      if (typeof value !== "function") return value;
      return (...args: unknown[]) => {
        try {
          lock(String(prop));
        } catch (error) {
          return Promise.reject(error);
        }
        return value.apply(target, args);
      };
    },
  });
  return { kv: proxy, counts };
}

// Regression: every put and delete listed every pending put to find abandoned ones.
Deno.test('storage("vault"): abandoned puts are looked for once a minute, not on every write', async () => {
  using kv = await Deno.openKv(":memory:");
  let now = 1_700_000_000_000;
  const { kv: counted, counts } = watched(kv);
  const storage = new KvStorage(counted, () => now);
  for (let i = 0; i < 5; i++) await storage.put(`k${i}`, "v");
  await storage.delete("k0");
  assert.equal(counts.pendingScans, 1);
  now += 61_000;
  await storage.put("k1", "w");
  assert.equal(counts.pendingScans, 2);
});

// Regression: list(prefix) read every key and filtered them in JS.
Deno.test('storage("vault"): list(prefix) reads only the keys under the prefix', async () => {
  using kv = await Deno.openKv(":memory:");
  const { kv: counted, counts } = watched(kv);
  const storage = new KvStorage(counted);
  for (let i = 0; i < 30; i++) await storage.put(`b/${i}`, "v");
  for (let i = 0; i < 3; i++) await storage.put(`a/${i}`, "v");
  await storage.put("c", "v");
  counts.metaEntriesRead = 0;
  assert.deepEqual(await storage.list("a/"), ["a/0", "a/1", "a/2"]);
  assert.ok(counts.metaEntriesRead <= 4, `${counts.metaEntriesRead} keys read`);
  assert.equal((await storage.list()).length, 34);
  assert.deepEqual(await storage.list("b/1"), [
    "b/1",
    ...Array.from({ length: 10 }, (_, i) => `b/1${i}`),
  ]);
  assert.deepEqual(await storage.list("d"), []);
});

// Regression: a KV call refused because another process held the file's lock failed the operation.
Deno.test('storage("vault"): a locked database is retried, as everywhere else', async () => {
  using kv = await Deno.openKv(":memory:");
  const { kv: locking, counts } = watched(kv, true);
  const storage = new KvStorage(locking);
  await storage.put("big", new Uint8Array(200_000).fill(3));
  await storage.put("big", "small");
  assert.equal(new TextDecoder().decode(await storage.get("big")), "small");
  assert.deepEqual(await storage.list(), ["big"]);
  assert.equal(await storage.delete("big"), true);
  assert.equal(await storage.get("big"), undefined);
  assert.ok(counts.locked >= 4, `${counts.locked} locked calls`);
});
