// An append's effect (AppendOptions.effect) commits with it, all or none, on
// both stores: what the checkpoint store relies on to keep an agent's
// checkpoint and state in step with its agent.state event.
import assert from "node:assert/strict";
import type {
  AppendEffect,
  AppendGuard,
  EventRecord,
  EventStore,
} from "../../runtime/log/event_store.ts";
import { GuardFailedError } from "../../runtime/errors.ts";
import { KvEventStore, MemoryEventStore, vaultKv } from "../../vault/mod.ts";
import { stepWith, withRemoteVaults } from "../runtime/_helpers.ts";

type Open = () => Promise<EventStore>;

// What an effect made, however the store makes it: KV writes or apply().
interface Probe {
  effect: AppendEffect;
  made(): Promise<string[]>;
}

function probe(store: EventStore, tag: string): Probe {
  const kv = vaultKv(store);
  if (kv === undefined) {
    const made: string[] = [];
    return {
      effect: { apply: (events) => void made.push(...events.map((e) => `${tag}@${e.position}`)) },
      made: () => Promise.resolve(made),
    };
  }
  return {
    effect: {
      bytes: 200,
      writes: (events) =>
        events.map((e) => ({ key: ["test", "effect", tag, e.position], value: e.id })),
    },
    made: async () => {
      const out: string[] = [];
      for await (const entry of kv.list<string>({ prefix: ["test", "effect", tag] })) {
        out.push(`${tag}@${String(entry.key[3])}`);
      }
      return out;
    },
  };
}

async function brokenGuard(store: EventStore): Promise<AppendGuard> {
  const kv = vaultKv(store);
  if (kv === undefined) return { holds: () => false };
  const key = ["test", "guard"];
  const { versionstamp } = await kv.set(key, 1);
  await kv.set(key, 2);
  return { check: { key, versionstamp } };
}

async function events(store: EventStore): Promise<EventRecord[]> {
  return await Array.fromAsync(store.read());
}

async function suite(t: Deno.TestContext, open: Open, hasKv: boolean): Promise<void> {
  const step = stepWith(t, open);

  await step("an effect is made with its append, from the stored events", async (store) => {
    await store.append("other", [{ kind: "k" }]);
    const a = probe(store, "a");
    const result = await store.append("s", [{ kind: "k" }, { kind: "k" }], { effect: a.effect });
    assert.deepEqual(await a.made(), result.events.map((e) => `a@${e.position}`));
    assert.deepEqual(await a.made(), ["a@0000000000000002", "a@0000000000000003"]);
  });

  await step("appends committed together each make their own effect", async (store) => {
    const probes = Array.from({ length: 6 }, (_, n) => probe(store, `p${n}`));
    const results = await Promise.all(
      probes.map((p, n) =>
        store.append(`s${n % 2}`, [{ kind: "k", payload: n }], { effect: p.effect })
      ),
    );
    for (const [n, p] of probes.entries()) {
      assert.deepEqual(await p.made(), [`p${n}@${results[n].position}`]);
    }
  });

  await step("a refused append makes no effect, and the others land", async (store) => {
    const guard = await brokenGuard(store);
    const refused = probe(store, "refused");
    const conflicted = probe(store, "conflicted");
    const landed = probe(store, "landed");
    const results = await Promise.allSettled([
      store.append("g", [{ kind: "k" }], { guard, effect: refused.effect }),
      store.append("v", [{ kind: "k" }], { expectedVersion: 3, effect: conflicted.effect }),
      store.append("ok", [{ kind: "k" }], { effect: landed.effect }),
    ]);
    assert.ok(results[0].status === "rejected" && results[0].reason instanceof GuardFailedError);
    assert.equal(results[1].status, "rejected");
    assert.equal(results[2].status, "fulfilled");
    assert.deepEqual(await refused.made(), []);
    assert.deepEqual(await conflicted.made(), []);
    assert.deepEqual(await landed.made(), ["landed@0000000000000001"]);
    assert.deepEqual((await events(store)).map((e) => e.stream), ["ok"]);
  });

  await step("an invalid effect is a TypeError and appends nothing", async (store) => {
    const bad = [null, {}, { apply: 1 }, { writes: "x" }, { writes: () => [], bytes: -1 }];
    for (const effect of bad) {
      await assert.rejects(
        store.append("s", [{ kind: "k" }], { effect: effect as unknown as AppendEffect }),
        (error: unknown) => error instanceof TypeError && /^Invalid effect/.test(error.message),
      );
    }
    assert.equal(await store.head(), null);
  });

  if (!hasKv) {
    await step("without KV, an effect needs apply()", async (store) => {
      await assert.rejects(
        store.append("s", [{ kind: "k" }], { effect: { writes: () => [], bytes: 0 } }),
        { name: "TypeError", message: /^Invalid effect: this store has no KV to write/ },
      );
      assert.equal(await store.head(), null);
    });
    await step("an apply() that throws fails its append: nothing stored", async (store) => {
      await assert.rejects(
        store.append("s", [{ kind: "k" }], {
          effect: {
            apply: () => {
              throw new TypeError("Invalid effect: nope");
            },
          },
        }),
        { message: "Invalid effect: nope" },
      );
      assert.equal(await store.head(), null);
    });
    return;
  }

  await step(
    "a Deno KV store calls apply() after its commit when there are no writes",
    async (store) => {
      const seen: string[] = [];
      const result = await store.append("s", [{ kind: "k" }], {
        effect: { apply: (events) => void seen.push(...events.map((e) => e.position)) },
      });
      assert.deepEqual(seen, [result.position]);
    },
  );

  await step("an effect whose writes fail fails only its append", async (store) => {
    const tooMany: AppendEffect = {
      bytes: 100,
      writes: () => Array.from({ length: 5 }, (_, n) => ({ key: ["test", "x", n], value: n })),
    };
    const landed = probe(store, "landed");
    const results = await Promise.allSettled([
      store.append("a", [{ kind: "k" }], { effect: tooMany }),
      store.append("b", [{ kind: "k" }], { effect: landed.effect }),
    ]);
    assert.equal(results[0].status, "rejected");
    assert.match(String((results[0] as PromiseRejectedResult).reason), /at most 4 writes/);
    assert.equal(results[1].status, "fulfilled");
    assert.deepEqual(await landed.made(), ["landed@0000000000000001"]);
    assert.deepEqual((await events(store)).map((e) => e.stream), ["b"]);
    assert.ok((await store.verify()).ok);
  });
}

Deno.test("append effect: MemoryEventStore", async (t) => {
  await suite(t, () => Promise.resolve(new MemoryEventStore()), false);
});

Deno.test("append effect: KvEventStore on :memory:", async (t) => {
  await suite(
    t,
    async () => KvEventStore.open(await Deno.openKv(":memory:"), { closeKv: true }),
    true,
  );
});

Deno.test("append effect: KvEventStore on a file", async (t) => {
  const dir = await Deno.makeTempDir();
  let n = 0;
  await suite(
    t,
    async () => KvEventStore.open(await Deno.openKv(`${dir}/s${n++}.kv`), { closeKv: true }),
    true,
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("append effect: KvEventStore over KV Connect", async (t) => {
  await withRemoteVaults((open) => suite(t, async () => (await open()).store, true));
});
