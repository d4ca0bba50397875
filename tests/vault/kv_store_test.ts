// Properties of the Deno KV event store beyond the contract: tamper detection,
// the remote Deno KV limits on every commit, reopening with the bulk stream
// index, and large payload deduplication.
import assert from "node:assert/strict";
import v8 from "node:v8";
import {
  type EventRecord,
  KvEventStore,
  MemoryEventStore,
  openVault,
  TokaError,
  VersionConflictError,
} from "../../vault/mod.ts";

async function collect<T>(iterator: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterator) out.push(item);
  return out;
}

async function count(kv: Deno.Kv, prefix: Deno.KvKey): Promise<number> {
  let n = 0;
  for await (const _ of kv.list({ prefix })) n++;
  return n;
}

interface StoredEvent {
  i: string;
  p?: unknown;
  b?: string;
  a?: string[];
}

// Pages are read and written back in the form the store uses: a JSON string or its UTF-8 bytes.
const pageEncoder = new TextEncoder();
const pageDecoder = new TextDecoder();

function decodePage(value: unknown): StoredEvent[] {
  const text = value instanceof Uint8Array ? pageDecoder.decode(value) : value as string;
  return JSON.parse(text);
}

function encodeLike(original: unknown, text: string): string | Uint8Array {
  return original instanceof Uint8Array ? pageEncoder.encode(text) : text;
}

/** Finds the page holding an event, changes it with `edit`, and writes it back. */
async function editStored(
  kv: Deno.Kv,
  id: string,
  edit: (event: StoredEvent) => void,
): Promise<void> {
  for await (const page of kv.list({ prefix: ["vault", "ev"] })) {
    const events = decodePage(page.value);
    const event = events.find((e) => e.i === id);
    if (event === undefined) continue;
    edit(event);
    await kv.set(page.key, encodeLike(page.value, JSON.stringify(events)));
    return;
  }
  throw new Error(`event ${id} is not stored`);
}

async function storedEvent(kv: Deno.Kv, id: string): Promise<StoredEvent> {
  for await (const page of kv.list({ prefix: ["vault", "ev"] })) {
    const event = decodePage(page.value).find((e) => e.i === id);
    if (event !== undefined) return event;
  }
  throw new Error(`event ${id} is not stored`);
}

/** Replaces the page at a position with text that is not JSON. */
async function breakPage(kv: Deno.Kv, position: string): Promise<void> {
  const key = ["vault", "ev", Number(position)];
  const page = await kv.get(key);
  assert.ok(page.value !== null, `a page starts at ${position}`);
  await kv.set(key, encodeLike(page.value, "{not json"));
}

// ---------------------------------------------------------------------------
// Tamper detection

Deno.test("kv store: verify names the event whose stored payload was altered", async () => {
  const kv = await Deno.openKv(":memory:");
  const store = await KvEventStore.open(kv);
  try {
    const first = await store.append("a", [
      { kind: "t.one", payload: { n: 1 } },
      { kind: "t.two", payload: { n: 2 } },
    ]);
    const second = await store.append("b", [{
      kind: "t.three",
      payload: { n: 3 },
      parents: [first.events[1].id],
    }]);
    const third = await store.append("a", [{
      kind: "t.four",
      payload: { n: 4 },
      parents: [second.events[0].id],
    }]);
    assert.deepEqual(await store.verify(), { ok: true, checked: 4, problems: [] });

    const target = second.events[0];
    await editStored(kv, target.id, (event) => event.p = { n: 33 });
    const report = await store.verify();
    assert.equal(report.ok, false);
    assert.equal(report.checked, 4);
    assert.equal(report.problems.length, 1, JSON.stringify(report.problems));
    assert.equal(report.problems[0].id, target.id);
    assert.equal(report.problems[0].position, target.position);
    assert.match(report.problems[0].reason, /digest/);
    // Its child links to the stored digest, so it is not blamed.
    assert.ok(!report.problems.some((p) => p.id === third.events[0].id));

    // Putting it back makes the log whole again.
    await editStored(kv, target.id, (event) => event.p = { n: 3 });
    assert.equal((await store.verify()).ok, true);
  } finally {
    await store.close();
    kv.close();
  }
});

Deno.test("kv store: verify reports a missing blob chunk without throwing", async () => {
  const kv = await Deno.openKv(":memory:");
  const store = await KvEventStore.open(kv);
  try {
    await store.append("s", [{ kind: "small.before", payload: { n: 1 } }]);
    const big = await store.append("s", [{
      kind: "big.one",
      payload: { fill: "z".repeat(150 * 1024) },
    }]);
    await store.append("s", [{ kind: "small.after", payload: { n: 2 } }]);
    const id = big.events[0].id;
    const { b: hex } = await storedEvent(kv, id);
    assert.ok(hex !== undefined, "the big payload is a blob");
    assert.equal(await count(kv, ["vault", "bc", hex]), 3);
    await kv.delete(["vault", "bc", hex, 0]);

    const report = await store.verify();
    assert.equal(report.ok, false);
    assert.equal(report.checked, 3);
    assert.ok(report.problems.length >= 1);
    for (const problem of report.problems) assert.equal(problem.id, id);
    assert.match(report.problems[0].reason, /chunk|missing/);

    // A chunk with other bytes is caught by the content digest.
    await kv.set(["vault", "bc", hex, 0], new Uint8Array(60 * 1024).fill(0x7a));
    const altered = await store.verify();
    assert.equal(altered.ok, false);
    for (const problem of altered.problems) assert.equal(problem.id, id);
  } finally {
    await store.close();
    kv.close();
  }
});

// Regression: opening used to load every payload of the unindexed tail, so one
// missing blob chunk (or unreadable page) there made open() throw, and a damaged
// vault could not even be opened to verify it.
Deno.test("kv store: a damaged vault still opens, verifies and reports the damage on read", async () => {
  const kv = await Deno.openKv(":memory:");
  const store = await KvEventStore.open(kv);
  const big = await store.append("s", [{
    kind: "big.one",
    payload: { fill: "z".repeat(150 * 1024) },
  }]);
  const second = await store.append("s", [{ kind: "small.after" }]);
  await store.close();
  const id = big.events[0].id;
  const { b: hex } = await storedEvent(kv, id);
  await kv.delete(["vault", "bc", hex!, 0]);
  // Only what close() left unindexed is read at open: un-index it, as after a crash.
  await kv.delete(["vault", "ix"]);
  for await (const entry of kv.list({ prefix: ["vault", "si"] })) await kv.delete(entry.key);
  try {
    const fresh = await KvEventStore.open(kv);
    try {
      const report = await fresh.verify();
      assert.equal(report.ok, false);
      for (const problem of report.problems) assert.equal(problem.id, id);
      await assert.rejects(fresh.get(id), (error: unknown) => {
        assert.ok(error instanceof TokaError);
        assert.equal(error.code, "vault_corrupt");
        return true;
      });
      assert.equal((await fresh.get(second.events[0].id))?.kind, "small.after");
      const next = await fresh.append("s", [{ kind: "after.damage" }], { expectedVersion: 2 });
      assert.equal(next.version, 3);
    } finally {
      await fresh.close();
    }
    // An unreadable page in the tail: the store still opens and verify names it.
    await breakPage(kv, second.position);
    await kv.delete(["vault", "ix"]);
    const again = await KvEventStore.open(kv);
    try {
      const report = await again.verify();
      assert.ok(report.problems.some((p) => p.position === second.position));
    } finally {
      await again.close();
    }
  } finally {
    kv.close();
  }
});

Deno.test("kv store: verify reports a parent link to a later or a missing event", async () => {
  const kv = await Deno.openKv(":memory:");
  const store = await KvEventStore.open(kv);
  try {
    const { events } = await store.append("s", [
      { kind: "p.one" },
      { kind: "p.two" },
      { kind: "p.three" },
      { kind: "p.four" },
    ]);
    // The second event now claims the fourth, a later one, as parent.
    await editStored(kv, events[1].id, (event) => event.a = [events[3].id]);
    let report = await store.verify();
    assert.equal(report.problems.length, 1, JSON.stringify(report.problems));
    assert.equal(report.problems[0].id, events[1].id);
    assert.match(report.problems[0].reason, /parent/);

    // The third claims an event that was never stored.
    const missing = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
    await editStored(kv, events[1].id, (event) => delete event.a);
    await editStored(kv, events[2].id, (event) => event.a = [missing]);
    report = await store.verify();
    assert.equal(report.problems.length, 1, JSON.stringify(report.problems));
    assert.equal(report.problems[0].id, events[2].id);
    assert.match(report.problems[0].reason, new RegExp(missing));
  } finally {
    await store.close();
    kv.close();
  }
});

Deno.test("kv store: verify reports an unreadable page and goes on", async () => {
  const kv = await Deno.openKv(":memory:");
  const store = await KvEventStore.open(kv);
  try {
    await store.append("s", [{ kind: "u.one" }]);
    const second = await store.append("s", [{ kind: "u.two" }]);
    await store.append("s", [{ kind: "u.three" }]);
    await breakPage(kv, second.position);
    const report = await store.verify();
    assert.equal(report.ok, false);
    assert.equal(report.problems[0].position, second.position);
    assert.match(report.problems[0].reason, /unreadable/);
  } finally {
    await store.close();
    kv.close();
  }
});

// ---------------------------------------------------------------------------
// Remote limits

const LIMITS = {
  checks: 10,
  mutations: 1000,
  totalBytes: 800 * 1024,
  valueBytes: 64 * 1024,
  keyBytes: 2 * 1024,
};

interface Commit {
  checks: number;
  mutations: number;
  bytes: number;
  largestValue: number;
  largestKey: number;
}

const encoder = new TextEncoder();

/** Size of a key as Deno KV encodes it (tuple encoding, as FoundationDB). */
function keySize(key: Deno.KvKey): number {
  let size = 0;
  for (const part of key) {
    if (typeof part === "string") {
      const bytes = encoder.encode(part);
      size += 2 + bytes.length + bytes.filter((b) => b === 0).length;
    } else if (part instanceof Uint8Array) {
      size += 2 + part.length + part.filter((b) => b === 0).length;
    } else if (typeof part === "number") size += 9;
    else if (typeof part === "bigint") size += 2 + Math.ceil(part.toString(16).length / 2);
    else size += 1;
  }
  return size;
}

/** Size of a value as Deno KV stores it: bytes as they are, anything else V8-serialised. */
function valueSize(value: unknown): number {
  if (value instanceof Uint8Array) return value.byteLength;
  if (value instanceof Deno.KvU64) return 8;
  return v8.serialize(value).length;
}

/**
 * A `Deno.Kv` whose atomic operations (and single `set`/`delete`) record their
 * checks, mutations and sizes, then run on the real database.
 */
function recordingKv(kv: Deno.Kv, commits: Commit[]): Deno.Kv {
  const wrap = (real: Deno.AtomicOperation): Deno.AtomicOperation => {
    const commit: Commit = { checks: 0, mutations: 0, bytes: 0, largestValue: 0, largestKey: 0 };
    const key = (k: Deno.KvKey) => {
      const size = keySize(k);
      commit.largestKey = Math.max(commit.largestKey, size);
      commit.bytes += size;
    };
    const value = (v: unknown) => {
      const size = valueSize(v);
      commit.largestValue = Math.max(commit.largestValue, size);
      commit.bytes += size;
    };
    const mutation = (m: Deno.KvMutation) => {
      commit.mutations++;
      key(m.key);
      if (m.type === "set") value(m.value);
      else if (m.type !== "delete") value(m.value);
    };
    const wrapper: Deno.AtomicOperation = {
      check(...checks: Deno.AtomicCheck[]) {
        commit.checks += checks.length;
        for (const c of checks) key(c.key);
        real.check(...checks);
        return wrapper;
      },
      mutate(...mutations: Deno.KvMutation[]) {
        for (const m of mutations) mutation(m);
        real.mutate(...mutations);
        return wrapper;
      },
      set(k: Deno.KvKey, v: unknown, options?: { expireIn?: number }) {
        mutation({ type: "set", key: k, value: v });
        real.set(k, v, options);
        return wrapper;
      },
      delete(k: Deno.KvKey) {
        mutation({ type: "delete", key: k });
        real.delete(k);
        return wrapper;
      },
      sum(k: Deno.KvKey, n: bigint) {
        mutation({ type: "sum", key: k, value: new Deno.KvU64(n) });
        real.sum(k, n);
        return wrapper;
      },
      min(k: Deno.KvKey, n: bigint) {
        mutation({ type: "min", key: k, value: new Deno.KvU64(n) });
        real.min(k, n);
        return wrapper;
      },
      max(k: Deno.KvKey, n: bigint) {
        mutation({ type: "max", key: k, value: new Deno.KvU64(n) });
        real.max(k, n);
        return wrapper;
      },
      enqueue(v: unknown, options?: Parameters<Deno.AtomicOperation["enqueue"]>[1]) {
        commit.mutations++;
        value(v);
        real.enqueue(v, options);
        return wrapper;
      },
      commit() {
        commits.push({ ...commit });
        return real.commit();
      },
    } as Deno.AtomicOperation;
    return wrapper;
  };
  return new Proxy(kv, {
    get(target, prop) {
      if (prop === "atomic") return () => wrap(target.atomic());
      if (prop === "set") {
        return (k: Deno.KvKey, v: unknown, options?: { expireIn?: number }) =>
          wrap(target.atomic()).set(k, v, options).commit();
      }
      if (prop === "delete") {
        return (k: Deno.KvKey) => wrap(target.atomic()).delete(k).commit().then(() => {});
      }
      const member = Reflect.get(target, prop, target);
      return typeof member === "function" ? member.bind(target) : member;
    },
  });
}

function assertWithinLimits(commits: Commit[], what: string): void {
  assert.ok(commits.length > 0, `${what}: nothing was committed`);
  const worst = {
    checks: Math.max(...commits.map((c) => c.checks)),
    mutations: Math.max(...commits.map((c) => c.mutations)),
    bytes: Math.max(...commits.map((c) => c.bytes)),
    largestValue: Math.max(...commits.map((c) => c.largestValue)),
    largestKey: Math.max(...commits.map((c) => c.largestKey)),
  };
  const detail = `${what}: worst commit of ${commits.length}: ${JSON.stringify(worst)}`;
  assert.ok(worst.checks <= LIMITS.checks, detail);
  assert.ok(worst.mutations <= LIMITS.mutations, detail);
  assert.ok(worst.bytes <= LIMITS.totalBytes, detail);
  assert.ok(worst.largestValue <= LIMITS.valueBytes, detail);
  assert.ok(worst.largestKey <= LIMITS.keyBytes, detail);
}

/** Runs `body` on a store over a recording KV, then checks every commit, `close()` included. */
async function withLimits(
  what: string,
  body: (store: KvEventStore, commits: Commit[]) => Promise<void>,
): Promise<void> {
  const kv = await Deno.openKv(":memory:");
  const commits: Commit[] = [];
  const store = await KvEventStore.open(recordingKv(kv, commits));
  try {
    await body(store, commits);
    await store.close();
    assertWithinLimits(commits, what);
    const reopened = await KvEventStore.open(kv);
    assert.equal((await reopened.verify()).ok, true, `${what}: the log verifies`);
    await reopened.close();
  } finally {
    await store.close();
    kv.close();
  }
}

Deno.test("kv store limits: the recorder sees what it should", async () => {
  const kv = await Deno.openKv(":memory:");
  const commits: Commit[] = [];
  const recording = recordingKv(kv, commits);
  await recording.atomic().check({ key: ["a"], versionstamp: null }).set(["a"], "x".repeat(1000))
    .sum(["n"], 1n).commit();
  await recording.set(["b"], new Uint8Array(70_000)).catch(() => {});
  assert.equal(commits.length, 2);
  assert.equal(commits[0].checks, 1);
  assert.equal(commits[0].mutations, 2);
  assert.ok(commits[0].largestValue >= 1000);
  assert.equal(commits[1].largestValue, 70_000);
  assert.throws(() => assertWithinLimits(commits, "recorder"), /worst commit/);
  assert.equal((await recording.get(["a"])).value, "x".repeat(1000));
  kv.close();
});

Deno.test("kv store limits: 500 concurrent appends to 500 streams", async () => {
  await withLimits("500 streams", async (store) => {
    for (let round = 0; round < 3; round++) {
      const results = await Promise.all(
        Array.from(
          { length: 500 },
          (_, n) =>
            store.append(`limits/stream-${n}`, [{ kind: "l.one", payload: { n, round } }], {
              expectedVersion: round,
            }),
        ),
      );
      assert.ok(results.every((r) => r.version === round + 1));
    }
  });
});

// Regression: an event's size bound used to leave out its stream name, so 400
// concurrent small appends to a 30-character stream made a page over 64 KiB.
Deno.test({
  name: "kv store limits: streams with long names",
  fn: async () => {
    await withLimits("long names", async (store) => {
      await Promise.all(
        Array.from(
          { length: 400 },
          () => store.append("agent/research-assistant/2026", [{ kind: "task.noted" }]),
        ),
      );
      await Promise.all(
        Array.from(
          { length: 500 },
          (_, n) => store.append(`long/${String(n).padStart(250, "x")}`, [{ kind: "l.long" }]),
        ),
      );
      // Near the append maximum: stored within the limits, or refused as too big.
      for (const bytes of [1000, 1200]) {
        await store.append(
          `long/${"y".repeat(250)}`,
          Array.from({ length: 500 }, () => ({ kind: "l.long", payload: "x".repeat(bytes) })),
        ).catch((error) => {
          assert.ok(error instanceof RangeError, String(error));
          assert.match(error.message, /over the maximum/);
        });
      }
    });
  },
});

Deno.test("kv store limits: appends of 500 events at once, also concurrent", async () => {
  await withLimits("500 at once", async (store) => {
    const batch = (tag: string, bytes: number) =>
      Array.from({ length: 500 }, (_, i) => ({
        kind: "l.batch",
        payload: { tag, i, fill: "b".repeat(bytes) },
      }));
    await store.append("batch/one", batch("one", 1200));
    await Promise.all([
      store.append("batch/two", batch("two", 1200)),
      store.append("batch/three", batch("three", 1200)),
      store.append("batch/four", batch("four", 10)),
      store.append("batch/five", batch("five", 10)),
      store.append("batch/six", batch("six", 10)),
    ]);
    // Characters Deno KV stores in two bytes.
    await store.append(
      "batch/wide",
      Array.from(
        { length: 500 },
        (_, i) => ({ kind: "l.wide", payload: "€".repeat(300 + i % 200) }),
      ),
    );
  });
});

Deno.test("kv store limits: guarded appends, shared and distinct guards", async (t) => {
  await t.step("appends sharing one guard share its check: 16 in one commit", async () => {
    await withLimits("16 appends, one guard", async (store, commits) => {
      const guard = { check: { key: ["test", "lease", "a"], versionstamp: null } };
      await store.append("g", [{ kind: "k" }], { guard });
      const before = commits.length;
      const results = await Promise.all(
        Array.from({ length: 16 }, (_, n) =>
          store.append("g", [{ kind: "k", payload: n }], {
            // An equal guard made anew each time, as a lease hands out.
            guard: { check: { key: ["test", "lease", "a"], versionstamp: null } },
          })),
      );
      assert.deepEqual(results.map((r) => r.version), Array.from({ length: 16 }, (_, n) => n + 2));
      const made = commits.slice(before);
      assert.deepEqual(made.map((c) => c.checks), [2], "one commit: the page and the guard");
    });
  });

  await t.step("distinct guards still take at most 8 per commit", async () => {
    await withLimits("16 appends, 16 guards", async (store, commits) => {
      await store.append("g", [{ kind: "k" }]);
      const before = commits.length;
      await Promise.all(
        Array.from({ length: 16 }, (_, n) =>
          store.append("g", [{ kind: "k", payload: n }], {
            guard: { check: { key: ["test", "lease", n], versionstamp: null } },
          })),
      );
      assert.deepEqual(commits.slice(before).map((c) => c.checks), [9, 9]);
    });
  });

  await t.step("commitChecks: 100 lets 64 distinct guards share one commit", async () => {
    const kv = await Deno.openKv(":memory:");
    const commits: Commit[] = [];
    const store = await KvEventStore.open(recordingKv(kv, commits), { commitChecks: 100 });
    await store.append("g", [{ kind: "k" }]);
    const before = commits.length;
    await Promise.all(
      Array.from({ length: 64 }, (_, n) =>
        store.append("g", [{ kind: "k", payload: n }], {
          guard: { check: { key: ["test", "lease", n], versionstamp: null } },
        })),
    );
    assert.deepEqual(commits.slice(before).map((c) => c.checks), [65]);
    // A failed commit finds its failed guards with reads of at most 10 keys each.
    await kv.set(["test", "lease", 63], 1);
    const results = await Promise.allSettled(
      Array.from({ length: 64 }, (_, n) =>
        store.append("g", [{ kind: "k" }], {
          guard: { check: { key: ["test", "lease", n], versionstamp: null } },
        })),
    );
    assert.deepEqual(
      results.map((r) => r.status === "fulfilled" ? "ok" : (r.reason as TokaError).code),
      [...Array(63).fill("ok"), "guard_failed"],
    );
    await store.close();
    kv.close();
  });

  await t.step("openVault on Deno's local KV takes 64 guards in one commit", async () => {
    let now = 1_700_000_000_000;
    const vault = await openVault(":memory:", { clock: () => now++ });
    await Promise.all(
      Array.from({ length: 64 }, (_, n) =>
        vault.append("g", [{ kind: "k", payload: n }], {
          guard: { check: { key: ["test", "lease", n], versionstamp: null } },
        })),
    );
    // A commit reads the clock once: one timestamp for all.
    const times = new Set((await collect(vault.read({}))).map((e) => e.timestamp));
    assert.equal(times.size, 1);
    await vault.close();
  });

  await t.step("a bad commitChecks is a RangeError", async () => {
    const kv = await Deno.openKv(":memory:");
    for (const commitChecks of [1, 101, 2.5, Number.NaN]) {
      await assert.rejects(
        KvEventStore.open(kv, { commitChecks }),
        (error: unknown) =>
          error instanceof RangeError &&
          error.message ===
            `Invalid commitChecks ${commitChecks}: expected a whole number from 2 to 100`,
      );
    }
    assert.equal(await count(kv, []), 0, "nothing written");
    kv.close();
    const dir = await Deno.makeTempDir();
    await assert.rejects(
      openVault(`${dir}/new.kv`, { commitChecks: 0 }),
      new RangeError("Invalid commitChecks 0: expected a whole number from 2 to 100"),
    );
    assert.deepEqual(await Array.fromAsync(Deno.readDir(dir)), [], "no file made");
    await Deno.remove(dir);
  });

  await t.step("a broken shared guard refuses every append it guards, alone", async () => {
    const kv = await Deno.openKv(":memory:");
    const store = await KvEventStore.open(kv);
    const key = ["test", "lease", "b"];
    await kv.set(key, 1);
    const stale = (await kv.get(key)).versionstamp;
    await kv.set(key, 2);
    const results = await Promise.allSettled([
      store.append("g", [{ kind: "k" }], { guard: { check: { key, versionstamp: stale } } }),
      store.append("h", [{ kind: "k" }]),
      ...Array.from(
        { length: 12 },
        () =>
          store.append("g", [{ kind: "k" }], { guard: { check: { key, versionstamp: stale } } }),
      ),
    ]);
    assert.deepEqual(
      results.map((r) => r.status === "fulfilled" ? "ok" : (r.reason as TokaError).code),
      ["guard_failed", "ok", ...Array(12).fill("guard_failed")],
    );
    assert.deepEqual((await collect(store.read({}))).map((e) => e.stream), ["h"]);
    await store.close();
    kv.close();
  });
});

Deno.test("kv store limits: 3 MiB payloads go through chunked blobs", async () => {
  await withLimits("3 MiB", async (store) => {
    const three = 3 * 1024 * 1024;
    const results = await Promise.all([
      store.append("blob/a", [{ kind: "l.big", payload: { fill: "a".repeat(three) } }]),
      store.append("blob/b", [{ kind: "l.big", payload: { fill: "€".repeat(three / 3) } }]),
      store.append("blob/c", [
        { kind: "l.big", payload: { fill: "c".repeat(1024 * 1024) } },
        { kind: "l.big", payload: { fill: "d".repeat(1024 * 1024) } },
        { kind: "l.small" },
      ]),
    ]);
    const again = await store.get(results[0].events[0].id);
    assert.equal((again?.payload as { fill: string }).fill.length, three);
  });
});

Deno.test("kv store limits: importing 2,000 records, twice", async () => {
  const source = new MemoryEventStore();
  let parent: string | undefined;
  for (let i = 0; i < 2000; i += 100) {
    const { events } = await source.append(
      `import/${i % 7}`,
      Array.from({ length: 100 }, (_, j) => ({
        kind: "l.imported",
        payload: { i: i + j, fill: "i".repeat(300) },
        parents: parent === undefined ? [] : [parent],
        meta: { correlationId: `c-${i + j}` },
      })),
    );
    parent = events[99].id;
  }
  const records = await collect(source.read());
  await source.close();
  await withLimits("import", async (store) => {
    // Offset positions, so that the imported ids need their own index entries.
    await store.append("before", [{ kind: "l.before" }, { kind: "l.before" }]);
    assert.deepEqual(await store.importEvents(records), { imported: 2000, skipped: 0 });
    assert.deepEqual(await store.importEvents(records), { imported: 0, skipped: 2000 });
    // After other events: the same ids and versions, at other positions, chained here.
    for (const record of [records[0], records[999], records[1999]]) {
      const stored = await store.get(record.id);
      assert.deepEqual(stored?.payload, record.payload);
      assert.equal(stored?.version, record.version);
      assert.equal(Number(stored?.position), Number(record.position) + 2);
    }
    assert.equal((await store.verify()).ok, true);
  });
});

// Regression: batches were bounded by bytes only, and each imported event whose
// id does not encode its position adds a mutation: over 1,000 in one commit.
Deno.test("kv store limits: several imports at once", async () => {
  const exports: EventRecord[][] = [];
  for (let s = 0; s < 6; s++) {
    const source = new MemoryEventStore();
    for (let i = 0; i < 4; i++) {
      await source.append(`many/${s}`, Array.from({ length: 100 }, () => ({ kind: "l.many" })));
    }
    exports.push(await collect(source.read()));
    await source.close();
  }
  await withLimits("concurrent imports", async (store) => {
    await store.append("before", [{ kind: "l.before" }]);
    const results = await Promise.all(exports.map((records) => store.importEvents(records)));
    for (const result of results) assert.deepEqual(result, { imported: 400, skipped: 0 });
  });
});

// Regression: pages never mixed one- and two-byte text, so alternating small
// appends made one page (one mutation) per event: over 1,000 in one commit.
Deno.test("kv store limits: concurrent appends mixing one- and two-byte text", async () => {
  await withLimits("mixed text", async (store) => {
    await Promise.all(
      Array.from({ length: 3000 }, (_, n) =>
        store.append(`mixed/${n % 40}`, [{
          kind: "l.mixed",
          payload: n % 2 === 0 ? "plain" : "wide €",
        }])),
    );
  });
});

Deno.test("kv store limits: the bulk stream index and close()", async () => {
  await withLimits("index", async (store, commits) => {
    // Over 2,048 events, many streams per page, so index rounds write many entries.
    for (let round = 0; round < 12; round++) {
      await Promise.all(
        Array.from({ length: 700 }, (_, n) => store.append(`index/${n}`, [{ kind: "l.ix" }])),
      );
    }
    // Indexing runs in the background: wait for a round.
    for (let i = 0; i < 500 && !commits.some((c) => c.mutations > 100); i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.ok(commits.some((c) => c.mutations > 100), "index rounds wrote many entries");
    // More than a round's worth left for close() to index.
    await Promise.all(
      Array.from({ length: 1500 }, (_, n) => store.append(`tail/${n}`, [{ kind: "l.tail" }])),
    );
  });
});

// ---------------------------------------------------------------------------
// Reopen and the stream index

Deno.test("kv store: reopening finds every stream through the index and the unindexed tail", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/reopen.kv`;
  try {
    const writer = await KvEventStore.open(await Deno.openKv(path), { closeKv: true });
    const versions = new Map<string, number>();
    const ids: string[] = [];
    const append = async (stream: string, n: number) => {
      const expected = versions.get(stream) ?? 0;
      const result = await writer.append(
        stream,
        Array.from({ length: n }, (_, i) => ({
          kind: "r.ev",
          payload: { stream, v: expected + i + 1 },
        })),
        { expectedVersion: expected },
      );
      assert.equal(result.version, expected + n);
      versions.set(stream, result.version);
      ids.push(...result.events.map((e) => e.id));
    };
    // "early/*" streams are written only at first: their last event gets indexed.
    for (let round = 0; round < 10; round++) {
      await Promise.all(Array.from({ length: 10 }, (_, s) => append(`early/${s}`, 1 + round % 3)));
    }
    // "mid/*" streams throughout, over 5,000 events: the index runs several times.
    for (let round = 0; round < 70; round++) {
      await Promise.all(Array.from({ length: 30 }, (_, s) => append(`mid/${s}`, 1 + round % 4)));
    }
    // "late/*" streams only at the end: in the unindexed tail.
    for (let round = 0; round < 5; round++) {
      await Promise.all(Array.from({ length: 10 }, (_, s) => append(`late/${s}`, 2)));
    }
    const total = ids.length;
    assert.ok(total > 5000, `${total} events`);
    assert.equal(versions.size, 50);

    // Another store on the same file while the writer is still open: part indexed, part tail.
    // Indexing runs in the background: wait for its second round.
    let watermark = 1;
    for (let i = 0; i < 500 && watermark <= 4096; i++) {
      watermark = (await writer.kv.get<number>(["vault", "ix"])).value ?? 1;
      if (watermark <= 4096) await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const reader = await KvEventStore.open(await Deno.openKv(path), { closeKv: true });
    assert.ok(watermark > 4096, `the index ran more than once (watermark ${watermark})`);
    assert.ok(watermark <= total, "the late streams are in the unindexed tail");
    assert.ok((await count(reader.kv, ["vault", "si", "mid/0"])) >= 2);
    await checkStreams(reader, versions, ids);
    await continueStreams(reader, versions, ids, "reader");
    // The writer learns the reader's appends.
    await continueStreams(writer, versions, ids, "writer");
    await writer.close();
    await reader.close();

    // After close() everything is indexed; a fresh open finds it all through the index.
    const reopened = await KvEventStore.open(await Deno.openKv(path), { closeKv: true });
    try {
      const mark = (await reopened.kv.get<number>(["vault", "ix"])).value;
      assert.equal(mark, ids.length + 1, "close() indexed everything");
      await checkStreams(reopened, versions, ids);
      await continueStreams(reopened, versions, ids, "reopened");
      const report = await reopened.verify();
      assert.deepEqual(report, { ok: true, checked: ids.length, problems: [] });
    } finally {
      await reopened.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

async function checkStreams(
  store: KvEventStore,
  versions: Map<string, number>,
  ids: string[],
): Promise<void> {
  for (const [stream, version] of versions) {
    const events = await collect(store.readStream(stream));
    assert.deepEqual(
      events.map((e) => e.version),
      Array.from({ length: version }, (_, i) => i + 1),
      `${stream} in version order`,
    );
    for (const e of events) assert.deepEqual(e.payload, { stream, v: e.version });
    assert.ok(events.every((e, i) => i === 0 || e.position > events[i - 1].position));
    const last = await collect(store.read({ stream, direction: "backward", limit: 3 }));
    assert.deepEqual(last.map((e) => e.version), [version, version - 1, version - 2]);
    const middle = events[Math.floor(events.length / 2)];
    const from = await collect(store.read({ stream, from: middle.position, limit: 2 }));
    assert.deepEqual(from.map((e) => e.version), [middle.version, middle.version + 1]);
  }
  for (const id of [ids[0], ids[1], ids[2500], ids[ids.length - 2], ids[ids.length - 1]]) {
    const event = await store.get(id);
    assert.equal(event?.id, id);
    assert.equal(Number(event.position), ids.indexOf(id) + 1);
  }
}

/** Appends one event to one early, one mid and one late stream with expected versions. */
async function continueStreams(
  store: KvEventStore,
  versions: Map<string, number>,
  ids: string[],
  who: string,
): Promise<void> {
  for (const stream of ["early/3", "mid/7", "late/5"]) {
    const version = versions.get(stream)!;
    await assert.rejects(
      store.append(stream, [{ kind: "r.ev" }], { expectedVersion: version - 1 }),
      (error: unknown) => {
        assert.ok(error instanceof VersionConflictError, `${who} ${stream}: ${error}`);
        assert.equal(error.actual, version);
        return true;
      },
    );
    await assert.rejects(
      store.append(stream, [{ kind: "r.ev" }], { expectedVersion: "no_stream" }),
      VersionConflictError,
    );
    const result = await store.append(stream, [{
      kind: "r.ev",
      payload: { stream, v: version + 1 },
    }], { expectedVersion: version });
    assert.equal(result.version, version + 1, `${who} continues ${stream}`);
    versions.set(stream, result.version);
    ids.push(result.events[0].id);
  }
}

// ---------------------------------------------------------------------------
// Large payloads

Deno.test("kv store: the same large payload is stored once", async () => {
  const kv = await Deno.openKv(":memory:");
  const store = await KvEventStore.open(kv);
  try {
    const payload = { fill: "q".repeat(100 * 1024) };
    const first = await store.append("dedup/a", [{ kind: "d.big", payload }]);
    const more = await Promise.all([
      store.append("dedup/b", [{ kind: "d.big", payload }]),
      store.append("dedup/a", [{ kind: "d.big", payload: { ...payload } }]),
    ]);
    assert.equal(await count(kv, ["vault", "blob"]), 1);
    assert.equal(await count(kv, ["vault", "bc"]), 2);
    const hexes = new Set<string | undefined>();
    for (const { events } of [first, ...more]) hexes.add((await storedEvent(kv, events[0].id)).b);
    assert.equal(hexes.size, 1);
    assert.ok(!hexes.has(undefined));
    // Every event reads back the payload.
    const fresh = await KvEventStore.open(kv);
    for (const { events } of [first, ...more]) {
      assert.deepEqual((await fresh.get(events[0].id))?.payload, payload);
    }
    await fresh.close();
    // A different payload gets its own blob.
    await store.append("dedup/a", [{ kind: "d.big", payload: { fill: "r".repeat(100 * 1024) } }]);
    assert.equal(await count(kv, ["vault", "blob"]), 2);
    assert.equal((await store.verify()).ok, true);
  } finally {
    await store.close();
    kv.close();
  }
});

Deno.test("kv store: appends resolve in position order even when commits finish at once", async () => {
  // Commits that complete before the event loop reaches timers used to let the
  // last batch of a drain resolve before earlier ones: a subscriber of the bus
  // that drops positions at or below the last it saw then lost events.
  const real = await Deno.openKv(":memory:");
  const instant = new Proxy(real, {
    get(target, property) {
      if (property === "atomic") {
        return () => {
          const op = {
            check: () => op,
            set: () => op,
            commit: () => Promise.resolve({ ok: true, versionstamp: "00000000000000000000" }),
          };
          return op;
        };
      }
      const value = Reflect.get(target, property);
      return typeof value === "function" ? value.bind(target) : value;
    },
  }) as Deno.Kv;
  const store = await KvEventStore.open(instant);
  try {
    const resolved: number[] = [];
    await Promise.all(
      Array.from(
        { length: 2500 },
        (_, i) =>
          store.append(`order/${i % 50}`, [{ kind: "k", payload: i }]).then((result) => {
            resolved.push(Number(result.position));
          }),
      ),
    );
    assert.equal(resolved.length, 2500);
    assert.deepEqual(resolved, [...resolved].sort((a, b) => a - b));
  } finally {
    await store.close();
    real.close();
  }
});

Deno.test("kv store: concurrent imports of the same records store each once", async () => {
  const source = new MemoryEventStore();
  const first = await source.append("s", [{ kind: "a" }, { kind: "b" }]);
  await source.append("t", [{ kind: "c", parents: [first.events[0].id] }]);
  const records = await collect(source.read());
  await source.close();
  const dir = await Deno.makeTempDir();
  const one = await openVault(`${dir}/v.kv`);
  const two = await openVault(`${dir}/v.kv`);
  try {
    const results = await Promise.all([
      one.importEvents(records),
      one.importEvents(records),
      two.importEvents(records),
    ]);
    assert.equal(results.reduce((n, r) => n + r.imported, 0), 3);
    assert.equal(results.reduce((n, r) => n + r.skipped, 0), 6);
    assert.equal((await collect(one.read())).length, 3);
    assert.ok((await one.verify()).ok);
  } finally {
    await one.close();
    await two.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("openVault refuses other URL schemes, and a missing file when told not to create", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await assert.rejects(
      openVault("ftp://example/x"),
      new TypeError(
        'Cannot open the vault at "ftp://example/x": use a file path, :memory: or an http(s) URL',
      ),
    );
    await assert.rejects(openVault(""), /the location is empty/);
    const missing = `${dir}/sub/t.kv`;
    await assert.rejects(
      openVault(missing, { create: false }),
      new TypeError(`No vault at "${missing}"`),
    );
    assert.deepEqual([...Deno.readDirSync(dir)], [], "nothing was created");
    const created = await openVault(missing);
    await created.close();
    const reopened = await openVault(missing, { create: false });
    assert.equal(await reopened.head(), null);
    await reopened.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---------------------------------------------------------------------------
// Layout version and disposal

Deno.test("kv store: the layout version is recorded with the first commit and checked at open", async (t) => {
  const kv = await Deno.openKv(":memory:");
  try {
    await t.step("opening an empty vault writes nothing", async () => {
      const store = await KvEventStore.open(kv);
      await store.close();
      assert.equal(await count(kv, ["vault"]), 0);
    });
    await t.step("the first append records the layout", async () => {
      const store = await KvEventStore.open(kv);
      await store.append("s", [{ kind: "k" }]);
      await store.close();
      assert.equal((await kv.get(["vault", "layout"])).value, 2);
    });
    await t.step("a newer layout is refused with one line, and nothing is written", async () => {
      await kv.set(["vault", "layout"], 3);
      const before = await collect(kv.list({ prefix: ["vault"] }));
      await assert.rejects(KvEventStore.open(kv), (error: unknown) => {
        assert.ok(error instanceof TokaError);
        assert.equal(error.code, "vault_layout");
        assert.equal(
          error.message,
          "The vault was written by a newer Toka (vault layout 3; this one reads layout 2): upgrade Toka to open it",
        );
        return true;
      });
      assert.deepEqual(await collect(kv.list({ prefix: ["vault"] })), before);
    });
    await t.step("layout 1 (digests not chained, or no key beside events) is refused", async () => {
      const message =
        "The vault was written by an older Toka (vault layout 1, digests not chained; this one reads layout 2): open it with the Toka that wrote it";
      await kv.set(["vault", "layout"], 1);
      await assert.rejects(KvEventStore.open(kv), new RegExp(message.replace(/[()]/g, "\\$&")));
      await kv.delete(["vault", "layout"]);
      await assert.rejects(KvEventStore.open(kv), /vault layout 1, digests not chained/);
    });
    await t.step("a layout that is not a version is refused", async () => {
      await kv.set(["vault", "layout"], "x");
      await assert.rejects(KvEventStore.open(kv), /unknown layout version "x"/);
    });
  } finally {
    kv.close();
  }
});

Deno.test("stores close with await using", async () => {
  const dir = await Deno.makeTempDir();
  try {
    let kvStore: KvEventStore;
    {
      await using vault = await openVault(`${dir}/v.kv`);
      kvStore = vault;
      await vault.append("s", [{ kind: "k" }]);
    }
    await assert.rejects(kvStore.append("s", [{ kind: "k" }]), /closed/);
    // The database was closed too: the file opens again with everything in it.
    {
      await using again = await openVault(`${dir}/v.kv`);
      assert.equal((await again.stats()).events, 1);
    }
    let memory: MemoryEventStore;
    {
      await using store = new MemoryEventStore();
      memory = store;
      await store.append("s", [{ kind: "k" }]);
    }
    await assert.rejects(memory.append("s", [{ kind: "k" }]), /closed/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// Regression: a clock returning NaN (or Infinity, undefined, a string) was
// written into the page as `null`, and the vault could not be read after reopening.
Deno.test("kv store: a bad clock value is refused before writing, and the vault reopens whole", async () => {
  const dir = await Deno.makeTempDir();
  try {
    let value: unknown = 1_767_225_600_000;
    {
      await using vault = await openVault(`${dir}/v.kv`, { clock: () => value as number });
      await vault.append("s", [{ kind: "k" }]);
      for (const bad of [NaN, Infinity, undefined, "1767225600000"]) {
        value = bad;
        await assert.rejects(
          vault.append("s", [{ kind: "k" }]),
          /^TypeError: Invalid clock value .*: the vault's clock must return milliseconds since the epoch, a whole number from 0 to 8640000000000000$/,
        );
      }
      value = 1_767_225_600_001;
      await vault.append("s", [{ kind: "k" }]);
    }
    await using reopened = await openVault(`${dir}/v.kv`, { create: false });
    const events = await collect(reopened.read());
    assert.deepEqual(events.map((e) => e.timestamp), [1_767_225_600_000, 1_767_225_600_001]);
    assert.deepEqual(await reopened.verify(), { ok: true, checked: 2, problems: [] });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("kv store: opening while another process makes its first append is not called layout 1", async () => {
  using kv = await Deno.openKv(":memory:");
  let raced = false;
  // The other process commits its first append (events and layout key together)
  // right after this open's first read of the layout key.
  const racing = new Proxy(kv, {
    get(target, name) {
      if (name === "getMany" && !raced) {
        return async (...args: Parameters<Deno.Kv["getMany"]>) => {
          const result = await target.getMany(...args);
          raced = true;
          const other = await KvEventStore.open(target);
          await other.append("s", [{ kind: "a.b" }]);
          await other.close();
          return result;
        };
      }
      const value = Reflect.get(target, name, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  const store = await KvEventStore.open(racing as Deno.Kv);
  assert.ok(raced);
  await store.append("s", [{ kind: "a.c" }], { expectedVersion: 1 });
  assert.equal((await store.verify()).ok, true);
  await store.close();
});

// Regression: the group commit looked up each imported id with its own awaited
// read (one KV round trip per record, on top of the import's own check).
Deno.test("kv store: an import's group commit looks its ids up in batches", async () => {
  const source = new MemoryEventStore();
  await source.append("batched", Array.from({ length: 100 }, () => ({ kind: "l.batched" })));
  const records = await collect(source.read());
  await source.close();
  using kv = await Deno.openKv(":memory:");
  let idReads = 0;
  const isId = (key: Deno.KvKey) => key[0] === "vault" && key[1] === "id";
  const counting = new Proxy(kv, {
    get(target, name) {
      const value = Reflect.get(target, name, target);
      if (name === "get") {
        return (key: Deno.KvKey, ...rest: unknown[]) => {
          if (isId(key)) idReads++;
          return (value as (...args: unknown[]) => unknown).call(target, key, ...rest);
        };
      }
      if (name === "getMany") {
        return (keys: Deno.KvKey[], ...rest: unknown[]) => {
          if (keys.some(isId)) idReads++;
          return (value as (...args: unknown[]) => unknown).call(target, keys, ...rest);
        };
      }
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  const store = await KvEventStore.open(counting as Deno.Kv);
  // Offset positions, so that each imported id needs an id lookup.
  await store.append("before", [{ kind: "l.before" }]);
  idReads = 0;
  assert.deepEqual(await store.importEvents(records), { imported: 100, skipped: 0 });
  // The import checks each record once before queueing it; the commit adds at
  // most one read per 10 ids (Deno KV's getMany limit), not one per id.
  assert.ok(idReads <= 100 + 10 + 1, `${idReads} id reads for 100 records`);
  assert.deepEqual(await store.importEvents(records), { imported: 0, skipped: 100 });
  assert.equal((await store.verify()).ok, true);
  await store.close();
});
