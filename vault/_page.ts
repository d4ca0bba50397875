// How events are packed into KV values ("pages") and read back.
import type { EventRecord } from "../runtime/log/event_store.ts";
import { formatPosition } from "../runtime/log/event_rules.ts";

/** An event as stored inside a page; its position is the page start plus its index. */
export interface StoredEvent {
  /** id */
  i: string;
  /** stream */
  s: string;
  /** version */
  v: number;
  /** kind */
  k: string;
  /** inline payload (absent when the payload is a blob) */
  p?: unknown;
  /** blob reference: the payload's content digest, hex */
  b?: string;
  /** digest */
  d: string;
  /** timestamp */
  t: number;
  /** parents, when any */
  a?: string[];
  /** intent, when given */
  n?: string;
  /** meta, when not empty */
  m?: Record<string, string>;
}

/** Largest page, in UTF-8 bytes. */
const PAGE_BYTES = 60 * 1024;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A page as stored: the events' JSON, as UTF-8. */
export function encodePage(events: string[]): Uint8Array {
  return encoder.encode(`[${events.join(",")}]`);
}

/** The events of a stored page. */
export function decodePage(page: Uint8Array): StoredEvent[] {
  const events = JSON.parse(decoder.decode(page));
  if (!Array.isArray(events)) throw new TypeError("A page is not an array");
  return events;
}

/** Serialises one stored event; `payloadJson` is its canonical payload, already computed. */
export function encodeStored(
  event: Omit<StoredEvent, "p">,
  payloadJson: string | undefined,
): string {
  let json = `{"i":"${event.i}","s":${JSON.stringify(event.s)},"v":${event.v},"k":"${event.k}",`;
  json += payloadJson === undefined ? `"b":"${event.b}"` : `"p":${payloadJson}`;
  json += `,"d":"${event.d}","t":${event.t}`;
  if (event.a !== undefined && event.a.length > 0) json += `,"a":${JSON.stringify(event.a)}`;
  if (event.n !== undefined) json += `,"n":${JSON.stringify(event.n)}`;
  if (event.m !== undefined && Object.keys(event.m).length > 0) {
    json += `,"m":${JSON.stringify(event.m)}`;
  }
  return json + "}";
}

/** Groups serialised events, with their UTF-8 sizes, into pages of at most {@linkcode PAGE_BYTES}. */
export function packPages(events: { json: string; size: number }[]): string[][] {
  const pages: string[][] = [];
  let current: string[] = [];
  let size = 2;
  for (const event of events) {
    if (current.length > 0 && size + event.size + 1 > PAGE_BYTES) {
      pages.push(current);
      current = [];
      size = 2;
    }
    current.push(event.json);
    size += event.size + 1;
  }
  if (current.length > 0) pages.push(current);
  return pages;
}

/** Turns a stored event into the public record shape. */
export function toRecord(stored: StoredEvent, position: number, payload: unknown): EventRecord {
  const record: EventRecord = {
    id: stored.i,
    position: formatPosition(position),
    stream: stored.s,
    version: stored.v,
    kind: stored.k,
    payload,
    parents: stored.a ?? [],
    digest: stored.d,
    timestamp: stored.t,
    meta: stored.m ?? {},
  };
  if (stored.n !== undefined) record.intent = stored.n;
  return record;
}
