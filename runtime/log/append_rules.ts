// Rules shared by both stores' append, read and import paths; the bus uses the
// same expected-version check and guard check.
import { GuardFailedError, VersionConflictError } from "../errors.ts";
import type { AppendEffect, AppendGuard, ExpectedVersion } from "./event_store.ts";
import { parsePosition } from "./event_rules.ts";

/**
 * The one expected-version check of every store and the bus: throws a
 * {@linkcode VersionConflictError} when a stream at `current` does not
 * satisfy `expected`, and a TypeError when `expected` is not an expected version.
 */
export function checkExpectedVersion(
  stream: string,
  expected: ExpectedVersion | undefined,
  current: number,
): void {
  if (expected === undefined || expected === "any") return;
  const ok = expected === "no_stream"
    ? current === 0
    : expected === "exists"
    ? current > 0
    : current === expected;
  if (ok) return;
  assertExpectedVersion(expected);
  throw new VersionConflictError(stream, expected, current);
}

/** Validates a read limit; no limit is `Infinity`. */
export function readLimit(limit: number | undefined): number {
  if (limit === undefined) return Infinity;
  if (!Number.isSafeInteger(limit) || limit < 0) {
    throw new TypeError(`Invalid limit ${JSON.stringify(limit)}: expected a whole number ≥ 0`);
  }
  return limit;
}

/** Whether a read goes backward; throws a TypeError when `direction` is not a direction. */
export function isBackward(direction: unknown): boolean {
  if (direction === undefined || direction === "forward") return false;
  if (direction === "backward") return true;
  throw new TypeError(
    `Invalid direction ${JSON.stringify(direction)}: use "forward" or "backward"`,
  );
}

export function digestMismatch(index: number, id: string): TypeError {
  return new TypeError(
    `Invalid record ${index}: digest does not match the record and the record before it (id ${id}): tampered, or not imported from the start of its export`,
  );
}

/** Throws a TypeError when `expected` is not a valid expected version. */
export function assertExpectedVersion(
  expected: unknown,
): asserts expected is ExpectedVersion | undefined {
  if (
    expected === undefined || expected === "any" || expected === "no_stream" ||
    expected === "exists" ||
    (typeof expected === "number" && Number.isSafeInteger(expected) && expected >= 0)
  ) return;
  throw new TypeError(
    `Invalid expected version ${
      JSON.stringify(expected)
    }: use a number ≥ 0, "any", "no_stream" or "exists"`,
  );
}

/**
 * The last position a subscription has already seen: 0 from the start, the
 * head for `"$end"`, or the given position.
 */
export async function startAfter(
  after: string | undefined,
  head: () => number | Promise<number>,
): Promise<number> {
  if (after === undefined) return 0;
  if (after === "$end") return await head();
  return parsePosition(after, "after");
}

/** Throws a TypeError when `guard` is given and is not an {@linkcode AppendGuard}. */
export function assertGuard(guard: unknown, needHolds: boolean): void {
  if (guard === undefined) return;
  const g = guard as AppendGuard;
  const check = g?.check;
  const validCheck = check === undefined ||
    (check !== null && typeof check === "object" && Array.isArray(check.key) &&
      (check.versionstamp === null || typeof check.versionstamp === "string"));
  const validHolds = g?.holds === undefined || typeof g.holds === "function";
  if (
    guard === null || typeof guard !== "object" || !validCheck || !validHolds ||
    (check === undefined && g.holds === undefined)
  ) {
    throw new TypeError(
      "Invalid guard: expected { check } (a KV key and versionstamp) or { holds }",
    );
  }
  if (needHolds && g.holds === undefined) {
    throw new TypeError("Invalid guard: this store has no KV to check; give it a holds() function");
  }
}

/** Throws {@linkcode GuardFailedError} when `guard` has a `holds` that returns false. */
export function checkHolds(stream: string, guard: AppendGuard | undefined): void {
  if (guard?.holds !== undefined && guard.holds() !== true) throw new GuardFailedError(stream);
}

/** The most writes one `AppendEffect` makes: a commit reserves this many mutations for it. */
export const MAX_EFFECT_WRITES = 4;

/**
 * Throws a TypeError unless `effect` is an `AppendEffect` this store can make:
 * with `needApply` (a store without KV), it must have `apply`.
 */
export function assertEffect(effect: unknown, needApply: boolean): void {
  if (effect === undefined) return;
  const e = effect as AppendEffect;
  if (
    effect === null || typeof effect !== "object" ||
    (e.writes !== undefined && typeof e.writes !== "function") ||
    (e.apply !== undefined && typeof e.apply !== "function") ||
    (e.bytes !== undefined && (!Number.isSafeInteger(e.bytes) || e.bytes < 0)) ||
    (e.writes === undefined && e.apply === undefined)
  ) {
    throw new TypeError("Invalid effect: expected { writes, bytes } or { apply }");
  }
  if (needApply && e.apply === undefined) {
    throw new TypeError(
      "Invalid effect: this store has no KV to write; give it an apply() function",
    );
  }
}

/** Checks the writes an effect made: a TypeError when there are too many. */
export function checkedWrites<T>(writes: readonly T[]): readonly T[] {
  if (!Array.isArray(writes) || writes.length > MAX_EFFECT_WRITES) {
    throw new TypeError(`Invalid effect: expected at most ${MAX_EFFECT_WRITES} writes`);
  }
  return writes;
}
