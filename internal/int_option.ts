/** How {@linkcode intOption} checks a value beyond its range. */
export interface NumberOptionRules {
  /** Whether a fraction is allowed (a finite number in range); integers only when false. */
  fractions?: boolean;
  /** The error message for a refused value, when the caller's differs from the default. */
  message?: (value: unknown) => string;
}

/**
 * A numeric option with a default and a range: the one check every option
 * parser uses, so all of them refuse the same values.
 *
 * @param name The option's name, for the error.
 * @param value The value given, if any.
 * @param fallback The value when none is given.
 * @param min The smallest value allowed.
 * @param max The largest value allowed.
 * @param rules Whether fractions are allowed, and the message for a refused value.
 * @returns `value`, or `fallback` when it is undefined.
 * @throws {RangeError} When `value` is not a whole number (or, with `fractions`, a number)
 * from `min` to `max`.
 */
export function intOption(
  name: string,
  value: unknown,
  fallback: number,
  min: number,
  max: number,
  rules: NumberOptionRules = {},
): number {
  if (value === undefined) return fallback;
  const valid = rules.fractions
    ? typeof value === "number" && Number.isFinite(value)
    : Number.isSafeInteger(value);
  if (!valid || (value as number) < min || (value as number) > max) {
    throw new RangeError(
      rules.message?.(value) ??
        `Invalid ${name} ${JSON.stringify(value)}: expected an integer from ${min} to ${max}`,
    );
  }
  return value as number;
}
