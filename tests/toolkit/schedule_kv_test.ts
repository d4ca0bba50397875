// The schedule tools on a vault with Deno KV, a local file and a remote KV over KV
// Connect: timers outlive the vault that stored them, and each fires once, also with
// two schedulers racing and when a firing stopped halfway.
import assert from "node:assert/strict";
import { join } from "node:path";
import { EventBus, type EventStore } from "../../runtime/mod.ts";
import {
  type ScheduledTimer,
  Scheduler,
  type SchedulerOptions,
  ToolRegistry,
} from "../../toolkit/mod.ts";
import { openVault, vaultKv } from "../../vault/mod.ts";
import { KvConnectServer, useTestToken } from "../vault/_kv_connect_server.ts";

const T0 = Date.parse("2030-01-01T00:00:00Z");

/** Opens a new connection to the same database. */
type Open = () => Promise<EventStore>;

/** A scheduler on a vault, with a fake clock, its tools, and the bus that appends. */
function on(vault: EventStore, clock: { now: number }, options: Partial<SchedulerOptions> = {}) {
  const bus = new EventBus({ store: vault });
  const scheduler = new Scheduler({
    vault,
    kv: vaultKv(vault),
    emit: (input) => bus.emit(input),
    clock: () => clock.now,
    ...options,
  });
  const tools = new ToolRegistry({ tools: scheduler.tools });
  return { bus, scheduler, tools };
}

async function kinds(vault: EventStore, kind: string): Promise<string[]> {
  const events = await Array.fromAsync(vault.read({ kinds: [kind] }));
  return events.map((event) => event.meta.scheduleId);
}

/** Runs the steps, each on a new database that `database()` makes. */
async function contract(t: Deno.TestContext, database: () => Promise<Open>): Promise<void> {
  await t.step("a timer outlives the vault that stored it and fires once", async () => {
    const open = await database();
    const clock = { now: T0 };
    const first = await open();
    const a = on(first, clock);
    const timer = await a.tools.call("schedule", {
      kind: "reminder.due",
      payload: { text: "Stand up" },
      delayMs: 60_000,
    }) as ScheduledTimer;
    await first.close();

    const second = await open();
    try {
      const b = on(second, clock);
      assert.deepEqual(await b.tools.call("schedule.list", {}), { timers: [timer] });
      assert.equal(await b.scheduler.poll(), 0);
      clock.now += 60_000;
      assert.equal(await b.scheduler.poll(), 1);
      assert.equal(await b.scheduler.poll(), 0);
      const [event] = await Array.fromAsync(second.read({ kinds: ["reminder.due"] }));
      assert.deepEqual(event.payload, { text: "Stand up" });
      assert.equal(event.stream, "schedule");
      assert.deepEqual(event.meta, { scheduleId: timer.id, scheduledBy: "anonymous" });
      assert.deepEqual(await b.tools.call("schedule.list", {}), { timers: [] });
      assert.deepEqual(await b.tools.call("schedule.cancel", { id: timer.id }), {
        id: timer.id,
        cancelled: false,
        status: "not_found",
      });
    } finally {
      await second.close();
    }
  });

  await t.step("two schedulers on two connections race: each timer fires once", async () => {
    const open = await database();
    const clock = { now: T0 };
    const [one, two] = [await open(), await open()];
    try {
      const a = on(one, clock);
      const b = on(two, clock);
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) {
        const timer = await a.tools.call("schedule", { kind: "race.won", delayMs: i });
        ids.push((timer as ScheduledTimer).id);
      }
      clock.now += 10;
      const [x, y] = await Promise.all([a.scheduler.poll(), b.scheduler.poll()]);
      // Whichever lost a race leaves the timer to the other; a later pass picks up the rest.
      const more = (await a.scheduler.poll()) + (await b.scheduler.poll());
      assert.equal(x + y + more, 5);
      assert.deepEqual((await kinds(one, "race.won")).sort(), [...ids].sort());
    } finally {
      await one.close();
      await two.close();
    }
  });

  await t.step(
    "a firing stopped after its append is finished by another, not repeated",
    async () => {
      const open = await database();
      const clock = { now: T0 };
      const [one, two] = [await open(), await open()];
      try {
        const bus = new EventBus({ store: one });
        const a = on(one, clock, {
          // Dies between the append and the timer's deletion.
          emit: async (input) => {
            await bus.emit(input);
            throw new Error("Killed after the append");
          },
        });
        const { id } = await a.tools.call("schedule", {
          kind: "once",
          delayMs: 0,
        }) as ScheduledTimer;
        await assert.rejects(a.scheduler.poll(), /Killed after the append/);
        assert.deepEqual(await kinds(one, "once"), [id]);
        // Claimed: not cancellable, and left alone by another process until the claim times out.
        assert.deepEqual(await a.tools.call("schedule.cancel", { id }), {
          id,
          cancelled: false,
          status: "firing",
        });
        const patient = on(two, clock, { claimTimeoutMs: 60_000 });
        assert.equal(await patient.scheduler.poll(), 0);
        assert.equal(
          ((await patient.tools.call("schedule.list", {})) as { timers: [] }).timers.length,
          1,
        );
        const b = on(two, clock, { claimTimeoutMs: 0 });
        assert.equal(await b.scheduler.poll(), 0, "found in the log, not appended again");
        assert.deepEqual(await kinds(two, "once"), [id]);
        assert.deepEqual(await b.tools.call("schedule.list", {}), { timers: [] });
      } finally {
        await one.close();
        await two.close();
      }
    },
  );

  await t.step("a firing stopped before its append is fired later, once", async () => {
    const open = await database();
    const clock = { now: T0 };
    const vault = await open();
    try {
      const bus = new EventBus({ store: vault });
      let fail = true;
      const a = on(vault, clock, {
        emit: (input) => fail ? Promise.reject(new Error("Vault unreachable")) : bus.emit(input),
      });
      const { id } = await a.tools.call("schedule", {
        kind: "later",
        delayMs: 0,
      }) as ScheduledTimer;
      await assert.rejects(a.scheduler.poll(), /Vault unreachable/);
      assert.deepEqual(await kinds(vault, "later"), []);
      fail = false;
      // Its own claim, no longer in flight: taken back at once.
      assert.equal(await a.scheduler.poll(), 1);
      assert.deepEqual(await kinds(vault, "later"), [id]);
    } finally {
      await vault.close();
    }
  });

  await t.step("a poller whose claim was taken over appends nothing", async () => {
    const open = await database();
    const clock = { now: T0 };
    const [one, two] = [await open(), await open()];
    try {
      const b = on(two, clock, { claimTimeoutMs: 0 });
      const bus = new EventBus({ store: one });
      const a = on(one, clock, {
        // Another process takes the timer over after this one claimed it.
        emit: async (input) => {
          assert.equal(await b.scheduler.poll(), 1);
          return bus.emit(input);
        },
      });
      const { id } = await a.tools.call("schedule", {
        kind: "fenced",
        delayMs: 0,
      }) as ScheduledTimer;
      assert.equal(await a.scheduler.poll(), 0);
      assert.deepEqual(await kinds(one, "fenced"), [id]);
      assert.deepEqual(await a.tools.call("schedule.list", {}), { timers: [] });
    } finally {
      await one.close();
      await two.close();
    }
  });

  await t.step("the same call for the same event is one timer, also once fired", async () => {
    const open = await database();
    const clock = { now: T0 };
    const [one, two] = [await open(), await open()];
    try {
      const a = on(one, clock);
      const b = on(two, clock);
      const cause = await a.bus.emit({ kind: "task.created" });
      const input = { kind: "task.reminder", delayMs: 5 };
      const first = await a.tools.call("schedule", input, { cause }) as ScheduledTimer;
      assert.deepEqual(await b.tools.call("schedule", input, { cause }), first);
      clock.now += 5;
      assert.equal(await b.scheduler.poll(), 1);
      assert.deepEqual(await a.tools.call("schedule", input, { cause }), first);
      assert.deepEqual(await a.tools.call("schedule.list", {}), { timers: [] });
      assert.deepEqual(await kinds(one, "task.reminder"), [first.id]);
    } finally {
      await one.close();
      await two.close();
    }
  });

  await t.step("the pending limit holds across connections, fires and cancels", async () => {
    const open = await database();
    const clock = { now: T0 };
    const [one, two] = [await open(), await open()];
    try {
      const a = on(one, clock, { maxPending: 2 });
      const b = on(two, clock, { maxPending: 2 });
      const full = /2 timers are pending, the limit/;
      const x = await a.tools.call("schedule", { kind: "x", delayMs: 1 }) as ScheduledTimer;
      await b.tools.call("schedule", { kind: "y", delayMs: 50 });
      await assert.rejects(b.tools.call("schedule", { kind: "z", delayMs: 1 }), full);
      clock.now += 1;
      assert.equal(await b.scheduler.poll(), 1);
      // One place left, asked for from both connections at once: one of them gets it.
      const raced = await Promise.allSettled([
        a.tools.call("schedule", { kind: "z", delayMs: 1 }),
        b.tools.call("schedule", { kind: "z", delayMs: 1 }),
      ]);
      assert.deepEqual(raced.map((r) => r.status).sort(), ["fulfilled", "rejected"]);
      const { timers } = await a.tools.call("schedule.list", {}) as { timers: ScheduledTimer[] };
      assert.deepEqual(timers.map((timer) => timer.kind), ["z", "y"]);
      assert.equal(
        (await a.tools.call("schedule.cancel", { id: timers[1].id }) as {
          status: string;
        }).status,
        "cancelled",
      );
      await b.tools.call("schedule", { kind: "w", delayMs: 1 });
      await assert.rejects(a.tools.call("schedule", { kind: "v", delayMs: 1 }), full);
      assert.deepEqual(await kinds(one, "x"), [x.id]);
    } finally {
      await one.close();
      await two.close();
    }
  });

  await t.step("cancel removes a durable timer for good", async () => {
    const open = await database();
    const clock = { now: T0 };
    const vault = await open();
    try {
      const a = on(vault, clock);
      const timer = await a.tools.call("schedule", { kind: "never", delayMs: 5 });
      const { id } = timer as ScheduledTimer;
      assert.equal(
        (await a.tools.call("schedule.cancel", { id }) as { status: string }).status,
        "cancelled",
      );
      clock.now += 10;
      assert.equal(await a.scheduler.poll(), 0);
      assert.deepEqual(await kinds(vault, "never"), []);
    } finally {
      await vault.close();
    }
  });
}

Deno.test("schedule on a local KV file", async (t) => {
  const dir = await Deno.makeTempDir();
  let n = 0;
  try {
    await contract(t, () => {
      const path = join(dir, `toka-${n++}.kv`);
      return Promise.resolve(() => openVault(path));
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("schedule on a remote KV over KV Connect", async (t) => {
  const server = await KvConnectServer.start({ accessToken: useTestToken() });
  let n = 0;
  try {
    await contract(t, async () => {
      const url = await server.create(`schedule-${n++}`);
      return () => openVault(url);
    });
    assert.ok(server.served.atomic_write > 0, "the timers went over the wire");
  } finally {
    await server.close();
  }
});
