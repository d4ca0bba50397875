// Several processes on one Deno KV file: appends to one stream with expected
// versions serialise with no gap or duplicate, "database is locked" never
// surfaces, and a subscriber in another process sees every append.
import assert from "node:assert/strict";
import { type EventRecord, KvEventStore, openVault } from "../../vault/mod.ts";

const WORKER = new URL("./_contend_worker.ts", import.meta.url).pathname;

interface WorkerResult {
  worker: string;
  ids: string[];
  conflicts: number;
}

/** Runs a worker to its end; kills it and fails after `timeoutMs` (a livelock, say). */
async function startWorker(
  path: string,
  stream: string,
  worker: string,
  k: number,
  timeoutMs = 60_000,
): Promise<WorkerResult> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--unstable-kv", WORKER, path, stream, worker, String(k)],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill("SIGKILL");
  }, timeoutMs);
  const out = await child.output();
  clearTimeout(timer);
  const stderr = new TextDecoder().decode(out.stderr);
  assert.ok(!timedOut, `worker ${worker} did not finish within ${timeoutMs} ms: ${stderr}`);
  assert.equal(out.code, 0, `worker ${worker} failed: ${stderr}`);
  assert.ok(!/locked|busy/i.test(stderr), stderr);
  return JSON.parse(new TextDecoder().decode(out.stdout)) as WorkerResult;
}

async function collect(iterator: AsyncIterable<EventRecord>): Promise<EventRecord[]> {
  const out: EventRecord[] = [];
  for await (const record of iterator) out.push(record);
  return out;
}

async function withTempDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("multi-process: three processes append to one stream with expected versions", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/shared.kv`;
    const K = 150;
    const workers = ["a", "b", "c"];
    const results = await Promise.all(workers.map((w) => startWorker(path, "shared", w, K)));

    const store = await openVault(path);
    try {
      const events = await collect(store.readStream("shared"));
      const N = K * workers.length;
      assert.deepEqual(
        events.map((e) => e.version),
        Array.from({ length: N }, (_, i) => i + 1),
        "versions are exactly 1..N",
      );
      assert.equal(new Set(events.map((e) => e.id)).size, N, "no duplicate");
      const byId = new Map(events.map((e) => [e.id, e]));
      for (const { worker, ids } of results) {
        assert.equal(ids.length, K);
        const mine = events.filter((e) => e.meta.worker === worker);
        assert.deepEqual(mine.map((e) => e.id), ids, `worker ${worker}'s events, in its order`);
        assert.deepEqual(
          mine.map((e) => (e.payload as { n: number }).n),
          Array.from({ length: K }, (_, i) => i),
        );
        for (const id of ids) assert.equal(byId.get(id)?.stream, "shared");
      }
      // The processes did contend: otherwise this test proves nothing.
      const conflicts = results.reduce((sum, r) => sum + r.conflicts, 0);
      assert.ok(conflicts > 0, "the workers never conflicted");
      // Positions are the whole log, with no gap.
      const all = await collect(store.read());
      assert.deepEqual(all.map((e) => Number(e.position)), events.map((_, i) => i + 1));
      assert.deepEqual(await store.verify(), { ok: true, checked: N, problems: [] });
      // This process continues where they left off.
      const next = await store.append("shared", [{ kind: "contend.after" }], {
        expectedVersion: N,
      });
      assert.equal(next.version, N + 1);
    } finally {
      await store.close();
    }
  });
});

Deno.test("multi-process: a subscriber sees other processes' appends", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/follow.kv`;
    const K = 60;
    const store = await openVault(path);
    await store.append("local", [{ kind: "local.before" }]);
    const controller = new AbortController();
    const seen: EventRecord[] = [];
    const { promise: allSeen, resolve: resolveAll } = Promise.withResolvers<void>();
    const following = (async () => {
      for await (const record of store.subscribe({ signal: controller.signal })) {
        seen.push(record);
        if (seen.length === 1 + 2 * K) resolveAll();
      }
    })();
    try {
      const results = await Promise.all([
        startWorker(path, "remote", "x", K),
        startWorker(path, "remote", "y", K),
      ]);
      const timeout = setTimeout(() => controller.abort(), 10_000);
      await Promise.race([allSeen, following]);
      clearTimeout(timeout);
      assert.equal(seen.length, 1 + 2 * K, "every append was delivered before the timeout");
      assert.deepEqual(
        seen.map((e) => Number(e.position)),
        seen.map((_, i) => i + 1),
        "in position order, no gap, no duplicate",
      );
      assert.equal(seen[0].kind, "local.before");
      const delivered = new Set(seen.map((e) => e.id));
      for (const { ids } of results) for (const id of ids) assert.ok(delivered.has(id));
      assert.deepEqual(
        seen.slice(1).map((e) => e.version),
        Array.from({ length: 2 * K }, (_, i) => i + 1),
      );
      // And a local append after them still reaches the subscriber, at the right position.
      const local = await store.append("local", [{ kind: "local.after" }], { expectedVersion: 1 });
      assert.equal(local.position, String(2 + 2 * K).padStart(16, "0"));
      const deadline = Date.now() + 5_000;
      while (seen.length < 2 + 2 * K && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 10));
      }
      assert.equal(seen.at(-1)?.id, local.events[0].id);
    } finally {
      controller.abort();
      await following;
      await store.close();
    }
  });
});

Deno.test("multi-process: two stores on one file in one process learn each other's appends", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/two.kv`;
    const a = await KvEventStore.open(await Deno.openKv(path), { closeKv: true });
    const b = await KvEventStore.open(await Deno.openKv(path), { closeKv: true });
    try {
      const stores = [a, b];
      const versions = [0, 0];
      let written = 0;
      let conflicts = 0;
      // Alternate (and sometimes race) the two stores on the same stream.
      for (let round = 0; written < 200; round++) {
        const pick = round % 3 === 2 ? [0, 1] : [round % 2];
        const outcomes = await Promise.allSettled(
          pick.map((n) =>
            stores[n].append("both", [{ kind: "both.wrote", payload: { n } }], {
              expectedVersion: versions[n],
            })
          ),
        );
        for (const [i, outcome] of outcomes.entries()) {
          const n = pick[i];
          if (outcome.status === "fulfilled") {
            assert.equal(outcome.value.version, versions[n] + 1);
            written++;
            versions[n] = outcome.value.version;
          } else {
            assert.equal((outcome.reason as Error).name, "VersionConflictError");
            conflicts++;
            versions[n] = (outcome.reason as { actual: number }).actual;
          }
        }
      }
      assert.ok(conflicts > 0);
      // A store that has not seen the other's appends accepts the version read from the log.
      for (const [writer, reader] of [[a, b], [b, a]]) {
        const { version } = await writer.append("both", [{ kind: "both.wrote" }]);
        written++;
        const [last] = await collect(
          reader.read({ stream: "both", direction: "backward", limit: 1 }),
        );
        assert.equal(last.version, version);
        const result = await reader.append("both", [{ kind: "both.wrote" }], {
          expectedVersion: last.version,
        });
        written++;
        assert.equal(result.version, version + 1);
      }
      // A store that never wrote the stream also learns it from the log.
      const c = await KvEventStore.open(await Deno.openKv(path), { closeKv: true });
      try {
        const { version } = await a.append("fresh", [{ kind: "fresh.one" }]);
        const result = await c.append("fresh", [{ kind: "fresh.two" }], {
          expectedVersion: version,
        });
        assert.equal(result.version, 2);
        await assert.rejects(
          c.append("fresh", [{ kind: "fresh.three" }], { expectedVersion: "no_stream" }),
          { name: "VersionConflictError", actual: 2 },
        );
      } finally {
        await c.close();
      }
      for (const store of stores) {
        const events = await collect(store.readStream("both"));
        assert.deepEqual(events.map((e) => e.version), events.map((_, i) => i + 1));
        assert.equal(events.length, written);
        assert.equal((await store.verify()).ok, true);
      }
    } finally {
      await a.close();
      await b.close();
    }
  });
});
