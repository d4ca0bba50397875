// Questions the log has no index for, answered by bounded scans: one event by id or position,
// the events of a correlation, an event's children and descendants. Shared by `toka events` and
// `toka ui`, so both give the same answers in the same shapes.
import type { EventRecord, EventStore } from "../runtime/log/event_store.ts";
import { TokaError } from "../runtime/errors.ts";
import { formatPosition, isEventId } from "../internal/ids.ts";
import { compileKindFilter } from "../runtime/log/kind_pattern.ts";

/**
 * How many events one question may scan before it answers with what it found and says the
 * answer is incomplete: about half a second of reading on a local file.
 */
export const SCAN_LIMIT = 250_000;

const POSITION = /^\d{1,16}$/;

/**
 * An event id in canonical form: ids are case-insensitive Crockford base32,
 * where `O` reads as `0` and `I` or `L` as `1`.
 *
 * @param id What the user typed.
 * @returns The id in upper case, or undefined when it is not an event id.
 */
export function normalizeEventId(id: string): string | undefined {
  const normal = id.toUpperCase().replaceAll("O", "0").replace(/[IL]/g, "1");
  return isEventId(normal) ? normal : undefined;
}

/**
 * Whether a word names an event: an id (any case) or a position of up to 16 digits.
 *
 * @param word What the user typed.
 * @returns True when {@linkcode findEvent} can look it up.
 */
export function isEventRef(word: string): boolean {
  return POSITION.test(word) || normalizeEventId(word) !== undefined;
}

/**
 * One event, by its id or by its global position (leading zeros optional).
 *
 * @param store The store.
 * @param ref An event id (any case) or a position.
 * @returns The event.
 * @throws {TokaError} `"event_not_found"` when no event has this id or position.
 */
export async function findEvent(store: EventStore, ref: string): Promise<EventRecord> {
  if (POSITION.test(ref)) {
    const position = ref.padStart(16, "0");
    for await (const found of store.read({ from: position, limit: 1 })) {
      if (found.position === position) return found;
    }
    throw new TokaError("event_not_found", `No event at position ${JSON.stringify(ref)}`);
  }
  const normal = normalizeEventId(ref);
  const event = normal === undefined ? null : await store.get(normal);
  if (event === null) {
    throw new TokaError("event_not_found", `No event with id ${JSON.stringify(ref)}`);
  }
  return event;
}

/**
 * The correlation an event belongs to: its `meta.correlationId`, or its own id for an event
 * that started one (the bus gives caused events their cause's correlation, else the cause's id).
 *
 * @param event An event.
 * @returns The correlation id.
 */
export function correlationOf(event: EventRecord): string {
  return event.meta.correlationId ?? event.id;
}

/** Options of {@linkcode readCorrelation}. */
export interface CorrelationReadOptions {
  /** `"forward"` (oldest first, the default) or `"backward"`. */
  direction?: "forward" | "backward";
  /** Start here (inclusive): the first position forward, the last one backward. */
  from?: string;
  /** At most this many events. */
  limit?: number;
  /** Only events of this stream. */
  stream?: string;
  /** Only events whose kind matches one of these patterns. */
  kinds?: string[];
  /** Scan at most this many events ({@linkcode SCAN_LIMIT} by default). */
  scanLimit?: number;
}

/** Events found by a bounded scan, and where it stopped. */
export interface ScanResult {
  /** The events found, in the order read. */
  events: EventRecord[];
  /**
   * Where to continue (the next position to read in the same direction), or `null` when the
   * scan reached the end of what can match.
   */
  next: string | null;
}

/**
 * The events of a correlation: those whose `meta.correlationId` is `id`, and the event whose id
 * is `id` (the one that started it). When `id` is an event's id, nothing before that event is
 * read, since what it caused comes after it.
 *
 * @param store The store.
 * @param id The correlation id.
 * @param options Direction, start, limit, filters and scan budget.
 * @returns The events and where to continue.
 */
export async function readCorrelation(
  store: EventStore,
  id: string,
  options: CorrelationReadOptions = {},
): Promise<ScanResult> {
  const root = isEventId(id) ? await store.get(id) : null;
  return await scanEvents(store, {
    ...options,
    floor: root === null ? 1 : Number(root.position),
    match: (event) => event.meta.correlationId === id || event.id === id,
  });
}

/** Options of {@linkcode scanEvents}. */
export interface ScanOptions extends CorrelationReadOptions {
  /** Only events this accepts (after the stream and kind filters). */
  match?: (event: EventRecord) => boolean;
  /** No event before this position can match: the scan stops there. */
  floor?: number;
}

/**
 * Events matching filters that the log has no index for (kinds, a predicate), read with a budget:
 * every event read counts, matching or not (the stream filter is indexed, so only the stream's
 * events are read). It stops after `limit` matches or `scanLimit` events and says where to go on.
 *
 * @param store The store.
 * @param options Direction, start, filters, limit and scan budget.
 * @returns The events found and where to continue.
 */
export async function scanEvents(store: EventStore, options: ScanOptions): Promise<ScanResult> {
  const backward = options.direction === "backward";
  const limit = options.limit ?? Infinity;
  const floor = options.floor ?? 1;
  const kinds = compileKindFilter(options.kinds);
  let budget = options.scanLimit ?? SCAN_LIMIT;
  let from = options.from;
  if (!backward && (from === undefined || Number(from) < floor)) from = formatPosition(floor);
  const events: EventRecord[] = [];
  let last: number | undefined;
  for await (
    const event of store.read({ from, direction: options.direction, stream: options.stream })
  ) {
    const at = Number(event.position);
    if (backward && at < floor) return { events, next: null };
    last = at;
    if (kinds(event.kind) && (options.match?.(event) ?? true)) {
      events.push(event);
      if (events.length >= limit) break;
    }
    if (--budget <= 0) break;
  }
  return {
    events,
    next: continuation(last, backward, floor, events.length >= limit || budget <= 0),
  };
}

/**
 * Every event of a correlation, oldest first, read to the head with no scan budget (for the
 * terminal, which streams them): see {@linkcode readCorrelation}.
 *
 * @param store The store.
 * @param id The correlation id.
 * @param options Start position, stream and kind filters.
 * @returns The events, oldest first.
 */
export async function* correlatedEvents(
  store: EventStore,
  id: string,
  options: { from?: string; stream?: string; kinds?: string[] } = {},
): AsyncIterableIterator<EventRecord> {
  const root = isEventId(id) ? await store.get(id) : null;
  const floor = root === null ? 1 : Number(root.position);
  const from = options.from === undefined || Number(options.from) < floor
    ? formatPosition(floor)
    : options.from;
  for await (const event of store.read({ from, stream: options.stream, kinds: options.kinds })) {
    if (event.meta.correlationId === id || event.id === id) yield event;
  }
}

// The position after `last` in the reading direction, when the scan stopped early.
function continuation(
  last: number | undefined,
  backward: boolean,
  floor: number,
  stopped: boolean,
): string | null {
  if (!stopped || last === undefined) return null;
  const next = backward ? last - 1 : last + 1;
  return next < Math.max(floor, 1) ? null : formatPosition(next);
}

/** An event and, recursively, the events it caused. */
export interface EventTree {
  /** The event. */
  event: EventRecord;
  /** The events naming it as a parent, in position order, each with what it caused. */
  children: EventTree[];
}

/** What {@linkcode readDescendants} returns. */
export interface DescendantsResult {
  /** The event, with what it caused. */
  tree: EventTree;
  /**
   * False when the scan stopped at its budget before the head: later events may be missing.
   */
  complete: boolean;
  /** How many events after the event were read. */
  scanned: number;
}

/**
 * An event and everything it caused, directly or not, found in one forward pass over the log
 * after it (children always come after their parents). An event with several parents in the
 * tree appears under the first of them.
 *
 * @param store The store.
 * @param event The root event.
 * @param options `depth`: 1 for children only (unlimited by default); `scanLimit`: at most this
 *   many events are read ({@linkcode SCAN_LIMIT} by default).
 * @returns The tree and whether the scan reached the head.
 */
export async function readDescendants(
  store: EventStore,
  event: EventRecord,
  options: { depth?: number; scanLimit?: number } = {},
): Promise<DescendantsResult> {
  const maxDepth = options.depth ?? Infinity;
  const budget = options.scanLimit ?? SCAN_LIMIT;
  const tree: EventTree = { event, children: [] };
  const nodes = new Map<string, { node: EventTree; depth: number }>([
    [event.id, { node: tree, depth: 0 }],
  ]);
  let scanned = 0;
  for await (
    const next of store.read({ from: formatPosition(Number(event.position) + 1) })
  ) {
    if (scanned >= budget) return { tree, complete: false, scanned };
    scanned++;
    for (const parent of next.parents) {
      const found = nodes.get(parent);
      if (found === undefined || found.depth >= maxDepth) continue;
      const node: EventTree = { event: next, children: [] };
      found.node.children.push(node);
      nodes.set(next.id, { node, depth: found.depth + 1 });
      break;
    }
  }
  return { tree, complete: true, scanned };
}

/**
 * An event's parents, in the order it names them; a parent the store no longer has is left out.
 *
 * @param store The store.
 * @param event The event.
 * @returns The parent events.
 */
export async function readParents(store: EventStore, event: EventRecord): Promise<EventRecord[]> {
  const found = await Promise.all(event.parents.map((id) => store.get(id)));
  return found.filter((parent): parent is EventRecord => parent !== null);
}
