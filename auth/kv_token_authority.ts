/**
 * {@linkcode KvTokenAuthority}: issues and verifies capability tokens signed
 * with a secret pool kept in Deno KV, with rotation, revocation and
 * attenuation.
 *
 * @module
 */

import type { Kv } from "../internal/platform.ts";
import { CapabilityDeniedError } from "../runtime/errors.ts";
import type { IssueRequest, TokenAuthority, TokenClaims } from "../runtime/token_authority.ts";
import { attenuate, issue } from "./_issuance.ts";
import {
  checkId,
  checkTtl,
  defaultRandomBytes,
  numberOption,
  parseInitialSecret,
} from "./_options.ts";
import { PoolCache } from "./_pool_cache.ts";
import { bootstrap, rotate } from "./_pool_rotation.ts";
import { importMasterKey, POOL_KEY, retryLocked } from "./_pool_store.ts";
import { isRevoked, issuedExpiry, readStatus, revoke, status } from "./_revocation.ts";
import { TokenVerifier } from "./_verification.ts";
import { parseMasterKey } from "./master_key.ts";
import { assertPermission, permits } from "../internal/permissions.ts";

/** Options of {@linkcode KvTokenAuthority.open}. Every one has a default. */
export interface KvTokenAuthorityOptions {
  /** Vault name put in the `vault` claim and required on verify; `"default"` by default. */
  vault?: string;
  /** Milliseconds since the epoch; `Date.now` by default. */
  clock?: () => number;
  /**
   * A clock that never goes back, in milliseconds from any origin; `performance.now` by
   * default. A retired secret stops verifying `retiredTtlSecs` after this process first saw
   * it retired by this clock, even if the wall clock jumped back.
   */
  monotonicClock?: () => number;
  /** Source of random bytes for secrets, key ids and token ids; Web Crypto by default. */
  randomBytes?: (n: number) => Uint8Array;
  /** How long a retired secret still verifies, counted from its retirement; 300 by default. */
  retiredTtlSecs?: number;
  /**
   * Clock skew tolerated on `exp`, `nbf` and `iat`; 0 by default. An `iat` up
   * to 60 s ahead is accepted whatever this is (another process's clock may be
   * ahead, or this one stepped back).
   */
  leewaySecs?: number;
  /** Token lifetime when {@linkcode IssueRequest.ttlSecs} is omitted; 3600 by default. */
  defaultTtlSecs?: number;
  /**
   * The first secret when the pool does not exist yet: base64url text or bytes, at least
   * 32 bytes. Ignored when the pool exists. Random by default.
   */
  initialSecret?: string | Uint8Array;
  /**
   * Master key wrapping the secrets at rest with AES-256-GCM: base64url of 32 bytes (see
   * {@linkcode masterKeyFromEnv}) or the bytes. Without it secrets are stored raw. With it,
   * a raw secret in the pool is refused (`"secret_pool_unwrapped"`).
   */
  masterKey?: string | Uint8Array;
  /**
   * With `masterKey`: wrap the raw secrets of an existing pool on open, once, and log their
   * key ids (a deliberate migration from a raw pool). False by default.
   */
  wrapRawSecrets?: boolean;
  /**
   * How often (by `clock`) verify re-reads the pool and revocations to see other
   * processes' writes; 1 by default. A token whose key id is unknown waits for a re-read
   * started after it was seen (at most one starts every 100 ms), so another process's
   * rotation is always seen.
   */
  refreshIntervalSecs?: number;
  /** How many verified tokens to remember (still re-checked on every call); 1024 by default. */
  verifyCacheSize?: number;
}

/** What to put into a new token: an {@linkcode IssueRequest} plus an optional `nbf`. */
export interface IssueOptions extends IssueRequest {
  /** Not before, seconds since the epoch. */
  nbf?: number;
}

/** How to narrow a token with {@linkcode KvTokenAuthority.attenuate}. */
export interface AttenuateOptions {
  /** The child's permissions; each must be covered by one of the parent's. */
  permissions: string[];
  /** The child's lifetime; it ends at the parent's `exp` when omitted, and may not pass it. */
  ttlSecs?: number;
}

/** One secret of the pool as {@linkcode KvTokenAuthority.status} shows it: no key material. */
export interface SecretInfo {
  /** The key id in token headers. */
  kid: string;
  /** `"active"` signs new tokens; `"retired"` still verifies; `"expired"` awaits pruning. */
  state: "active" | "retired" | "expired";
  /** Creation time, milliseconds since the epoch. */
  createdAt: number;
  /** Retirement time, milliseconds since the epoch. */
  retiredAt?: number;
  /**
   * When a retired secret stops verifying by the wall clock, milliseconds since the epoch
   * (earlier if the wall clock jumped back: see `monotonicClock`).
   */
  validUntil?: number;
}

/** The pool's state for `toka auth status`. */
export interface PoolStatus {
  /** The vault the authority issues tokens for. */
  vault: string;
  /** Key id of the active secret. */
  activeKid: string;
  /** Whether every secret is stored wrapped with a master key, as read from the pool. */
  wrapped: boolean;
  /** How long a retired secret verifies after its retirement. */
  retiredTtlSecs: number;
  /** The active secret first, then retired ones, newest first. */
  secrets: SecretInfo[];
  /** Number of revoked token ids not yet expired. */
  revoked: number;
}

/**
 * A {@linkcode TokenAuthority} backed by Deno KV. Tokens are compact JWS
 * (HS256, `typ: "toka.cap+jwt"`, `kid`) that `jose` verifies too.
 *
 * The secret pool lives under `["auth", "pool"]`, revocations under
 * `["auth", "revoked", jti]` and the ids of the tokens issued under
 * `["auth", "issued", jti]`, each until the token's expiry. Verification reads only memory: the pool and
 * revocations are cached, refreshed after this authority's own writes, every
 * `refreshIntervalSecs` and when a token names an unknown key id. Another
 * process's revocation is therefore seen within `refreshIntervalSecs`.
 *
 * Widening on {@linkcode KvTokenAuthority.attenuate} throws
 * `CapabilityDeniedError` for a permission the parent lacks and `RangeError`
 * for a lifetime past the parent's `exp`. Revoking a token also revokes the
 * tokens attenuated from it.
 *
 * @example Issue, verify, authorize, rotate
 * ```ts
 * import { KvTokenAuthority } from "@toka/runtime/auth";
 *
 * using kv = await Deno.openKv(":memory:");
 * const auth = await KvTokenAuthority.open(kv, { vault: "demo" });
 * const token = await auth.issue({ sub: "agent/planner", permissions: ["tool:*:invoke"] });
 * await auth.authorize(token, "tool:echo:invoke");
 * await auth.rotate();
 * console.log((await auth.verify(token)).sub); // "agent/planner" (retired secret, within 300 s)
 * ```
 */
export class KvTokenAuthority implements TokenAuthority {
  /** Always true: tokens are really checked. */
  readonly enforcing: boolean = true;
  /** The vault name tokens are issued for and checked against. */
  readonly vault: string;

  #pool: PoolCache;
  #verifier: TokenVerifier;

  private constructor(
    kv: Kv,
    options: KvTokenAuthorityOptions,
    masterKey: CryptoKey | undefined,
  ) {
    this.vault = checkId('Option "vault"', options.vault ?? "default");
    this.#pool = new PoolCache({
      kv,
      vault: this.vault,
      clock: options.clock ?? Date.now,
      mono: options.monotonicClock ?? (() => performance.now()),
      randomBytes: options.randomBytes ?? defaultRandomBytes,
      retiredTtlMs: 1000 * numberOption("retiredTtlSecs", options.retiredTtlSecs, 300, 86_400),
      leewayMs: 1000 * numberOption("leewaySecs", options.leewaySecs, 0, 300),
      defaultTtlSecs: checkTtl(options.defaultTtlSecs ?? 3600),
      refreshMs: 1000 * numberOption("refreshIntervalSecs", options.refreshIntervalSecs, 1, 3600),
      cacheSize: Math.floor(
        numberOption("verifyCacheSize", options.verifyCacheSize, 1024, 1_000_000),
      ),
      masterKey,
    });
    this.#verifier = new TokenVerifier(this.#pool);
  }

  /**
   * Tells whether a Deno KV holds a secret pool, without creating one (for a
   * reader that must not write, such as `toka auth status`).
   *
   * @param kv The database.
   * @returns True when a pool is stored under `["auth", "pool"]`.
   * @throws {SecretPoolError} With code `"secret_pool_busy"` when the database stays locked.
   *
   * @example
   * ```ts
   * import { KvTokenAuthority } from "@toka/runtime/auth";
   *
   * using kv = await Deno.openKv(":memory:");
   * console.log(await KvTokenAuthority.hasPool(kv)); // false
   * await KvTokenAuthority.open(kv, { masterKey: undefined });
   * console.log(await KvTokenAuthority.hasPool(kv)); // true
   * ```
   */
  static async hasPool(kv: Kv): Promise<boolean> {
    return (await retryLocked(() => kv.get(POOL_KEY))).versionstamp !== null;
  }

  /**
   * Describes the secret pool of a Deno KV without opening an authority and
   * without unwrapping anything: key ids, states, times and the revocation
   * count are not secret, so this needs no master key (for `toka auth status`
   * on a wrapped pool). Retired secrets are judged by the wall clock only.
   *
   * @param kv The database.
   * @param options The vault name, clock, `retiredTtlSecs` and `leewaySecs`, as for
   *   {@linkcode KvTokenAuthority.open}.
   * @returns The pool's status, or null when the database holds no pool.
   * @throws {SecretPoolError} `"secret_pool_corrupt"` when the stored pool is unreadable,
   *   `"secret_pool_busy"` when the database stays locked.
   * @throws {RangeError} When an option is out of range.
   *
   * @example
   * ```ts
   * import { KvTokenAuthority } from "@toka/runtime/auth";
   *
   * using kv = await Deno.openKv(":memory:");
   * console.log(await KvTokenAuthority.readStatus(kv)); // null
   * await KvTokenAuthority.open(kv);
   * console.log((await KvTokenAuthority.readStatus(kv))?.secrets[0].state); // "active"
   * ```
   */
  static async readStatus(
    kv: Kv,
    options: Pick<KvTokenAuthorityOptions, "vault" | "clock" | "retiredTtlSecs" | "leewaySecs"> =
      {},
  ): Promise<PoolStatus | null> {
    return await readStatus(kv, {
      vault: checkId('Option "vault"', options.vault ?? "default"),
      clock: options.clock ?? Date.now,
      retiredTtlMs: 1000 * numberOption("retiredTtlSecs", options.retiredTtlSecs, 300, 86_400),
      leewayMs: 1000 * numberOption("leewaySecs", options.leewaySecs, 0, 300),
    });
  }

  /**
   * Opens the authority on a KV store, creating the secret pool when it does
   * not exist (an atomic check-null set, so processes opening together agree).
   *
   * @param kv A Deno KV the caller opened and will close.
   * @param options Vault name, clock, TTLs, initial secret, master key.
   * @returns A ready authority.
   * @throws {RangeError} When an option is out of range or `initialSecret` is shorter than 32 bytes.
   * @throws {TypeError} When `vault` is blank or `masterKey` is not base64url of 32 bytes.
   * @throws {SecretPoolError} `"secret_pool_locked"` when the pool is wrapped and the master
   *   key is wrong or missing; `"secret_pool_unwrapped"` when a master key is given and the pool
   *   holds a raw secret (unless `wrapRawSecrets`); `"secret_pool_corrupt"` when the stored pool
   *   is unreadable.
   *
   * @example
   * ```ts
   * import { KvTokenAuthority } from "@toka/runtime/auth";
   *
   * using kv = await Deno.openKv(":memory:");
   * const auth = await KvTokenAuthority.open(kv, { vault: "demo", defaultTtlSecs: 600 });
   * console.log(auth.enforcing); // true
   * ```
   */
  static async open(kv: Kv, options: KvTokenAuthorityOptions = {}): Promise<KvTokenAuthority> {
    const initial = options.initialSecret === undefined
      ? undefined
      : parseInitialSecret(options.initialSecret);
    const masterKey = options.masterKey === undefined
      ? undefined
      : await importMasterKey(parseMasterKey(options.masterKey));
    const authority = new KvTokenAuthority(kv, options, masterKey);
    await bootstrap(authority.#pool, initial, options.wrapRawSecrets === true);
    return authority;
  }

  /**
   * Issues a token signed with the active secret.
   *
   * @param request Subject, permissions, lifetime (`ttlSecs`, at most 86400) and optional `nbf`.
   * @returns The compact JWS.
   * @throws {TypeError} When the subject is blank or a permission is malformed.
   * @throws {RangeError} When a limit is exceeded (lengths, 100 permissions, lifetime).
   *
   * @example
   * ```ts
   * import { KvTokenAuthority } from "@toka/runtime/auth";
   *
   * using kv = await Deno.openKv(":memory:");
   * const auth = await KvTokenAuthority.open(kv);
   * const token = await auth.issue({ sub: "cli", permissions: ["events:read:*"], ttlSecs: 60 });
   * console.log(token.split(".").length); // 3
   * ```
   */
  async issue(request: IssueOptions): Promise<string> {
    return await issue(this.#pool, request);
  }

  /**
   * Verifies a token: HS256 only, known and still valid `kid`, signature,
   * claim types and limits, vault, `exp`, `nbf` and revocation. Reads only
   * memory unless a refresh is due.
   *
   * @param token The compact JWS.
   * @returns The token's claims (frozen).
   * @throws {InvalidTokenError} With a `reason` when the token is not acceptable.
   * @throws {TokenExpiredError} When `exp` has been reached.
   * @throws {TokenRevokedError} When its `jti` was revoked.
   *
   * @example
   * ```ts
   * import { KvTokenAuthority } from "@toka/runtime/auth";
   *
   * using kv = await Deno.openKv(":memory:");
   * const auth = await KvTokenAuthority.open(kv);
   * const claims = await auth.verify(await auth.issue({ sub: "a", permissions: ["*"] }));
   * console.log(claims.permissions); // ["*"]
   * ```
   */
  async verify(token: string): Promise<TokenClaims> {
    return await this.#verifier.verify(token);
  }

  /**
   * Verifies a token and checks that it grants a permission.
   *
   * @param token The compact JWS; undefined means no token was presented.
   * @param permission The permission needed, e.g. `"tool:echo:invoke"`.
   * @returns The token's claims.
   * @throws {CapabilityDeniedError} When the token is missing or lacks the permission.
   * @throws {InvalidTokenError} When the token is invalid (also {@linkcode TokenExpiredError},
   *   {@linkcode TokenRevokedError}).
   * @throws {TypeError} When `permission` is malformed.
   *
   * @example
   * ```ts
   * import { KvTokenAuthority } from "@toka/runtime/auth";
   *
   * using kv = await Deno.openKv(":memory:");
   * const auth = await KvTokenAuthority.open(kv);
   * const token = await auth.issue({ sub: "a", permissions: ["tool:echo:invoke"] });
   * await auth.authorize(token, "tool:echo:invoke");
   * ```
   */
  async authorize(token: string | undefined, permission: string): Promise<TokenClaims> {
    assertPermission(permission);
    if (token === undefined) throw new CapabilityDeniedError(permission);
    const claims = await this.verify(token);
    if (!permits(claims.permissions, permission)) {
      throw new CapabilityDeniedError(permission, claims.sub);
    }
    return claims;
  }

  /**
   * Derives a child token with fewer (or equal) permissions and no later
   * expiry, for the same subject and vault. The parent must be valid. The
   * child lists the ids of its parent and the parent's ancestors in
   * `ancestors`: revoking any of them revokes the child too.
   *
   * @param token The parent token.
   * @param options The child's permissions and optional lifetime.
   * @returns The child token.
   * @throws {CapabilityDeniedError} When a requested permission is not covered by the parent's.
   * @throws {RangeError} When `ttlSecs` would outlive the parent or exceeds limits, or the
   *   parent was itself attenuated 8 times already.
   * @throws {TypeError} When a permission is malformed.
   * @throws {InvalidTokenError} When the parent is invalid (or expired, revoked).
   *
   * @example
   * ```ts
   * import { KvTokenAuthority } from "@toka/runtime/auth";
   *
   * using kv = await Deno.openKv(":memory:");
   * const auth = await KvTokenAuthority.open(kv);
   * const parent = await auth.issue({ sub: "a", permissions: ["tool:*:invoke"] });
   * const child = await auth.attenuate(parent, { permissions: ["tool:echo:invoke"] });
   * console.log((await auth.verify(child)).permissions); // ["tool:echo:invoke"]
   * ```
   */
  async attenuate(token: string, options: AttenuateOptions): Promise<string> {
    const parent = await this.verify(token);
    return await attenuate(this.#pool, parent, options);
  }

  /**
   * Makes a new active secret and retires the current one, in one atomic
   * compare-and-set on the pool's versionstamp, retried on conflict; retired
   * secrets older than `retiredTtlSecs` are pruned in the same write.
   * Concurrent rotations from several processes all land, in some order.
   *
   * @returns The new active key id.
   * @throws {SecretPoolError} `"secret_pool_busy"` when conflicts never cleared;
   *   `"secret_pool_full"` when 100 retired secrets are still within their grace, as another
   *   rotation would have to drop one early (nothing is written);
   *   `"secret_pool_unwrapped"` when a master key is given and the pool holds a raw secret.
   *
   * @example
   * ```ts
   * import { KvTokenAuthority } from "@toka/runtime/auth";
   *
   * using kv = await Deno.openKv(":memory:");
   * const auth = await KvTokenAuthority.open(kv);
   * const { kid } = await auth.rotate();
   * console.log(`✅ Secret rotated successfully (kid ${kid})`);
   * ```
   */
  async rotate(): Promise<{ kid: string }> {
    return await rotate(this.#pool);
  }

  /**
   * Revokes a token id until the token's own expiry: stored in KV with
   * `expireIn`, effective at once in this process and within
   * `refreshIntervalSecs` in others.
   *
   * @param jti The token id to revoke.
   * @param exp The token's `exp` (seconds); 24 hours from now when unknown, the longest a token
   *   can live.
   * @throws {TypeError} When `jti` is blank or `exp` is not an integer.
   * @throws {RangeError} When `jti` is too long or `exp` is more than 48 hours away.
   *
   * @example
   * ```ts
   * import { KvTokenAuthority } from "@toka/runtime/auth";
   *
   * using kv = await Deno.openKv(":memory:");
   * const auth = await KvTokenAuthority.open(kv);
   * const token = await auth.issue({ sub: "a", permissions: ["*"] });
   * const { jti, exp } = await auth.verify(token);
   * await auth.revoke(jti, exp);
   * ```
   */
  async revoke(jti: string, exp?: number): Promise<void> {
    await revoke(this.#pool, jti, exp);
  }

  /**
   * Tells whether a token id was revoked here, from any process: also long after the token
   * expired (revocations are remembered for 10 years), so that work a token set up for later,
   * such as a timer, is not done for a revoked one.
   *
   * @param jti The token id.
   * @returns True when it was revoked.
   * @throws {TypeError} When `jti` is blank.
   * @throws {RangeError} When `jti` is too long.
   *
   * @example
   * ```ts
   * import { KvTokenAuthority } from "@toka/runtime/auth";
   *
   * using kv = await Deno.openKv(":memory:");
   * const auth = await KvTokenAuthority.open(kv);
   * const { jti, exp } = await auth.verify(await auth.issue({ sub: "a", permissions: [] }));
   * console.log(await auth.isRevoked(jti)); // false
   * await auth.revoke(jti, exp);
   * console.log(await auth.isRevoked(jti)); // true
   * ```
   */
  async isRevoked(jti: string): Promise<boolean> {
    return await isRevoked(this.#pool, jti);
  }

  /**
   * Tells whether this vault issued a token id, and until when: every token
   * made by {@linkcode KvTokenAuthority.issue} or
   * {@linkcode KvTokenAuthority.attenuate} is recorded under
   * `["auth", "issued", jti]` until its expiry. A caller about to revoke an id
   * typed by a person can so refuse a typo instead of revoking nothing.
   *
   * @param jti The token id.
   * @returns The token's `exp` in seconds, or undefined when this vault never issued the id,
   *   the token has expired, or it was issued before ids were recorded.
   * @throws {TypeError} When `jti` is blank.
   * @throws {RangeError} When `jti` is too long.
   *
   * @example
   * ```ts
   * import { KvTokenAuthority } from "@toka/runtime/auth";
   *
   * using kv = await Deno.openKv(":memory:");
   * const auth = await KvTokenAuthority.open(kv);
   * const { jti, exp } = await auth.verify(await auth.issue({ sub: "a", permissions: [] }));
   * console.log((await auth.issuedExpiry(jti)) === exp); // true
   * console.log(await auth.issuedExpiry("0".repeat(32))); // undefined
   * ```
   */
  async issuedExpiry(jti: string): Promise<number | undefined> {
    return await issuedExpiry(this.#pool, jti);
  }

  /**
   * Reads the pool afresh and describes it without any secret material.
   *
   * @returns Key ids, states and times of every secret, and the revocation count.
   * @throws {SecretPoolError} When the pool cannot be read.
   *
   * @example
   * ```ts
   * import { KvTokenAuthority } from "@toka/runtime/auth";
   *
   * using kv = await Deno.openKv(":memory:");
   * const auth = await KvTokenAuthority.open(kv);
   * const status = await auth.status();
   * console.log(status.secrets[0].state); // "active"
   * ```
   */
  async status(): Promise<PoolStatus> {
    return await status(this.#pool);
  }
}
