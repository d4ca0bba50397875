// The JSON API of `toka ui`, in the shapes of the CLI's --json output: events are EventRecords,
// agents are `toka agent list --json` rows (with their lease and given-up events), errors are
// { error: { code, message } }.
import type { EventRecord, EventStore, JsonValue, LogHead } from "../runtime/log/event_store.ts";
import { compileKindFilter } from "../runtime/log/kind_pattern.ts";
import { assertStream, formatPosition } from "../internal/ids.ts";
import { isAgentName } from "../runtime/agents/agent.ts";
import {
  type FailedEvent,
  KvCheckpointStore,
  KvLeaseStore,
  readFailedEvents,
} from "../runtime/mod.ts";
import { vaultKv } from "../vault/kv_store.ts";
import { type AgentRow, readAgentRows } from "./agent.ts";
import {
  correlationOf,
  findEvent,
  isEventRef,
  readCorrelation,
  readDescendants,
  readParents,
  SCAN_LIMIT,
  scanEvents,
} from "./_event_queries.ts";
import { buildTimeline, type Timeline } from "./_timeline.ts";
import type { UiContext } from "./_ui_http.ts";

/** The most events one page, or one correlation's timeline, holds. */
export const PAGE_LIMIT = 500;
/** The most events a correlation's timeline holds. */
export const TIMELINE_LIMIT = 5_000;

/** A refused API request: a status and a one-line message. */
export class ApiError extends Error {
  /** The HTTP status. */
  readonly status: number;
  /** A short machine-readable code. */
  readonly code: string;
  /**
   * @param status The HTTP status.
   * @param code A short machine-readable code.
   * @param message What was wrong, in one line.
   */
  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** A page of events, newest first. */
export interface EventPage {
  /** The events, newest first. */
  events: EventRecord[];
  /** The position to pass as `from` for the next (older) page, or `null` at the start. */
  next: string | null;
  /** The head when the page was read (`null` for an empty log): live updates follow it. */
  head: LogHead | null;
}

/** An event with its causal neighbourhood. */
export interface EventDetail {
  /** The event, as `toka events show --json` prints it. */
  event: EventRecord;
  /** Its correlation id. */
  correlationId: string;
  /** The events it names as parents. */
  parents: EventRecord[];
  /** The events that name it as a parent, oldest first. */
  children: EventRecord[];
  /** False when the search for children stopped at its budget before the head. */
  childrenComplete: boolean;
}

/** An agent as the page shows it. */
export interface AgentView extends AgentRow {
  /** The lease as stored (also one that has run out), or `null` when none is. */
  lease: { owner: string; expiresAt: number } | null;
  /**
   * The events it gave up on and no retry has handled since, as `toka agent failed --json`
   * lists them, in the order of their last failure.
   */
  givenUp: FailedEvent[];
}

/**
 * Answers one API request.
 *
 * @param path The path after `api/`.
 * @param query The query parameters.
 * @param ctx The server's context.
 * @returns The JSON value to send.
 * @throws {ApiError} For a bad parameter or an unknown path.
 */
export async function apiRoute(
  path: string,
  query: URLSearchParams,
  ctx: UiContext,
): Promise<unknown> {
  const store = ctx.store;
  const parts = path.split("/").map((part) => {
    try {
      return decodeURIComponent(part);
    } catch {
      throw new ApiError(400, "bad_request", "Invalid path: a malformed %-escape");
    }
  });
  if (path === "events") return await eventPage(store, query);
  if (parts[0] === "events" && parts.length === 2) return await eventDetail(store, ref(parts[1]));
  if (parts[0] === "correlations" && parts.length === 2) {
    return await correlationTimeline(store, correlationParam(parts[1]));
  }
  if (path === "runs") return await recentRuns(store);
  if (path === "agents") return await agentViews(store, ctx.clock());
  if (parts[0] === "agents" && parts[2] === "state" && parts.length === 3) {
    return await agentStateAt(store, parts[1], query.get("at"));
  }
  if (path === "head") return await store.head();
  if (path === "info") return { location: ctx.location, head: await store.head() };
  throw new ApiError(404, "not_found", `No API at ${JSON.stringify(path)}`);
}

/**
 * A page of events, newest first, filtered by stream, kind patterns and correlation id.
 *
 * @param store The store.
 * @param query `from` (a position: the newest to include), `limit` (1–500, 50 by default),
 *   `stream`, `kind` (repeatable), `correlation`.
 * @param scanLimit With a kind or correlation filter (and no stream), at most this many events
 *   are read for one page; `next` then says where to go on, also when the page holds fewer.
 * @returns The page.
 * @throws {ApiError} For a bad parameter.
 */
export async function eventPage(
  store: EventStore,
  query: URLSearchParams,
  scanLimit: number = SCAN_LIMIT,
): Promise<EventPage> {
  const filters = filtersOf(query);
  const limit = limitParam(query.get("limit"));
  const fromText = query.get("from");
  if (fromText !== null && !/^\d{1,16}$/.test(fromText)) {
    throw new ApiError(
      400,
      "bad_request",
      `Invalid from ${JSON.stringify(fromText)}: expected a position`,
    );
  }
  const head = await store.head();
  const from = fromText === null ? undefined : fromText.padStart(16, "0");
  if (filters.correlation !== undefined) {
    const found = await readCorrelation(store, filters.correlation, {
      direction: "backward",
      from,
      limit,
      stream: filters.stream,
      kinds: filters.kinds,
      scanLimit,
    });
    return { events: found.events, next: found.next, head };
  }
  // Kinds are not indexed: a rare kind is looked for in at most scanLimit events a page.
  if (filters.kinds !== undefined && filters.stream === undefined) {
    const found = await scanEvents(store, {
      direction: "backward",
      from,
      limit,
      kinds: filters.kinds,
      scanLimit,
    });
    return { events: found.events, next: found.next, head };
  }
  const events: EventRecord[] = [];
  for await (
    const event of store.read({
      from,
      direction: "backward",
      limit: limit + 1,
      stream: filters.stream,
      kinds: filters.kinds,
    })
  ) events.push(event);
  const more = events.length > limit ? events.pop() : undefined;
  return { events, next: more?.position ?? null, head };
}

/**
 * An event with its parents and children.
 *
 * @param store The store.
 * @param id Its id or position.
 * @returns The detail.
 * @throws {TokaError} `"event_not_found"` when there is no such event.
 */
export async function eventDetail(store: EventStore, id: string): Promise<EventDetail> {
  const event = await findEvent(store, id);
  const [parents, descendants] = await Promise.all([
    readParents(store, event),
    readDescendants(store, event, { depth: 1 }),
  ]);
  return {
    event,
    correlationId: correlationOf(event),
    parents,
    children: descendants.tree.children.map((child) => child.event),
    childrenComplete: descendants.complete,
  };
}

/**
 * A correlation's events and the timeline read from them.
 *
 * @param store The store.
 * @param id The correlation id.
 * @returns Its events, oldest first, with the spans and whether all were found.
 */
export async function correlationTimeline(
  store: EventStore,
  id: string,
): Promise<Timeline & { events: EventRecord[]; complete: boolean }> {
  const found = await readCorrelation(store, id, { limit: TIMELINE_LIMIT });
  return {
    ...buildTimeline(id, found.events),
    events: found.events,
    complete: found.next === null,
  };
}

/** How many of the latest events the list of recent runs is read from. */
export const RUNS_SCAN = 5_000;

/** A run (a correlation) as the list of recent runs shows it. */
export interface RunSummary {
  /** The correlation id. */
  correlationId: string;
  /** The kind of its oldest event among those read. */
  kind: string;
  /** When its oldest event read happened, ms since the epoch. */
  start: number;
  /** When its newest event happened, ms since the epoch. */
  end: number;
  /** How many of its events were among those read. */
  events: number;
}

/**
 * The runs of the latest events, newest first: their events grouped by correlation id.
 *
 * @param store The store.
 * @param scan How many of the latest events to read ({@linkcode RUNS_SCAN}).
 * @returns The runs, by their newest event, and how many events were read.
 */
export async function recentRuns(
  store: EventStore,
  scan: number = RUNS_SCAN,
): Promise<{ runs: RunSummary[]; scanned: number }> {
  const runs = new Map<string, RunSummary>();
  let scanned = 0;
  for await (const event of store.read({ direction: "backward", limit: scan })) {
    scanned++;
    const id = correlationOf(event);
    const run = runs.get(id);
    if (run === undefined) {
      runs.set(id, {
        correlationId: id,
        kind: event.kind,
        start: event.timestamp,
        end: event.timestamp,
        events: 1,
      });
    } else {
      // Read newest first: each event is older than those before it.
      run.kind = event.kind;
      run.start = event.timestamp;
      run.events++;
    }
  }
  return { runs: [...runs.values()], scanned };
}

/**
 * Every agent: `toka agent list --json`'s row, its lease and the events it gave up on.
 *
 * @param store A Deno KV store.
 * @param now The time leases are judged at.
 * @returns The agents, by name.
 */
export async function agentViews(store: EventStore, now: number): Promise<AgentView[]> {
  const kv = vaultKv(store);
  if (kv === undefined) return [];
  const rows = await readAgentRows(store, now);
  const leases = new Map<string, { owner: string; expiresAt: number }>();
  for await (const [name, lease] of new KvLeaseStore(kv).list()) {
    leases.set(name, { owner: lease.owner, expiresAt: lease.expiresAt });
  }
  return await Promise.all(rows.map(async (row) => ({
    ...row,
    lease: leases.get(row.name) ?? null,
    givenUp: await readFailedEvents(store, row.name),
  })));
}

/** An agent's state at a position, as `ctx.state` left it: `toka agent state --json`'s line. */
export interface AgentStateView {
  /** The agent's name. */
  agent: string;
  /** The position asked about (the head when none was). */
  at: string;
  /** Position of the event whose handling set the state, or `null` when none had by then. */
  after: string | null;
  /** Position of the `agent.state` event that recorded it, or `null`. */
  position: string | null;
  /** The state, or `null` when it had none. */
  state: JsonValue | null;
}

/**
 * An agent's state once it had handled everything up to a position: its last `agent.state`
 * change at or before it, found through the checkpoint store's index.
 *
 * @param store A Deno KV store.
 * @param agent The agent's name.
 * @param at A position; the head when `null`.
 * @returns The state and where it was set.
 * @throws {ApiError} For a bad position or a store without agents' state.
 */
export async function agentStateAt(
  store: EventStore,
  agent: string,
  at: string | null,
): Promise<AgentStateView> {
  if (!isAgentName(agent)) {
    throw new ApiError(
      400,
      "bad_request",
      `Invalid agent name ${JSON.stringify(String(agent).slice(0, 80))}`,
    );
  }
  if (at !== null && !/^\d{1,16}$/.test(at)) {
    throw new ApiError(
      400,
      "bad_request",
      `Invalid at ${JSON.stringify(at.slice(0, 20))}: expected a position`,
    );
  }
  const kv = vaultKv(store);
  if (kv === undefined) throw new ApiError(404, "not_found", "This store keeps no agents' state");
  const checkpoints = new KvCheckpointStore(kv);
  // As `toka agent state --json` answers.
  if (await checkpoints.load(agent) === undefined) {
    throw new ApiError(404, "agent_not_found", `No agent ${JSON.stringify(agent)} in this vault`);
  }
  const head = (await store.head())?.position ?? formatPosition(0);
  const position = at === null ? head : at.padStart(16, "0");
  if (position > head) {
    throw new ApiError(
      400,
      "position_past_head",
      `Position ${JSON.stringify(at)} is past the head of the log (${JSON.stringify(head)})`,
    );
  }
  const change = await checkpoints.stateAt(agent, position);
  if (change === undefined) {
    return { agent, at: position, after: null, position: null, state: null };
  }
  // A state too large for the index is the payload of the event that recorded it.
  let state = change.state;
  if (state === undefined) {
    const recorded = await findEvent(store, change.position);
    state = (recorded.payload as { state?: JsonValue } | null)?.state ?? null;
  }
  return { agent, at: position, after: change.after, position: change.position, state };
}

interface Filters {
  stream?: string;
  kinds?: string[];
  correlation?: string;
}

/**
 * The filters of a live or paged request: `stream`, `kind` (repeatable), `correlation`.
 *
 * @param query The query parameters.
 * @returns The filters, checked.
 * @throws {ApiError} For a bad parameter.
 */
export function filtersOf(query: URLSearchParams): Filters {
  const filters: Filters = {};
  const stream = query.get("stream");
  if (stream !== null && stream !== "") {
    try {
      assertStream(stream);
    } catch (error) {
      throw new ApiError(400, "bad_request", (error as Error).message);
    }
    filters.stream = stream;
  }
  const kinds = query.getAll("kind").filter((k) => k !== "");
  if (kinds.length > 0) {
    try {
      compileKindFilter(kinds);
    } catch {
      throw new ApiError(
        400,
        "bad_request",
        `Invalid kind pattern ${JSON.stringify(kinds.join(", "))}: expected dotted segments of ` +
          `letters, digits, _ or - and * wildcards`,
      );
    }
    filters.kinds = kinds;
  }
  const correlation = query.get("correlation");
  if (correlation !== null && correlation !== "") {
    filters.correlation = correlationParam(correlation);
  }
  return filters;
}

function correlationParam(value: string): string {
  if (value.length > 256 || value.trim() === "") {
    throw new ApiError(400, "bad_request", "Invalid correlation id: expected 1 to 256 characters");
  }
  return value;
}

function ref(value: string): string {
  if (!isEventRef(value)) {
    throw new ApiError(
      400,
      "bad_request",
      `Invalid event ${JSON.stringify(value.slice(0, 40))}: expected an id or a position`,
    );
  }
  return value;
}

function limitParam(value: string | null): number {
  if (value === null) return 50;
  const n = Number(value);
  if (!/^\d{1,4}$/.test(value) || n < 1 || n > PAGE_LIMIT) {
    throw new ApiError(
      400,
      "bad_request",
      `Invalid limit ${JSON.stringify(value.slice(0, 20))}: expected 1 to ${PAGE_LIMIT}`,
    );
  }
  return n;
}
