// A correlation's events as a waterfall: handlings, tool and model calls and steps, with their
// start and end times, taken from the log itself (no other record of them exists).
import type { EventRecord } from "../runtime/log/event_store.ts";

/** One bar of a timeline. */
export interface TimelineSpan {
  /**
   * `"handling"`: an agent's handling of an event, from the event to the last thing caused
   * while handling it; `"tool"` or `"model"`: a tool call (`model.chat` is a model call), from
   * `tool.invoked` to its outcome; `"step"`: a recorded step.
   */
  type: "handling" | "tool" | "model" | "step";
  /** What it was, in words: the agent and the event kind, the tool's or step's name. */
  label: string;
  /** When it began, ms since the epoch. */
  start: number;
  /** When it ended, ms since the epoch. */
  end: number;
  /** `end - start`, or the duration the log recorded. */
  durationMs: number;
  /** False when it ended in failure (`tool.failed`, `step.failed`, `agent.failed`). */
  ok: boolean;
  /** The ids of the events it is made of, in position order. */
  events: string[];
}

/** A correlation's events and the spans read from them. */
export interface Timeline {
  /** The correlation id. */
  correlationId: string;
  /** Timestamp of the first event, ms since the epoch; `null` when there are none. */
  start: number | null;
  /** Timestamp of the last event or span end; `null` when there are none. */
  end: number | null;
  /** The spans, by start time. */
  spans: TimelineSpan[];
}

const FAILED = new Set(["tool.failed", "tool.denied", "step.failed", "agent.failed"]);

/**
 * Reads the spans of a correlation from its events (in position order). A handling is every
 * event caused by one event (`meta.causationId`): the agents' emits (with `meta.actor`), their
 * tool calls and steps; it spans from the handled event to the last of them. A tool call is its
 * `tool.*` events sharing a `callId`.
 *
 * @param correlationId The correlation id.
 * @param events Its events, oldest first.
 * @returns The timeline.
 */
export function buildTimeline(correlationId: string, events: readonly EventRecord[]): Timeline {
  const byId = new Map(events.map((event) => [event.id, event]));
  const spans: TimelineSpan[] = [];
  const handlings = new Map<string, EventRecord[]>();
  const calls = new Map<string, EventRecord[]>();
  for (const event of events) {
    const cause = event.meta.causationId;
    if (cause !== undefined) {
      const group = handlings.get(cause) ?? [];
      group.push(event);
      handlings.set(cause, group);
    }
    const callId = toolCallId(event);
    if (callId !== undefined) {
      const group = calls.get(callId) ?? [];
      group.push(event);
      calls.set(callId, group);
    }
    if (event.kind === "step.completed" || event.kind === "step.failed") {
      const payload = record(event.payload);
      const name = typeof payload.name === "string" ? payload.name : "step";
      const duration = typeof payload.durationMs === "number" ? payload.durationMs : 0;
      spans.push({
        type: "step",
        label: `step ${name}`,
        start: event.timestamp - duration,
        end: event.timestamp,
        durationMs: duration,
        ok: event.kind === "step.completed",
        events: [event.id],
      });
    }
  }
  for (const [cause, group] of handlings) {
    const handled = byId.get(cause);
    const actors = [...new Set(group.map((e) => e.meta.actor).filter((a) => a !== undefined))];
    const start = handled?.timestamp ?? group[0].timestamp;
    const end = group.reduce((max, e) => Math.max(max, e.timestamp), start);
    spans.push({
      type: "handling",
      label: `${actors.length === 0 ? "handling" : actors.join(", ")} handled ${
        handled?.kind ?? cause
      }`,
      start,
      end,
      durationMs: end - start,
      ok: !group.some((e) => e.kind === "agent.failed"),
      events: [...(handled === undefined ? [] : [handled.id]), ...group.map((e) => e.id)],
    });
  }
  for (const group of calls.values()) {
    const first = group[0];
    const last = group[group.length - 1];
    const tool = String(record(first.payload).tool);
    const recorded = record(last.payload).durationMs;
    const duration = typeof recorded === "number" ? recorded : last.timestamp - first.timestamp;
    // A tool with effects has tool.invoked stored before it runs; a read-only one's comes with
    // its outcome, so its start is the outcome's time less the duration.
    spans.push({
      type: tool === "model.chat" ? "model" : "tool",
      label: tool,
      start: Math.min(first.timestamp, last.timestamp - duration),
      end: last.timestamp,
      durationMs: duration,
      ok: !FAILED.has(last.kind),
      events: group.map((e) => e.id),
    });
  }
  spans.sort((a, b) => a.start - b.start || typeOrder(a) - typeOrder(b));
  let start = Infinity;
  let end = -Infinity;
  for (const event of events) {
    start = Math.min(start, event.timestamp);
    end = Math.max(end, event.timestamp);
  }
  for (const span of spans) {
    start = Math.min(start, span.start);
    end = Math.max(end, span.end);
  }
  return {
    correlationId,
    start: start === Infinity ? null : start,
    end: end === -Infinity ? null : end,
    spans,
  };
}

function typeOrder(span: TimelineSpan): number {
  return ["handling", "step", "model", "tool"].indexOf(span.type);
}

function toolCallId(event: EventRecord): string | undefined {
  if (!event.kind.startsWith("tool.")) return undefined;
  const payload = record(event.payload);
  return typeof payload.callId === "string" && typeof payload.tool === "string"
    ? payload.callId
    : undefined;
}

function record(value: unknown): Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value)
    ? value as Record<string, unknown>
    : {};
}
