// Agents' state changes, indexed by the checkpoint store beside the log: the
// effect it gives the agent.state append moves the checkpoint and indexes the
// state in the same commit, and stateAt finds the state at any position.
import assert from "node:assert/strict";
import {
  type AppendGuard,
  type CheckpointStore,
  type EventStore,
  GuardFailedError,
  KvCheckpointStore,
  KvLeaseStore,
  type LeaseStore,
  MemoryCheckpointStore,
  MemoryEventStore,
  MemoryLeaseStore,
} from "../../../runtime/mod.ts";
import { KvEventStore } from "../../../vault/mod.ts";
import { stepWith, withRemoteVaults } from "../_helpers.ts";

interface Setup {
  store: EventStore;
  checkpoints: CheckpointStore;
  leases: LeaseStore;
  close(): Promise<void>;
}

const at = (n: number) => String(n).padStart(16, "0");

// Handles the event at `after` for `agent`: appends its agent.state event with
// the checkpoint store's effect, as the runner does.
async function commitState(
  s: Setup,
  agent: string,
  after: string,
  state: unknown,
  guard?: AppendGuard,
): Promise<string> {
  const checkpoint = { position: after, failures: 0, updatedAt: 1, subscribe: ["k"] };
  const effect = s.checkpoints.withState(agent, checkpoint, JSON.stringify(state));
  const { position } = await s.store.append(
    `agent/${agent}`,
    [{ kind: "agent.state", payload: { agent, after, state } }],
    guard === undefined ? { effect } : { effect, guard },
  );
  return position;
}

async function suite(t: Deno.TestContext, open: () => Promise<Setup>): Promise<void> {
  const step = stepWith(t, open);

  await step("a bad name or position is a TypeError, not a wrong answer", async (s) => {
    await commitState(s, "w", at(1), { n: 1 });
    for (const position of ["abc", "-1", "1.5", "12345678901234567", ""]) {
      await assert.rejects(s.checkpoints.stateAt("w", position), {
        name: "TypeError",
        message: `Invalid position ${JSON.stringify(position)}: expected up to 16 digits`,
      });
    }
    for (const agent of ["bad name!", "", "../w"]) {
      const message = `Invalid agent name ${
        JSON.stringify(agent)
      }: use 1 to 64 letters, digits, _ or -`;
      await assert.rejects(s.checkpoints.stateAt(agent), { name: "TypeError", message });
      await assert.rejects(Array.fromAsync(s.checkpoints.stateHistory(agent)), {
        name: "TypeError",
        message,
      });
    }
  });

  await step("the state at a position is the last change made at or before it", async (s) => {
    assert.equal(await s.checkpoints.stateAt("w", at(5)), undefined, "no change yet");
    for (let i = 0; i < 4; i++) await s.store.append("in", [{ kind: "k" }]); // 1..4
    const q1 = await commitState(s, "w", at(2), { n: 1 }); // 5
    assert.deepEqual(await s.checkpoints.load("w"), {
      position: at(2),
      failures: 0,
      updatedAt: 1,
      subscribe: ["k"],
    });
    await s.store.append("in", [{ kind: "k" }]); // 6
    const q2 = await commitState(s, "w", at(6), { n: 2 }); // 7
    await commitState(s, "other", at(3), "x"); // 8: another agent's
    assert.equal((await s.checkpoints.load("w"))?.position, at(6));
    assert.equal(await s.checkpoints.stateAt("w", at(1)), undefined);
    const first = { after: at(2), position: q1, state: { n: 1 } };
    const second = { after: at(6), position: q2, state: { n: 2 } };
    assert.deepEqual(await s.checkpoints.stateAt("w", at(2)), first);
    // After handling the event at 2, whatever position its change was recorded at.
    assert.deepEqual(await s.checkpoints.stateAt("w", at(4)), first);
    assert.deepEqual(await s.checkpoints.stateAt("w", at(5)), first);
    assert.deepEqual(await s.checkpoints.stateAt("w", at(6)), second);
    assert.deepEqual(await s.checkpoints.stateAt("w", at(999)), second);
    assert.deepEqual(await s.checkpoints.stateAt("w"), second, "the latest, without a position");
    assert.deepEqual(await s.checkpoints.stateAt("other"), {
      after: at(3),
      position: at(8),
      state: "x",
    });
    assert.equal(await s.checkpoints.stateAt("nobody"), undefined);
    assert.deepEqual(await Array.fromAsync(s.checkpoints.stateHistory("w")), [first, second]);
    assert.deepEqual(await Array.fromAsync(s.checkpoints.stateHistory("other")), [
      { after: at(3), position: at(8), state: "x" },
    ]);
    assert.deepEqual(await Array.fromAsync(s.checkpoints.stateHistory("nobody")), []);
  });

  await step("a refused append moves no checkpoint and indexes nothing", async (s) => {
    await s.store.append("in", [{ kind: "k" }]);
    await commitState(s, "w", at(1), 1);
    const version = await s.leases.swap("w", null, { owner: "a", expiresAt: 0 });
    const guard = s.leases.guard!("w", version!);
    await s.leases.swap("w", version!, { owner: "b", expiresAt: 0 }); // taken over
    await assert.rejects(commitState(s, "w", at(1), 2, guard), GuardFailedError);
    assert.deepEqual((await s.checkpoints.stateAt("w", at(9)))?.state, 1);
    assert.equal((await Array.fromAsync(s.checkpoints.stateHistory("w"))).length, 1);
    assert.equal((await s.store.head())?.position, at(2));
  });

  await step("a large state is found too (from its event when not indexed)", async (s) => {
    await s.store.append("in", [{ kind: "k" }]);
    const big = { text: "x".repeat(200_000) };
    const position = await commitState(s, "w", at(1), big);
    const change = await s.checkpoints.stateAt("w", at(1));
    assert.equal(change?.position, position);
    if (change?.state === undefined) {
      const [event] = await Array.fromAsync(s.store.read({ from: position, limit: 1 }));
      assert.deepEqual((event.payload as { state: unknown }).state, big);
    } else assert.deepEqual(change.state, big);
  });

  await step("what is read is a copy", async (s) => {
    await s.store.append("in", [{ kind: "k" }]);
    await commitState(s, "w", at(1), { list: [1] });
    const change = await s.checkpoints.stateAt("w", at(1));
    (change!.state as { list: number[] }).list.push(2);
    assert.deepEqual((await s.checkpoints.stateAt("w", at(1)))?.state, { list: [1] });
  });
}

Deno.test("state index: Deno KV vault", async (t) => {
  await suite(t, async () => {
    const kv = await Deno.openKv(":memory:");
    const store = await KvEventStore.open(kv);
    return {
      store,
      checkpoints: new KvCheckpointStore(kv),
      leases: new KvLeaseStore(kv),
      close: async () => {
        await store.close();
        kv.close();
      },
    };
  });
});

Deno.test("state index: remote vault (KV Connect)", async (t) => {
  await withRemoteVaults((open) =>
    suite(t, async () => {
      const { store, close } = await open();
      return {
        store,
        checkpoints: new KvCheckpointStore(store.kv),
        leases: new KvLeaseStore(store.kv),
        close,
      };
    })
  );
});

Deno.test("state index: the latest state is one KV get, and found without that key too", async () => {
  const kv = await Deno.openKv(":memory:");
  const store = await KvEventStore.open(kv);
  const checkpoints = new KvCheckpointStore(kv);
  const s = { store, checkpoints, leases: new KvLeaseStore(kv), close: () => Promise.resolve() };
  try {
    await store.append("in", [{ kind: "k" }]);
    await commitState(s, "w", at(1), 1);
    await store.append("in", [{ kind: "k" }]);
    const position = await commitState(s, "w", at(3), 2);
    const latest = { after: at(3), position, state: 2 };
    const reads: string[] = [];
    const counting = new Proxy(kv, {
      get(target, key) {
        const value = Reflect.get(target, key);
        if (typeof value !== "function") return value;
        return (...args: unknown[]) => {
          reads.push(String(key));
          return value.apply(target, args);
        };
      },
    });
    assert.deepEqual(await new KvCheckpointStore(counting).stateAt("w"), latest);
    assert.deepEqual(reads, ["get"]);
    // A vault whose latest key is missing (a fork cut before it, say) lists instead.
    const keys = await Array.fromAsync(kv.list({ prefix: ["runtime", "state", "w"] }));
    const extra = keys.filter((e) => !/^\d{16}$/.test(String(e.key[3])));
    assert.equal(extra.length, 1);
    await kv.delete(extra[0].key);
    assert.deepEqual(await checkpoints.stateAt("w"), latest);
    assert.equal((await Array.fromAsync(checkpoints.stateHistory("w"))).length, 2);
  } finally {
    await store.close();
    kv.close();
  }
});

Deno.test("state index: in memory", async (t) => {
  await suite(t, () => {
    const leases = new MemoryLeaseStore();
    const store = new MemoryEventStore();
    return Promise.resolve({
      store,
      checkpoints: new MemoryCheckpointStore(leases),
      leases,
      close: () => store.close(),
    });
  });
});
