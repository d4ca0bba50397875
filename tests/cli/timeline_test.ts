// Issue 22: a run's waterfall read from its events (cli/_timeline.ts): handlings, tool and model
// calls and steps, their times, and which failed.
import assert from "node:assert/strict";
import { buildTimeline } from "../../cli/_timeline.ts";
import type { EventRecord } from "../../runtime/log/event_store.ts";

let n = 0;
function event(
  kind: string,
  timestamp: number,
  payload: unknown = null,
  meta: Record<string, string> = {},
): EventRecord {
  n++;
  return {
    id: `E${String(n).padStart(25, "0")}`,
    position: String(n).padStart(16, "0"),
    stream: "s",
    version: n,
    kind,
    payload,
    parents: [],
    digest: "sha256:0",
    timestamp,
    meta,
  };
}

Deno.test("a run's timeline", async (t) => {
  const root = event("question.asked", 1_000);
  const by = (actor?: string) => ({
    correlationId: root.id,
    causationId: root.id,
    ...(actor === undefined ? {} : { actor }),
  });
  const model = [
    event("tool.invoked", 1_010, { tool: "model.chat", callId: "m1" }, by()),
    event("tool.completed", 1_400, { tool: "model.chat", callId: "m1", durationMs: 390 }, by()),
  ];
  // A read-only tool: both events stored together once it ran.
  const fetched = [
    event("tool.invoked", 1_500, { tool: "http.fetch", callId: "f1" }, by()),
    event("tool.failed", 1_500, { tool: "http.fetch", callId: "f1", durationMs: 80 }, by()),
  ];
  const step = event(
    "step.completed",
    1_600,
    { name: "summarise", index: 0, durationMs: 50 },
    by(),
  );
  const answer = event("answer.given", 1_650, null, by("agent/researcher"));
  const failed = event("agent.failed", 1_700, { agent: "critic" }, by("agent/critic"));
  const timeline = buildTimeline(root.id, [root, ...model, ...fetched, step, answer, failed]);

  await t.step("the spans, by start, each with its events", () => {
    assert.deepEqual(
      timeline.spans.map((s) => [s.type, s.label, s.start, s.end, s.durationMs, s.ok]),
      [
        [
          "handling",
          "agent/researcher, agent/critic handled question.asked",
          1_000,
          1_700,
          700,
          false,
        ],
        ["model", "model.chat", 1_010, 1_400, 390, true],
        ["tool", "http.fetch", 1_420, 1_500, 80, false],
        ["step", "step summarise", 1_550, 1_600, 50, true],
      ],
    );
    assert.deepEqual(timeline.spans[1].events, model.map((e) => e.id));
    assert.equal(timeline.spans[0].events.length, 8);
    assert.equal(timeline.spans[0].events[0], root.id);
  });

  await t.step("the run starts and ends with its first and last moments", () => {
    assert.equal(timeline.start, 1_000);
    assert.equal(timeline.end, 1_700);
  });

  await t.step("a run without events or causes has no spans", () => {
    assert.deepEqual(buildTimeline("x", []), {
      correlationId: "x",
      start: null,
      end: null,
      spans: [],
    });
    const lone = event("note.added", 5);
    assert.deepEqual(buildTimeline(lone.id, [lone]).spans, []);
  });
});
