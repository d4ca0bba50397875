// A KV read that fails while the vault opens must fail the open (issue 18 #14): taken for an
// empty page, it made the next append chain to nothing and verify() call a healthy log broken.
import assert from "node:assert/strict";
import { KvEventStore } from "../../vault/mod.ts";

/** `kv` whose next `failures` reverse listings (the reads of a page by position) throw. */
function flakyReverseLists(kv: Deno.Kv, failures: number): Deno.Kv {
  return flaky(kv, failures).kv;
}

/** A proxy of `kv` and a switch that makes its next `n` reverse listings throw. */
function flaky(kv: Deno.Kv, failures = 0): { kv: Deno.Kv; fail(n: number): void } {
  const proxy = new Proxy(kv, {
    get(target, name) {
      if (name === "list") {
        return (selector: Deno.KvListSelector, options?: Deno.KvListOptions) => {
          if (options?.reverse && failures > 0) {
            failures--;
            throw new Error("Database unavailable");
          }
          return target.list(selector, options);
        };
      }
      const value = Reflect.get(target, name);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return { kv: proxy, fail: (n) => failures = n };
}

Deno.test("opening a vault", async (t) => {
  await t.step(
    "a KV error while reading the last digest fails open() and stores nothing",
    async () => {
      const kv = await Deno.openKv(":memory:");
      try {
        const first = await KvEventStore.open(kv, { closeKv: false });
        await first.append("s", [{ kind: "a", payload: 1 }, { kind: "b", payload: 2 }]);
        await first.close();

        await assert.rejects(
          () => KvEventStore.open(flakyReverseLists(kv, 1), { closeKv: false }),
          /Database unavailable/,
        );

        const again = await KvEventStore.open(kv, { closeKv: false });
        await again.append("s", [{ kind: "c", payload: 3 }]);
        const report = await again.verify();
        assert.equal(report.ok, true, JSON.stringify(report));
        await again.close();
      } finally {
        kv.close();
      }
    },
  );

  await t.step("head() passes a KV error on instead of calling the vault damaged", async () => {
    const kv = await Deno.openKv(":memory:");
    try {
      const setup = await KvEventStore.open(kv, { closeKv: false });
      await setup.append("s", [{ kind: "a", payload: 1 }]);
      await setup.close();
      const switchable = flaky(kv);
      const store = await KvEventStore.open(switchable.kv, { closeKv: false });
      switchable.fail(1);
      await assert.rejects(() => store.head(), /Database unavailable/);
      assert.equal((await store.head())?.position !== undefined, true);
      await store.close();
    } finally {
      kv.close();
    }
  });
});
