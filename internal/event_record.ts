// The shape of an exported event record, checked before an import.
import { assertStream, isEventId, POSITION_RE } from "./ids.ts";

/** The last millisecond a `Date` holds (8.64e15, the year 275760): a later timestamp cannot be shown. */
export const MAX_TIMESTAMP = 8_640_000_000_000_000;

/**
 * Whether `value` is an event timestamp: whole milliseconds since the epoch,
 * from 0 to {@linkcode MAX_TIMESTAMP}, so that every reader can make a `Date` of it.
 *
 * @param value The value to check.
 * @returns True when it is one.
 */
export function isTimestamp(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0 &&
    (value as number) <= MAX_TIMESTAMP;
}

/** The fields of an event record that an import relies on before the store checks the rest. */
export interface RecordShape {
  id: string;
  stream: string;
  timestamp: number;
  position: string;
  version: number;
  digest: string;
}

/**
 * Checks a record read back from an export for shape, before import: the
 * vault's import and the CLI's (which checks every line before storing any).
 */
export function assertRecordShape(record: unknown, index: number): asserts record is RecordShape {
  const r = record as Partial<RecordShape>;
  const where = `record ${index}`;
  if (r === null || typeof r !== "object") throw new TypeError(`Invalid ${where}: not an object`);
  if (!isEventId(r.id)) throw new TypeError(`Invalid ${where}: "id" is not an event id`);
  assertStream(r.stream);
  if (!isTimestamp(r.timestamp)) {
    throw new TypeError(
      `Invalid ${where}: "timestamp" is not a whole number of milliseconds from 0 to ${MAX_TIMESTAMP}`,
    );
  }
  if (typeof r.position !== "string" || !POSITION_RE.test(r.position) || Number(r.position) < 1) {
    throw new TypeError(`Invalid ${where}: "position" is not a position`);
  }
  if (typeof r.version !== "number" || !Number.isSafeInteger(r.version) || r.version < 1) {
    throw new TypeError(`Invalid ${where}: "version" is not a version`);
  }
  if (typeof r.digest !== "string" || !/^sha256:[0-9a-f]{64}$/.test(r.digest)) {
    throw new TypeError(`Invalid ${where}: "digest" is not a sha256 digest`);
  }
}
