// What the log accepts as a JSON value: the one check of event payloads (both
// stores, imports, the CLI and the tools whose input becomes a payload).

/**
 * A value that is not a JSON value the log accepts, with where it is.
 * `message` is `path problem`, e.g. `$.a[1] is a function, not a JSON value`.
 */
export class JsonValueError extends TypeError {
  /** Where the value is, as a JSONPath cut short in the middle when long, e.g. `$.a[1]`. */
  readonly path: string;
  /** What is wrong with it, e.g. `is a function, not a JSON value`. */
  readonly problem: string;

  /**
   * Creates the error.
   *
   * @param path The value's path.
   * @param problem What is wrong with it.
   */
  constructor(path: string, problem: string) {
    super(`${path} ${problem}`);
    this.name = "TypeError";
    this.path = path;
    this.problem = problem;
  }
}

/**
 * Throws a {@linkcode JsonValueError} naming the path of the first value that
 * is not JSON, or of the first array or object nested deeper than `maxDepth`.
 *
 * @param value The value to check.
 * @param maxDepth The deepest nesting of arrays and objects allowed: `[[0]]` is 2 deep.
 * @throws {JsonValueError} When the value is not a JSON value or is nested too deep.
 */
export function assertJsonValue(value: unknown, maxDepth: number): void {
  // The containers on the way down, to tell a cycle from a deep value.
  const ancestors: object[] = [];
  const segments: (string | number)[] = [];
  const fail = (problem: string): never => {
    throw new JsonValueError(formatPath(segments), problem);
  };
  const walk = (v: unknown, depth: number): void => {
    switch (typeof v) {
      case "string":
        if (!v.isWellFormed()) fail(`has ${loneSurrogate(v)}, not valid Unicode`);
        return;
      case "boolean":
        return;
      case "number":
        if (!Number.isFinite(v)) fail(`is ${v}, not a JSON value`);
        return;
      case "object": {
        if (v === null) return;
        if (depth === maxDepth) {
          // A cycle is endless nesting: only here is it worth looking for one.
          fail(
            ancestors.includes(v)
              ? "is a circular reference, not a JSON value"
              : `is nested ${depth + 1} deep, over the maximum of ${maxDepth}`,
          );
        }
        const proto = Object.getPrototypeOf(v);
        ancestors.push(v);
        if (Array.isArray(v)) {
          for (let i = 0; i < v.length; i++) {
            segments.push(i);
            walk(v[i], depth + 1);
            segments.pop();
          }
        } else if (proto === Object.prototype || proto === null) {
          for (const key of Object.keys(v)) {
            if (!key.isWellFormed()) {
              fail(`has a key with ${loneSurrogate(key)}, not valid Unicode`);
            }
            segments.push(key);
            walk((v as Record<string, unknown>)[key], depth + 1);
            segments.pop();
          }
        } else {
          fail(`is a ${v.constructor?.name ?? "non-plain"} object, not a JSON value`);
        }
        ancestors.pop();
        return;
      }
      default:
        fail(`is ${typeof v === "function" ? "a function" : typeof v}, not a JSON value`);
    }
  };
  walk(value, 0);
}

/** Where the first lone surrogate of `s` is, e.g. `a lone surrogate U+D800 at index 3`. */
function loneSurrogate(s: string): string {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0xd800 || c > 0xdfff) continue;
    const next = s.charCodeAt(i + 1);
    if (c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) i++;
    else return `a lone surrogate U+${c.toString(16).toUpperCase()} at index ${i}`;
  }
  return "a lone surrogate";
}

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

/** A JSONPath of one line and bounded length: long keys and long paths are cut in the middle. */
function formatPath(segments: readonly (string | number)[]): string {
  const parts = segments.map((s) =>
    typeof s === "number"
      ? `[${s}]`
      : IDENTIFIER.test(s) && s.length <= 32
      ? `.${s}`
      : `[${JSON.stringify(s.length > 32 ? `${s.slice(0, 31)}…` : s)}]`
  );
  return "$" +
    (parts.length > 10
      ? `${parts.slice(0, 6).join("")}…${parts.slice(-3).join("")}`
      : parts.join(""));
}
