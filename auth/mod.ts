/**
 * Capability tokens for Toka: compact JWS (HS256 with a `kid`) carrying
 * `resource:action[:target]` permissions, signed by a secret pool kept in
 * Deno KV with atomic rotation, revocation by `jti`, attenuation into
 * narrower child tokens, and optional AES-GCM wrapping of the secrets at
 * rest under `TOKA_MASTER_KEY`.
 *
 * @example Issue, authorize, narrow, rotate, revoke
 * ```ts
 * import { KvTokenAuthority, TokenRevokedError } from "@toka/runtime/auth";
 *
 * using kv = await Deno.openKv(":memory:");
 * const auth = await KvTokenAuthority.open(kv, { vault: "demo" });
 *
 * const token = await auth.issue({ sub: "agent/planner", permissions: ["tool:*:invoke"] });
 * await auth.authorize(token, "tool:echo:invoke");
 *
 * const child = await auth.attenuate(token, { permissions: ["tool:echo:invoke"], ttlSecs: 60 });
 * const { kid } = await auth.rotate();
 * console.log(`✅ Secret rotated successfully (kid ${kid})`);
 *
 * const { jti, exp } = await auth.verify(child);
 * await auth.revoke(jti, exp);
 * await auth.verify(child).catch((e) => console.log(e instanceof TokenRevokedError)); // true
 * ```
 *
 * @module
 */

export {
  type AttenuateOptions,
  type IssueOptions,
  KvTokenAuthority,
  type KvTokenAuthorityOptions,
  type PoolStatus,
  type SecretInfo,
} from "./kv_token_authority.ts";
export {
  InvalidTokenError,
  type InvalidTokenReason,
  SecretPoolError,
  type SecretPoolErrorCode,
  TokenExpiredError,
  TokenRevokedError,
} from "./errors.ts";
export {
  assertPermission,
  isValidPermission,
  MAX_PERMISSION_LENGTH,
  permits,
} from "../internal/permissions.ts";
export { MAX_ID_LENGTH, MAX_LIFETIME_SECS, MAX_PERMISSIONS } from "./limits.ts";
export {
  generateMasterKey,
  MASTER_KEY_ENV,
  masterKeyFromEnv,
  parseMasterKey,
} from "./master_key.ts";
