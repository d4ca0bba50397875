// OpenTelemetry spans (issue 23), in one process with a recording provider registered the
// way Deno's built-in SDK or a Node SDK registers one; tests/cli/traces_test.ts checks the
// same across processes with Deno's own exporter. Without a provider nothing is traced.
import assert from "node:assert/strict";
import { reset } from "@logtape/logtape";
import { SpanKind, SpanStatusCode } from "@opentelemetry/api";
import {
  createRuntime,
  defineAgent,
  defineTool,
  EventBus,
  MemoryEventStore,
  Runtime,
} from "../../mod.ts";
import type { EventRecord } from "../../mod.ts";
import { installTracing, type RecordedSpan } from "./_tracing.ts";
import { recordLogs, until } from "./_helpers.ts";

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-0[01]$/;
const SECRET = "sk-live-never-in-a-span-0123456789";

// An agent that calls a tool and emits, as the trace shows: emit → handle →
// execute_tool → emit.
async function scenario(options: { toolFails?: boolean; handlerFails?: boolean } = {}) {
  const runtime = await createRuntime({
    db: ":memory:",
    retry: { attempts: 1 },
    extraTools: [defineTool({
      name: "shout",
      description: "Upper-cases a text",
      version: "1.0.0",
      inputSchema: { type: "object", properties: { text: { type: "string" } } },
      execute: (input: { text: string }) => {
        if (options.toolFails) throw new Error(`refused ${input.text}`);
        return { text: input.text.toUpperCase() };
      },
    })],
  });
  let handled = 0;
  runtime.register(defineAgent({
    name: "worker",
    subscribe: ["job.created"],
    permissions: ["tool:shout:invoke"],
    async handle(event, ctx) {
      ctx.logger.info("Working on {id}", { id: event.id });
      try {
        await ctx.tools.call("shout", { text: SECRET });
        if (options.handlerFails) throw new Error(`handler saw ${SECRET}`);
        await ctx.emit({ kind: "job.done" });
      } finally {
        handled++;
      }
    },
  }));
  await runtime.start();
  const emitted = await runtime.emit({ kind: "job.created", payload: { prompt: SECRET } });
  await until(() => handled === 1);
  const events = await Array.fromAsync(runtime.bus.store!.read());
  await runtime.close();
  return { emitted, events };
}

function only(spans: RecordedSpan[], name: string): RecordedSpan {
  const found = spans.filter((span) => span.name === name);
  assert.equal(found.length, 1, `${found.length} spans named "${name}" in ${names(spans)}`);
  return found[0];
}

function names(spans: RecordedSpan[]): string {
  return JSON.stringify(spans.map((span) => span.name));
}

function traceparentOf(event: EventRecord): { traceId: string; spanId: string } {
  const match = TRACEPARENT.exec(event.meta.traceparent ?? "");
  assert.ok(match, `no traceparent on ${event.kind}: ${JSON.stringify(event.meta)}`);
  return { traceId: match[1], spanId: match[2] };
}

Deno.test("tracing off: no traceparent is written", async (t) => {
  await t.step("through the runtime, its agent, tool calls and emits", async () => {
    const { events } = await scenario();
    assert.ok(events.some((event) => event.kind === "job.done"));
    for (const event of events) assert.equal(event.meta.traceparent, undefined, event.kind);
  });

  await t.step("through a bus without a vault", async () => {
    const bus = new EventBus();
    const event = await bus.emit({ kind: "a.b", meta: { key: "value" } });
    assert.deepEqual(event.meta, { key: "value" });
    await bus.close();
  });
});

Deno.test("tracing on: one trace from the emit to the tool call and the next emit", async (t) => {
  const tracing = installTracing();
  try {
    const { emitted, events } = await scenario();
    const spans = tracing.spans;

    await t.step("emit <kind> is a producer span whose context the event carries", () => {
      const emit = only(spans, "emit job.created");
      assert.equal(emit.kind, SpanKind.PRODUCER);
      assert.equal(emit.parentSpanId, undefined);
      assert.deepEqual(traceparentOf(emitted), { traceId: emit.traceId, spanId: emit.spanId });
      assert.equal(emit.attributes["toka.event.id"], emitted.id);
      assert.equal(emit.attributes["toka.event.position"], emitted.position);
      assert.equal(emit.attributes["toka.stream"], emitted.stream);
    });

    await t.step("handle <kind> is a consumer span, child of the emit", () => {
      const emit = only(spans, "emit job.created");
      const handle = only(spans, "handle job.created");
      assert.equal(handle.kind, SpanKind.CONSUMER);
      assert.equal(handle.traceId, emit.traceId);
      assert.equal(handle.parentSpanId, emit.spanId);
      assert.equal(handle.attributes["toka.agent"], "worker");
      assert.equal(handle.attributes["toka.event.id"], emitted.id);
      assert.equal(handle.attributes["toka.event.position"], emitted.position);
      assert.equal(handle.attributes["toka.stream"], emitted.stream);
      assert.notEqual(handle.status.code, SpanStatusCode.ERROR);
    });

    await t.step("execute_tool <name> with the GenAI attributes, child of the handling", () => {
      const handle = only(spans, "handle job.created");
      const tool = only(spans, "execute_tool shout");
      assert.equal(tool.parentSpanId, handle.spanId);
      assert.equal(tool.attributes["gen_ai.operation.name"], "execute_tool");
      assert.equal(tool.attributes["gen_ai.tool.name"], "shout");
      assert.equal(tool.attributes["toka.event.id"], emitted.id);
      assert.equal(typeof tool.attributes["gen_ai.tool.call.id"], "string");
      // The tool's own events are emitted inside its span.
      for (const kind of ["tool.invoked", "tool.completed"]) {
        assert.equal(only(spans, `emit ${kind}`).parentSpanId, tool.spanId, kind);
      }
    });

    await t.step("the handler's emit is a child of the handling and carries its own span", () => {
      const handle = only(spans, "handle job.created");
      const done = only(spans, "emit job.done");
      assert.equal(done.parentSpanId, handle.spanId);
      const event = events.find((e) => e.kind === "job.done")!;
      assert.deepEqual(traceparentOf(event), { traceId: handle.traceId, spanId: done.spanId });
    });

    await t.step("every span ended, in one trace, with no secret in any attribute", () => {
      const traceId = only(spans, "emit job.created").traceId;
      for (const span of spans) {
        assert.ok(span.ended, span.name);
        assert.equal(span.traceId, traceId, span.name);
      }
      assert.ok(!JSON.stringify(spans).includes(SECRET));
    });
  } finally {
    tracing.uninstall();
  }
});

Deno.test("tracing on: failures set the span status, with no message text", async (t) => {
  await t.step("a tool that throws", async () => {
    const tracing = installTracing();
    try {
      await scenario({ toolFails: true });
      const tool = only(tracing.spans, "execute_tool shout");
      assert.equal(tool.status.code, SpanStatusCode.ERROR);
      assert.equal(tool.attributes["error.type"], "tool_failed");
      const handle = only(tracing.spans, "handle job.created");
      assert.equal(handle.status.code, SpanStatusCode.ERROR);
      assert.ok(!JSON.stringify(tracing.spans).includes(SECRET));
      // The agent.failed event joins the trace of the event it is about.
      assert.equal(only(tracing.spans, "emit agent.failed").traceId, handle.traceId);
    } finally {
      tracing.uninstall();
    }
  });

  await t.step("a handler that throws", async () => {
    const tracing = installTracing();
    try {
      await scenario({ handlerFails: true });
      const handle = only(tracing.spans, "handle job.created");
      assert.equal(handle.status.code, SpanStatusCode.ERROR);
      assert.equal(handle.attributes["error.type"], "Error");
      assert.notEqual(only(tracing.spans, "execute_tool shout").status.code, SpanStatusCode.ERROR);
      assert.ok(!JSON.stringify(tracing.spans).includes(SECRET));
    } finally {
      tracing.uninstall();
    }
  });

  await t.step("an emit the vault refuses", async () => {
    const tracing = installTracing();
    const bus = new EventBus({ store: new MemoryEventStore() });
    try {
      await assert.rejects(bus.emit({ kind: "a.b", stream: "s", expectedVersion: 3 }));
      const emit = only(tracing.spans, "emit a.b");
      assert.equal(emit.status.code, SpanStatusCode.ERROR);
      assert.equal(emit.attributes["error.type"], "version_conflict");
      assert.ok(emit.ended);
    } finally {
      await bus.close();
      tracing.uninstall();
    }
  });
});

Deno.test("tracing on: the bus's edges", async (t) => {
  const tracing = installTracing();
  try {
    await t.step("an emit with a traceparent in its meta joins that trace", async () => {
      const bus = new EventBus({ store: new MemoryEventStore() });
      const upstream = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
      const event = await bus.emit({ kind: "a.b", meta: { traceparent: upstream } });
      const emit = only(tracing.spans, "emit a.b");
      assert.equal(emit.traceId, "0af7651916cd43dd8448eb211c80319c");
      assert.equal(emit.parentSpanId, "b7ad6b7169203331");
      assert.deepEqual(traceparentOf(event), { traceId: emit.traceId, spanId: emit.spanId });
      await bus.close();
    });

    await t.step("a bus without a vault traces too", async () => {
      const bus = new EventBus();
      const event = await bus.emit({ kind: "c.d", meta: { key: "value" } });
      const emit = only(tracing.spans, "emit c.d");
      assert.deepEqual(traceparentOf(event), { traceId: emit.traceId, spanId: emit.spanId });
      assert.equal(event.meta.key, "value");
      assert.equal(emit.attributes["toka.event.position"], event.position);
      await bus.close();
    });

    await t.step("a meta already full keeps its entries and gets no traceparent", async () => {
      const bus = new EventBus({ store: new MemoryEventStore() });
      const meta = Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`k${i}`, "v"]));
      const event = await bus.emit({ kind: "e.f", meta });
      assert.deepEqual(event.meta, meta);
      assert.equal(only(tracing.spans, "emit e.f").ended, true);
      await bus.close();
    });

    await t.step(
      "a malformed traceparent in the meta: a new trace, a valid one stored",
      async () => {
        const bus = new EventBus({ store: new MemoryEventStore() });
        for (
          const bad of ["00-xyz", "00-" + "0".repeat(32) + "-b7ad6b7169203331-01", "x".repeat(55)]
        ) {
          const event = await bus.emit({ kind: "g.h", meta: { traceparent: bad } });
          const emit = tracing.named("emit g.h").at(-1)!;
          assert.equal(emit.parentSpanId, undefined, bad);
          assert.deepEqual(traceparentOf(event), { traceId: emit.traceId, spanId: emit.spanId });
        }
        await bus.close();
      },
    );

    await t.step(
      "a batch: one producer span per event, each event its own traceparent",
      async () => {
        const bus = new EventBus({ store: new MemoryEventStore() });
        const events = await bus.emitBatch([
          { kind: "i.j", stream: "batch" },
          { kind: "i.k", stream: "batch" },
        ]);
        const spans = [only(tracing.spans, "emit i.j"), only(tracing.spans, "emit i.k")];
        for (const [i, span] of spans.entries()) {
          assert.deepEqual(traceparentOf(events[i]), {
            traceId: span.traceId,
            spanId: span.spanId,
          });
          assert.equal(span.attributes["toka.event.id"], events[i].id);
          assert.ok(span.ended);
        }
        await bus.close();
      },
    );

    await t.step("a bad kind is refused as before, and names no span", async () => {
      const bus = new EventBus({ store: new MemoryEventStore() });
      const before = tracing.spans.length;
      await assert.rejects(bus.emit({ kind: "bad kind!" }), TypeError);
      assert.equal(tracing.spans.length, before);
      await bus.close();
    });
  } finally {
    tracing.uninstall();
  }
});

Deno.test("tracing on: an event whose traceparent is malformed is handled in a new trace", async () => {
  const store = new MemoryEventStore();
  // Stored while tracing was off, so the malformed value stays as it was given.
  await store.append("jobs", [{ kind: "job.created", meta: { traceparent: "00-not-a-trace" } }]);
  const tracing = installTracing();
  try {
    const runtime = await Runtime.create({ vault: store });
    let handled = false;
    runtime.register(defineAgent({
      name: "worker",
      subscribe: ["job.created"],
      handle() {
        handled = true;
      },
    }));
    await runtime.start();
    await until(() => handled);
    await runtime.stop();
    const handle = only(tracing.spans, "handle job.created");
    assert.equal(handle.parentSpanId, undefined);
    assert.notEqual(handle.status.code, SpanStatusCode.ERROR);
  } finally {
    tracing.uninstall();
  }
});

Deno.test("tracing on: ctx.step makes a step <name> span inside the handling", async () => {
  const tracing = installTracing();
  try {
    const runtime = await Runtime.create({ retry: { attempts: 2, backoffMs: () => 0 } });
    let tries = 0;
    let done = false;
    runtime.register(defineAgent({
      name: "stepper",
      subscribe: ["job.created"],
      async handle(_event, ctx) {
        await ctx.step("plan", () => ({ n: 1 }));
        await ctx.step("flaky", () => {
          if (tries++ === 0) throw new Error(`flaky with ${SECRET}`);
          return 2;
        });
        done = true;
      },
    }));
    await runtime.start();
    const job = await runtime.emit({ kind: "job.created" });
    await until(() => done);
    await runtime.stop();

    const handles = tracing.named("handle job.created");
    assert.equal(handles.length, 2);
    const plans = tracing.named("step plan");
    const flakies = tracing.named("step flaky");
    assert.equal(plans.length, 2);
    assert.equal(flakies.length, 2);
    for (const [i, handle] of handles.entries()) {
      assert.equal(plans[i].parentSpanId, handle.spanId);
      assert.equal(flakies[i].parentSpanId, handle.spanId);
      assert.equal(plans[i].attributes["toka.step.name"], "plan");
      assert.equal(plans[i].attributes["toka.step.index"], 0);
      assert.equal(flakies[i].attributes["toka.step.index"], 1);
      assert.equal(plans[i].attributes["toka.event.id"], job.id);
      assert.equal(plans[i].attributes["toka.agent"], "stepper");
    }
    // The second attempt is served the first one's recorded result.
    assert.equal(plans[0].attributes["toka.step.replayed"], undefined);
    assert.equal(plans[1].attributes["toka.step.replayed"], true);
    assert.equal(flakies[0].status.code, SpanStatusCode.ERROR);
    assert.equal(flakies[0].attributes["error.type"], "Error");
    assert.notEqual(flakies[1].status.code, SpanStatusCode.ERROR);
    // What a step records is emitted inside its span.
    assert.equal(tracing.named("emit step.completed")[0].parentSpanId, plans[0].spanId);
    assert.ok(!JSON.stringify(tracing.spans).includes(SECRET));
  } finally {
    tracing.uninstall();
  }
});

Deno.test("tracing on: log records made inside a span carry its trace and span ids", async () => {
  const records = await recordLogs("debug");
  const tracing = installTracing();
  try {
    await scenario();
    const handle = only(tracing.spans, "handle job.created");
    const line = records.find((r) => r.message.join("").startsWith("Working on"));
    assert.ok(line, "the handler's log line");
    assert.equal(line.properties.traceId, handle.traceId);
    assert.equal(line.properties.spanId, handle.spanId);
    const outside = records.find((r) => r.message.join("").startsWith("Runtime started"));
    assert.ok(outside, "a line outside any span");
    assert.equal(outside.properties.traceId, undefined);
  } finally {
    tracing.uninstall();
    await reset();
  }
});
