// Several processes on one Deno KV file: appends to one stream with expected
// versions serialise with no gap or duplicate, "database is locked" never
// surfaces, and a subscriber in another process sees every append.
import assert from "node:assert/strict";
import { KvEventStore, openVault } from "../../vault/mod.ts";
import {
  checkContendedStream,
  collect,
  followOtherProcesses,
  startWorker,
} from "./_multi_process.ts";

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
    const results = await Promise.all(
      ["a", "b", "c"].map((w) => startWorker(path, "shared", w, K)),
    );
    const store = await openVault(path);
    try {
      await checkContendedStream(store, "shared", results, K);
    } finally {
      await store.close();
    }
  });
});

Deno.test("multi-process: a subscriber sees other processes' appends", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/follow.kv`;
    const store = await openVault(path);
    try {
      await followOtherProcesses(store, 60, (stream, w) => startWorker(path, stream, w, 60));
    } finally {
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
