// Tampering with a stored vault: raw Deno.openKv writes to a copy of a vault
// file, each of which verify() must catch and report on the event at fault (by
// id, or by position where no event can be read).
import assert from "node:assert/strict";
import { KvEventStore, openVault, type VerifyReport } from "../../vault/mod.ts";
import { canonicalJson, recordDigest } from "../../runtime/log/event_rules.ts";
import type { StoredEvent as Stored } from "../../vault/_page.ts";

const T0 = 1_767_225_600_000;

interface Page {
  key: Deno.KvKey;
  start: number;
  events: Stored[];
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

async function pages(kv: Deno.Kv): Promise<Page[]> {
  const out: Page[] = [];
  for await (const entry of kv.list<Uint8Array>({ prefix: ["vault", "ev"] })) {
    out.push({
      key: entry.key,
      start: entry.key[2] as number,
      events: JSON.parse(decoder.decode(entry.value)),
    });
  }
  return out;
}

async function writePage(kv: Deno.Kv, page: Page): Promise<void> {
  await kv.set(page.key, encoder.encode(JSON.stringify(page.events)));
}

/** Every stored event with its position. */
async function events(kv: Deno.Kv): Promise<{ at: number; event: Stored; page: Page }[]> {
  const out = [];
  for (const page of await pages(kv)) {
    for (const [i, event] of page.events.entries()) out.push({ at: page.start + i, event, page });
  }
  return out;
}

/**
 * What an attacker with the source code does after an edit: recompute the
 * event's digest the way the store does, from its (edited) fields, its
 * parents' stored digests and the stored digest of the event before it.
 */
async function recompute(kv: Deno.Kv, position: number): Promise<void> {
  const all = await events(kv);
  const found = all.find((e) => e.at === position);
  assert.ok(found, `an event at ${position}`);
  const { event, page } = found;
  const byId = new Map(all.map((e) => [e.event.i, e.event.d]));
  const parentDigests = (event.a ?? []).map((id) => byId.get(id)!);
  const previous = all.find((e) => e.at === position - 1)?.event.d ?? null;
  event.d = recordDigest(
    {
      id: event.i,
      position,
      stream: event.s,
      version: event.v,
      kind: event.k,
      canonicalPayload: canonicalJson(event.p ?? null),
      parents: event.a ?? [],
      intent: event.n,
      timestamp: event.t,
      meta: event.m ?? {},
    },
    parentDigests,
    previous,
  );
  await writePage(kv, page);
}

/** Edits the stored event at a position. */
async function edit(kv: Deno.Kv, position: number, change: (event: Stored) => void) {
  const found = (await events(kv)).find((e) => e.at === position);
  assert.ok(found, `an event at ${position}`);
  change(found.event);
  await writePage(kv, found.page);
}

function pos(n: number): string {
  return String(n).padStart(16, "0");
}

/** The first problem of a failed report. */
function first(report: VerifyReport) {
  assert.equal(report.ok, false, "verify must fail");
  assert.ok(report.problems.length > 0);
  return report.problems[0];
}

Deno.test("tampering with a stored vault is caught by verify()", async (t) => {
  const dir = await Deno.makeTempDir();
  const original = `${dir}/original.kv`;
  let now = T0;
  // 2 appends of 3 events per page-commit, streams interleaved, parents, intent and meta.
  const ids: string[] = [];
  {
    await using vault = await openVault(original, { clock: () => now++ });
    const a = await vault.append("orders/1", [
      { kind: "order.placed", payload: { total: 12 }, meta: { actor: "shop" } },
      { kind: "order.noted", payload: "n", intent: "remember" },
    ]);
    ids.push(...a.events.map((e) => e.id));
    const b = await vault.append("orders/2", [
      { kind: "order.placed", payload: { total: 3 }, parents: [a.events[0].id] },
    ]);
    ids.push(...b.events.map((e) => e.id));
    for (let i = 0; i < 5; i++) {
      // Positions 4 to 8; 4 has a parent (2), 8 has one (4), 5 and 6 none.
      const parents = i === 0 ? [ids[1]] : i === 4 ? [ids[3]] : [];
      const c = await vault.append(i % 2 ? "orders/1" : "orders/2", [
        { kind: "order.step", payload: { i }, parents, meta: { n: `${i}` } },
      ]);
      ids.push(...c.events.map((e) => e.id));
    }
    assert.equal((await vault.verify()).ok, true);
  }
  // 8 events at positions 1..8; pages start at 1, 3, 4, ..., 8; everything indexed.
  let n = 0;
  /** A fresh copy of the vault, tampered with raw KV writes, then verified. */
  const tampered = async (
    change: (kv: Deno.Kv) => Promise<void>,
  ): Promise<{ report: VerifyReport; path: string }> => {
    const path = `${dir}/copy-${n++}.kv`;
    await Deno.copyFile(original, path);
    const kv = await Deno.openKv(path);
    try {
      await change(kv);
    } finally {
      kv.close();
    }
    await using vault = await openVault(path, { create: false });
    return { report: await vault.verify(), path };
  };

  await t.step("the untouched copy verifies", async () => {
    const { report } = await tampered(() => Promise.resolve());
    assert.deepEqual(report, { ok: true, checked: 8, problems: [] });
  });

  const fields: [string, (e: Stored) => void][] = [
    ["kind", (e) => e.k = "order.cancelled"],
    ["timestamp", (e) => e.t += 1],
    ["meta", (e) => e.m = { actor: "someone else" }],
    ["intent", (e) => e.n = "another reason"],
  ];
  for (const [name, change] of fields) {
    await t.step(`a changed ${name}`, async () => {
      const { report } = await tampered((kv) => edit(kv, 2, change));
      const problem = first(report);
      assert.equal(problem.id, ids[1]);
      assert.equal(problem.position, pos(2));
    });
  }

  await t.step("a payload changed with its digest recomputed", async () => {
    const { report } = await tampered(async (kv) => {
      await edit(kv, 4, (e) => e.p = { i: 99 });
      await recompute(kv, 4);
    });
    // The edited event checks out on its own; the next one no longer chains to it.
    const problem = first(report);
    assert.equal(problem.position, pos(5));
    assert.equal(problem.id, ids[4]);
  });

  await t.step("a parent changed with the digest recomputed, on the last event", async () => {
    const head = await headOf(original);
    const { path } = await tampered(async (kv) => {
      await edit(kv, 8, (e) => e.a = [ids[0]]);
      await recompute(kv, 8);
    });
    await using vault = await openVault(path, { create: false });
    const problem = first(await vault.verify({ expectHead: head }));
    assert.equal(problem.position, pos(8));
    assert.equal(problem.id, ids[7]);
  });

  await t.step("two events of different streams swapped", async () => {
    const { report } = await tampered(async (kv) => {
      const all = await events(kv);
      const five = all.find((e) => e.at === 5)!;
      const six = all.find((e) => e.at === 6)!;
      [five.page.events[five.at - five.page.start], six.page.events[six.at - six.page.start]] = [
        six.event,
        five.event,
      ];
      await writePage(kv, five.page);
      await writePage(kv, six.page);
    });
    const problem = first(report);
    assert.equal(problem.position, pos(5));
  });

  await t.step("a changed id", async () => {
    const changed = ids[2].slice(0, 20) + "ZZZZZZ";
    const { report, path } = await tampered((kv) => edit(kv, 3, (e) => e.i = changed));
    const problem = first(report);
    assert.equal(problem.position, pos(3));
    assert.equal(problem.id, changed);
    await using vault = await openVault(path, { create: false });
    assert.equal(await vault.get(ids[2]), null);
  });

  await t.step("the last page deleted", async () => {
    const { report } = await tampered(async (kv) => {
      const all = await pages(kv);
      await kv.delete(all[all.length - 1].key);
    });
    const problem = first(report);
    assert.equal(problem.position, pos(8));
    assert.equal(problem.id, undefined, "no event there to name");
  });

  await t.step("the last page deleted is caught by the kept head, even unindexed", async () => {
    const head = await headOf(original);
    const { path } = await tampered(async (kv) => {
      const all = await pages(kv);
      await kv.delete(all[all.length - 1].key);
      await kv.delete(["vault", "ix"]);
      for await (const entry of kv.list({ prefix: ["vault", "si"] })) await kv.delete(entry.key);
    });
    await using vault = await openVault(path, { create: false });
    assert.equal((await vault.verify()).ok, true, "a clean cut is invisible without a head");
    const problem = first(await vault.verify({ expectHead: head }));
    assert.equal(problem.position, pos(8));
    assert.match(problem.reason, /cut off|ends/);
  });

  await t.step("a deleted event in the middle is reported at its position only", async () => {
    const { report } = await tampered(async (kv) => {
      await kv.delete(["vault", "ev", 5]);
    });
    const problem = first(report);
    assert.equal(problem.position, pos(5));
    assert.equal(problem.id, undefined);
    for (const p of report.problems) {
      assert.ok(p.id !== ids[3] && p.id !== ids[5], `a neighbour is blamed: ${JSON.stringify(p)}`);
    }
  });

  await t.step("a page of garbage is reported by position, not as id ?", async () => {
    const { report, path } = await tampered(async (kv) => {
      await kv.set(["vault", "ev", 4], encoder.encode("{not json"));
    });
    const problem = first(report);
    assert.equal(problem.position, pos(4));
    assert.equal(problem.id, undefined);
    assert.match(problem.reason, /unreadable/);
    assert.ok(!report.problems.some((p) => p.id === "?"));
    // Readers of the log say so in one line too, as a stream's read does.
    await using vault = await openVault(path, { create: false });
    const damaged = { name: "TokaError", message: "The vault is damaged: page 4 is unreadable" };
    await assert.rejects(Array.fromAsync(vault.read()), damaged);
    await assert.rejects(Array.fromAsync(vault.read({ direction: "backward" })), damaged);
    await assert.rejects(Array.fromAsync(vault.read({ from: pos(4), limit: 1 })), damaged);
    await assert.rejects(Array.fromAsync(vault.read({ stream: "orders/2" })), damaged);
    await assert.rejects(vault.stats(), damaged);
  });

  await t.step("a garbage first page of an unindexed vault is reported once", async () => {
    const { report } = await tampered(async (kv) => {
      await kv.delete(["vault", "ix"]);
      for await (const entry of kv.list({ prefix: ["vault", "si"] })) await kv.delete(entry.key);
      await kv.set(["vault", "ev", 1], encoder.encode("{not json"));
    });
    assert.deepEqual(report.problems, [
      { position: pos(1), reason: "the page of positions 1 to 2 is unreadable" },
    ]);
  });

  await t.step("the index watermark inside a readable page is reported", async () => {
    const { report } = await tampered((kv) => kv.set(["vault", "ix"], 2).then(() => {}));
    assert.deepEqual(report.problems, [
      { position: pos(2), reason: "the index watermark 2 is not at the start of a page" },
    ]);
  });

  await t.step("a stream index entry altered", async () => {
    const { report, path } = await tampered(async (kv) => {
      for await (
        const entry of kv.list<{ p: number[]; g: number[] }>({
          prefix: ["vault", "si", "orders/1"],
        })
      ) {
        const value = entry.value;
        value.p[1] = value.p[0];
        value.g[1] = value.g[0];
        await kv.set(entry.key, value);
        return;
      }
    });
    await using vault = await openVault(path, { create: false });
    const versions = [];
    for await (const e of vault.readStream("orders/1")) versions.push(e.version);
    assert.notDeepEqual(versions, [1, 2, 3, 4], "the symptom: readStream is wrong");
    const problem = first(report);
    assert.match(problem.reason, /index/);
  });

  await t.step("the index watermark moved forward", async () => {
    const { report } = await tampered(async (kv) => {
      const mark = (await kv.get<number>(["vault", "ix"])).value!;
      await kv.set(["vault", "ix"], mark + 100);
    });
    const problem = first(report);
    assert.match(problem.reason, /watermark/);
  });

  await t.step(
    "a rewrite of every digest from an event on is caught by the kept head",
    async () => {
      const head = await headOf(original);
      const { report, path } = await tampered(async (kv) => {
        await edit(kv, 3, (e) => e.p = { total: 4 });
        for (let at = 3; at <= 8; at++) await recompute(kv, at);
      });
      assert.equal(report.ok, true, "a consistent rewrite of the whole chain needs a kept head");
      await using vault = await openVault(path, { create: false });
      const problem = first(await vault.verify({ expectHead: head }));
      assert.equal(problem.position, pos(8));
      assert.match(problem.reason, /head/);
      assert.notDeepEqual(await vault.head(), head);
    },
  );

  await Deno.remove(dir, { recursive: true });
});

async function headOf(path: string) {
  const kv = await Deno.openKv(path);
  try {
    const store = await KvEventStore.open(kv);
    const head = await store.head();
    await store.close();
    assert.ok(head !== null);
    return head;
  } finally {
    kv.close();
  }
}
