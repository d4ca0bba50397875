// The event store contract: every EventStore implementation runs this suite.
import assert from "node:assert/strict";
import type {
  AppendGuard,
  EventRecord,
  EventStore,
  ReadOptions,
} from "../../runtime/log/event_store.ts";
import { GuardFailedError, TokaError, VersionConflictError } from "../../runtime/errors.ts";
import { MAX_PAYLOAD_BYTES, MAX_PAYLOAD_DEPTH } from "../../runtime/log/event_limits.ts";
import { vaultKv } from "../../vault/mod.ts";
import { recordDigest } from "../../runtime/log/event_rules.ts";

/** Makes a fresh, empty store whose clock is `clock`; `cleanup` releases what it opened. */
export type StoreFactory = (
  clock: () => number,
) => Promise<{ store: EventStore; cleanup?: () => Promise<void> }>;

const T0 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

async function collect(iterator: AsyncIterable<EventRecord>): Promise<EventRecord[]> {
  const out: EventRecord[] = [];
  for await (const record of iterator) out.push(record);
  return out;
}

/** A JSON value `depth` containers deep: `[[[0]]]` for 3. */
function nested(depth: number, wrap: (inner: unknown) => unknown = (v) => [v]): unknown {
  let value: unknown = 0;
  for (let i = 0; i < depth; i++) value = wrap(value);
  return value;
}

const MAX_DATE = 8_640_000_000_000_000; // the last millisecond a Date holds

/** The record with its digest recomputed, as a forger would: first in its export, no parents. */
function withDigest(record: EventRecord): EventRecord {
  const digest = recordDigest(
    {
      ...record,
      position: Number(record.position),
      canonicalPayload: JSON.stringify(record.payload),
    },
    [],
    null,
  );
  return { ...record, digest };
}

/** A snapshot of everything a store shows, to prove a failed call changed nothing. */
async function snapshot(store: EventStore): Promise<string> {
  return JSON.stringify({ head: await store.head(), events: await collect(store.read()) });
}

export async function runContract(t: Deno.TestContext, factory: StoreFactory): Promise<void> {
  let now = T0;
  const clock = () => now;
  const open = async () => {
    now = T0;
    return await factory(clock);
  };
  const withStore = (name: string, body: (store: EventStore) => Promise<void>) =>
    t.step(name, async () => {
      const { store, cleanup } = await open();
      try {
        await body(store);
      } finally {
        await store.close();
        await cleanup?.();
      }
    });

  await withStore("append stores events with the documented shape", async (store) => {
    const result = await store.append("agent/planner", [
      { kind: "task.created", payload: { title: "Plan", n: 1 }, meta: { correlationId: "c1" } },
      { kind: "task.noted", intent: "remember the plan" },
    ]);
    assert.equal(result.version, 2);
    assert.equal(result.position, "0000000000000002");
    assert.equal(result.events.length, 2);
    const [first, second] = result.events;
    assert.match(first.id, /^[0-9A-HJKMNP-TV-Z]{26}$/);
    assert.notEqual(first.id, second.id);
    assert.equal(first.position, "0000000000000001");
    assert.equal(first.stream, "agent/planner");
    assert.equal(first.version, 1);
    assert.equal(first.kind, "task.created");
    assert.deepEqual(first.payload, { title: "Plan", n: 1 });
    assert.deepEqual(first.parents, []);
    assert.match(first.digest, /^sha256:[0-9a-f]{64}$/);
    assert.equal(first.timestamp, T0);
    assert.deepEqual(first.meta, { correlationId: "c1" });
    assert.equal(second.payload, null);
    assert.equal(second.intent, "remember the plan");
    assert.deepEqual(await collect(store.read()), result.events);
  });

  await withStore("ids are time-ordered", async (store) => {
    const a = await store.append("s", [{ kind: "k" }]);
    now += 5;
    const b = await store.append("s", [{ kind: "k" }]);
    assert.ok(a.events[0].id < b.events[0].id);
  });

  await withStore("the caller's payload object is copied, not kept", async (store) => {
    const payload = { list: [1, 2] };
    const { events } = await store.append("s", [{ kind: "k", payload }]);
    payload.list.push(3);
    assert.deepEqual(events[0].payload, { list: [1, 2] });
    assert.deepEqual((await store.get(events[0].id))?.payload, { list: [1, 2] });
    assert.ok(!Object.isFrozen(payload), "the caller's object must stay theirs");
  });

  await withStore("expected version rules", async (store) => {
    await store.append("a", [{ kind: "k" }], { expectedVersion: "no_stream" });
    await store.append("a", [{ kind: "k" }], { expectedVersion: 1 });
    await store.append("a", [{ kind: "k" }], { expectedVersion: "exists" });
    await store.append("a", [{ kind: "k" }], { expectedVersion: "any" });
    await store.append("a", [{ kind: "k" }]);
    await store.append("b", [{ kind: "k" }], { expectedVersion: 0 });
    const before = await snapshot(store);
    const conflicts: [string, number | "no_stream" | "exists", string][] = [
      ["a", 3, 'Cannot append to stream "a": expected version 3, found 5'],
      ["a", "no_stream", 'Cannot append to stream "a": expected version "no_stream", found 5'],
      ["c", "exists", 'Cannot append to stream "c": expected version "exists", found 0'],
      ["c", 2, 'Cannot append to stream "c": expected version 2, found 0'],
      ["a", 0, 'Cannot append to stream "a": expected version 0, found 5'],
    ];
    for (const [stream, expectedVersion, message] of conflicts) {
      await assert.rejects(
        store.append(stream, [{ kind: "k" }], { expectedVersion }),
        (error: unknown) => {
          assert.ok(error instanceof VersionConflictError);
          assert.ok(error instanceof TokaError);
          assert.equal(error.code, "version_conflict");
          assert.equal(error.message, message);
          return true;
        },
      );
    }
    assert.equal(await snapshot(store), before);
  });

  await withStore(
    "bad input is refused with a one-line error and stores nothing",
    async (store) => {
      await store.append("ok", [{ kind: "seed", payload: 1 }]);
      const before = await snapshot(store);
      const cyclic: Record<string, unknown> = {};
      cyclic.self = cyclic;
      const cases: [string, () => Promise<unknown>, RegExp, ErrorConstructor][] = [
        [
          "function payload",
          () => store.append("s", [{ kind: "k", payload: () => 1 }]),
          /\$ is a function/,
          TypeError,
        ],
        [
          "nested function",
          () => store.append("s", [{ kind: "k", payload: { a: [1, () => 1] } }]),
          /\$\.a\[1\] is a function/,
          TypeError,
        ],
        ["cycle", () => store.append("s", [{ kind: "k", payload: cyclic }]), /circular/, TypeError],
        [
          "BigInt",
          () => store.append("s", [{ kind: "k", payload: { n: 1n } }]),
          /\$\.n is bigint/,
          TypeError,
        ],
        [
          "undefined inside",
          () => store.append("s", [{ kind: "k", payload: [undefined] }]),
          /is undefined/,
          TypeError,
        ],
        ["NaN", () => store.append("s", [{ kind: "k", payload: NaN }]), /NaN/, TypeError],
        [
          "Date object",
          () => store.append("s", [{ kind: "k", payload: new Date() }]),
          /Date object/,
          TypeError,
        ],
        ["empty kind", () => store.append("s", [{ kind: "" }]), /Invalid event kind/, TypeError],
        [
          "malformed kind",
          () => store.append("s", [{ kind: "task..done" }]),
          /Invalid event kind/,
          TypeError,
        ],
        [
          "kind with space",
          () => store.append("s", [{ kind: "task done" }]),
          /Invalid event kind/,
          TypeError,
        ],
        [
          "missing kind",
          () => store.append("s", [{} as { kind: string }]),
          /Invalid event kind/,
          TypeError,
        ],
        ["empty stream", () => store.append("", [{ kind: "k" }]), /Invalid stream name/, TypeError],
        [
          "stream with space",
          () => store.append("a b", [{ kind: "k" }]),
          /Invalid stream name/,
          TypeError,
        ],
        [
          "long stream",
          () => store.append("s".repeat(300), [{ kind: "k" }]),
          /longer than 256/,
          TypeError,
        ],
        ["no events", () => store.append("s", []), /non-empty array/, TypeError],
        ["not an array", () => store.append("s", {} as never), /non-empty array/, TypeError],
        [
          "bad expected version",
          () => store.append("s", [{ kind: "k" }], { expectedVersion: -1 }),
          /Invalid expected version/,
          TypeError,
        ],
        [
          "unknown parent",
          () => store.append("s", [{ kind: "k", parents: ["01M8E4YQ9Q0000000099TBXYTG"] }]),
          /is not stored/,
          TypeError,
        ],
        [
          "malformed parent",
          () => store.append("s", [{ kind: "k", parents: ["nope"] }]),
          /not an event id/,
          TypeError,
        ],
        [
          "meta not strings",
          () => store.append("s", [{ kind: "k", meta: { a: 1 as unknown as string } }]),
          /Invalid meta/,
          TypeError,
        ],
        [
          "oversized payload",
          () => store.append("s", [{ kind: "k", payload: "x".repeat(MAX_PAYLOAD_BYTES) }]),
          /over the maximum/,
          RangeError,
        ],
        [
          "oversized append",
          () =>
            store.append(
              "s",
              Array.from({ length: 100 }, () => ({ kind: "k", payload: "x".repeat(8000) })),
            ),
          /over the maximum/,
          RangeError,
        ],
      ];
      for (const [name, call, message, type] of cases) {
        await assert.rejects(call(), (error: unknown) => {
          assert.ok(error instanceof type, `${name}: ${error}`);
          assert.match((error as Error).message, message, name);
          assert.ok(!(error as Error).message.includes("\n"), `${name}: one line`);
          return true;
        });
      }
      assert.equal(await snapshot(store), before);
    },
  );

  await withStore(
    "a payload nested deeper than 256 is refused before anything is stored",
    async (store) => {
      const ok = await store.append("s", [{ kind: "k", payload: nested(MAX_PAYLOAD_DEPTH) }]);
      assert.deepEqual(ok.events[0].payload, nested(MAX_PAYLOAD_DEPTH));
      const exported = await collect(store.read());
      const before = await snapshot(store);
      const deep: [string, unknown, RegExp][] = [
        ["257 arrays", nested(257), /^Invalid payload of event 0: \$(\[0\])+…(\[0\])+ /],
        ["10,000 arrays", nested(10_000), /^Invalid payload of event 0: \$(\[0\])+…(\[0\])+ /],
        [
          "10,000 objects",
          nested(10_000, (v) => ({ a: v })),
          /^Invalid payload of event 0: \$(\.a)+…(\.a)+ /,
        ],
        ["deep inside", { list: [1, nested(300)] }, /^Invalid payload of event 0: \$\.list\[1\]/],
      ];
      for (const [name, payload, path] of deep) {
        await assert.rejects(store.append("s", [{ kind: "k", payload }]), (error: unknown) => {
          assert.ok(error instanceof TypeError, `${name}: ${error}`);
          assert.match(error.message, path, name);
          assert.match(error.message, /is nested 257 deep, over the maximum of 256$/, name);
          assert.ok(error.message.length < 200, `${name}: a short line`);
          return true;
        });
      }
      // Import applies the same rule (the digest cannot be made to match: the depth is found first).
      const record = { ...exported[0], id: "01M8E4YQ9Q0000000077TBXYTG", payload: nested(10_000) };
      await assert.rejects(
        store.importEvents([record]),
        /^TypeError: Invalid payload of event 0: .* is nested 257 deep, over the maximum of 256$/,
      );
      assert.equal(await snapshot(store), before);
      assert.ok((await store.verify()).ok);
    },
  );

  await withStore(
    "a lone surrogate is a TypeError naming its path; an unknown direction is refused",
    async (store) => {
      const [seed] = (await store.append("ok", [{ kind: "seed", payload: "a\u{1F600}" }])).events;
      const before = await snapshot(store);
      const cases: [unknown, string][] = [
        ["\uD800", "$ has a lone surrogate U+D800 at index 0, not valid Unicode"],
        [{ text: "ab\uDC00" }, "$.text has a lone surrogate U+DC00 at index 2, not valid Unicode"],
        [
          [1, { "\uD83D": 1 }],
          "$[1] has a key with a lone surrogate U+D83D at index 0, not valid Unicode",
        ],
      ];
      for (const [payload, message] of cases) {
        await assert.rejects(store.append("s", [{ kind: "k", payload }]), (error: unknown) => {
          assert.ok(error instanceof TypeError, String(error));
          assert.equal(error.message, `Invalid payload of event 0: ${message}`);
          return true;
        });
      }
      // Import refuses it the same way, before looking at the digest.
      const forged = { ...seed, id: "01M8E4YQ9Q0000000077TBXYTG", payload: { text: "ab\uDC00" } };
      await assert.rejects(store.importEvents([forged]), (error: unknown) => {
        assert.ok(error instanceof TypeError, String(error));
        assert.equal(
          error.message,
          "Invalid payload of event 0: $.text has a lone surrogate U+DC00 at index 2, not valid Unicode",
        );
        return true;
      });
      for (const direction of ["sideways", "Backward", null, 1]) {
        const options = { direction } as unknown as ReadOptions;
        await assert.rejects(store.read(options).next(), (error: unknown) => {
          assert.ok(error instanceof TypeError, String(error));
          assert.equal(
            error.message,
            `Invalid direction ${JSON.stringify(direction)}: use "forward" or "backward"`,
          );
          return true;
        });
      }
      assert.equal(await snapshot(store), before);
    },
  );

  await withStore("parents link events and feed the digest", async (store) => {
    const a = (await store.append("s", [{ kind: "a", payload: 1 }])).events[0];
    const b = (await store.append("t", [{ kind: "b", payload: 1 }])).events[0];
    const c = (await store.append("s", [{ kind: "c", payload: 1, parents: [b.id, a.id] }]))
      .events[0];
    const d = (await store.append("s", [{ kind: "c", payload: 1, parents: [a.id, b.id] }]))
      .events[0];
    assert.deepEqual(c.parents, [b.id, a.id]);
    // The digest covers the whole record and chains to the event before it.
    assert.notEqual(a.digest, b.digest, "same payload, other id, stream and position");
    assert.equal(new Set([a.digest, b.digest, c.digest, d.digest]).size, 4);
    assert.deepEqual(await store.verify(), { ok: true, checked: 4, problems: [] });
  });

  await withStore("read filters by position, stream, kind, limit and direction", async (store) => {
    for (let i = 0; i < 6; i++) {
      await store.append(i % 2 === 0 ? "even" : "odd", [{
        kind: i < 3 ? "task.created" : "tool.done",
        payload: i,
      }]);
    }
    const payloads = async (options: Parameters<EventStore["read"]>[0]) =>
      (await collect(store.read(options))).map((e) => e.payload);
    assert.deepEqual(await payloads({}), [0, 1, 2, 3, 4, 5]);
    assert.deepEqual(await payloads({ from: "0000000000000004" }), [3, 4, 5]);
    assert.deepEqual(await payloads({ from: "4" }), [3, 4, 5]);
    assert.deepEqual(await payloads({ stream: "even" }), [0, 2, 4]);
    assert.deepEqual(await payloads({ stream: "even", from: "0000000000000002" }), [2, 4]);
    assert.deepEqual(await payloads({ kinds: ["task.*"] }), [0, 1, 2]);
    assert.deepEqual(await payloads({ kinds: ["tool.done", "task.created"], limit: 4 }), [
      0,
      1,
      2,
      3,
    ]);
    assert.deepEqual(await payloads({ direction: "backward", limit: 2 }), [5, 4]);
    assert.deepEqual(await payloads({ direction: "backward", from: "0000000000000003" }), [
      2,
      1,
      0,
    ]);
    assert.deepEqual(await payloads({ stream: "odd", direction: "backward" }), [5, 3, 1]);
    // A stream read backward from a position, by kind, with a limit: only what it returns.
    const odd = { stream: "odd", direction: "backward" } as const;
    assert.deepEqual(await payloads({ ...odd, limit: 1 }), [5]);
    assert.deepEqual(await payloads({ ...odd, from: "0000000000000005" }), [3, 1]);
    assert.deepEqual(await payloads({ ...odd, from: "0000000000000004", limit: 1 }), [3]);
    assert.deepEqual(await payloads({ ...odd, from: "0" }), []);
    assert.deepEqual(await payloads({ ...odd, kinds: ["task.*"] }), [1]);
    assert.deepEqual(await payloads({ ...odd, from: "99", kinds: ["tool.done"], limit: 1 }), [5]);
    assert.deepEqual(await payloads({ stream: "even", from: "0000000000000004" }), [4]);
    assert.deepEqual(await payloads({ stream: "even", from: "0", limit: 2 }), [0, 2]);
    assert.deepEqual(await payloads({ stream: "even", from: "7" }), []);
    assert.deepEqual(await payloads({ from: "0", limit: 1 }), [0]);
    assert.deepEqual(await payloads({ direction: "backward", from: "99", limit: 1 }), [5]);
    assert.deepEqual(await payloads({ stream: "none" }), []);
    assert.deepEqual(await payloads({ limit: 0 }), []);
    assert.deepEqual((await collect(store.readStream("odd"))).map((e) => e.version), [1, 2, 3]);
    await assert.rejects(collect(store.read({ from: "x" })), /Invalid from "x"/);
    await assert.rejects(collect(store.read({ limit: -1 })), /Invalid limit/);
    await assert.rejects(collect(store.read({ kinds: ["bad kind"] })), /Invalid kind pattern/);
    await assert.rejects(collect(store.readStream("")), /Invalid stream name/);
  });

  await withStore("get, head and stats", async (store) => {
    assert.equal(await store.head(), null);
    assert.deepEqual(await store.stats(), {
      events: 0,
      streams: 0,
      head: null,
      firstTimestamp: null,
      lastTimestamp: null,
      kinds: {},
    });
    const { events } = await store.append("a", [{ kind: "x", payload: "1" }]);
    now += 10;
    await store.append("b", [{ kind: "y" }, { kind: "x" }]);
    assert.deepEqual(await store.get(events[0].id), events[0]);
    assert.equal(await store.get("01M8E4YQ9Q0000000001TBXYTG"), null);
    assert.equal(await store.get("not-an-id"), null);
    const last = (await collect(store.read({ direction: "backward", limit: 1 })))[0];
    assert.deepEqual(await store.head(), { position: "0000000000000003", digest: last.digest });
    assert.deepEqual(await store.stats(), {
      events: 3,
      streams: 2,
      head: "0000000000000003",
      firstTimestamp: T0,
      lastTimestamp: T0 + 10,
      kinds: { x: 2, y: 1 },
    });
  });

  await withStore(
    "concurrent appends with expected versions: one winner per version",
    async (store) => {
      const attempts = await Promise.allSettled(
        Array.from(
          { length: 20 },
          (_, i) => store.append("race", [{ kind: "k", payload: i }], { expectedVersion: 0 }),
        ),
      );
      assert.equal(
        attempts.filter((a) => a.status === "fulfilled").length,
        1,
      );
      for (const attempt of attempts) {
        if (attempt.status === "rejected") {
          assert.ok(
            attempt.reason instanceof VersionConflictError,
          );
        }
      }
      await Promise.all(
        Array.from({ length: 30 }, (_, i) => store.append("many", [{ kind: "k", payload: i }])),
      );
      const versions = (await collect(store.readStream("many"))).map((e) => e.version);
      assert.deepEqual(versions, Array.from({ length: 30 }, (_, i) => i + 1));
      assert.ok((await store.verify()).ok);
    },
  );

  await withStore("large payloads round-trip", async (store) => {
    const big = { text: "é".repeat(50_000), list: Array.from({ length: 2000 }, (_, i) => i) };
    const { events } = await store.append("big", [{ kind: "blob.put", payload: big }]);
    await store.append("big", [{ kind: "blob.put", payload: big, parents: [events[0].id] }]);
    assert.deepEqual((await store.get(events[0].id))?.payload, big);
    const all = await collect(store.readStream("big"));
    assert.deepEqual(all.map((e) => e.payload), [big, big]);
    assert.ok((await store.verify()).ok);
  });

  await withStore(
    "subscribe catches up, then follows live with no gap or duplicate",
    async (store) => {
      for (let i = 0; i < 5; i++) {
        await store.append("s", [{
          kind: i % 2 ? "odd" : "even",
          payload: i,
        }]);
      }
      const controller = new AbortController();
      const seen: unknown[] = [];
      const consumer = (async () => {
        for await (const event of store.subscribe({ signal: controller.signal })) {
          seen.push(event.payload);
          if (event.payload === 3) {
            // Appends racing with the switch from catch-up to live.
            await Promise.all(
              [5, 6, 7].map((n) => store.append("t", [{ kind: "even", payload: n }])),
            );
          }
          if (seen.length === 10) controller.abort();
        }
      })();
      await new Promise((resolve) => setTimeout(resolve, 30));
      await store.append("s", [{ kind: "odd", payload: 8 }, { kind: "even", payload: 9 }]);
      await consumer;
      assert.deepEqual([...seen].sort((a, b) => Number(a) - Number(b)), [
        0,
        1,
        2,
        3,
        4,
        5,
        6,
        7,
        8,
        9,
      ]);
      assert.equal(new Set(seen).size, 10);

      const filtered: unknown[] = [];
      const c2 = new AbortController();
      for await (
        const event of store.subscribe({
          after: "0000000000000002",
          kinds: ["odd"],
          signal: c2.signal,
        })
      ) {
        filtered.push(event.payload);
        if (event.payload === 8) c2.abort();
      }
      assert.deepEqual(filtered, [3, 8]);
    },
  );

  await withStore(
    "subscribe from the end sees only new events and ends on abort",
    async (store) => {
      await store.append("s", [{ kind: "old" }]);
      const controller = new AbortController();
      const seen: string[] = [];
      const consumer = (async () => {
        for await (const event of store.subscribe({ after: "$end", signal: controller.signal })) {
          seen.push(event.kind);
        }
      })();
      await new Promise((resolve) => setTimeout(resolve, 10));
      await store.append("s", [{ kind: "new" }]);
      await new Promise((resolve) => setTimeout(resolve, 30));
      controller.abort();
      await consumer;
      assert.deepEqual(seen, ["new"]);
    },
  );

  await withStore("subscribe refuses a malformed start position", async (store) => {
    await assert.rejects(
      store.subscribe({ after: "x" }).next(),
      new TypeError('Invalid after "x": expected up to 16 digits'),
    );
    await assert.rejects(store.subscribe({ kinds: ["bad kind"] }).next(), /Invalid kind pattern/);
  });

  await withStore("verify is clean on a fresh log", async (store) => {
    assert.deepEqual(await store.verify(), { ok: true, checked: 0, problems: [] });
  });

  await t.step("import keeps ids and is idempotent; tampered records are refused", async () => {
    const source = await open();
    const target = await open();
    try {
      const a = await source.store.append("s", [{
        kind: "a",
        payload: { n: 1 },
        meta: { actor: "x" },
      }]);
      now += 7;
      await source.store.append("t", [{
        kind: "b",
        payload: [1],
        parents: [a.events[0].id],
        intent: "why",
      }]);
      await source.store.append("s", [{ kind: "c", payload: "big".repeat(5000) }]);
      const exported = await collect(source.store.read());
      assert.deepEqual(await target.store.importEvents(exported), { imported: 3, skipped: 0 });
      assert.deepEqual(await target.store.importEvents(exported), { imported: 0, skipped: 3 });
      // Into an empty vault: ids, versions, positions and so the chain digests are kept.
      const imported = await collect(target.store.read());
      assert.deepEqual(imported, exported);
      assert.deepEqual(await target.store.get(exported[1].id), imported[1]);
      assert.deepEqual(await target.store.verify(), { ok: true, checked: 3, problems: [] });
      assert.deepEqual(await target.store.head(), await source.store.head());
      const kept = await source.store.head();
      assert.ok((await target.store.verify({ expectHead: kept! })).ok);

      const before = await snapshot(target.store);
      const tampered = { ...exported[0], id: "01M8E4YQ9Q0000000077TBXYTG", payload: { n: 2 } };
      await assert.rejects(target.store.importEvents([tampered]), /digest does not match/);
      await assert.rejects(
        target.store.importEvents([{ ...exported[0], id: "x" }]),
        /"id" is not an event id/,
      );
      await assert.rejects(
        target.store.importEvents([{ bogus: true } as unknown as EventRecord]),
        /Invalid record 0/,
      );
      await assert.rejects(
        target.store.importEvents(
          [exported[2]].map((e) => ({ ...e, id: "01M8E4YQ9Q0000000078TBXYTG" })),
        ),
        /digest does not match/,
      );
      assert.equal(await snapshot(target.store), before);
    } finally {
      await source.store.close();
      await source.cleanup?.();
      await target.store.close();
      await target.cleanup?.();
    }
  });

  await t.step(
    "import refuses a stream that has other events, and goes on from the start",
    async () => {
      const source = await open();
      const target = await open();
      try {
        await source.store.append("s", [{ kind: "a" }, { kind: "b" }]);
        await source.store.append("t", [{ kind: "c" }]);
        const exported = await collect(source.store.read());
        await target.store.append("other", [{ kind: "x" }]);
        await target.store.append("t", [{ kind: "mine" }]);
        const before = await snapshot(target.store);
        // A record that is not at the start of its export cannot be checked on its own.
        await assert.rejects(
          target.store.importEvents([exported[2]]),
          /Invalid record 0: digest does not match .*not imported from the start of its export/,
        );
        assert.equal(await snapshot(target.store), before);
        // Stream "s" is new here: its events are stored, at other positions, then "t" is refused.
        await assert.rejects(target.store.importEvents(exported), (error: unknown) => {
          assert.ok(error instanceof TypeError);
          assert.equal(
            error.message,
            'Invalid record 2: stream "t" is at version 1 here, the record has version 1; import into a vault where the stream is new or ends just before it',
          );
          return true;
        });
        const stored = await collect(target.store.read());
        assert.deepEqual(stored.map((e) => [e.stream, e.version, e.kind]), [
          ["other", 1, "x"],
          ["t", 1, "mine"],
          ["s", 1, "a"],
          ["s", 2, "b"],
        ]);
        assert.deepEqual(stored.slice(2).map((e) => e.id), exported.slice(0, 2).map((e) => e.id));
        assert.ok((await target.store.verify()).ok);
        // Importing the same again adds nothing and refuses the same record.
        await assert.rejects(target.store.importEvents(exported), /Invalid record 2: stream "t"/);
        assert.equal((await collect(target.store.read())).length, 4);
      } finally {
        await source.store.close();
        await source.cleanup?.();
        await target.store.close();
        await target.cleanup?.();
      }
    },
  );

  await withStore(
    "a clock value that is not a valid Date's milliseconds is refused before writing",
    async (store) => {
      await store.append("s", [{ kind: "k" }]);
      const before = await snapshot(store);
      const bad = [NaN, Infinity, -Infinity, undefined, "1", null, 1e16, MAX_DATE + 1, -1, 1.5];
      for (const value of bad) {
        now = value as unknown as number;
        await assert.rejects(store.append("s", [{ kind: "k" }]), (error: unknown) => {
          assert.ok(error instanceof TypeError, String(error));
          assert.match(
            error.message,
            /^Invalid clock value .+: the vault's clock must return milliseconds since the epoch, a whole number from 0 to 8640000000000000$/,
          );
          return true;
        });
      }
      now = T0 + 1;
      assert.equal(await snapshot(store), before);
      const next = await store.append("s", [{ kind: "k" }]);
      assert.equal(next.version, 2);
      assert.ok((await store.verify()).ok);
    },
  );

  await t.step(
    "import refuses a timestamp outside the Date range, even with a matching digest",
    async () => {
      const source = await open();
      const target = await open();
      try {
        const [record] = (await source.store.append("s", [{ kind: "a", payload: { n: 1 } }]))
          .events;
        await target.store.append("other", [{ kind: "x" }]);
        const before = await snapshot(target.store);
        for (const timestamp of [1e16, MAX_DATE + 1, -1, 1.5]) {
          const forged = withDigest({ ...record, timestamp });
          await assert.rejects(target.store.importEvents([forged]), (error: unknown) => {
            assert.ok(error instanceof TypeError, String(error));
            assert.equal(
              error.message,
              'Invalid record 0: "timestamp" is not a whole number of milliseconds from 0 to 8640000000000000',
            );
            return true;
          });
        }
        assert.equal(await snapshot(target.store), before);
        // The last valid Date is taken and read back.
        const latest = withDigest({ ...record, timestamp: MAX_DATE });
        assert.deepEqual(await target.store.importEvents([latest]), { imported: 1, skipped: 0 });
        const stored = (await collect(target.store.read())).at(-1)!;
        assert.equal(new Date(stored.timestamp).toISOString(), "+275760-09-13T00:00:00.000Z");
        assert.ok((await target.store.verify()).ok);
      } finally {
        await source.store.close();
        await source.cleanup?.();
        await target.store.close();
        await target.cleanup?.();
      }
    },
  );

  await withStore("verify with an expected head", async (store) => {
    await store.append("s", [{ kind: "a" }, { kind: "b" }]);
    const head = (await store.head())!;
    await store.append("s", [{ kind: "c" }]);
    assert.ok(
      (await store.verify({ expectHead: head })).ok,
      "a later append changes nothing before",
    );
    const wrong = { ...head, digest: `sha256:${"0".repeat(64)}` };
    const report = await store.verify({ expectHead: wrong });
    assert.equal(report.ok, false);
    assert.equal(report.problems[0].position, head.position);
    assert.match(report.problems[0].reason, /expected head/);
    const later = { position: "0000000000000009", digest: head.digest };
    assert.match((await store.verify({ expectHead: later })).problems[0].reason, /cut off/);
    await assert.rejects(
      store.verify({ expectHead: { position: "x", digest: head.digest } }),
      /Invalid expected head position "x"/,
    );
    await assert.rejects(
      store.verify({ expectHead: { position: head.position, digest: "nope" } }),
      /Invalid expected head/,
    );
  });

  await withStore("verify reports progress and stops when its signal aborts", async (store) => {
    for (let n = 0; n < 5; n++) {
      await store.append("many", Array.from({ length: 500 }, () => ({ kind: "a" })));
    }
    const seen: number[] = [];
    const report = await store.verify({ onProgress: (checked) => seen.push(checked) });
    assert.equal(report.ok, true);
    assert.deepEqual(seen, [1000, 2000]);
    const controller = new AbortController();
    await assert.rejects(
      store.verify({ signal: controller.signal, onProgress: () => controller.abort() }),
      (error: Error) => error.name === "AbortError",
    );
    await assert.rejects(store.verify({ signal: AbortSignal.abort() }), { name: "AbortError" });
  });

  // A guard each store can evaluate atomically with its commit: a KV key's
  // versionstamp in the store's own KV, else a synchronous predicate.
  async function makeGuard(
    store: EventStore,
  ): Promise<{ guard: AppendGuard; break(): Promise<void> }> {
    const kv = vaultKv(store);
    if (kv === undefined) {
      let holds = true;
      return { guard: { holds: () => holds }, break: () => Promise.resolve(void (holds = false)) };
    }
    const key = ["test", "guard", crypto.randomUUID()];
    const { versionstamp } = await kv.set(key, 1);
    return {
      guard: { check: { key, versionstamp } },
      break: async () => void await kv.set(key, 2),
    };
  }

  await withStore("a guarded append lands while its guard holds", async (store) => {
    const { guard } = await makeGuard(store);
    const result = await store.append("g", [{ kind: "k" }], { guard });
    assert.equal(result.version, 1);
    // More guarded appends at once than one commit checks: all land, in order.
    const many = await Promise.all(
      Array.from(
        { length: 12 },
        (_, n) => store.append("g", [{ kind: "k", payload: n }], { guard }),
      ),
    );
    assert.deepEqual(many.map((r) => r.version), Array.from({ length: 12 }, (_, n) => n + 2));
  });

  await withStore("a broken guard fails only its append; the others land", async (store) => {
    const { guard, break: breakGuard } = await makeGuard(store);
    await store.append("other", [{ kind: "k" }]);
    await breakGuard();
    const before = await snapshot(store);
    const results = await Promise.allSettled([
      store.append("a", [{ kind: "k" }]),
      store.append("g", [{ kind: "k" }, { kind: "k" }], { guard }),
      store.append("b", [{ kind: "k" }]),
    ]);
    assert.equal(results[0].status, "fulfilled");
    assert.equal(results[2].status, "fulfilled");
    assert.equal(results[1].status, "rejected");
    const error = (results[1] as PromiseRejectedResult).reason;
    assert.ok(error instanceof GuardFailedError);
    assert.equal(error.code, "guard_failed");
    assert.equal(error.message, 'Cannot append to stream "g": its guard no longer holds');
    assert.notEqual(await snapshot(store), before);
    const streams = (await collect(store.read())).map((e) => e.stream);
    assert.deepEqual(streams, ["other", "a", "b"], "nothing of the guarded append is stored");
    assert.ok((await store.verify()).ok);
  });

  await withStore("an invalid guard is a TypeError and appends nothing", async (store) => {
    for (const guard of [null, {}, { holds: 1 }, { check: { key: "x", versionstamp: null } }]) {
      await assert.rejects(
        store.append("s", [{ kind: "k" }], { guard: guard as unknown as AppendGuard }),
        (error: unknown) => error instanceof TypeError && /^Invalid guard/.test(error.message),
      );
    }
    assert.equal(await store.head(), null);
  });

  await t.step("a closed store refuses appends", async () => {
    const { store, cleanup } = await open();
    await store.close();
    await assert.rejects(store.append("s", [{ kind: "k" }]), /closed/);
    await cleanup?.();
  });
}
