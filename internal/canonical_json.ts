// JSON Canonicalization Scheme (RFC 8785), checked and written in one pass: the
// one rule for what the log accepts as a payload (both stores, imports, the CLI
// and the tools whose input becomes a payload), and the form digests are over.
import { hash } from "node:crypto";

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
 * The canonical JSON of `value` (RFC 8785: no whitespace, object members
 * sorted by the UTF-16 code units of their names, numbers and strings as
 * ECMAScript's `JSON.stringify` writes them), which must be I-JSON: plain
 * objects, arrays, strings without lone surrogates, finite numbers, booleans
 * and null, nested at most `maxDepth` deep (`[[0]]` is 2).
 *
 * @param value The value.
 * @param maxDepth The deepest nesting of arrays and objects allowed.
 * @returns The canonical JSON text.
 * @throws {JsonValueError} When the value is not such a value, naming the path of a wrong part.
 */
export function canonicalJson(value: unknown, maxDepth: number): string {
  try {
    return encode(value, 0, maxDepth);
  } catch (error) {
    if (!(error instanceof Problem)) throw error;
    throw new JsonValueError(
      formatPath(error.segments.reverse()),
      error.circular ? "is a circular reference, not a JSON value" : error.problem,
    );
  }
}

/**
 * The digest of a canonical JSON text as the log records digests: an event's
 * chain digest and a tool call's input digest are both this, over different texts.
 *
 * @param canonical The text, e.g. from {@linkcode canonicalJson}.
 * @returns `"sha256:<hex>"` over its UTF-8 bytes.
 */
export function jsonDigest(canonical: string): string {
  return `sha256:${hash("sha256", canonical, "hex")}`;
}

/** What is wrong, thrown up through the containers, each adding its segment of the path. */
class Problem {
  segments: (string | number)[] = [];
  circular = false;
  constructor(
    readonly problem: string,
    /** The container nested too deep: a cycle when one of its ancestors is the same object. */
    readonly deep?: object,
    /** The object a bad key belongs to: its path is the problem's. */
    readonly owner?: object,
  ) {}
}

function within(error: unknown, segment: string | number, container: object): unknown {
  if (error instanceof Problem) {
    if (error.owner !== container) error.segments.push(segment);
    if (error.deep === container) error.circular = true;
  }
  return error;
}

function encode(v: unknown, depth: number, maxDepth: number): string {
  switch (typeof v) {
    case "string":
      if (!v.isWellFormed()) throw new Problem(`has ${loneSurrogate(v)}, not valid Unicode`);
      return JSON.stringify(v);
    case "number":
      if (!Number.isFinite(v)) throw new Problem(`is ${v}, not a JSON value`);
      return JSON.stringify(v);
    case "boolean":
      return v ? "true" : "false";
    case "object": {
      if (v === null) return "null";
      if (depth === maxDepth) {
        throw new Problem(`is nested ${depth + 1} deep, over the maximum of ${maxDepth}`, v);
      }
      if (Array.isArray(v)) {
        if (v.length === 0) return "[]";
        let json = "[";
        let i = 0;
        try {
          for (; i < v.length; i++) {
            json += (i === 0 ? "" : ",") + encode(v[i], depth + 1, maxDepth);
          }
        } catch (error) {
          throw within(error, i, v);
        }
        return json + "]";
      }
      const proto = Object.getPrototypeOf(v);
      if (proto !== Object.prototype && proto !== null) {
        throw new Problem(`is a ${v.constructor?.name ?? "non-plain"} object, not a JSON value`);
      }
      // The default sort compares UTF-16 code units, as RFC 8785 orders members.
      const keys = Object.keys(v).sort();
      if (keys.length === 0) return "{}";
      let json = "{";
      let key = "";
      try {
        for (let i = 0; i < keys.length; i++) {
          key = keys[i];
          if (!key.isWellFormed()) {
            throw new Problem(
              `has a key with ${loneSurrogate(key)}, not valid Unicode`,
              undefined,
              v,
            );
          }
          json += (i === 0 ? "" : ",") + JSON.stringify(key) + ":" +
            encode((v as Record<string, unknown>)[key], depth + 1, maxDepth);
        }
      } catch (error) {
        throw within(error, key, v);
      }
      return json + "}";
    }
    default:
      throw new Problem(
        `is ${typeof v === "function" ? "a function" : typeof v}, not a JSON value`,
      );
  }
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
