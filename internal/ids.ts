// Event ids, positions and name rules, shared by the bus and the vault (which
// imports them from here, so that the runtime loads no vault code).

/** Crockford's base32 alphabet: the digits of every event id. */
const CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/** An event id: 26 Crockford base32 characters. */
const EVENT_ID_RE = /^[0-9A-HJKMNP-TV-Z]{26}$/;
/** A position as stored: up to 16 decimal digits. */
export const POSITION_RE = /^[0-9]{1,16}$/;
const KIND_RE = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;
const STREAM_RE = /^[A-Za-z0-9_\-.:@/]+$/;

/** Crockford base32 of a whole number, left-padded to `length` characters. */
export function encode(value: number, length: number): string {
  let out = "";
  for (let i = 0; i < length; i++) {
    out = CROCKFORD[value % 32] + out;
    value = Math.floor(value / 32);
  }
  return out;
}

/** Whether `id` has the shape of an event id. */
export function isEventId(id: unknown): id is string {
  return typeof id === "string" && EVENT_ID_RE.test(id);
}

/**
 * A 26-character, time-ordered id that also encodes the event's position, so
 * that `get(id)` needs no separate index for events born in this store.
 */
export function makeEventId(
  timestamp: number,
  position: number,
  random: Uint8Array,
  offset = 0,
): string {
  const r = ((random[offset] << 22) | (random[offset + 1] << 14) | (random[offset + 2] << 6) |
    (random[offset + 3] >> 2)) >>> 0;
  return encode(Math.max(0, Math.floor(timestamp)) % 2 ** 48, 10) +
    encode(position % 2 ** 50, 10) + encode(r % 2 ** 30, 6);
}

/** The position an id encodes, or -1 when it is not an event id. */
export function positionInId(id: string): number {
  if (!isEventId(id)) return -1;
  let value = 0;
  for (let i = 10; i < 20; i++) value = value * 32 + CROCKFORD.indexOf(id[i]);
  return value;
}

const PAIRS = Array.from({ length: 1024 }, (_, i) => encode(i, 2));

/**
 * Makes the ids of {@linkcode makeEventId}'s layout for consecutive positions
 * cheaply (the bus's hot path): only the parts that changed are re-encoded,
 * and the random part is drawn once per maker.
 */
export class IdMaker {
  // The last two position digits with the random part after them: one string
  // concatenation per id.
  #tails: string[];
  #lastMs = -1;
  #time = "";
  #lastHigh = -1;
  #head = "";

  constructor() {
    const random = encode(crypto.getRandomValues(new Uint32Array(1))[0] % 2 ** 30, 6);
    this.#tails = PAIRS.map((pair) => pair + random);
  }

  next(ms: number, position: number): string {
    const high = Math.floor(position / 1024);
    if (ms !== this.#lastMs || high !== this.#lastHigh) {
      if (ms !== this.#lastMs) this.#time = encode(Math.max(0, Math.floor(ms)) % 2 ** 48, 10);
      this.#lastMs = ms;
      this.#lastHigh = high;
      this.#head = this.#time + encode(high % 2 ** 40, 8);
    }
    return this.#head + this.#tails[position % 1024];
  }
}

const DIGITS3 = Array.from({ length: 1000 }, (_, i) => String(i).padStart(3, "0"));

/** Formats consecutive positions cheaply (the high digits change every 1000). */
export class PositionMaker {
  #lastHigh = -1;
  #high = "";

  format(position: number): string {
    const high = Math.floor(position / 1000);
    if (high !== this.#lastHigh) {
      this.#lastHigh = high;
      this.#high = String(1e13 + high).slice(1);
    }
    return this.#high + DIGITS3[position % 1000];
  }
}

export function formatPosition(position: number): string {
  return String(position).padStart(16, "0");
}

const MAX_STREAM_LENGTH = 256;
const MAX_KIND_LENGTH = 128;
// Names already checked: emits repeat a few kinds and streams, so most checks are a lookup.
const knownKinds = new Set<string>();
const knownStreams = new Set<string>();

/** Throws a TypeError unless `kind` is dotted segments of letters, digits, `_` or `-`. */
export function assertKind(kind: unknown): asserts kind is string {
  if (typeof kind === "string" && knownKinds.has(kind)) return;
  if (typeof kind !== "string" || kind.length === 0) {
    throw new TypeError(`Invalid event kind ${JSON.stringify(kind)}: must be a non-empty string`);
  }
  if (kind.length > MAX_KIND_LENGTH || !KIND_RE.test(kind)) {
    throw new TypeError(
      `Invalid event kind ${
        JSON.stringify(kind.slice(0, MAX_KIND_LENGTH))
      }: use dotted segments of letters, digits, _ or -`,
    );
  }
  if (knownKinds.size > 4096) knownKinds.clear();
  knownKinds.add(kind);
}

/** Throws a TypeError unless `stream` is 1–256 letters, digits and `_ - . : @ /`. */
export function assertStream(stream: unknown): asserts stream is string {
  if (typeof stream === "string" && knownStreams.has(stream)) return;
  if (typeof stream !== "string" || stream.length === 0) {
    throw new TypeError(
      `Invalid stream name ${JSON.stringify(stream)}: must be a non-empty string`,
    );
  }
  if (stream.length > MAX_STREAM_LENGTH) {
    throw new TypeError(
      `Invalid stream name "${stream.slice(0, 32)}…": longer than ${MAX_STREAM_LENGTH} characters`,
    );
  }
  if (!STREAM_RE.test(stream)) {
    throw new TypeError(
      `Invalid stream name ${
        JSON.stringify(stream)
      }: use letters, digits and the characters _ - . : @ /`,
    );
  }
  if (knownStreams.size > 4096) knownStreams.clear();
  knownStreams.add(stream);
}
