/**
 * A whole-number option with a default and a range, as the built-in tools take them.
 *
 * @param name The option's name, for the error.
 * @param value The value given, if any.
 * @param fallback The value when none is given.
 * @param min The smallest value allowed.
 * @param max The largest value allowed.
 * @returns `value`, or `fallback` when it is undefined.
 * @throws {RangeError} When `value` is not a whole number from `min` to `max`.
 */
export function intOption(
  name: string,
  value: number | undefined,
  fallback: number,
  min: number,
  max: number,
): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new RangeError(
      `Invalid ${name} ${JSON.stringify(value)}: expected an integer from ${min} to ${max}`,
    );
  }
  return value;
}
