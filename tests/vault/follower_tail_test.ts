// A store that only follows the log (read-only, or one that never writes)
// forgets the unindexed events it holds once another process has indexed
// them, instead of keeping them (about 24 bytes each) for as long as it runs.
import assert from "node:assert/strict";
import { type EventRecord, KvEventStore } from "../../vault/mod.ts";
import { unindexedHeld } from "../../vault/_kv_probe.ts";

/** Takes events from a subscription until one has `payload`. */
async function until(events: AsyncIterator<EventRecord>, payload: string): Promise<void> {
  for (;;) {
    const next = await events.next();
    assert.ok(!next.done, `the subscription ended before ${payload}`);
    if (next.value.payload === payload) return;
  }
}

for (const readOnly of [true, false]) {
  Deno.test(`a follower forgets the tail another process indexed (readOnly: ${readOnly})`, async (t) => {
    const dir = await Deno.makeTempDir();
    const path = `${dir}/follow.kv`;
    const abort = new AbortController();
    try {
      const writer = await KvEventStore.open(await Deno.openKv(path), { closeKv: true });
      for (let i = 0; i < 100; i++) await writer.append(`s${i % 3}`, [{ kind: "e.x", payload: i }]);
      const follower = await KvEventStore.open(await Deno.openKv(path), {
        closeKv: true,
        readOnly,
      });
      const events = follower.subscribe({ signal: abort.signal })[Symbol.asyncIterator]();
      try {
        await t.step("the follower holds the unindexed events it found at open", () => {
          assert.equal(unindexedHeld(follower), 100);
        });

        await t.step("once the writer indexed them, the follower drops them", async () => {
          for (let n = 0; n < 2200; n += 100) {
            await writer.append("bulk", Array.from({ length: 100 }, () => ({ kind: "e.y" })));
          }
          await writer.close(); // indexes everything
          const next = await KvEventStore.open(await Deno.openKv(path), { closeKv: true });
          try {
            await next.append("s0", [{ kind: "e.x", payload: "last" }]);
            await until(events, "last");
          } finally {
            await next.close();
          }
          assert.equal(unindexedHeld(follower), 0);
        });

        await t.step("its reads stay whole", async () => {
          const s0: unknown[] = [];
          for await (const e of follower.read({ stream: "s0", direction: "backward" })) {
            s0.push(e.payload);
          }
          const expected = ["last", ...Array.from({ length: 34 }, (_, i) => 99 - i * 3)];
          assert.deepEqual(s0, expected);
          const latest = [];
          for await (const e of follower.read({ stream: "s1", direction: "backward", limit: 2 })) {
            latest.push(e.payload);
          }
          assert.deepEqual(latest, [97, 94]);
        });
      } finally {
        abort.abort();
        await events.return?.();
        await follower.close();
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}
