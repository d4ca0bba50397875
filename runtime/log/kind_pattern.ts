/**
 * Kind patterns: `"task.created"` matches itself, `"task.*"` matches every kind
 * that starts with `"task."` (`"task.a.b"` too: `*` spans dots), and `"*"`
 * matches every kind. Unlike a permission's `*`, which stands for exactly one
 * `:` segment (see `@toka/runtime/auth`).
 *
 * @module
 */

/** A compiled filter: true when a kind matches one of the patterns. */
export type KindFilter = (kind: string) => boolean;

const PATTERN_RE = /^(\*|[A-Za-z0-9_\-*]+(\.[A-Za-z0-9_\-*]+)*)$/;

/**
 * Compiles kind patterns into one filter. An empty or missing list matches every kind.
 *
 * @param patterns Kind patterns, where `*` matches any run of characters.
 * @returns A function that tells whether a kind matches.
 * @throws {TypeError} When a pattern is empty or has characters a kind cannot have.
 *
 * @example
 * ```ts
 * import { compileKindFilter } from "@toka/runtime/runtime";
 *
 * const matches = compileKindFilter(["task.*"]);
 * console.log(matches("task.created"), matches("tool.completed")); // true false
 * ```
 */
export function compileKindFilter(patterns?: readonly string[]): KindFilter {
  if (patterns === undefined || patterns.length === 0) return () => true;
  const exact = new Set<string>();
  const globs: RegExp[] = [];
  for (const pattern of patterns) {
    if (typeof pattern !== "string" || !PATTERN_RE.test(pattern)) {
      throw new TypeError(`Invalid kind pattern ${JSON.stringify(pattern)}`);
    }
    if (pattern === "*") return () => true;
    if (!pattern.includes("*")) exact.add(pattern);
    else {
      const source = pattern.replaceAll(".", "\\.").replaceAll("*", ".*");
      globs.push(new RegExp(`^${source}$`));
    }
  }
  if (globs.length === 0) return (kind) => exact.has(kind);
  return (kind) => exact.has(kind) || globs.some((re) => re.test(kind));
}
