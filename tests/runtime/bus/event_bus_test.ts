import assert from "node:assert/strict";
import { EventBus, type EventRecord, VersionConflictError } from "../../../runtime/mod.ts";
import { MemoryEventStore } from "../../../vault/mod.ts";
import { gate, until } from "../_helpers.ts";
import { positionInId } from "../../../internal/ids.ts";

Deno.test("EventBus without a vault", async (t) => {
  await t.step("delivers by kind pattern, in order, to handlers", async () => {
    const bus = new EventBus();
    const tasks: string[] = [];
    const everything: string[] = [];
    bus.subscribe(["task.*"], (e) => void tasks.push(`${e.kind}:${e.payload}`));
    bus.subscribe("*", (e) => void everything.push(e.kind));
    await bus.emit({ kind: "task.created", payload: 1 });
    await bus.emit({ kind: "tool.completed" });
    await bus.emit({ kind: "task.done", payload: 1 });
    await bus.idle();
    assert.deepEqual(tasks, ["task.created:1", "task.done:1"]);
    assert.deepEqual(everything, ["task.created", "tool.completed", "task.done"]);
    await bus.close();
  });

  await t.step("gives records the vault's shape", async () => {
    const bus = new EventBus({ clock: () => 1_700_000_000_000 });
    const a = await bus.emit({ kind: "a.b", stream: "s", payload: { x: 1 }, intent: "why" });
    const b = await bus.emit({ kind: "a.b", stream: "s" });
    assert.match(a.id, /^[0-9A-HJKMNP-TV-Z]{26}$/);
    assert.ok(a.id < b.id);
    assert.deepEqual([a.position, b.position], ["0000000000000001", "0000000000000002"]);
    assert.deepEqual([a.version, b.version], [1, 2]);
    assert.equal(a.timestamp, 1_700_000_000_000);
    assert.equal(a.intent, "why");
    assert.equal(b.payload, null);
    let last = b;
    for (let i = 3; i <= 2050; i++) last = await bus.emit({ kind: "a.b", stream: "s" });
    assert.equal(last.position, "0000000000002050");
    assert.equal(last.version, 2050);
    await bus.close();
  });

  await t.step("makes ids of the vault's one layout: time, position, random", async () => {
    const bus = new EventBus({ clock: () => 1_700_000_000_000 });
    const store = new MemoryEventStore({ clock: () => 1_700_000_000_000 });
    for (let i = 1; i <= 1100; i++) {
      const event = await bus.emit({ kind: "a.b" });
      const { events: [stored] } = await store.append("s", [{ kind: "a.b" }]);
      assert.equal(positionInId(event.id), i);
      // The same time and position fields as the store's id; only the random part differs.
      assert.equal(event.id.slice(0, 20), stored.id.slice(0, 20));
    }
    await bus.close();
    await store.close();
  });

  await t.step("iterates, and leaving the loop closes the subscription", async () => {
    const bus = new EventBus();
    const stream = bus.subscribe("task.*");
    await bus.emit({ kind: "task.created", payload: 1 });
    await bus.emit({ kind: "task.created", payload: 2 });
    const seen: unknown[] = [];
    for await (const event of stream) {
      seen.push(event.payload);
      if (seen.length === 2) break;
    }
    assert.deepEqual(seen, [1, 2]);
    assert.equal(stream.closed, true);
    await bus.close();
  });

  await t.step("an iterator waiting for events ends when closed or aborted", async () => {
    const bus = new EventBus();
    const controller = new AbortController();
    const stream = bus.subscribe("*", { signal: controller.signal });
    const done = Array.fromAsync(stream);
    controller.abort();
    assert.deepEqual(await done, []);
    await bus.close();
  });

  await t.step("an emit while handling carries the cause and its correlation id", async () => {
    const bus = new EventBus();
    const seen: EventRecord[] = [];
    bus.subscribe("*", async (event, ctx) => {
      seen.push(event);
      if (event.kind === "a") await ctx.emit({ kind: "b" });
      if (event.kind === "b") await ctx.emit({ kind: "c", parents: [seen[0].id] });
    });
    const root = await bus.emit({ kind: "a" });
    await bus.idle();
    const [, b, c] = seen;
    assert.deepEqual(b.parents, [root.id]);
    assert.equal(b.meta.correlationId, root.id);
    assert.equal(b.meta.causationId, root.id);
    assert.deepEqual(c.parents, [b.id, root.id]);
    assert.equal(c.meta.correlationId, root.id);
    assert.equal(c.meta.causationId, b.id);
    await bus.close();
  });

  await t.step("on overflow drops the oldest waiting events and counts them", async () => {
    const bus = new EventBus({ bufferSize: 4 });
    const seen: unknown[] = [];
    const sub = bus.subscribe("*", (e) => void seen.push(e.payload));
    for (let i = 1; i <= 10; i++) void bus.emit({ kind: "n", payload: i });
    await bus.idle();
    assert.deepEqual(seen, [7, 8, 9, 10]);
    assert.equal(sub.dropped, 6);
    await bus.close();
  });

  await t.step("keeps order while its buffer wraps around and grows", async () => {
    const bus = new EventBus({ bufferSize: 100 });
    const stream = bus.subscribe("n");
    const seen: unknown[] = [];
    let next = 1;
    // Take some, then emit more than the buffer held: it wraps, then grows.
    for (const [emit, take] of [[10, 6], [30, 20], [50, 64]]) {
      for (let i = 0; i < emit; i++) void bus.emit({ kind: "n", payload: next++ });
      for (let i = 0; i < take; i++) seen.push((await stream.next()).value?.payload);
    }
    assert.deepEqual(seen, Array.from({ length: 90 }, (_, i) => i + 1));
    assert.equal(stream.dropped, 0);
    await bus.close();
  });

  await t.step("drops the oldest once a wrapped buffer is full", async () => {
    const bus = new EventBus({ bufferSize: 20 });
    const stream = bus.subscribe("n");
    for (let i = 1; i <= 5; i++) void bus.emit({ kind: "n", payload: i });
    assert.equal((await stream.next()).value?.payload, 1);
    for (let i = 6; i <= 50; i++) void bus.emit({ kind: "n", payload: i });
    const rest: unknown[] = [];
    for (let i = 0; i < 20; i++) rest.push((await stream.next()).value?.payload);
    assert.deepEqual(rest, Array.from({ length: 20 }, (_, i) => i + 31));
    assert.equal(stream.dropped, 29);
    await bus.close();
  });

  await t.step("keeps delivering after a handler throws", async () => {
    const bus = new EventBus();
    const seen: unknown[] = [];
    bus.subscribe("*", (e) => {
      if (e.payload === 1) throw new Error("boom");
      seen.push(e.payload);
    });
    bus.subscribe(
      "*",
      (e) => e.payload === 2 ? Promise.reject(new Error("async boom")) : undefined,
    );
    for (let i = 1; i <= 3; i++) await bus.emit({ kind: "n", payload: i });
    await bus.idle();
    assert.deepEqual(seen, [2, 3]);
    await bus.close();
  });

  await t.step("checks expected versions per stream", async () => {
    const bus = new EventBus();
    await bus.emit({ kind: "a", stream: "s", expectedVersion: "no_stream" });
    await bus.emit({ kind: "a", stream: "s", expectedVersion: 1 });
    await assert.rejects(
      bus.emit({ kind: "a", stream: "s", expectedVersion: 1 }),
      VersionConflictError,
    );
    await assert.rejects(bus.emit({ kind: "a", stream: "t", expectedVersion: "exists" }), {
      code: "version_conflict",
    });
    await assert.rejects(
      // @ts-expect-error: testing a bad input
      bus.emit({ kind: "a", stream: "t", expectedVersion: "later" }),
      TypeError,
    );
    await bus.close();
  });

  await t.step("rejects bad inputs with clear errors", async () => {
    const bus = new EventBus();
    await assert.rejects(bus.emit({ kind: "Bad kind!" }), /Invalid event kind "Bad kind!"/);
    await assert.rejects(bus.emit({ kind: "" }), TypeError);
    await assert.rejects(bus.emit({ kind: "a", stream: "" }), /Invalid stream name/);
    // @ts-expect-error: testing a bad input
    await assert.rejects(bus.emit(null), /expected an object with a kind/);
    for (const cause of [null, {}, { id: "x" }, "x"]) {
      await assert.rejects(bus.emit({ kind: "a" }, cause as never), {
        name: "TypeError",
        message: "Invalid cause: expected the event record being handled",
      });
    }
    assert.throws(() => bus.subscribe("task..x", () => {}), /Invalid kind pattern/);
    assert.throws(() => bus.subscribe("*", { after: "0000000000000001" }), /no vault/);
    assert.throws(() => new EventBus({ bufferSize: 0 }), RangeError);
    assert.throws(() => new EventBus({ defaultStream: "a b" }), TypeError);
    await bus.close();
  });
});

Deno.test("EventBus with a vault", async (t) => {
  await t.step("appends before delivery", async () => {
    const store = new MemoryEventStore();
    const bus = new EventBus({ store });
    const stored: boolean[] = [];
    bus.subscribe("*", async (e) => void stored.push((await store.get(e.id)) !== null));
    const event = await bus.emit({ kind: "task.created", payload: { id: 1 }, stream: "tasks" });
    await bus.idle();
    assert.deepEqual(stored, [true]);
    assert.match(event.digest, /^sha256:/);
    assert.equal(event.stream, "tasks");
    await bus.close();
    await store.close();
  });

  await t.step("a slow subscriber loses nothing: it catches up from the vault", async () => {
    const store = new MemoryEventStore();
    const bus = new EventBus({ store, bufferSize: 4 });
    const slow = gate();
    const seen: unknown[] = [];
    const sub = bus.subscribe("task.*", async (e) => {
      await slow.promise;
      seen.push(e.payload);
    });
    for (let i = 1; i <= 50; i++) {
      await bus.emit({ kind: i % 5 === 0 ? "other.kind" : "task.created", payload: i });
    }
    slow.open();
    await until(() => seen.length === 40);
    await bus.emit({ kind: "task.created", payload: 51 });
    await bus.idle();
    const expected = Array.from({ length: 51 }, (_, i) => i + 1).filter((i) => i % 5 !== 0);
    assert.deepEqual(seen, expected);
    assert.equal(sub.dropped, 0);
    assert.ok(sub.replayed > 0, "some events came back from the vault");
    await bus.close();
    await store.close();
  });

  await t.step("a slow iterator catches up too", async () => {
    const store = new MemoryEventStore();
    const bus = new EventBus({ store, bufferSize: 2 });
    const stream = bus.subscribe("*");
    for (let i = 1; i <= 20; i++) await bus.emit({ kind: "n", payload: i });
    const seen: unknown[] = [];
    for await (const e of stream) {
      seen.push(e.payload);
      if (seen.length === 20) break;
    }
    assert.deepEqual(seen, Array.from({ length: 20 }, (_, i) => i + 1));
    await bus.close();
    await store.close();
  });

  await t.step("replays stored events after a position, then goes live", async () => {
    const store = new MemoryEventStore();
    const bus = new EventBus({ store });
    for (let i = 1; i <= 3; i++) await bus.emit({ kind: "n", payload: i });
    const seen: unknown[] = [];
    bus.subscribe("*", (e) => void seen.push(e.payload), { after: "0000000000000001" });
    await bus.emit({ kind: "n", payload: 4 });
    await bus.idle();
    assert.deepEqual(seen, [2, 3, 4]);
    assert.throws(() => bus.subscribe("*", { after: "1" }), /Invalid position "1"/);
    await bus.close();
    await store.close();
  });

  await t.step("an emit the vault refuses rejects and reaches no subscriber", async () => {
    const store = new MemoryEventStore();
    const bus = new EventBus({ store });
    const seen: EventRecord[] = [];
    bus.subscribe("*", (e) => void seen.push(e));
    await assert.rejects(bus.emit({ kind: "a", payload: { f: () => 1 } as never }), TypeError);
    await assert.rejects(bus.emit({ kind: "a", parents: ["nope"] }), TypeError);
    await bus.idle();
    assert.deepEqual(seen, []);
    await bus.close();
    await store.close();
  });

  await t.step("emitBatch stores a batch in one append, then delivers it in order", async () => {
    const store = new MemoryEventStore();
    const appends: number[] = [];
    const append = store.append.bind(store);
    store.append = (stream, events, options) => {
      appends.push(events.length);
      return append(stream, events, options);
    };
    const bus = new EventBus({ store });
    const seen: string[] = [];
    bus.subscribe("*", (e) => void seen.push(`${e.kind}@${e.version}`));
    const cause = await bus.emit({ kind: "task.created", stream: "tasks" });
    const batch = await bus.emitBatch([
      { kind: "tool.invoked", stream: "toolkit" },
      { kind: "tool.completed", stream: "toolkit" },
    ], cause);
    await bus.idle();
    assert.deepEqual(appends, [1, 2]);
    assert.deepEqual(seen, ["task.created@1", "tool.invoked@1", "tool.completed@2"]);
    assert.deepEqual(batch.map((e) => e.parents), [[cause.id], [cause.id]]);
    assert.deepEqual(batch.map((e) => e.meta.correlationId), [cause.id, cause.id]);
    await bus.close();
    await store.close();
  });

  await t.step("emitBatch refuses a bad batch whole: nothing stored or delivered", async () => {
    const store = new MemoryEventStore();
    const bus = new EventBus({ store });
    const seen: EventRecord[] = [];
    bus.subscribe("*", (e) => void seen.push(e));
    await assert.rejects(bus.emitBatch([]), /Invalid events: expected a non-empty array/);
    await assert.rejects(
      bus.emitBatch([{ kind: "a", stream: "x" }, { kind: "b", stream: "y" }]),
      /Cannot emit a batch across streams "x" and "y"/,
    );
    await assert.rejects(
      bus.emitBatch([{ kind: "a" }, { kind: "b", expectedVersion: 1 }]),
      /Invalid event 1 of a batch: only the first may carry expectedVersion or guard/,
    );
    await assert.rejects(
      bus.emitBatch([{ kind: "a", stream: "s", expectedVersion: 3 }, { kind: "b", stream: "s" }]),
      VersionConflictError,
    );
    await assert.rejects(bus.emitBatch([{ kind: "a" }, { kind: "" }]), TypeError);
    await bus.idle();
    assert.deepEqual(seen, []);
    assert.equal((await store.stats()).events, 0);
    await bus.close();
    await store.close();
  });
});

Deno.test("A handler may close its own subscription (issue 18 #16)", async (t) => {
  for (const store of [undefined, new MemoryEventStore()]) {
    const where = store === undefined ? "without a vault" : "with a vault, catching up";
    await t.step(`awaiting close() in the handler returns, ${where}`, async () => {
      const bus = new EventBus({ store });
      if (store !== undefined) await bus.emit({ kind: "task.created", payload: 0 });
      const seen: unknown[] = [];
      let closed = false;
      const sub = bus.subscribe("task.*", async (e) => {
        seen.push(e.payload);
        await sub.close();
        closed = true;
      }, store === undefined ? {} : { after: "0000000000000000" });
      await bus.emit({ kind: "task.created", payload: 1 });
      await bus.emit({ kind: "task.created", payload: 2 });
      await until(() => closed, 2_000);
      await sub.close();
      await bus.idle();
      assert.equal(sub.closed, true);
      assert.deepEqual(seen, [store === undefined ? 1 : 0], "nothing after the close");
      await bus.close();
      await store?.close();
    });
  }

  await t.step("close() from outside still waits for the event in hand", async () => {
    const bus = new EventBus();
    const release = gate();
    let finished = false;
    const sub = bus.subscribe("*", async () => {
      await release.promise;
      finished = true;
    });
    await bus.emit({ kind: "a" });
    await new Promise((resolve) => setTimeout(resolve, 5));
    const closing = sub.close().then(() => finished);
    release.open();
    assert.equal(await closing, true);
    await bus.close();
  });
});
