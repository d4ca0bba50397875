// One subject cannot fill the vault-wide pending-timer limit and lock every other subject out
// (issue 17 item 6): maxPendingPerSubject, counted in the same KV commits as the vault-wide
// count, in memory and in the vault's KV.
import assert from "node:assert/strict";
import { EventBus } from "../../runtime/mod.ts";
import {
  type ScheduledTimer,
  Scheduler,
  type SchedulerOptions,
  ToolRegistry,
} from "../../toolkit/mod.ts";
import { openVault, vaultKv } from "../../vault/mod.ts";
import { FakeAuthority } from "./_fakes.ts";

const T0 = Date.parse("2030-01-01T00:00:00Z");

Deno.test("the pending timers of one subject are limited", async (t) => {
  for (const where of ["memory", "kv"] as const) {
    await t.step(`${where}: a subject at its quota is refused, another is not`, async () => {
      const clock = { now: T0 };
      await using vault = await openVault(":memory:", { clock: () => clock.now });
      const bus = new EventBus({ store: vault, clock: () => clock.now });
      const options: SchedulerOptions = {
        emit: (input) => bus.emit(input),
        clock: () => clock.now,
        maxPending: 5,
        maxPendingPerSubject: 2,
        ...(where === "kv" ? { vault, kv: vaultKv(vault) } : {}),
      };
      const scheduler = new Scheduler(options);
      const permissions = scheduler.tools.flatMap((tool) => tool.permissions!);
      const authority = new FakeAuthority({
        ada: { sub: "agent/ada", permissions },
        bob: { sub: "agent/bob", permissions },
      });
      const tools = new ToolRegistry({ tools: scheduler.tools, authority });
      const schedule = (token: string, kind: string, delayMs = 1000) =>
        tools.call("schedule", { kind, delayMs }, { token }) as Promise<ScheduledTimer>;

      const first = await schedule("ada", "a.one");
      await schedule("ada", "a.two", 5000);
      await assert.rejects(schedule("ada", "a.three"), {
        message:
          'Tool "schedule" failed: Cannot schedule "a.three": "agent/ada" has 2 timers pending, the limit per subject',
      });
      // Another subject still schedules, up to the vault-wide limit.
      await schedule("bob", "b.one");
      await schedule("bob", "b.two");
      await assert.rejects(schedule("bob", "b.three"), /the limit per subject/);

      // A cancelled timer frees its place.
      await tools.call("schedule.cancel", { id: first.id }, { token: "ada" });
      await schedule("ada", "a.three");
      // A fired one too.
      clock.now += 1000;
      assert.equal(await scheduler.poll(), 3); // a.three, b.one, b.two
      await schedule("bob", "b.four");
      await schedule("bob", "b.five");
      // The vault-wide limit still holds: ada 2 (a.two, a.four) + bob 2 = 4, one place left.
      await schedule("ada", "a.four");
      await assert.rejects(schedule("ada", "a.five"), /the limit per subject/);
      if (where === "kv") {
        const kv = vaultKv(vault)!;
        assert.equal((await kv.get(["schedule", "count"])).value, 4);
        assert.equal((await kv.get(["schedule", "count_by", "agent/ada"])).value, 2);
        assert.equal((await kv.get(["schedule", "count_by", "agent/bob"])).value, 2);
      }
    });
  }

  await t.step("the vault-wide limit is still said as before", async () => {
    const scheduler = new Scheduler({
      emit: () => Promise.resolve(),
      maxPending: 2,
      maxPendingPerSubject: 2,
    });
    const tools = new ToolRegistry({ tools: scheduler.tools });
    await tools.call("schedule", { kind: "x", delayMs: 10 });
    await tools.call("schedule", { kind: "y", delayMs: 10 });
    await assert.rejects(tools.call("schedule", { kind: "z", delayMs: 10 }), {
      message: 'Tool "schedule" failed: Cannot schedule "z": 2 timers are pending, the limit',
    });
  });

  await t.step("maxPendingPerSubject is checked, 100 by default", () => {
    const emit = () => Promise.resolve();
    assert.throws(
      () => new Scheduler({ emit, maxPendingPerSubject: 0 }),
      /Invalid maxPendingPerSubject 0: expected an integer from 1 to 100000/,
    );
    assert.throws(() => new Scheduler({ emit, maxPendingPerSubject: 1.5 }), RangeError);
  });

  await t.step("by default one subject has at most 100 timers pending", async () => {
    const scheduler = new Scheduler({ emit: () => Promise.resolve() });
    const tools = new ToolRegistry({ tools: scheduler.tools });
    for (let i = 0; i < 100; i++) await tools.call("schedule", { kind: "x", delayMs: 10 });
    await assert.rejects(
      tools.call("schedule", { kind: "x", delayMs: 10 }),
      /"anonymous" has 100 timers pending, the limit per subject/,
    );
  });
});
