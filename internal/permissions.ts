/**
 * Capability permissions: `resource:action[:target]`, where a whole segment
 * may be the wildcard `*`, a segment may end in `.*` to name a family
 * (`fs.*`), and the lone `"*"` grants everything.
 *
 * A wildcard matches exactly one segment, so `events:read:*` grants
 * `events:read:task.created` but not `events:read`. A family matches every
 * segment that starts with its prefix and the dot: `tool:fs.*:invoke` grants
 * `tool:fs.read:invoke` and `tool:fs.a.b:invoke`, not `tool:fs:invoke` nor
 * `tool:fsx.read:invoke`. Other partial wildcards such as `tool:ec*:invoke`
 * are not allowed. Attenuation stays decidable: a grant covers a family it
 * asks for only when it is `*` or a family with a prefix of it.
 *
 * @module
 */

/**
 * Longest permission string a token may carry.
 *
 * @example
 * ```ts
 * import { isValidPermission, MAX_PERMISSION_LENGTH } from "@toka/runtime/auth";
 *
 * console.log(isValidPermission(`tool:${"x".repeat(MAX_PERMISSION_LENGTH)}:invoke`)); // false
 * ```
 */
export const MAX_PERMISSION_LENGTH = 64;

const SEGMENT = "(?:\\*|[A-Za-z0-9_.@/-]+(?:\\.\\*)?)";
const PERMISSION_RE = new RegExp(`^(?:\\*|${SEGMENT}:${SEGMENT}(?::${SEGMENT})?)$`);

/**
 * Tells whether a string is a syntactically valid permission.
 *
 * @param permission The candidate, e.g. `"tool:echo:invoke"`.
 * @returns True when it is `*` or `resource:action[:target]` of at most 64 characters.
 *
 * @example
 * ```ts
 * import { isValidPermission } from "@toka/runtime/auth";
 *
 * console.log(isValidPermission("events:read:*"), isValidPermission("events")); // true false
 * ```
 */
export function isValidPermission(permission: unknown): permission is string {
  return typeof permission === "string" && permission.length <= MAX_PERMISSION_LENGTH &&
    PERMISSION_RE.test(permission);
}

/**
 * Throws unless a permission is syntactically valid.
 *
 * @param permission The candidate.
 * @throws {TypeError} When it is not `*` or `resource:action[:target]` of at most 64 characters.
 *
 * @example
 * ```ts
 * import { assertPermission } from "@toka/runtime/auth";
 *
 * assertPermission("tool:*:invoke"); // passes
 * ```
 */
export function assertPermission(permission: unknown): asserts permission is string {
  if (!isValidPermission(permission)) {
    const shown = typeof permission === "string" ? permission.slice(0, 80) : String(permission);
    throw new TypeError(
      `Invalid permission ${
        JSON.stringify(shown)
      }: expected "resource:action[:target]" of at most ${MAX_PERMISSION_LENGTH} characters`,
    );
  }
}

/**
 * True when a granted segment covers a wanted one: `*` covers everything, a family `a.*`
 * covers the names and families under `a.`, a name only itself.
 */
function segmentCovers(granted: string, wanted: string): boolean {
  if (granted === "*" || granted === wanted) return true;
  if (wanted === "*" || !granted.endsWith(".*")) return false;
  // Without the "*": "fs." is a prefix of "fs.read" and of the family "fs.x.*".
  return wanted.startsWith(granted.slice(0, -1));
}

/** True when `granted` (a single permission, maybe with wildcards) covers `wanted`. */
function covers(granted: string, wanted: string): boolean {
  if (granted === "*" || granted === wanted) return true;
  if (wanted === "*") return false;
  const g = granted.split(":");
  const w = wanted.split(":");
  if (g.length !== w.length) return false;
  for (let i = 0; i < g.length; i++) {
    if (!segmentCovers(g[i], w[i])) return false;
  }
  return true;
}

/**
 * Tells whether granted permissions allow a required one. A required
 * permission containing wildcards is allowed only when one grant covers every
 * permission it stands for, which is also the rule for attenuation.
 *
 * @param granted The token's permissions.
 * @param required The permission an operation needs (or a child token asks for).
 * @returns True when one of the grants covers it.
 *
 * @example
 * ```ts
 * import { permits } from "@toka/runtime/auth";
 *
 * console.log(permits(["tool:*:invoke"], "tool:echo:invoke")); // true
 * console.log(permits(["events:read:*"], "events:write:x")); // false
 * ```
 */
export function permits(granted: readonly string[], required: string): boolean {
  for (const g of granted) if (covers(g, required)) return true;
  return false;
}

/**
 * Like {@linkcode permits}, for a required `resource:action:target` whose
 * target is a folder: a grant whose target is that folder or one above it
 * allows it too (`storage:vault:shared` allows `storage:vault:shared/reports`,
 * not `storage:vault:sharedx`).
 *
 * @param granted The token's permissions.
 * @param required The permission an operation on a folder needs.
 * @returns True when one of the grants covers it.
 */
export function permitsPrefix(granted: readonly string[], required: string): boolean {
  const w = required.split(":");
  for (const g of granted) {
    if (covers(g, required)) return true;
    const parts = g.split(":");
    if (parts.length !== 3 || w.length !== 3) continue;
    if (
      segmentCovers(parts[0], w[0]) && segmentCovers(parts[1], w[1]) &&
      w[2].startsWith(`${parts[2]}/`)
    ) return true;
  }
  return false;
}
