// Event ids, positions and name rules, shared by the bus and the vault (which
// imports them from here, so that the runtime loads no vault code).

/** Crockford's base32 alphabet: the digits of every event id. */
export const CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
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

const PAIRS = Array.from({ length: 1024 }, (_, i) => encode(i, 2));

/** Makes 26-character, time-ordered Crockford base32 ids. */
export class IdMaker {
  #prefix = encode(crypto.getRandomValues(new Uint32Array(1))[0], 6);
  #lastMs = -1;
  #time = "";
  #lastHigh = -1;
  #head = "";

  next(ms: number, counter: number): string {
    // Encoding is the hot path of an in-memory emit: re-encode only what changed.
    const high = Math.floor(counter / 1024);
    if (ms !== this.#lastMs || high !== this.#lastHigh) {
      if (ms !== this.#lastMs) this.#time = encode(ms, 10) + this.#prefix;
      this.#lastMs = ms;
      this.#lastHigh = high;
      this.#head = this.#time + encode(high, 8);
    }
    return this.#head + PAIRS[counter % 1024];
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
