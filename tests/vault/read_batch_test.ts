// How many pages a limited read of the Deno KV log asks KV for: about as many
// as its limit needs (batches growing from one page), not a whole batch of
// 100 pages for the 51 newest events.
import assert from "node:assert/strict";
import { KvEventStore } from "../../vault/mod.ts";
import { countingKv } from "./_counting_kv.ts";

// Each batch a list fetches counts in full (see countingKv).
function askCounting(kv: Deno.Kv): { kv: Deno.Kv; asked: () => number; reset: () => void } {
  const { count, ...rest } = countingKv(kv, "batches");
  return { ...rest, asked: count };
}

Deno.test("a limited read asks for the pages its limit needs", async (t) => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/batch.kv`;
  try {
    // 1,000 pages of 10 events; the last 300 left unindexed (the writer stays open).
    {
      const store = await KvEventStore.open(await Deno.openKv(path), { closeKv: true });
      for (let p = 0; p < 700; p++) {
        await store.append(
          `s${p % 7}`,
          Array.from({ length: 10 }, (_, i) => ({ kind: "e.x", payload: p * 10 + i + 1 })),
        );
      }
      await store.close();
    }
    const writer = await KvEventStore.open(await Deno.openKv(path), { closeKv: true });
    for (let p = 700; p < 1000; p++) {
      await writer.append(
        `s${p % 7}`,
        Array.from({ length: 10 }, (_, i) => ({ kind: "e.x", payload: p * 10 + i + 1 })),
      );
    }
    const counted = askCounting(await Deno.openKv(path));
    const reader = await KvEventStore.open(counted.kv, { closeKv: true });
    try {
      await t.step("the 51 newest events: 6 pages", async () => {
        counted.reset();
        const events = await Array.fromAsync(reader.read({ direction: "backward", limit: 51 }));
        assert.deepEqual(events.map((e) => e.payload), range(10000, 9950));
        assert.ok(counted.asked() <= 12, `asked for ${counted.asked()} values`);
      });

      await t.step("the newest event: 1 page", async () => {
        counted.reset();
        const events = await Array.fromAsync(reader.read({ direction: "backward", limit: 1 }));
        assert.deepEqual(events.map((e) => e.payload), [10000]);
        assert.ok(counted.asked() <= 2, `asked for ${counted.asked()} values`);
      });

      await t.step("51 events forward and backward from a position", async () => {
        counted.reset();
        const from = "0000000000004005";
        const forward = await Array.fromAsync(reader.read({ from, limit: 51 }));
        assert.deepEqual(forward.map((e) => e.payload), range(4005, 4055));
        assert.ok(counted.asked() <= 13, `asked for ${counted.asked()} values`);
        counted.reset();
        const backward = await Array.fromAsync(
          reader.read({ from, direction: "backward", limit: 51 }),
        );
        assert.deepEqual(backward.map((e) => e.payload), range(4005, 3955));
        assert.ok(counted.asked() <= 13, `asked for ${counted.asked()} values`);
      });

      await t.step("a limited read past a kind filter grows its batches", async () => {
        counted.reset();
        const none = await Array.fromAsync(reader.read({ kinds: ["none.*"], limit: 5 }));
        assert.deepEqual(none, []);
        // Every page is read, in batches growing to 100: no more than the log holds, plus
        // the last batch as asked for (this counts a batch in full).
        assert.ok(counted.asked() <= 1000 + 100, `asked for ${counted.asked()} values`);
      });

      await t.step("a stream's newest events among unindexed pages", async () => {
        counted.reset();
        const events = await Array.fromAsync(
          reader.read({ stream: "s6", direction: "backward", limit: 5 }),
        );
        assert.deepEqual(events.map((e) => e.payload), range(9940, 9936));
        assert.ok(counted.asked() <= 6, `asked for ${counted.asked()} values`);
      });

      await t.step("every event, both ways, is still read", async () => {
        const forward = await Array.fromAsync(reader.read());
        assert.deepEqual(forward.map((e) => e.payload), range(1, 10000));
        const backward = await Array.fromAsync(reader.read({ direction: "backward" }));
        assert.deepEqual(backward.map((e) => e.payload), range(10000, 1));
        const limited = await Array.fromAsync(reader.read({ direction: "backward", limit: 9999 }));
        assert.deepEqual(limited.map((e) => e.payload), range(10000, 2));
        const stream = await Array.fromAsync(reader.read({ stream: "s3", direction: "backward" }));
        assert.equal(stream.length, 1430);
      });
    } finally {
      await reader.close();
      await writer.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** The integers from `a` to `b`, both included, in that direction. */
function range(a: number, b: number): number[] {
  const step = a <= b ? 1 : -1;
  return Array.from({ length: Math.abs(b - a) + 1 }, (_, i) => a + i * step);
}
