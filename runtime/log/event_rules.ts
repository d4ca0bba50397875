// Validation, digests, ids and positions shared by both event stores (the
// in-memory one here, the Deno KV one in vault/) and, for names and ids, the bus.
import { Buffer } from "node:buffer";
import { hash } from "node:crypto";
import type { EventInput, EventRecord } from "./event_store.ts";
import {
  assertKind,
  assertStream,
  formatPosition,
  isEventId,
  makeEventId,
  POSITION_RE,
  positionInId,
} from "../../internal/ids.ts";
import { assertRecordShape, isTimestamp, MAX_TIMESTAMP } from "../../internal/event_record.ts";

export { assertKind, assertStream, formatPosition, isEventId, makeEventId, positionInId };
import {
  INLINE_PAYLOAD_BYTES,
  MAX_APPEND_BYTES,
  MAX_EVENTS_PER_APPEND,
  MAX_PAYLOAD_BYTES,
  MAX_PAYLOAD_DEPTH,
} from "./event_limits.ts";
import {
  canonicalJson as toCanonicalJson,
  jsonDigest,
  JsonValueError,
} from "../../internal/canonical_json.ts";

const MAX_PARENTS = 64;
/** How many entries an event's meta may hold. */
export const MAX_META_ENTRIES = 16;
const MAX_META_VALUE_LENGTH = 256;
const MAX_INTENT_LENGTH = 1024;

const META_KEY_RE = /^[A-Za-z0-9_\-.:]{1,64}$/;

export function parsePosition(position: string, what = "position"): number {
  if (typeof position !== "string" || !POSITION_RE.test(position)) {
    throw new TypeError(`Invalid ${what} ${JSON.stringify(position)}: expected up to 16 digits`);
  }
  return Number(position);
}

/**
 * A payload checked and in canonical form (RFC 8785): a JSON value nested at
 * most {@linkcode MAX_PAYLOAD_DEPTH} deep and at most {@linkcode MAX_PAYLOAD_BYTES}
 * as canonical JSON. Both stores, their imports, the CLI and the tools whose
 * input becomes a payload check it here, before anything is stored.
 *
 * @param payload The payload.
 * @param where What the payload is of, for the error: `of event 0`, `in --payload`.
 * @returns The canonical JSON and its size in UTF-8 bytes.
 * @throws {TypeError} When the payload is not a JSON value or is nested too deep, naming the path.
 * @throws {RangeError} When the payload is too large.
 */
export function canonicalPayload(
  payload: unknown,
  where: string,
): { canonical: string; bytes: number } {
  let canonical: string;
  try {
    canonical = toCanonicalJson(payload, MAX_PAYLOAD_DEPTH);
  } catch (error) {
    if (error instanceof JsonValueError) {
      throw new TypeError(`Invalid payload ${where}: ${error.message}`);
    }
    throw error;
  }
  const bytes = Buffer.byteLength(canonical, "utf8");
  if (bytes > MAX_PAYLOAD_BYTES) {
    throw new RangeError(
      `Payload ${where} is ${bytes} bytes, over the maximum of ${MAX_PAYLOAD_BYTES}`,
    );
  }
  return { canonical, bytes };
}

/**
 * The canonical JSON (RFC 8785) of a payload read back from a store, which
 * was checked when it was stored (so no depth cap: one stored before the cap
 * still verifies).
 */
export function canonicalJson(value: unknown): string {
  return toCanonicalJson(value, Infinity);
}

export function sha256Hex(data: string | Uint8Array): string {
  return hash("sha256", data, "hex");
}

/** The fields of an event that its digest covers, with its canonical payload. */
export interface DigestFields {
  id: string;
  position: number;
  stream: string;
  version: number;
  kind: string;
  /** The payload as canonical JSON (RFC 8785). */
  canonicalPayload: string;
  /** Parent ids, in the order given. */
  parents: readonly string[];
  intent?: string;
  timestamp: number;
  meta: Readonly<Record<string, string>>;
}

/**
 * The chained digest of an event: `sha256:` over the canonical JSON (RFC 8785)
 * of every field of the record, its parents' digests (sorted) and the digest
 * of the event before it in position order (`null` for the first), so that no
 * edit, removal or reordering of any event goes unnoticed after it:
 *
 *   {"id","intent"?,"kind","meta","parentDigests","parents","payload",
 *    "position","prev","stream","timestamp","version"}
 *
 * Built by hand in canonical key order: this runs once per appended event.
 */
export function recordDigest(
  fields: DigestFields,
  parentDigests: readonly string[],
  previous: string | null,
): string {
  let json = `{"id":${JSON.stringify(fields.id)}`;
  if (fields.intent !== undefined) json += `,"intent":${JSON.stringify(fields.intent)}`;
  json += `,"kind":${JSON.stringify(fields.kind)},"meta":${canonicalMeta(fields.meta)}`;
  json += `,"parentDigests":${
    parentDigests.length === 0 ? "[]" : JSON.stringify([...parentDigests].sort())
  }`;
  json += `,"parents":${fields.parents.length === 0 ? "[]" : JSON.stringify(fields.parents)}`;
  json += `,"payload":${fields.canonicalPayload},"position":${fields.position}`;
  json += `,"prev":${previous === null ? "null" : JSON.stringify(previous)}`;
  json += `,"stream":${JSON.stringify(fields.stream)},"timestamp":${fields.timestamp}`;
  json += `,"version":${fields.version}}`;
  return jsonDigest(json);
}

function canonicalMeta(meta: Readonly<Record<string, string>>): string {
  const keys = Object.keys(meta);
  if (keys.length === 0) return "{}";
  keys.sort();
  let json = "{";
  for (let i = 0; i < keys.length; i++) {
    json += `${i === 0 ? "" : ","}${JSON.stringify(keys[i])}:${JSON.stringify(meta[keys[i]])}`;
  }
  return json + "}";
}

/** Throws a TypeError when a clock gave something other than a timestamp every reader can show. */
export function assertTimestamp(value: unknown): asserts value is number {
  if (!isTimestamp(value)) {
    throw new TypeError(
      `Invalid clock value ${
        typeof value === "number" ? String(value) : typeof value
      }: the vault's clock must return milliseconds since the epoch, a whole number from 0 to ${MAX_TIMESTAMP}`,
    );
  }
}

// Shared by every event without parents or meta: records are read-only.
const NO_PARENTS: string[] = Object.freeze([]) as unknown as string[];
const NO_META: Record<string, string> = Object.freeze({});

/** An input checked and normalised, with its canonical payload. */
export interface PreparedInput {
  /** Upper bound of the event's stored size in bytes, as packed in a KV value. */
  size: number;
  kind: string;
  payload: unknown;
  canonical: string;
  bytes: number;
  parents: string[];
  intent?: string;
  meta: Record<string, string>;
}

export function prepareInput(stream: string, input: EventInput, index: number): PreparedInput {
  const where = `event ${index}`;
  if (input === null || typeof input !== "object") {
    throw new TypeError(`Invalid ${where}: expected an object with a "kind"`);
  }
  assertKind(input.kind);
  const payload = input.payload === undefined ? null : input.payload;
  const { canonical, bytes } = canonicalPayload(payload, `of ${where}`);
  const parents = input.parents ?? [];
  if (!Array.isArray(parents) || parents.length > MAX_PARENTS) {
    throw new TypeError(`Invalid parents of ${where}: expected at most ${MAX_PARENTS} event ids`);
  }
  for (const parent of parents) {
    if (!isEventId(parent)) {
      throw new TypeError(
        `Invalid parent of ${where}: ${JSON.stringify(parent)} is not an event id`,
      );
    }
  }
  let meta: Record<string, string> = NO_META;
  if (input.meta !== undefined) {
    meta = {};
    if (input.meta === null || typeof input.meta !== "object" || Array.isArray(input.meta)) {
      throw new TypeError(`Invalid meta of ${where}: expected an object of strings`);
    }
    const entries = Object.entries(input.meta);
    if (entries.length > MAX_META_ENTRIES) {
      throw new TypeError(`Invalid meta of ${where}: more than ${MAX_META_ENTRIES} entries`);
    }
    for (const [key, value] of entries) {
      if (!META_KEY_RE.test(key)) {
        throw new TypeError(`Invalid meta key ${JSON.stringify(key)} of ${where}`);
      }
      if (typeof value !== "string" || value.length > MAX_META_VALUE_LENGTH) {
        throw new TypeError(
          `Invalid meta "${key}" of ${where}: expected a string of at most ${MAX_META_VALUE_LENGTH} characters`,
        );
      }
      meta[key] = value;
    }
  }
  const prepared: PreparedInput = {
    size: 0,
    kind: input.kind,
    payload,
    canonical,
    bytes,
    parents: parents.length === 0 ? NO_PARENTS : [...parents],
    meta,
  };
  if (input.intent !== undefined) {
    if (typeof input.intent !== "string" || input.intent.length > MAX_INTENT_LENGTH) {
      throw new TypeError(
        `Invalid intent of ${where}: expected a string of at most ${MAX_INTENT_LENGTH} characters`,
      );
    }
    prepared.intent = input.intent;
  }
  // UTF-8 bytes of the stored event with the longest id, digest, version and
  // timestamp, and the payload inline or as a blob reference.
  prepared.size = 26 + 71 + 16 + 16 + 48 + stream.length + input.kind.length +
    (meta === NO_META ? 2 : Buffer.byteLength(JSON.stringify(meta), "utf8")) +
    JSON.stringify(prepared.parents).length +
    (prepared.intent === undefined
      ? 0
      : Buffer.byteLength(JSON.stringify(prepared.intent), "utf8")) +
    (bytes > INLINE_PAYLOAD_BYTES ? 72 : bytes);
  return prepared;
}

export function prepareInputs(stream: string, events: EventInput[]): PreparedInput[] {
  assertStream(stream);
  if (!Array.isArray(events) || events.length === 0) {
    throw new TypeError(
      `Cannot append to stream "${stream}": expected a non-empty array of events`,
    );
  }
  if (events.length > MAX_EVENTS_PER_APPEND) {
    throw new RangeError(
      `Cannot append ${events.length} events to stream "${stream}" at once: the maximum is ${MAX_EVENTS_PER_APPEND}`,
    );
  }
  const prepared = events.map((event, index) => prepareInput(stream, event, index));
  let size = 0;
  for (const p of prepared) size += p.size + 1;
  if (size > MAX_APPEND_BYTES) {
    throw new RangeError(
      `Cannot append ${events.length} events to stream "${stream}" at once: together about ${size} bytes, over the maximum of ${MAX_APPEND_BYTES}`,
    );
  }
  return prepared;
}

/** Checks a record read back from an export for shape, before import. */
export function assertRecord(record: unknown, index: number): asserts record is EventRecord {
  assertRecordShape(record, index);
}

/** Freezes a value and everything in it, so that no holder of a record can change what others see. */
export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === "object" && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
