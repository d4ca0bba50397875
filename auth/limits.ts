// The bounds every capability token keeps, public so that callers (the CLI
// among them) check input against the same numbers the authority enforces.

/**
 * The longest lifetime of a token, in seconds (one day).
 *
 * @example Check a lifetime before issuing
 * ```ts
 * import { MAX_LIFETIME_SECS } from "@toka/runtime/auth";
 *
 * console.log(MAX_LIFETIME_SECS); // 86400
 * ```
 */
export const MAX_LIFETIME_SECS: number = 86_400;

/**
 * The most characters of a token's subject or id.
 *
 * @example Check a subject before issuing
 * ```ts
 * import { MAX_ID_LENGTH } from "@toka/runtime/auth";
 *
 * console.log("agent/planner".length <= MAX_ID_LENGTH); // true
 * ```
 */
export const MAX_ID_LENGTH: number = 256;

/**
 * The most permissions one token may carry.
 *
 * @example Check a permission list before issuing
 * ```ts
 * import { MAX_PERMISSIONS } from "@toka/runtime/auth";
 *
 * console.log(MAX_PERMISSIONS); // 100
 * ```
 */
export const MAX_PERMISSIONS: number = 100;
