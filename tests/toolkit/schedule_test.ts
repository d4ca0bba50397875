// The schedule tools: inputs good and bad, firing by an injected clock, list and
// cancel per caller, the poller's lifecycle and the runtime wiring (in memory).
import assert from "node:assert/strict";
import { createRuntime, defineAgent, type EventRecord } from "../../mod.ts";
import { EventBus } from "../../runtime/mod.ts";
import { vaultKv } from "../../vault/mod.ts";
import {
  CapabilityDeniedError,
  type ScheduledTimer,
  Scheduler,
  type SchedulerOptions,
  ToolExecutionError,
  ToolInputError,
  ToolRegistry,
} from "../../toolkit/mod.ts";
import { FakeAuthority } from "./_fakes.ts";

const T0 = Date.parse("2030-01-01T00:00:00Z");

/** A scheduler in memory with a fake clock, its registry, and the bus it emits to. */
function setup(options: Partial<SchedulerOptions> = {}) {
  const clock = { now: T0 };
  const bus = new EventBus({ clock: () => clock.now });
  const fired: EventRecord[] = [];
  bus.subscribe("*", (event) => {
    fired.push(event);
  });
  const scheduler = new Scheduler({
    emit: (input) => bus.emit(input),
    clock: () => clock.now,
    ...options,
  });
  const authority = new FakeAuthority({
    ada: { sub: "agent/ada", permissions: scheduler.tools.flatMap((t) => t.permissions!) },
    bob: { sub: "agent/bob", permissions: scheduler.tools.flatMap((t) => t.permissions!) },
    none: { sub: "agent/none", permissions: [] },
  });
  const tools = new ToolRegistry({ tools: scheduler.tools, authority, clock: () => clock.now });
  const call = (name: string, input: unknown, token = "ada") => tools.call(name, input, { token });
  return { clock, bus, fired, scheduler, tools, call };
}

async function refused(promise: Promise<unknown>): Promise<string> {
  const error = await promise.then(() => assert.fail("expected a refusal"), (e) => e);
  assert.ok(error instanceof ToolInputError, `${error?.name}: ${error?.message}`);
  assert.ok(!error.message.includes("\n"), "one line");
  return error.message;
}

Deno.test("schedule: inputs", async (t) => {
  await t.step("delayMs and at give the due time; the stream defaults to schedule", async () => {
    const { call } = setup();
    const a = await call("schedule", { kind: "reminder.due", delayMs: 5000 }) as ScheduledTimer;
    assert.match(a.id, /^[0-9a-f-]{36}$/);
    assert.deepEqual({ ...a, id: "" }, {
      id: "",
      kind: "reminder.due",
      stream: "schedule",
      due: "2030-01-01T00:00:05.000Z",
    });
    const b = await call("schedule", {
      kind: "report.weekly",
      payload: { n: 1 },
      stream: "agent/ada",
      at: "2030-01-01T02:00:00+01:00",
    }) as ScheduledTimer;
    assert.equal(b.due, "2030-01-01T01:00:00.000Z");
    assert.equal(b.stream, "agent/ada");
    // A time a few seconds past is a race with the clock: due at once.
    const c = await call("schedule", { kind: "x", at: "2029-12-31T23:59:50Z" }) as ScheduledTimer;
    assert.equal(c.due, "2030-01-01T00:00:00.000Z");
  });

  await t.step("bad input is a one-line ToolInputError naming the field", async () => {
    const { call, scheduler } = setup({ maxDelayMs: 60_000, maxPayloadBytes: 100 });
    const cases: [unknown, RegExp][] = [
      [{ delayMs: 1 }, /must have required property 'kind'/],
      [{ kind: "Bad kind!", delayMs: 1 }, /\/kind must be dotted segments/],
      [{ kind: 3, delayMs: 1 }, /\/kind must be string/],
      [{ kind: "x" }, /\/at or \/delayMs is required, not both/],
      [{ kind: "x", delayMs: 1, at: "2030-01-01T00:00:10Z" }, /\/at or \/delayMs is required/],
      [{ kind: "x", delayMs: -1 }, /\/delayMs must be >= 0/],
      [{ kind: "x", delayMs: 1.5 }, /\/delayMs must be integer/],
      [{ kind: "x", delayMs: 60_001 }, /\/delayMs must be <= 60000/],
      [{ kind: "x", at: "tomorrow" }, /\/at must be an ISO 8601 time with a zone/],
      [{ kind: "x", at: "2030-01-01T00:00:10" }, /\/at must be an ISO 8601 time with a zone/],
      [{ kind: "x", at: "2030-13-01T00:00:10Z" }, /\/at must be an ISO 8601 time/],
      [{ kind: "x", at: "2029-12-31T23:58:00Z" }, /\/at is in the past/],
      [{ kind: "x", at: "2030-01-01T00:01:01Z" }, /\/at is more than 60000 ms ahead/],
      [{ kind: "x", delayMs: 1, stream: "a b" }, /\/stream must be 1 to 256 letters/],
      [{ kind: "x", delayMs: 1, payload: "y".repeat(101) }, /\/payload has 103 bytes as JSON/],
      [{ kind: "x", delayMs: 1, payload: 10n }, /\/payload is bigint, not a JSON value$/],
      [
        { kind: "x", delayMs: 1, payload: { t: "\uD800" } },
        /\/payload has a lone surrogate U\+D800 at index 0, not valid Unicode \(at \$\.t\)$/,
      ],
      [
        { kind: "x", delayMs: 1, payload: JSON.parse("[".repeat(10_000) + "]".repeat(10_000)) },
        /\/payload is nested 257 deep, over the maximum of 256 \(at \$(\[0\])+…(\[0\])+\)$/,
      ],
      [{ kind: "x", delayMs: 1, extra: true }, /must NOT have additional properties "extra"/],
    ];
    for (const [input, expected] of cases) {
      assert.match(await refused(call("schedule", input)), expected, Deno.inspect(input));
    }
    assert.match(await refused(call("schedule.cancel", {})), /required property 'id'/);
    assert.match(await refused(call("schedule.list", { all: true })), /additional properties/);
    // Nothing refused was stored.
    assert.deepEqual(await call("schedule.list", {}), { timers: [] });
    assert.equal(await scheduler.poll(), 0);
  });

  await t.step("the pending limit refuses one more timer, then frees up", async () => {
    const { call, clock, scheduler } = setup({ maxPending: 2 });
    await call("schedule", { kind: "a", delayMs: 10 });
    await call("schedule", { kind: "b", delayMs: 20 });
    const error = await call("schedule", { kind: "c", delayMs: 30 }).catch((e) => e);
    assert.ok(error instanceof ToolExecutionError);
    assert.equal(
      error.message,
      'Tool "schedule" failed: Cannot schedule "c": 2 timers are pending, the limit',
    );
    clock.now += 10;
    assert.equal(await scheduler.poll(), 1);
    await call("schedule", { kind: "c", delayMs: 30 });
  });

  await t.step("each tool needs its permission", async () => {
    const { call } = setup();
    for (const name of ["schedule", "schedule.list", "schedule.cancel"]) {
      const error = await call(name, { kind: "x", delayMs: 1 }, "none").catch((e) => e);
      assert.ok(error instanceof CapabilityDeniedError, name);
      assert.match(error.message, new RegExp(`tool:${name.replace(".", "\\.")}:invoke`));
    }
  });

  await t.step("bad options are RangeErrors naming the option", () => {
    const emit = () => Promise.resolve();
    assert.throws(() => new Scheduler({ emit, maxDelayMs: 0 }), /Invalid maxDelayMs 0/);
    assert.throws(() => new Scheduler({ emit, pollIntervalMs: 1 }), /Invalid pollIntervalMs 1/);
    assert.throws(() => new Scheduler({ emit, maxPending: 1.5 }), /Invalid maxPending 1.5/);
    assert.throws(() => new Scheduler({ emit, maxPayloadBytes: 40_000 }), RangeError);
    assert.throws(() => new Scheduler({} as SchedulerOptions), /emit must be a function/);
  });

  await t.step("a KV without the vault it belongs to is refused in one line", async () => {
    using kv = await Deno.openKv(":memory:");
    assert.throws(
      () => new Scheduler({ emit: () => Promise.resolve(), kv }),
      { name: "TypeError", message: "Invalid schedule options: kv needs the vault it belongs to" },
    );
  });
});

Deno.test("schedule: firing by the clock, list and cancel", async (t) => {
  await t.step("a timer fires once when due, with its event", async () => {
    const { call, clock, scheduler, fired, bus } = setup();
    const timer = await call("schedule", {
      kind: "reminder.due",
      payload: { text: "Stand up" },
      delayMs: 1000,
    }) as ScheduledTimer;
    clock.now += 999;
    assert.equal(await scheduler.poll(), 0);
    clock.now += 1;
    assert.equal(await scheduler.poll(), 1);
    assert.equal(await scheduler.poll(), 0);
    await bus.idle();
    assert.equal(fired.length, 1);
    const [event] = fired;
    assert.equal(event.kind, "reminder.due");
    assert.equal(event.stream, "schedule");
    assert.deepEqual(event.payload, { text: "Stand up" });
    assert.deepEqual(event.parents, []);
    assert.deepEqual(event.meta, { scheduleId: timer.id, scheduledBy: "agent/ada" });
    assert.deepEqual(await call("schedule.list", {}), { timers: [] });
  });

  await t.step("due timers fire earliest first, several in one pass", async () => {
    const { call, clock, scheduler, fired, bus } = setup();
    await call("schedule", { kind: "c", delayMs: 30 });
    await call("schedule", { kind: "a", delayMs: 10 });
    await call("schedule", { kind: "b", delayMs: 20 });
    clock.now += 30;
    assert.equal(await scheduler.poll(), 3);
    await bus.idle();
    assert.deepEqual(fired.map((e) => e.kind), ["a", "b", "c"]);
  });

  await t.step("list shows the caller's own timers; cancel stops one", async () => {
    const { call, clock, scheduler, fired, bus } = setup();
    const late = await call("schedule", { kind: "late", delayMs: 2000 }) as ScheduledTimer;
    const early = await call("schedule", { kind: "early", delayMs: 1000 }) as ScheduledTimer;
    const bobs = await call("schedule", { kind: "bobs", delayMs: 500 }, "bob") as ScheduledTimer;
    assert.deepEqual(await call("schedule.list", {}), { timers: [early, late] });
    assert.deepEqual(await call("schedule.list", {}, "bob"), { timers: [bobs] });
    // Another caller's timer is not found, and stays.
    assert.deepEqual(await call("schedule.cancel", { id: bobs.id }), {
      id: bobs.id,
      cancelled: false,
      status: "not_found",
    });
    assert.deepEqual(await call("schedule.cancel", { id: early.id }), {
      id: early.id,
      cancelled: true,
      status: "cancelled",
    });
    assert.equal(
      (await call("schedule.cancel", { id: early.id }) as { status: string }).status,
      "not_found",
    );
    clock.now += 5000;
    assert.equal(await scheduler.poll(), 2);
    await bus.idle();
    assert.deepEqual(fired.map((e) => e.kind).sort(), ["bobs", "late"]);
    // A fired timer cannot be cancelled any more.
    assert.equal(
      (await call("schedule.cancel", { id: late.id }) as { status: string }).status,
      "not_found",
    );
  });

  await t.step("the same call while handling the same event schedules one timer", async () => {
    const { tools, clock, scheduler, fired, bus } = setup();
    const cause = await bus.emit({ kind: "task.created" });
    const other = await bus.emit({ kind: "task.created" });
    const input = { kind: "task.reminder", payload: { n: 1 }, delayMs: 10 };
    const call = (input: unknown, event = cause) =>
      tools.call("schedule", input, { token: "ada", cause: event }) as Promise<ScheduledTimer>;
    const first = await call(input);
    assert.deepEqual(await call(input), first, "a retried handler finds its timer");
    assert.notEqual((await call({ ...input, payload: { n: 2 } })).id, first.id);
    assert.notEqual((await call(input, other)).id, first.id, "another event, another timer");
    const theirs = await tools.call("schedule", input, { token: "bob", cause });
    assert.notEqual((theirs as ScheduledTimer).id, first.id, "another caller, another timer");
    clock.now += 10;
    assert.equal(await scheduler.poll(), 4);
    // Fired: the same call again is told about that timer and schedules nothing.
    assert.deepEqual(await call(input), first);
    const cancelled = await call({ ...input, delayMs: 20 });
    await tools.call("schedule.cancel", { id: cancelled.id }, { token: "ada" });
    assert.deepEqual(await call({ ...input, delayMs: 20 }), cancelled);
    assert.deepEqual(await tools.call("schedule.list", {}, { token: "ada" }), { timers: [] });
    clock.now += 100;
    assert.equal(await scheduler.poll(), 0);
    await bus.idle();
    assert.equal(fired.filter((e) => e.kind === "task.reminder").length, 4);
  });

  await t.step("an emit that fails leaves the timer pending for the next pass", async () => {
    let fail = true;
    const emitted: string[] = [];
    const clock = { now: T0 };
    const scheduler = new Scheduler({
      clock: () => clock.now,
      emit: (input) => {
        if (fail) return Promise.reject(new Error("Vault unreachable"));
        emitted.push(input.kind);
        return Promise.resolve();
      },
    });
    const tools = new ToolRegistry({ tools: scheduler.tools });
    await tools.call("schedule", { kind: "retry.me", delayMs: 0 });
    await assert.rejects(scheduler.poll(), /Vault unreachable/);
    fail = false;
    assert.equal(await scheduler.poll(), 1);
    assert.deepEqual(emitted, ["retry.me"]);
  });

  await t.step("a timer that cannot fire does not hold back the ones due after it", async () => {
    const emitted: string[] = [];
    const clock = { now: T0 };
    const scheduler = new Scheduler({
      clock: () => clock.now,
      emit: (input) => {
        if (input.kind === "poison") return Promise.reject(new Error("Refused by the vault"));
        emitted.push(input.kind);
        return Promise.resolve();
      },
    });
    const tools = new ToolRegistry({ tools: scheduler.tools });
    await tools.call("schedule", { kind: "poison", delayMs: 0 });
    await tools.call("schedule", { kind: "healthy", delayMs: 1 });
    clock.now += 1;
    await assert.rejects(scheduler.poll(), /Refused by the vault/);
    assert.deepEqual(emitted, ["healthy"]);
    const { timers } = await tools.call("schedule.list", {}) as { timers: ScheduledTimer[] };
    assert.deepEqual(timers.map((timer) => timer.kind), ["poison"]);
  });
});

Deno.test("schedule: the poller", async (t) => {
  await t.step("start fires due timers with real timers; stop leaves nothing running", async () => {
    const bus = new EventBus();
    // A long interval: pong fires only because scheduling it wakes the poller up.
    const scheduler = new Scheduler({ emit: (input) => bus.emit(input), pollIntervalMs: 60_000 });
    const tools = new ToolRegistry({ tools: scheduler.tools });
    const stream = bus.subscribe(["ping", "pong"]);
    await tools.call("schedule", { kind: "ping", delayMs: 0 });
    scheduler.start();
    scheduler.start(); // no-op
    assert.equal(scheduler.running, true);
    // Scheduled while running and due before the next look: the poller wakes up for it.
    await tools.call("schedule", { kind: "pong", delayMs: 20 });
    const kinds: string[] = [];
    for await (const event of stream) {
      kinds.push(event.kind);
      if (kinds.length === 2) break;
    }
    assert.deepEqual(kinds, ["ping", "pong"]);
    await scheduler.stop();
    await scheduler.stop(); // no-op
    assert.equal(scheduler.running, false);
  });

  await t.step("a timer scheduled during a pass is not left to the next interval", async () => {
    const bus = new EventBus();
    const scheduler = new Scheduler({
      pollIntervalMs: 60_000,
      emit: async (input) => {
        // Scheduled during the pass, after it read the due timers.
        if (input.kind === "first") await tools.call("schedule", { kind: "second", delayMs: 0 });
        return bus.emit(input);
      },
    });
    const tools = new ToolRegistry({ tools: scheduler.tools });
    const stream = bus.subscribe(["first", "second"]);
    await tools.call("schedule", { kind: "first", delayMs: 0 });
    scheduler.start();
    const kinds: string[] = [];
    const deadline = setTimeout(() => stream.close(), 10_000);
    for await (const event of stream) {
      kinds.push(event.kind);
      if (kinds.length === 2) break;
    }
    clearTimeout(deadline);
    await scheduler.stop();
    assert.deepEqual(kinds, ["first", "second"]);
  });

  await t.step(
    "a stopped poller fires nothing; timers stay pending for the next start",
    async () => {
      const bus = new EventBus();
      const seen: string[] = [];
      bus.subscribe("*", (event) => {
        seen.push(event.kind);
      });
      const scheduler = new Scheduler({ emit: (input) => bus.emit(input), pollIntervalMs: 10 });
      const tools = new ToolRegistry({ tools: scheduler.tools });
      scheduler.start();
      await scheduler.stop();
      await tools.call("schedule", { kind: "later", delayMs: 0 });
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.deepEqual(seen, []);
      {
        await using running = scheduler;
        running.start();
        while (seen.length === 0) await new Promise((resolve) => setTimeout(resolve, 10));
      }
      assert.equal(scheduler.running, false);
      assert.deepEqual(seen, ["later"]);
    },
  );
});

Deno.test("schedule: in createRuntime", async (t) => {
  await t.step("an agent's timer fires as an event caused by the one it handled", async () => {
    const runtime = await createRuntime({ db: ":memory:", schedule: { pollIntervalMs: 20 } });
    try {
      assert.deepEqual(
        runtime.tools.list().map((tool) => tool.name).filter((n) => n.startsWith("schedule")),
        ["schedule", "schedule.cancel", "schedule.list"],
      );
      runtime.register(defineAgent({
        name: "planner",
        subscribe: ["task.created"],
        permissions: ["tool:schedule:invoke"],
        async handle(event, ctx) {
          await ctx.tools.call("schedule", {
            kind: "task.reminder",
            payload: event.payload,
            delayMs: 30,
          });
        },
      }));
      await runtime.start();
      const created = await runtime.emit({ kind: "task.created", payload: { n: 7 } });
      const vault = runtime.bus.store!;
      let reminders: EventRecord[] = [];
      for (let i = 0; i < 1000 && reminders.length === 0; i++) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        reminders = await Array.fromAsync(vault.read({ kinds: ["task.reminder"] }));
      }
      assert.equal(reminders.length, 1);
      const [reminder] = reminders;
      assert.deepEqual(reminder.payload, { n: 7 });
      assert.deepEqual(reminder.parents, [created.id]);
      assert.equal(reminder.meta.causationId, created.id);
      assert.equal(reminder.meta.correlationId, created.id);
      assert.equal(reminder.meta.scheduledBy, "agent/planner");
    } finally {
      await runtime.close();
    }
  });

  await t.step("a handler retried after scheduling leaves one timer, fired once", async () => {
    await using runtime = await createRuntime({
      db: ":memory:",
      schedule: { pollIntervalMs: 20 },
      retry: { attempts: 3, backoffMs: () => 1 },
    });
    let attempts = 0;
    runtime.register(defineAgent({
      name: "flaky",
      subscribe: ["task.created"],
      permissions: ["tool:schedule:invoke"],
      async handle(_event, ctx) {
        await ctx.tools.call("schedule", { kind: "task.reminder", delayMs: 50 });
        if (++attempts === 1) throw new Error("Flaky after scheduling");
      },
    }));
    await runtime.start();
    await runtime.emit({ kind: "task.created" });
    const vault = runtime.bus.store!;
    const reminders = () => Array.fromAsync(vault.read({ kinds: ["task.reminder"] }));
    for (let i = 0; i < 1000 && (await reminders()).length === 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.equal(attempts, 2);
    assert.equal((await reminders()).length, 1);
    // No second timer: none is left pending to fire later.
    const pending = await Array.fromAsync(vaultKv(vault)!.list({ prefix: ["schedule", "timer"] }));
    assert.deepEqual(pending, []);
  });

  await t.step("an agent without the permission is refused", async () => {
    await using runtime = await createRuntime({ db: ":memory:", schedule: {} });
    const errors: string[] = [];
    runtime.register(defineAgent({
      name: "nosy",
      subscribe: ["go"],
      async handle(_event, ctx) {
        await ctx.tools.call("schedule", { kind: "x", delayMs: 1 }).catch((e) => {
          errors.push(e.name);
        });
      },
    }));
    await runtime.start();
    await runtime.emit({ kind: "go" });
    for (let i = 0; i < 1000 && errors.length === 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.deepEqual(errors, ["CapabilityDeniedError"]);
  });

  await t.step("Scheduler.checkOptions refuses what the constructor refuses", () => {
    Scheduler.checkOptions({ maxPending: 10 });
    assert.throws(() => Scheduler.checkOptions({ maxDelayMs: 0 }), {
      name: "RangeError",
      message: "Invalid maxDelayMs 0: expected an integer from 1 to 315619200000",
    });
    assert.throws(() => Scheduler.checkOptions({ kv: {} as never }), {
      name: "TypeError",
      message: "Invalid schedule options: kv needs the vault it belongs to",
    });
  });

  await t.step("not registered without the option; bad options open nothing", async () => {
    await using plain = await createRuntime({ db: ":memory:" });
    assert.equal(plain.tools.get("schedule"), undefined);
    const dir = await Deno.makeTempDir();
    try {
      const db = `${dir}/toka.kv`;
      await assert.rejects(
        createRuntime({ db, schedule: { maxPending: 0 } }),
        /Invalid maxPending 0: expected an integer from 1 to 100000/,
      );
      await assert.rejects(
        createRuntime({ db, schedule: [] as never }),
        /Invalid schedule: expected the options of the schedule tools/,
      );
      await assert.rejects(createRuntime({ db, hooks: {} } as never), {
        name: "TypeError",
        message: "Invalid hooks: createRuntime sets its own; use Runtime.create for hooks",
      });
      assert.deepEqual(await Array.fromAsync(Deno.readDir(dir)), []);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
});
