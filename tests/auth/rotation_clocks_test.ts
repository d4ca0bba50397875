// Issue 18 #22: the rotating process's wall clock must not set anyone else's grace, and a token
// issued just after another process rotated must not be signed with the key it retired.
import assert from "node:assert/strict";
import { KvTokenAuthority } from "../../auth/mod.ts";

const T = 1_700_000_000_000;
const HOUR = 3_600_000;

interface Clocks {
  wall: number;
  mono: number;
}

function open(kv: Deno.Kv, clocks: Clocks): Promise<KvTokenAuthority> {
  return KvTokenAuthority.open(kv, {
    vault: "v",
    retiredTtlSecs: 300,
    refreshIntervalSecs: 1,
    clock: () => clocks.wall,
    monotonicClock: () => clocks.mono,
  });
}

Deno.test("rotation across processes with different clocks", async (t) => {
  for (const skew of [-HOUR, HOUR]) {
    await t.step(
      `a rotation by a process ${skew / HOUR} h off gives the others the grace`,
      async () => {
        using kv = await Deno.openKv(":memory:");
        const here: Clocks = { wall: T, mono: 0 };
        const there: Clocks = { wall: T + skew, mono: 0 };
        const local = await open(kv, here);
        const old = await local.issue({ sub: "a", permissions: ["x:y"], ttlSecs: 3 * HOUR / 1000 });
        const rotator = await open(kv, there);
        await rotator.rotate();
        here.wall += 2_000; // past the refresh interval: the retirement is seen now
        here.mono += 2_000;
        assert.equal((await local.verify(old)).sub, "a");
        here.wall += 290_000;
        here.mono += 290_000;
        assert.equal((await local.verify(old)).sub, "a", "still within the grace");
        here.wall += 10_000;
        here.mono += 10_000;
        await assert.rejects(() => local.verify(old), { name: "InvalidTokenError" });
      },
    );
  }

  await t.step(
    "a token issued right after another process rotated lives its whole life",
    async () => {
      using kv = await Deno.openKv(":memory:");
      const clocks: Clocks = { wall: T, mono: 0 };
      const issuer = await open(kv, clocks);
      const rotator = await open(kv, clocks);
      await rotator.rotate(); // the issuer's cache has not seen it yet
      const token = await issuer.issue({ sub: "a", permissions: ["x:y"], ttlSecs: HOUR / 1000 });
      clocks.wall += 600_000; // past the retired key's grace, well within the token's hour
      clocks.mono += 600_000;
      const verifier = await open(kv, clocks);
      assert.equal((await verifier.verify(token)).sub, "a");
    },
  );
});
