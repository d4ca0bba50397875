// Tampering with the agents' state index (["runtime", "state", agent, ...] beside the log): what
// runtime.stateAt, ctx.state at start and toka agent state read. verify() must say so, and a
// reader of a damaged entry must fail in one clear line.
import assert from "node:assert/strict";
import { join } from "node:path";
import { defineAgent, KvCheckpointStore, Runtime } from "../../runtime/mod.ts";
import { forkVault, openVault, type VerifyReport } from "../../vault/mod.ts";
import { vaultKv } from "../../vault/kv_store.ts";

const encoder = new TextEncoder();
const KEY = ["runtime", "state", "tally"];
const pos = (n: number) => String(n).padStart(16, "0");

/** A vault where "tally" recorded three changes (agent.state at 4, 5, 6) and a large state (7). */
async function made(path: string): Promise<void> {
  const vault = await openVault(path);
  const runtime = await Runtime.create({ vault });
  runtime.register(defineAgent({
    name: "tally",
    subscribe: ["vote.*"],
    handle(event, ctx) {
      const votes = ctx.state.get<Record<string, number | string>>() ?? {};
      const choice = String(event.payload);
      // The last one is too large for the index: only its event holds it.
      const value = choice === "big" ? "x".repeat(40_000) : (Number(votes[choice] ?? 0)) + 1;
      ctx.state.set({ ...votes, [choice]: value });
    },
  }));
  for (const choice of ["tea", "coffee", "tea"]) {
    await runtime.emit({ kind: "vote.cast", payload: choice });
  }
  await runtime.start();
  await runtime.stop();
  await runtime.emit({ kind: "vote.cast", payload: "big" });
  await runtime.start();
  await runtime.stop();
  await vault.close();
}

async function verified(path: string): Promise<VerifyReport> {
  const vault = await openVault(path, { readOnly: true });
  try {
    return await vault.verify();
  } finally {
    await vault.close();
  }
}

async function edit(path: string, change: (kv: Deno.Kv) => Promise<unknown>): Promise<void> {
  const kv = await Deno.openKv(path);
  try {
    await change(kv);
  } finally {
    kv.close();
  }
}

Deno.test("verify() checks the agents' state index", async (t) => {
  const dir = await Deno.makeTempDir();
  try {
    const source = join(dir, "source.kv");
    await made(source);
    let n = 0;
    const copy = async () => {
      const path = join(dir, `copy${n++}.kv`);
      await Deno.copyFile(source, path);
      return path;
    };

    await t.step("an untouched vault and its forks verify", async () => {
      assert.deepEqual(await verified(source), { ok: true, checked: 8, problems: [] });
      const vault = await openVault(source, { readOnly: true });
      try {
        for (const at of ["5", "6", "7", "8"]) {
          const into = join(dir, `fork${at}.kv`);
          await forkVault(vault, { at, into });
          assert.equal((await verified(into)).ok, true, `fork at ${at}`);
        }
      } finally {
        await vault.close();
      }
    });

    const cases: [string, (kv: Deno.Kv) => Promise<unknown>, RegExp][] = [
      [
        "a state changed",
        async (kv) => {
          const entry = await kv.get<{ p: string }>([...KEY, pos(2)]);
          await kv.set(entry.key, { ...entry.value, s: encoder.encode('{"coffee":99}') });
        },
        /^the state index entry of agent "tally" after 0{15}2 does not hold the state of this agent\.state event$/,
      ],
      [
        "a state made unreadable",
        (kv) => kv.set([...KEY, pos(2)], { p: pos(5), s: encoder.encode("{not json") }),
        /^the state index entry of agent "tally" after 0{15}2 does not hold the state/,
      ],
      [
        "an entry removed",
        (kv) => kv.delete([...KEY, pos(2)]),
        /^the state index has no entry of agent "tally" after 0{15}2 for this agent\.state event$/,
      ],
      [
        "an entry pointed at another event",
        (kv) => kv.set([...KEY, pos(2)], { p: pos(4), s: encoder.encode('{"tea":1}') }),
        /^the state index entry of agent "tally" after 0{15}2 points at position 0{15}4/,
      ],
      [
        "an entry added",
        (kv) => kv.set([...KEY, pos(5)], { p: pos(6), s: encoder.encode('{"tea":7}') }),
        /state index entry of agent "tally" after 0{15}5 .*/,
      ],
      [
        "an entry of an agent that recorded nothing",
        (kv) => kv.set(["runtime", "state", "ghost", pos(1)], { p: pos(4) }),
        /state index entry of agent "ghost" after 0{15}1 /,
      ],
      [
        "the latest entry changed",
        async (kv) => {
          const entry = await kv.get<{ p: string }>([...KEY, "latest"]);
          await kv.set(entry.key, { ...entry.value, a: pos(3), s: encoder.encode('{"tea":9}') });
        },
        /^the latest state index entry of agent "tally" is not its last change$/,
      ],
    ];
    for (const [what, change, message] of cases) {
      await t.step(`${what} is reported`, async () => {
        const path = await copy();
        await edit(path, change);
        const report = await verified(path);
        assert.equal(report.ok, false, what);
        assert.equal(report.problems.length, 1, JSON.stringify(report.problems));
        assert.match(report.problems[0].reason, message);
      });
    }

    await t.step(
      "the log imported into a new vault (no checkpoints, no index) verifies",
      async () => {
        const into = join(dir, "imported.kv");
        const from = await openVault(source, { readOnly: true });
        const vault = await openVault(into);
        try {
          await vault.importEvents(await Array.fromAsync(from.read()));
          assert.deepEqual(await vault.verify(), { ok: true, checked: 8, problems: [] });
        } finally {
          await vault.close();
          await from.close();
        }
      },
    );

    await t.step("an entry superseded by a later change for the same event verifies", async () => {
      // Two agent.state events for one handled event (a handling done again): the entry is
      // the later one's, as the index keeps one entry per handled event.
      const path = join(dir, "twice.kv");
      const vault = await openVault(path);
      try {
        const checkpoints = new KvCheckpointStore(vaultKv(vault)!);
        const [handled] = (await vault.append("runtime", [{ kind: "vote.cast" }])).events;
        for (const n of [1, 2]) {
          const checkpoint = { position: handled.position, failures: 0, updatedAt: n };
          await vault.append("agent/tally", [{
            kind: "agent.state",
            payload: { agent: "tally", after: handled.position, state: { n } },
            meta: { actor: "agent/tally" },
          }], { effect: checkpoints.withState("tally", checkpoint, JSON.stringify({ n })) });
        }
      } finally {
        await vault.close();
      }
      assert.deepEqual(await verified(path), { ok: true, checked: 3, problems: [] });
    });

    await t.step("a reader of an unreadable entry fails in one line", async () => {
      const path = await copy();
      await edit(path, (kv) => kv.set([...KEY, pos(2)], { p: pos(5), s: encoder.encode("{") }));
      const vault = await openVault(path, { readOnly: true });
      const runtime = await Runtime.create({ vault });
      try {
        await assert.rejects(
          () => runtime.stateAt("tally", "2"),
          (error: Error) => {
            assert.equal(
              error.message,
              'The state index entry of agent "tally" after "0000000000000002" is unreadable: ' +
                "run toka events verify",
            );
            return true;
          },
        );
      } finally {
        await vault.close();
      }
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
