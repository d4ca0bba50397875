// forkVault: a new vault holding a source's events up to a position, with ids,
// versions, positions and digests kept; its head is the source's head there.
import assert from "node:assert/strict";
import {
  forkVault,
  INLINE_PAYLOAD_BYTES,
  KvEventStore,
  MemoryEventStore,
  openVault,
} from "../../vault/mod.ts";
import { defineAgent, KvCheckpointStore, Runtime } from "../../runtime/mod.ts";
import { KvConnectServer, useTestToken } from "./_kv_connect_server.ts";

async function collect<T>(iterator: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterator) out.push(item);
  return out;
}

const at = (n: number) => String(n).padStart(16, "0");

/** Every key and versionstamp: what a write would change. */
async function dump(kv: Deno.Kv): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of kv.list({ prefix: [] })) {
    out.push(
      `${
        JSON.stringify(entry.key, (_, v) => typeof v === "bigint" ? `${v}n` : v)
      }@${entry.versionstamp}`,
    );
  }
  return out;
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

/**
 * A source with shared pages, a large payload, imported events, checkpoints
 * and state changes on both sides of the fork point it returns: the middle of
 * a page of several events.
 */
async function fill(store: KvEventStore): Promise<number> {
  const checkpoints = new KvCheckpointStore(store.kv);
  // An agent.state event as the runtime records it (verify() checks the index against it),
  // committed with the agent's checkpoint at `after`.
  const recordState = (agent: string, after: string, n: number, updatedAt = 0) =>
    store.append(`agent/${agent}`, [{
      kind: "agent.state",
      payload: { agent, after, state: { n } },
      meta: { actor: `agent/${agent}` },
    }], {
      effect: checkpoints.withState(
        agent,
        { position: after, failures: 0, updatedAt },
        JSON.stringify({ n }),
      ),
    });
  const concurrent = (round: number) =>
    Promise.all(Array.from({ length: 8 }, async (_, w) => {
      for (let i = 0; i < 10; i++) {
        await store.append(`s-${w}`, [{
          kind: i % 2 === 0 ? "task.created" : "task.done",
          payload: { round, w, i, "10": "integer-like keys", b: [1, 2] },
          meta: { correlationId: `r${round}` },
        }]);
      }
    }));
  await concurrent(1);
  const elsewhere = new MemoryEventStore();
  await elsewhere.append("imported", [{ kind: "old.one" }, { kind: "old.two", payload: 2 }]);
  await store.importEvents(await collect(elsewhere.read()));
  await store.append("big", [{
    kind: "blob.made",
    payload: "a".repeat(INLINE_PAYLOAD_BYTES + 10),
  }]);
  const early = await store.append("agent/stateful", [{ kind: "task.created" }]);
  await recordState("stateful", early.position, 1);
  await recordState("slow", at(1), 1);
  await checkpoints.save("early", { position: at(5), failures: 0, updatedAt: 0 });
  await checkpoints.save("idle", { position: null, failures: 0, updatedAt: 0 });
  const before = (await store.head())!.position;
  await concurrent(2);
  let forkAt = 0;
  for await (const page of store.kv.list<Uint8Array>({ prefix: ["vault", "ev"] })) {
    const start = page.key[2] as number;
    const count = JSON.parse(new TextDecoder().decode(page.value)).length;
    if (start > Number(before) && count >= 3) {
      forkAt = start + 1;
      break;
    }
  }
  assert.ok(forkAt > 0, "a page of several events to fork inside");
  // "slow" handled the event before the fork point, but recorded its new state after it.
  await recordState("slow", at(forkAt - 1), 2);
  await store.append("big", [{
    kind: "blob.made",
    payload: "b".repeat(INLINE_PAYLOAD_BYTES + 10),
  }]);
  const late = await store.append("agent/stateful", [{ kind: "task.created" }]);
  await recordState("stateful", late.position, 2, 1);
  await checkpoints.save("late", { position: late.position, failures: 1, updatedAt: 2 });
  return forkAt;
}

/** Checks a fork against its source at `n`. */
async function checkFork(source: KvEventStore, fork: KvEventStore, n: number): Promise<void> {
  const expected = (await collect(source.read())).slice(0, n);
  const last = expected[n - 1];
  assert.deepEqual(await fork.head(), { position: last.position, digest: last.digest });
  assert.deepEqual(await fork.verify(), { ok: true, checked: n, problems: [] });
  assert.deepEqual(await collect(fork.read()), expected);
  const streams = new Set(expected.map((e) => e.stream));
  for (const stream of streams) {
    const mine = expected.filter((e) => e.stream === stream);
    assert.deepEqual(await collect(fork.readStream(stream)), mine, stream);
    assert.deepEqual(
      await collect(fork.read({ stream, direction: "backward", limit: 2 })),
      mine.slice(-2).reverse(),
    );
  }
  for (const event of expected.filter((e) => e.stream === "imported")) {
    assert.deepEqual(await fork.get(event.id), event);
  }
  const stats = await fork.stats();
  assert.equal(stats.events, n);
  assert.equal(stats.head, at(n));
}

Deno.test("forkVault", async (t) => {
  const dir = await Deno.makeTempDir();
  try {
    const sourcePath = `${dir}/source.kv`;
    const source = await openVault(sourcePath);
    const n = await fill(source);
    const before = await dump(source.kv);
    const all = await collect(source.read());

    await t.step("a KV file, cut inside a page, is copied up to the position", async () => {
      const into = `${dir}/fork.kv`;
      const progress: number[] = [];
      const result = await forkVault(source, {
        at: String(n),
        into,
        onProgress: (copied) => progress.push(copied),
      });
      assert.deepEqual(result.head, { position: at(n), digest: all[n - 1].digest });
      assert.equal(result.events, n);
      assert.equal(progress.at(-1), n);
      assert.equal((await Deno.stat(into)).mode! & 0o777, 0o600);
      const fork = await openVault(into);
      try {
        await checkFork(source, fork, n);
        const checkpoints = new KvCheckpointStore(fork.kv);
        const saved = Object.fromEntries(
          (await collect(checkpoints.list())).map(([name, c]) => [name, c.position]),
        );
        // Checkpoints at min(position, fork point); leases are not copied.
        // Before a handling whose state change the fork does not hold, so that it is redone.
        assert.deepEqual(saved, {
          early: at(5),
          idle: null,
          late: at(n),
          slow: at(n - 2),
          stateful: at(n),
        });
        const history = await collect(checkpoints.stateHistory("stateful"));
        assert.deepEqual(history.map((c) => c.state), [{ n: 1 }]);
        assert.deepEqual((await checkpoints.stateAt("slow", at(n - 2)))?.state, { n: 1 });
        assert.equal(result.checkpoints, 5);
        assert.equal(result.stateChanges, 2);
        // The secret pool is not copied.
        assert.equal((await fork.kv.get(["auth", "pool"])).value, null);
        // The fork goes on from the fork point: next position, next versions.
        const stream = all[n].stream;
        const version = all.slice(0, n).filter((e) => e.stream === stream).length;
        const added = await fork.append(stream, [{ kind: "fork.work" }], {
          expectedVersion: version,
        });
        assert.equal(added.position, at(n + 1));
        assert.notEqual(added.events[0].digest, all[n].digest);
        assert.equal((await fork.verify()).ok, true);
      } finally {
        await fork.close();
      }
      assert.deepEqual(await dump(source.kv), before, "the source is never written");
    });

    await t.step("at the head, the fork is the whole log", async () => {
      const into = `${dir}/whole.kv`;
      const head = (await source.head())!;
      const result = await forkVault(sourcePath, { at: head.position, into });
      assert.deepEqual(result.head, head);
      // Every change of "stateful" and "slow"; the latest state of each comes along too.
      assert.equal(result.stateChanges, 4);
      const fork = await openVault(into);
      try {
        await checkFork(source, fork, all.length);
        assert.deepEqual(
          (await new KvCheckpointStore(fork.kv).stateAt("slow"))?.state,
          (await new KvCheckpointStore(source.kv).stateAt("slow"))?.state,
        );
        assert.equal((await fork.get(all.at(-2)!.id))?.payload, all.at(-2)!.payload);
      } finally {
        await fork.close();
      }
    });

    await t.step("refusals say what is wrong in one line and create no file", async () => {
      const existing = `${dir}/existing.kv`;
      await Deno.writeTextFile(existing, "keep me");
      const head = Number((await source.head())!.position);
      const cases: [string, string | Deno.Kv, RegExp][] = [
        ["x", `${dir}/a.kv`, /^Invalid position "x": expected up to 16 digits$/],
        ["-1", `${dir}/a.kv`, /^Invalid position "-1"/],
        ["12345678901234567", `${dir}/a.kv`, /^Invalid position/],
        ["0", `${dir}/a.kv`, /^Cannot fork at "0": the first event is at position 1$/],
        [
          String(head + 1),
          `${dir}/a.kv`,
          new RegExp(`^Cannot fork at "${head + 1}": the log ends at position "${head}"$`),
        ],
        [
          "1",
          existing,
          /^Cannot fork into ".*existing.kv": it exists, and a fork never overwrites$/,
        ],
        ["1", `${dir}/source.kv-wal`, /the name is that of an SQLite side file$/],
        [
          "1",
          `${dir}/no/such/folder/f.kv`,
          /^Cannot fork into ".*": there is no folder ".*folder"$/,
        ],
        ["1", ":memory:", /^Cannot fork into ":memory:": the fork would be gone/],
        ["1", "ftp://host/x", /use a file path or an http\(s\) URL$/],
        ["1", source.kv, /^Cannot fork a vault into its own database$/],
      ];
      for (const [position, into, message] of cases) {
        await assert.rejects(forkVault(source, { at: position, into }), { message }, position);
      }
      for (const into of [undefined, 5, {}, null]) {
        await assert.rejects(
          forkVault(source, { at: "1", into: into as never }),
          {
            name: "TypeError",
            message: /^Invalid into: expected a file path, an http\(s\) URL or an open KV handle$/,
          },
          String(into),
        );
      }
      await assert.rejects(forkVault(source, null as never), {
        name: "TypeError",
        message: /^Invalid fork options: expected \{ at, into \}$/,
      });
      await assert.rejects(
        forkVault(sourcePath, { at: "1", into: `${dir}/./source.kv` }),
        { message: /^Cannot fork into ".*source.kv": it is the vault being forked$/ },
      );
      const full = await Deno.openKv(":memory:");
      try {
        await full.set(["something"], 1);
        await assert.rejects(
          forkVault(source, { at: "1", into: full }),
          {
            message:
              /^Cannot fork into the database: it is not empty, and a fork never overwrites$/,
          },
        );
        assert.deepEqual(await dump(full), [(await dump(full))[0]]);
      } finally {
        full.close();
      }
      assert.equal(await Deno.readTextFile(existing), "keep me");
      const files = [];
      for await (const entry of Deno.readDir(dir)) files.push(entry.name);
      assert.deepEqual(
        files.filter((f) => !/^(source|fork|whole)\.kv/.test(f)).sort(),
        ["existing.kv"],
      );
      assert.deepEqual(await dump(source.kv), before);
    });

    await t.step("a fork stopped midway leaves nothing behind", async () => {
      const into = `${dir}/stopped.kv`;
      const stop = new AbortController();
      await assert.rejects(
        forkVault(source, {
          at: String(n),
          into,
          signal: stop.signal,
          onProgress: () => stop.abort(new Error("Stopped")),
        }),
        { message: "Stopped" },
      );
      for (const suffix of ["", "-wal", "-shm"]) {
        assert.equal(await exists(`${into}${suffix}`), false);
      }
    });

    await t.step(":memory: vaults fork into an open database", async () => {
      const memory = await openVault(":memory:");
      const kv = await Deno.openKv(":memory:");
      try {
        const m = await fill(memory);
        await forkVault(memory, { at: String(m), into: kv });
        const fork = await KvEventStore.open(kv);
        await checkFork(memory, fork, m);
        await fork.close();
      } finally {
        kv.close();
        await memory.close();
      }
    });

    await source.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("forkVault with a remote vault on either side", async () => {
  const server = await KvConnectServer.start({ accessToken: useTestToken() });
  const dir = await Deno.makeTempDir();
  try {
    const remote = await openVault(await server.create("source"));
    const n = await fill(remote);
    const file = `${dir}/from-remote.kv`;
    await forkVault(remote, { at: String(n), into: file });
    const local = await openVault(file);
    await checkFork(remote, local, n);
    // And back: from the local fork into an empty remote database.
    const url = await server.create("fork");
    await forkVault(local, { at: String(n - 1), into: url });
    const back = await openVault(url);
    await checkFork(remote, back, n - 1);
    await assert.rejects(
      forkVault(local, { at: "1", into: url }),
      { message: /^Cannot fork into "http:.*": it is not empty, and a fork never overwrites$/ },
    );
    await back.close();
    await local.close();
    await remote.close();
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("on a fork, an agent redoes handlings cut at the fork point: recorded steps are served back, the rest runs live", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const calls = { first: 0, second: 0 };
    const worker = defineAgent({
      name: "worker",
      subscribe: ["task.created"],
      async handle(_event, ctx) {
        const a = await ctx.step("first", () => ++calls.first);
        const b = await ctx.step("second", () => ++calls.second);
        await ctx.emit({ kind: "task.done", payload: { a, b } });
      },
    });
    const source = await openVault(`${dir}/source.kv`);
    const runtime = await Runtime.create({ vault: source });
    runtime.register(worker);
    await runtime.emit({ kind: "task.created" });
    await runtime.start();
    await runtime.stop();
    const kinds = (await collect(source.read())).map((e) => e.kind);
    assert.deepEqual(kinds, ["task.created", "step.completed", "step.completed", "task.done"]);
    assert.deepEqual(calls, { first: 1, second: 1 });
    // The fork holds the event and the first step's record only.
    await forkVault(source, { at: "2", into: `${dir}/fork.kv` });
    await source.close();
    const fork = await openVault(`${dir}/fork.kv`);
    const rerun = await Runtime.create({ vault: fork });
    rerun.register(worker);
    await rerun.start();
    await rerun.stop();
    const events = await collect(fork.read());
    assert.deepEqual(events.map((e) => e.kind), [
      "task.created",
      "step.completed",
      "step.completed",
      "task.done",
    ]);
    assert.deepEqual(calls, { first: 1, second: 2 }, "the first step served back, the second live");
    assert.deepEqual(events[3].payload, { a: 1, b: 2 });
    assert.equal((await fork.verify()).ok, true);
    await fork.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a fork into a database that fills up fails with its error and leaves it empty", async () => {
  const source = await openVault(":memory:");
  const target = await Deno.openKv(":memory:");
  try {
    for (let i = 0; i < 300; i++) {
      await source.append(`s-${i % 4}`, [{ kind: "e", payload: String(i).padEnd(6000, "p") }]);
    }
    let commits = 0;
    let deletesFail = false;
    // What Deno KV throws when SQLite cannot write, once two commits of writes went through.
    const full = new Proxy(target, {
      get(kv, name) {
        if (name !== "atomic") {
          const value = Reflect.get(kv, name);
          return typeof value === "function" ? value.bind(kv) : value;
        }
        return () => {
          const op = kv.atomic();
          const commit = op.commit.bind(op);
          const set = op.set.bind(op);
          let writes = false;
          op.set = (key, value) => {
            writes = true;
            return set(key, value);
          };
          // Deletes still go through, as they free space (unless deletesFail).
          op.commit = () => {
            if ((writes || deletesFail) && ++commits > 2) {
              return Promise.reject(new TypeError("database or disk is full"));
            }
            return commit();
          };
          return op;
        };
      },
    });
    await assert.rejects(forkVault(source, { at: "300", into: full }), {
      message: "database or disk is full",
    });
    assert.ok(commits > 2);
    assert.deepEqual(await dump(target), [], "what was written is removed");
    // When even removing fails, the error says what is left.
    deletesFail = true;
    commits = 0;
    await assert.rejects(forkVault(source, { at: "300", into: full }), {
      message: "database or disk is full; what the fork wrote could not be removed: clear it",
    });
    assert.notDeepEqual(await dump(target), []);
  } finally {
    target.close();
    await source.close();
  }
});
