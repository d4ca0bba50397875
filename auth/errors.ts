/**
 * Errors of the auth feature: why a token was refused, and why the secret
 * pool could not be used. Messages never contain a token or a secret.
 *
 * @module
 */

import { TokaError } from "../runtime/errors.ts";

/**
 * Why a token is not valid. `"expired"` and `"revoked"` have their own error
 * classes ({@linkcode TokenExpiredError}, {@linkcode TokenRevokedError}).
 */
export type InvalidTokenReason =
  | "malformed"
  | "alg_not_allowed"
  | "unknown_kid"
  | "key_expired"
  | "bad_signature"
  | "bad_claims"
  | "wrong_vault"
  | "not_yet_valid"
  | "issued_in_future"
  | "lifetime_too_long";

const REASON_TEXT: Record<InvalidTokenReason, string> = {
  malformed: "it is not a well-formed compact JWS",
  alg_not_allowed: "its algorithm is not HS256",
  unknown_kid: "its key id is not in the secret pool",
  key_expired: "its signing secret was retired too long ago",
  bad_signature: "its signature does not match",
  bad_claims: "its claims are missing or have the wrong type",
  wrong_vault: "it was issued for another vault",
  not_yet_valid: "it is not valid yet (nbf)",
  issued_in_future: "it was issued in the future (iat)",
  lifetime_too_long: "its lifetime exceeds 24 hours",
};

/**
 * Thrown when a token cannot be accepted; {@linkcode InvalidTokenError.reason}
 * says why.
 *
 * @example
 * ```ts
 * import { InvalidTokenError } from "@toka/runtime/auth";
 *
 * const error = new InvalidTokenError("bad_signature");
 * console.log(error.code, error.reason); // "invalid_token" "bad_signature"
 * ```
 */
export class InvalidTokenError extends TokaError {
  /** The machine-readable reason, e.g. `"bad_signature"`. */
  readonly reason: InvalidTokenReason;

  /**
   * Creates an invalid-token error.
   *
   * @param reason Why the token was refused.
   * @param detail Optional extra text; must not contain the token or a secret.
   */
  constructor(reason: InvalidTokenReason, detail?: string) {
    super(
      "invalid_token",
      `Invalid token: ${REASON_TEXT[reason]}${detail === undefined ? "" : ` (${detail})`}`,
    );
    this.name = "InvalidTokenError";
    this.reason = reason;
  }
}

/**
 * Thrown when a token's `exp` has been reached (after the verifier's leeway).
 *
 * @example
 * ```ts
 * import { TokenExpiredError } from "@toka/runtime/auth";
 *
 * const error = new TokenExpiredError(1_700_000_000);
 * console.log(error.code); // "token_expired"
 * ```
 */
export class TokenExpiredError extends TokaError {
  /** The token's `exp`, seconds since the epoch. */
  readonly expiredAt: number;

  /**
   * Creates a token-expired error.
   *
   * @param expiredAt The token's `exp` claim, seconds since the epoch.
   */
  constructor(expiredAt: number) {
    super("token_expired", `Token expired at ${new Date(expiredAt * 1000).toISOString()}`);
    this.name = "TokenExpiredError";
    this.expiredAt = expiredAt;
  }
}

/**
 * Thrown when a token's `jti`, or the `jti` of a token it was attenuated from,
 * has been revoked. The message names ids, never a token.
 *
 * @example
 * ```ts
 * import { TokenRevokedError } from "@toka/runtime/auth";
 *
 * const error = new TokenRevokedError("Vt3kq2");
 * console.log(error.message); // Token "Vt3kq2" has been revoked
 * ```
 */
export class TokenRevokedError extends TokaError {
  /** The revoked token id: the token's own, or the revoked ancestor's. */
  readonly jti: string;
  /** The id of the token that was presented; differs from `jti` when an ancestor was revoked. */
  readonly tokenJti: string;

  /**
   * Creates a token-revoked error.
   *
   * @param jti The revoked token id (an identifier, not a secret).
   * @param tokenJti The presented token's id when it is revoked through its ancestor `jti`.
   */
  constructor(jti: string, tokenJti: string = jti) {
    super(
      "token_revoked",
      tokenJti === jti
        ? `Token ${JSON.stringify(jti)} has been revoked`
        : `Token ${JSON.stringify(tokenJti)} is revoked: its ancestor ${
          JSON.stringify(jti)
        } has been revoked`,
    );
    this.name = "TokenRevokedError";
    this.jti = jti;
    this.tokenJti = tokenJti;
  }
}

/** Why the secret pool could not be used. */
export type SecretPoolErrorCode =
  | "secret_pool_locked"
  | "secret_pool_corrupt"
  | "secret_pool_busy"
  | "secret_pool_unwrapped"
  | "secret_pool_full";

/**
 * Thrown when the secret pool in Deno KV cannot be read or written:
 * `"secret_pool_locked"` (wrapped secrets and a wrong or missing master key),
 * `"secret_pool_corrupt"` (the stored value has an unexpected shape),
 * `"secret_pool_busy"` (a write kept conflicting and gave up),
 * `"secret_pool_unwrapped"` (a raw secret in the pool while a master key is
 * configured: refused, as anyone who can write the KV could have planted it) or
 * `"secret_pool_full"` (a rotation would end a retired secret's grace early).
 *
 * @example
 * ```ts
 * import { SecretPoolError } from "@toka/runtime/auth";
 *
 * const error = new SecretPoolError(
 *   "secret_pool_locked",
 *   "Cannot unwrap the secret pool: wrong or missing TOKA_MASTER_KEY",
 * );
 * console.log(error.code); // "secret_pool_locked"
 * ```
 */
export class SecretPoolError extends TokaError {
  /** The stable code of the condition. */
  declare readonly code: SecretPoolErrorCode;

  /**
   * Creates a secret-pool error.
   *
   * @param code The condition.
   * @param message A one-line description without secret material.
   * @param options Standard error options, e.g. a `cause`.
   */
  constructor(code: SecretPoolErrorCode, message: string, options?: ErrorOptions) {
    super(code, message, options);
    this.name = "SecretPoolError";
  }
}
