/**
 * The events an agent gave up on, read from the log, and the requests that
 * have it handle them again (`runtime.retry`, `toka agent retry`).
 *
 * Three kinds, all in the agent's stream `agent/<name>`, with `agent` and
 * `eventId` in their payload, say it all:
 * - `agent.failed`: the agent gave up on the event (its runner appends it);
 * - `agent.retry_requested`: someone asked for the event to be handled again;
 * - `agent.recovered`: a retry handled it (its runner appends it); with
 *   `stateChanged: true` when the retry changed the agent's state, which is
 *   committed after it (an `agent.state` with `after` the request's position).
 *
 * An event is failed for an agent while the last of its `agent.failed` has no
 * `agent.recovered` after it. A retry that fails again appends a new
 * `agent.failed`, so the event stays failed, with that retry's error.
 *
 * @module
 */

import type { EventRecord, EventStore, ReadOptions } from "../log/event_store.ts";
import type { EmitInput } from "../bus/subscription.ts";
import { RetryRefusedError } from "../errors.ts";
import { isEventId } from "../../internal/ids.ts";
import { isAgentName } from "./agent.ts";
import { AGENT_STATE } from "./_state_keeper.ts";

/** The kind of the event an agent's runner appends when it gives up on an event. */
export const AGENT_FAILED = "agent.failed";
/** The kind of a request that an agent handle again an event it gave up on. */
export const RETRY_REQUESTED = "agent.retry_requested";
/** The kind of the event an agent's runner appends when a retry handled the event. */
export const AGENT_RECOVERED = "agent.recovered";

/** One event an agent gave up on and no retry has handled since. */
export interface FailedEvent {
  /** The agent's name. */
  agent: string;
  /** The id of the event it gave up on. */
  eventId: string;
  /** That event's kind. */
  kind: string;
  /** Attempts made before giving up, the last time. */
  attempts: number;
  /** The last attempt's error message. */
  error: string;
  /** The error's `code`, when it was a `TokaError` (`causal_depth`, say). */
  code?: string;
  /** The id of the last `agent.failed` for it. */
  failureId: string;
  /** When that was recorded, ms since the epoch. */
  failedAt: number;
  /** True when a retry was requested after it and not yet handled. */
  retryRequested: boolean;
}

interface Payload {
  agent: string;
  eventId: string;
  kind?: unknown;
  attempts?: unknown;
  error?: unknown;
  code?: unknown;
}

/**
 * Reads the events an agent (or every agent) gave up on and no retry has
 * handled since, in the order of their last failure. Reads the agent's stream
 * (or, for every agent, the whole log) for the three kinds above.
 *
 * @example
 * ```ts
 * import { MemoryEventStore, readFailedEvents } from "@toka/runtime/runtime";
 *
 * const store = new MemoryEventStore();
 * await store.append("agent/worker", [{
 *   kind: "agent.failed",
 *   payload: { agent: "worker", eventId: "01ARZ3NDEKTSV4RRFFQ69G5FAV", kind: "task.created", attempts: 3, error: "boom" },
 * }]);
 * console.log((await readFailedEvents(store, "worker"))[0].error); // boom
 * ```
 *
 * @param store The log.
 * @param agent An agent's name; every agent's when omitted.
 * @returns The failed events, oldest last failure first.
 * @throws {TypeError} When `agent` is not a valid agent name.
 */
export async function readFailedEvents(
  store: EventStore,
  agent?: string,
): Promise<FailedEvent[]> {
  if (agent !== undefined && !isAgentName(agent)) {
    throw new TypeError(
      `Invalid agent name ${JSON.stringify(agent)}: use 1 to 64 letters, digits, _ or -`,
    );
  }
  const failed = new Map<string, FailedEvent>();
  const options: ReadOptions = { kinds: [AGENT_FAILED, RETRY_REQUESTED, AGENT_RECOVERED] };
  if (agent !== undefined) options.stream = `agent/${agent}`;
  for await (const event of store.read(options)) {
    const payload = payloadOf(event);
    // Only what is in the agent's own stream counts.
    if (payload === undefined || event.stream !== `agent/${payload.agent}`) continue;
    const key = `${payload.agent}/${payload.eventId}`;
    if (event.kind === AGENT_FAILED) {
      // Moved to the end: the list is in the order of the last failures.
      failed.delete(key);
      failed.set(key, {
        agent: payload.agent,
        eventId: payload.eventId,
        kind: typeof payload.kind === "string" ? payload.kind : "",
        attempts: typeof payload.attempts === "number" ? payload.attempts : 0,
        error: typeof payload.error === "string" ? payload.error : "",
        ...(typeof payload.code === "string" && { code: payload.code }),
        failureId: event.id,
        failedAt: event.timestamp,
        retryRequested: false,
      });
    } else if (event.kind === AGENT_RECOVERED) {
      failed.delete(key);
    } else {
      const entry = failed.get(key);
      if (entry !== undefined) entry.retryRequested = true;
    }
  }
  return [...failed.values()];
}

/**
 * The requests that have `agent` handle again the event `eventId` it gave up
 * on, or every such event not already requested when `eventId` is `"all"`:
 * what `runtime.retry` and `toka agent retry` append (in one append).
 *
 * @param store The log.
 * @param agent The agent's name.
 * @param eventId The event's id, or `"all"`.
 * @param known Whether the caller knows the agent otherwise (it is registered,
 *   or has a checkpoint): an agent with neither a failure in the log nor this is unknown.
 * @returns The requests to emit; none when `"all"` finds nothing to retry.
 * @throws {TypeError} When the agent name or event id is malformed.
 * @throws {RetryRefusedError} When the agent or event is unknown, the agent
 *   has not given up on the event, or its retry is already requested.
 */
export async function retryRequests(
  store: EventStore,
  agent: string,
  eventId: string,
  known: boolean,
): Promise<EmitInput[]> {
  if (eventId !== "all" && !isEventId(eventId)) {
    throw new TypeError(
      `Invalid event id ${JSON.stringify(eventId)}: expected 26 characters of Crockford base32`,
    );
  }
  const failed = await readFailedEvents(store, agent);
  if (!known && failed.length === 0 && !(await hasFailed(store, agent))) {
    throw new RetryRefusedError(
      "unknown_agent",
      `Cannot retry for agent ${
        JSON.stringify(agent)
      }: no agent of that name has run or failed here`,
    );
  }
  const request = (entry: FailedEvent): EmitInput => ({
    kind: RETRY_REQUESTED,
    stream: `agent/${agent}`,
    payload: { agent, eventId: entry.eventId },
    parents: [entry.failureId],
  });
  if (eventId === "all") return failed.filter((f) => !f.retryRequested).map(request);
  const entry = failed.find((f) => f.eventId === eventId);
  const what = `Cannot retry event ${JSON.stringify(eventId)} for agent ${JSON.stringify(agent)}`;
  if (entry === undefined) {
    if ((await store.get(eventId)) === null) {
      throw new RetryRefusedError("unknown_event", `${what}: no such event`);
    }
    throw new RetryRefusedError(
      "not_failed",
      `${what}: the agent has not given up on it (or a retry succeeded since)`,
    );
  }
  if (entry.retryRequested) {
    throw new RetryRefusedError(
      "already_requested",
      `${what}: a retry is already requested and the agent has not handled it yet`,
    );
  }
  return [request(entry)];
}

/**
 * The event a retry request asks `agent` to handle again, when the request is
 * for `agent` and due: the agent gave up on the event and no retry outcome
 * came after a request for it (a request read again after a crash finds its
 * outcome recorded), or its outcome is an `agent.recovered` whose state change
 * was never committed (the process died, or the commit failed, between the
 * two): handled again, the retry is served its steps, emits and
 * `agent.recovered` from the journal, and commits its state.
 *
 * @param store The log.
 * @param request An event the agent's runner reads.
 * @param agent The agent's name.
 * @returns The event to handle again, or `null`.
 */
export async function dueRetry(
  store: EventStore,
  request: EventRecord,
  agent: string,
): Promise<EventRecord | null> {
  const payload = payloadOf(request);
  if (
    request.kind !== RETRY_REQUESTED || request.stream !== `agent/${agent}` ||
    payload?.agent !== agent
  ) return null;
  const failed = await readFailedEvents(store, agent);
  const due = failed.some((f) => f.eventId === payload.eventId && f.retryRequested);
  return due || await stateLost(store, request) ? await store.get(payload.eventId) : null;
}

// Whether the request's retry recorded agent.recovered with a state change
// that no agent.state after the request committed.
async function stateLost(store: EventStore, request: EventRecord): Promise<boolean> {
  let pending = false;
  for await (
    const event of store.read({
      stream: request.stream,
      kinds: [AGENT_RECOVERED, AGENT_STATE],
      from: request.position,
    })
  ) {
    const payload = event.payload as { stateChanged?: unknown; after?: unknown } | null;
    if (event.kind === AGENT_RECOVERED && event.parents[0] === request.id) {
      pending = payload?.stateChanged === true;
    } else if (event.kind === AGENT_STATE && payload?.after === request.position) return false;
  }
  return pending;
}

/**
 * Whether the log holds an `agent.failed` of the agent, retried since or not.
 *
 * @param store The log.
 * @param agent The agent's name.
 * @returns True when it ever gave up on an event.
 */
export async function hasFailed(store: EventStore, agent: string): Promise<boolean> {
  for await (
    const _ of store.read({ stream: `agent/${agent}`, kinds: [AGENT_FAILED], limit: 1 })
  ) return true;
  return false;
}

function payloadOf(event: EventRecord): Payload | undefined {
  const payload = event.payload as Partial<Payload> | null;
  return payload !== null && typeof payload === "object" && typeof payload.agent === "string" &&
      typeof payload.eventId === "string"
    ? payload as Payload
    : undefined;
}
