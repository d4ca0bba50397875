// Retrying what an agent gave up on (issue 20 §4): readFailedEvents lists the
// events with an agent.failed not followed by an agent.recovered, and
// runtime.retry appends an agent.retry_requested that the agent's runner
// handles by delivering the event again, in order with the rest of the log.
import assert from "node:assert/strict";
import {
  defineAgent,
  type EventRecord,
  readFailedEvents,
  RetryRefusedError,
  Runtime,
} from "../../../runtime/mod.ts";
import { openVault } from "../../../vault/mod.ts";
import { all, kvPorts, until } from "../_helpers.ts";

Deno.test("runtime.retry", async (t) => {
  const vault = await openVault(":memory:");
  let broken = true;
  const seen: string[] = [];
  const create = () =>
    Runtime.create({ vault, ...kvPorts(vault.kv), retry: { attempts: 2, backoffMs: () => 1 } });
  const flaky = defineAgent({
    name: "flaky",
    subscribe: ["task.*"],
    async handle(event, ctx) {
      seen.push(event.id);
      // Emitted before the failure: a retry gets it back from the journal, not a second one.
      await ctx.emit({ kind: "work.started", payload: event.payload });
      if (broken) throw new Error(`broken on ${event.payload}`);
      await ctx.emit({ kind: "work.done", payload: event.payload });
    },
  });
  let runtime = await create();
  runtime.register(flaky);
  runtime.register(defineAgent({ name: "other", subscribe: ["never.*"], handle() {} }));
  await runtime.start();
  const one = await runtime.emit({ kind: "task.created", payload: 1 });
  const two = await runtime.emit({ kind: "task.created", payload: 2 });
  await until(() => runtime.agents()[0].failures === 2);
  let request: EventRecord | undefined;

  try {
    await t.step("the failed events are listed, with the last error", async () => {
      const failed = await readFailedEvents(vault, "flaky");
      assert.deepEqual(failed.map((f) => [f.agent, f.eventId, f.kind, f.attempts, f.error]), [
        ["flaky", one.id, "task.created", 2, "broken on 1"],
        ["flaky", two.id, "task.created", 2, "broken on 2"],
      ]);
      assert.equal(failed[0].retryRequested, false);
      assert.deepEqual(await readFailedEvents(vault), failed);
      assert.deepEqual(await readFailedEvents(vault, "other"), []);
      // Two attempts each; the first attempt's emit was not appended again by the second.
      assert.equal((await all(vault, ["work.started"])).length, 2);
    });

    await t.step("retry re-delivers the event and the agent handles it", async () => {
      broken = false;
      seen.length = 0;
      request = await runtime.retry("flaky", one.id);
      assert.equal(request.kind, "agent.retry_requested");
      assert.equal(request.stream, "agent/flaky");
      assert.deepEqual(request.payload, { agent: "flaky", eventId: one.id });
      await until(() => seen.length === 1);
      const [recovered] = await waitFor(vault, "agent.recovered", 1);
      assert.deepEqual(recovered.payload, {
        agent: "flaky",
        eventId: one.id,
        kind: "task.created",
      });
      assert.deepEqual(recovered.parents, [request.id, one.id]);
      assert.deepEqual(seen, [one.id]);
      // Its emits are caused by the event itself; the one from before is not repeated.
      const started = await all(vault, ["work.started"]);
      assert.equal(started.length, 2);
      const [done] = await all(vault, ["work.done"]);
      assert.deepEqual(done.parents, [one.id]);
      assert.deepEqual(done.payload, 1);
      assert.deepEqual((await readFailedEvents(vault)).map((f) => f.eventId), [two.id]);
    });

    await t.step("bad requests are refused with one line and append nothing", async () => {
      const head = (await vault.head())?.position;
      const cases: [string, string, string, string][] = [
        [
          "ghost",
          two.id,
          "unknown_agent",
          'Cannot retry for agent "ghost": no agent of that name has run or failed here',
        ],
        [
          "flaky",
          "01ARZ3NDEKTSV4RRFFQ69G5FAV",
          "unknown_event",
          'Cannot retry event "01ARZ3NDEKTSV4RRFFQ69G5FAV" for agent "flaky": no such event',
        ],
        [
          "flaky",
          one.id,
          "not_failed",
          `Cannot retry event "${one.id}" for agent "flaky": the agent has not given up on it (or a retry succeeded since)`,
        ],
        [
          "other",
          two.id,
          "not_failed",
          `Cannot retry event "${two.id}" for agent "other": the agent has not given up on it (or a retry succeeded since)`,
        ],
      ];
      for (const [agent, id, reason, message] of cases) {
        await assert.rejects(runtime.retry(agent, id), (error) => {
          assert.ok(error instanceof RetryRefusedError);
          assert.equal(error.code, "retry_refused");
          assert.equal(error.reason, reason);
          assert.equal(error.message, message);
          return true;
        });
      }
      await assert.rejects(runtime.retry("flaky", "nope"), {
        name: "TypeError",
        message: 'Invalid event id "nope": expected 26 characters of Crockford base32',
      });
      assert.equal((await vault.head())?.position, head);
    });

    await t.step("a stopped agent handles a request at its next start", async () => {
      broken = true;
      await runtime.stop();
      request = await runtime.retry("flaky", two.id);
      // Asked twice before the agent handled it: refused, not handled twice.
      await assert.rejects(runtime.retry("flaky", two.id), /a retry is already requested/);
      const listed = await readFailedEvents(vault, "flaky");
      assert.deepEqual(listed.map((f) => [f.eventId, f.retryRequested]), [[two.id, true]]);
      await runtime.close();
      broken = false;
      seen.length = 0;
      runtime = await create();
      runtime.register(flaky);
      await runtime.start();
      await waitFor(vault, "agent.recovered", 2);
      assert.deepEqual(seen, [two.id]);
      assert.deepEqual(await readFailedEvents(vault), []);
    });

    await t.step(
      "a request handled again after a crash does not handle the event again",
      async () => {
        // The checkpoint before the request: as if the process died before writing it.
        await runtime.stop();
        seen.length = 0;
        await kvPorts(vault.kv).checkpoints.save("flaky", {
          position: formatBefore(request!),
          failures: 2,
          updatedAt: 0,
          subscribe: ["task.*"],
        });
        await runtime.start();
        await runtime.emit({ kind: "task.created", payload: 3 });
        await until(() => seen.length === 1);
        await runtime.stop();
        assert.equal((await all(vault, ["agent.recovered"])).length, 2);
        assert.equal(seen.length, 1, "only the new task");
      },
    );

    await t.step("a retry that fails again records agent.failed and stays listed", async () => {
      broken = true;
      await runtime.start();
      const three = (await all(vault, ["task.created"])).at(-1)!;
      await runtime.emit({ kind: "task.created", payload: 4 });
      await until(() => runtime.agents()[0].failures === 3);
      const four = (await all(vault, ["task.created"])).at(-1)!;
      await runtime.retry("flaky", four.id);
      await until(() => runtime.agents()[0].failures === 4);
      const failed = await readFailedEvents(vault, "flaky");
      assert.deepEqual(failed.map((f) => [f.eventId, f.retryRequested]), [[four.id, false]]);
      assert.notEqual(three.id, four.id);
    });
  } finally {
    await runtime.close();
    await vault.close();
  }
});

// Waits until the log holds `n` events of `kind`, and returns them.
async function waitFor(
  vault: Awaited<ReturnType<typeof openVault>>,
  kind: string,
  n: number,
): Promise<EventRecord[]> {
  let events: EventRecord[] = [];
  for (let i = 0; i < 2500; i++) {
    events = await all(vault, [kind]);
    if (events.length >= n) return events;
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  throw new Error(`Timed out waiting for ${n} ${kind}`);
}

function formatBefore(event: EventRecord): string {
  return String(Number(event.position) - 1).padStart(16, "0");
}
