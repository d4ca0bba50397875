// What a read of the Deno KV log touches: a backward read of a stream's
// latest events reads the values it returns from (and one look for other
// processes' appends), never the whole stream index or the unindexed tail.
import assert from "node:assert/strict";
import { KvEventStore } from "../../vault/mod.ts";
import { countingKv } from "./_counting_kv.ts";

function counting(kv: Deno.Kv): { kv: Deno.Kv; values: () => number; reset: () => void } {
  const { count, ...rest } = countingKv(kv, "values");
  return { ...rest, values: count };
}

Deno.test("a backward read touches only what it returns", async (t) => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/cost.kv`;
  try {
    // 5,000 versions of "long" (five index entries once indexed at close),
    // then 400 one-event pages left unindexed while the writer stays open.
    {
      const kv = await Deno.openKv(path);
      const store = await KvEventStore.open(kv, { closeKv: true });
      for (let v = 0; v < 5000; v += 50) {
        await store.append(
          "long",
          Array.from({ length: 50 }, (_, i) => ({
            kind: "long.event",
            payload: v + i + 1,
          })),
        );
      }
      await store.close();
    }
    const writer = await KvEventStore.open(await Deno.openKv(path), { closeKv: true });
    for (let i = 0; i < 200; i++) await writer.append("other", [{ kind: "other.event" }]);
    await writer.append("long", [{ kind: "long.event", payload: 5001 }]);
    for (let i = 0; i < 200; i++) await writer.append("other", [{ kind: "other.event" }]);

    await t.step("latest event in the unindexed tail, fresh process", async () => {
      const counted = counting(await Deno.openKv(path));
      const reader = await KvEventStore.open(counted.kv, { closeKv: true });
      try {
        counted.reset();
        const [last] = await Array.fromAsync(
          reader.read({ stream: "long", direction: "backward", limit: 1 }),
        );
        assert.equal(last.payload, 5001);
        assert.equal(last.version, 5001);
        assert.ok(counted.values() <= 2, `read ${counted.values()} values`);
      } finally {
        await reader.close();
      }
    });

    await t.step("latest events in the stream index", async () => {
      const counted = counting(await Deno.openKv(path));
      const reader = await KvEventStore.open(counted.kv, { closeKv: true });
      try {
        counted.reset();
        const events = await Array.fromAsync(
          reader.read({
            stream: "long",
            direction: "backward",
            from: "0000000000005000",
            limit: 3,
          }),
        );
        assert.deepEqual(events.map((e) => e.version), [5000, 4999, 4998]);
        assert.ok(counted.values() <= 4, `read ${counted.values()} values`);
        counted.reset();
        const first = await Array.fromAsync(reader.read({ stream: "long", limit: 2 }));
        assert.deepEqual(first.map((e) => e.version), [1, 2]);
        assert.ok(counted.values() <= 3, `read ${counted.values()} values`);
      } finally {
        await reader.close();
      }
    });

    await t.step("the whole stream, both ways, agrees with a scan of the log", async () => {
      const reader = await KvEventStore.open(await Deno.openKv(path), { closeKv: true });
      try {
        const all = (await Array.fromAsync(reader.read())).filter((e) => e.stream === "long");
        const forward = await Array.fromAsync(reader.read({ stream: "long" }));
        const backward = await Array.fromAsync(
          reader.read({ stream: "long", direction: "backward" }),
        );
        assert.deepEqual(forward, all);
        assert.deepEqual(backward, [...all].reverse());
        const from = all[2500].position;
        assert.deepEqual(
          await Array.fromAsync(
            reader.read({ stream: "long", direction: "backward", from, limit: 2 }),
          ),
          [all[2500], all[2499]],
        );
      } finally {
        await reader.close();
      }
    });
    await writer.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a backward read sees another process's appends", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/two.kv`;
  try {
    const reader = await KvEventStore.open(await Deno.openKv(path), { closeKv: true });
    const writer = await KvEventStore.open(await Deno.openKv(path), { closeKv: true });
    try {
      await reader.append("s", [{ kind: "a", payload: 1 }]);
      await writer.append("s", [{ kind: "a", payload: 2 }, { kind: "b", payload: 3 }]);
      const last = await Array.fromAsync(
        reader.read({ stream: "s", direction: "backward", limit: 2 }),
      );
      assert.deepEqual(last.map((e) => e.payload), [3, 2]);
      const kinds = await Array.fromAsync(
        reader.read({ stream: "s", direction: "backward", kinds: ["a"] }),
      );
      assert.deepEqual(kinds.map((e) => e.payload), [2, 1]);
    } finally {
      await writer.close();
      await reader.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
