// ToolRegistryOptions.recordBatch: a read-only tool's invocation and outcome are
// recorded together once it has run; a tool with effects has its invocation recorded
// before it runs, as without a batch recorder.
import assert from "node:assert/strict";
import { type Tool, type ToolEvent, ToolInputError, ToolRegistry } from "../../toolkit/mod.ts";
import type { EventRecord } from "../../runtime/mod.ts";

function tool(overrides: Partial<Tool> = {}): Tool {
  return {
    name: "probe",
    description: "A test tool",
    version: "1.0.0",
    inputSchema: { type: "object" },
    execute: () => "done",
    ...overrides,
  };
}

function recorders() {
  const log: string[] = [];
  return {
    log,
    record: (event: ToolEvent, cause?: EventRecord) => {
      log.push(`record ${event.kind} ${cause?.id ?? "-"}`);
    },
    recordBatch: (events: ToolEvent[], cause?: EventRecord) => {
      log.push(`batch ${events.map((e) => e.kind).join(",")} ${cause?.id ?? "-"}`);
    },
  };
}

Deno.test("ToolRegistry.call with recordBatch", async (t) => {
  await t.step("a read-only tool: invoked and completed in one batch, after it ran", async () => {
    const r = recorders();
    const tools = new ToolRegistry({
      ...r,
      tools: [tool({
        annotations: { readOnlyHint: true },
        execute: () => (r.log.push("execute"), "ok"),
      })],
    });
    const cause = { id: "01CAUSE" } as EventRecord;
    assert.equal(await tools.call("probe", {}, { cause }), "ok");
    assert.deepEqual(r.log, ["execute", "batch tool.invoked,tool.completed 01CAUSE"]);
  });

  await t.step("a read-only tool that fails: invoked and failed in one batch", async () => {
    const r = recorders();
    const events: ToolEvent[] = [];
    const tools = new ToolRegistry({
      ...r,
      recordBatch: (batch) => void events.push(...batch),
      tools: [tool({
        annotations: { readOnlyHint: true },
        inputSchema: { type: "object", required: ["x"] },
      })],
    });
    await assert.rejects(tools.call("probe", {}), ToolInputError);
    assert.deepEqual(events.map((e) => e.kind), ["tool.invoked", "tool.failed"]);
    assert.equal(events[0].payload.callId, events[1].payload.callId);
    assert.equal(events[1].payload.error?.code, "tool_input");
    assert.deepEqual(r.log, []);
  });

  await t.step("a tool with effects: invoked is recorded before it runs", async () => {
    const r = recorders();
    const tools = new ToolRegistry({
      ...r,
      tools: [
        tool({ execute: () => (r.log.push("execute"), "ok") }),
        tool({
          name: "reader",
          annotations: { readOnlyHint: false },
          execute: () => (r.log.push("execute reader"), "ok"),
        }),
      ],
    });
    await tools.call("probe", {});
    await tools.call("reader", {});
    assert.deepEqual(r.log, [
      "record tool.invoked -",
      "execute",
      "record tool.completed -",
      "record tool.invoked -",
      "execute reader",
      "record tool.completed -",
    ]);
  });

  await t.step("without recordBatch, a read-only tool records each event in order", async () => {
    const { log, record } = recorders();
    const tools = new ToolRegistry({
      record,
      tools: [tool({
        annotations: { readOnlyHint: true },
        execute: () => (log.push("execute"), "ok"),
      })],
    });
    await tools.call("probe", {});
    assert.deepEqual(log, ["record tool.invoked -", "execute", "record tool.completed -"]);
  });

  await t.step("a batch that fails fails the call: no output without its record", async () => {
    const tools = new ToolRegistry({
      recordBatch: () => Promise.reject(new Error("Store offline")),
      tools: [tool({ annotations: { readOnlyHint: true } })],
    });
    await assert.rejects(tools.call("probe", {}), { message: "Store offline" });
  });

  await t.step("a denied call records tool.denied alone, with record", async () => {
    const r = recorders();
    const tools = new ToolRegistry({
      ...r,
      authority: {
        enforcing: true,
        issue: () => Promise.reject(new Error("unused")),
        verify: () => Promise.reject(new Error("unused")),
        authorize: () => Promise.reject(new Error("Denied")),
      },
      tools: [tool({ annotations: { readOnlyHint: true } })],
    });
    await assert.rejects(tools.call("probe", {}), { message: "Denied" });
    assert.deepEqual(r.log, ["record tool.denied -"]);
  });
});
