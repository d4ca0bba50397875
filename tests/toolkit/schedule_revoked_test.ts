// A timer does not fire once its creator's token, or a token it was attenuated from, is
// revoked (issue 17 item 5): at fire time the scheduler asks the token authority, and records
// a schedule.skipped event instead (no token in it). In memory and in the vault's KV, and
// wired by createRuntime.
import assert from "node:assert/strict";
import { createRuntime, type EventRecord } from "../../mod.ts";
import { EventBus, type EventStore } from "../../runtime/mod.ts";
import { KvTokenAuthority } from "../../auth/mod.ts";
import { type ScheduledTimer, Scheduler, ToolRegistry } from "../../toolkit/mod.ts";
import { openVault, vaultKv } from "../../vault/mod.ts";
import { until } from "../runtime/_helpers.ts";

const T0 = Date.parse("2030-01-01T00:00:00Z");
const PERMISSIONS = ["tool:schedule:invoke", "tool:schedule.list:invoke"];

async function tokens(auth: KvTokenAuthority) {
  const parent = await auth.issue({ sub: "agent/ada", permissions: PERMISSIONS, ttlSecs: 3600 });
  const child = await auth.attenuate(parent, { permissions: ["tool:schedule:invoke"] });
  const other = await auth.issue({ sub: "agent/bob", permissions: PERMISSIONS, ttlSecs: 3600 });
  return { parent, child, other };
}

Deno.test("a timer of a revoked token is skipped, not fired", async (t) => {
  for (const where of ["memory", "kv"] as const) {
    await t.step(`${where}: skipped with a schedule.skipped event`, async () => {
      const clock = { now: T0 };
      await using vault = await openVault(":memory:", { clock: () => clock.now });
      await using authVault = await openVault(":memory:");
      const auth = await KvTokenAuthority.open(vaultKv(authVault)!, {
        clock: () => clock.now,
        masterKey: undefined,
      });
      const bus = new EventBus({ store: vault, clock: () => clock.now });
      const scheduler = new Scheduler({
        emit: (input) => bus.emit(input),
        clock: () => clock.now,
        authority: auth,
        ...(where === "kv" ? { vault, kv: vaultKv(vault) } : {}),
      });
      const tools = new ToolRegistry({
        tools: scheduler.tools,
        authority: auth,
        clock: () => clock.now,
      });
      const { parent, child, other } = await tokens(auth);
      const schedule = (token: string, kind: string, delayMs: number) =>
        tools.call("schedule", { kind, delayMs }, { token }) as Promise<ScheduledTimer>;
      const byChild = await schedule(child, "ada.child", 60_000);
      const byParent = await schedule(parent, "ada.parent", 60_000);
      const byOther = await schedule(other, "bob.tick", 60_000);
      // Due in two days, long after the tokens expire: the revocation must still count.
      const late = await schedule(child, "ada.late", 2 * 86_400_000);
      const { jti, exp } = await auth.verify(parent);
      await auth.revoke(jti, exp);

      clock.now += 60_000;
      assert.equal(await scheduler.poll(), 3);
      const events: EventRecord[] = await Array.fromAsync(vault.read());
      assert.deepEqual(events.map((e) => e.kind).sort(), [
        "bob.tick",
        "schedule.skipped",
        "schedule.skipped",
      ]);
      const skipped = events.filter((e) => e.kind === "schedule.skipped");
      assert.deepEqual(
        skipped.map((e) => e.meta.scheduleId).sort(),
        [byChild.id, byParent.id].sort(),
      );
      const first = skipped.find((e) => e.meta.scheduleId === byChild.id)!;
      assert.deepEqual(first.payload, {
        scheduleId: byChild.id,
        kind: "ada.child",
        stream: "schedule",
        due: byChild.due,
        reason: "token_revoked",
      });
      assert.equal(first.meta.scheduledBy, "agent/ada");
      const text = JSON.stringify(events);
      for (const token of [parent, child, other]) assert.ok(!text.includes(token));
      for (const token of [parent, child, other]) {
        assert.ok(!text.includes(token.split(".")[2]), "no signature");
      }
      assert.ok(events.some((e) => e.kind === "bob.tick" && e.meta.scheduleId === byOther.id));

      clock.now = T0 + 2 * 86_400_000;
      assert.equal(await scheduler.poll(), 1);
      const lateEvents = await Array.fromAsync(
        vault.read({ kinds: ["schedule.skipped", "ada.late"] }),
      );
      assert.deepEqual(
        lateEvents.filter((e) => e.meta.scheduleId === late.id).map((e) => e.kind),
        ["schedule.skipped"],
      );
      assert.equal(await scheduler.poll(), 0);
    });
  }

  await t.step(
    "isRevoked still knows a revocation once the token's own entry expired",
    async () => {
      await using authVault = await openVault(":memory:");
      const kv = vaultKv(authVault)!;
      const auth = await KvTokenAuthority.open(kv);
      const { parent, other } = await tokens(auth);
      const { jti, exp } = await auth.verify(parent);
      await auth.revoke(jti, exp);
      // What KV's expireIn does after the token's exp, done now; read by another process.
      await kv.delete(["auth", "revoked", jti]);
      const later = await KvTokenAuthority.open(kv);
      assert.equal(await later.isRevoked(jti), true);
      assert.equal(await later.isRevoked((await auth.verify(other)).jti), false);
      await assert.rejects(later.isRevoked(""), TypeError);
    },
  );

  await t.step("createRuntime gives the scheduler its token authority", async () => {
    const clock = { now: T0 };
    await using authVault = await openVault(":memory:");
    const auth = await KvTokenAuthority.open(vaultKv(authVault)!, { clock: () => clock.now });
    const runtime = await createRuntime({
      db: ":memory:",
      auth,
      schedule: {},
      clock: () => clock.now,
    });
    try {
      const { parent, child } = await tokens(auth);
      const timer = await runtime.tools.call("schedule", { kind: "ada.tick", delayMs: 1000 }, {
        token: child,
      }) as ScheduledTimer;
      const { jti, exp } = await auth.verify(parent);
      await auth.revoke(jti, exp);
      clock.now += 1000;
      await runtime.start();
      const store = runtime.bus.store as EventStore;
      const seen = async () =>
        await Array.fromAsync(store.read({ kinds: ["schedule.skipped", "ada.tick"] }));
      let found: EventRecord[] = [];
      await until(() => {
        void seen().then((events) => found = events);
        return found.length > 0;
      });
      assert.deepEqual(found.map((e) => [e.kind, e.meta.scheduleId]), [[
        "schedule.skipped",
        timer.id,
      ]]);
    } finally {
      await runtime.close();
    }
  });
});
