/**
 * {@linkcode KvTokenAuthority}: issues and verifies capability tokens signed
 * with a secret pool kept in Deno KV, with rotation, revocation and
 * attenuation.
 *
 * @module
 */

import { getLogger } from "@logtape/logtape";
import { CapabilityDeniedError } from "../runtime/errors.ts";
import type { IssueRequest, TokenAuthority, TokenClaims } from "../runtime/token_authority.ts";
import {
  checkSignature,
  claimsProblem,
  decodeClaims,
  MAX_ANCESTORS,
  MAX_ID_LENGTH,
  MAX_LIFETIME_SECS,
  parseToken,
  sign,
} from "./_jws.ts";
import {
  assertWrapped,
  asStoredPool,
  conflictPause,
  fromStored,
  importMasterKey,
  isWrapped,
  MAX_RETIRED,
  POOL_KEY,
  retryLocked,
  REVOCATIONS_MARKER,
  REVOKED_PREFIX,
  type Secret,
  type StoredPool,
  type StoredSecret,
  toStored,
} from "./_pool_store.ts";
import {
  InvalidTokenError,
  SecretPoolError,
  TokenExpiredError,
  TokenRevokedError,
} from "./errors.ts";
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
  /** Clock skew tolerated on `exp`, `nbf` and `iat`; 0 by default. */
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

const UNKNOWN_KID_REFRESH_MS = 100;
const MAX_CAS_ATTEMPTS = 100;
const logger = getLogger(["toka", "auth"]);
const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function defaultRandomBytes(n: number): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(n));
}

function numberOption(name: string, value: number | undefined, fallback: number, max: number) {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0 || value > max) {
    throw new RangeError(`Option "${name}" must be a number from 0 to ${max}`);
  }
  return value;
}

function checkId(name: string, value: unknown): string {
  if (typeof value !== "string" || value.trim().length === 0) {
    throw new TypeError(`${name} must be a non-blank string`);
  }
  if (value.length > MAX_ID_LENGTH) {
    throw new RangeError(
      `${name} must be at most ${MAX_ID_LENGTH} characters, got ${value.length}`,
    );
  }
  return value;
}

function checkTtl(ttl: unknown): number {
  if (!Number.isSafeInteger(ttl) || (ttl as number) <= 0 || (ttl as number) > MAX_LIFETIME_SECS) {
    throw new RangeError(`ttlSecs must be an integer from 1 to ${MAX_LIFETIME_SECS}`);
  }
  return ttl as number;
}

function parseInitialSecret(secret: string | Uint8Array): Uint8Array {
  let bytes: Uint8Array | undefined;
  if (secret instanceof Uint8Array) bytes = secret.slice();
  else if (typeof secret === "string" && /^[A-Za-z0-9_-]+$/.test(secret)) {
    bytes = Uint8Array.fromBase64(secret, { alphabet: "base64url" });
  }
  if (bytes === undefined || bytes.length < 32) {
    throw new RangeError(
      'Option "initialSecret" must be base64url text or bytes of at least 32 bytes',
    );
  }
  return bytes;
}

function freezeClaims(claims: TokenClaims): TokenClaims {
  Object.freeze(claims.permissions);
  if (claims.ancestors !== undefined) Object.freeze(claims.ancestors);
  return Object.freeze(claims);
}

/**
 * A {@linkcode TokenAuthority} backed by Deno KV. Tokens are compact JWS
 * (HS256, `typ: "toka.cap+jwt"`, `kid`) that `jose` verifies too.
 *
 * The secret pool lives under `["auth", "pool"]` and revocations under
 * `["auth", "revoked", jti]`. Verification reads only memory: the pool and
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

  #kv: Deno.Kv;
  #clock: () => number;
  #mono: () => number;
  #randomBytes: (n: number) => Uint8Array;
  #retiredTtlMs: number;
  #leewayMs: number;
  #defaultTtlSecs: number;
  #refreshMs: number;
  #cacheSize: number;
  #masterKey: CryptoKey | undefined;

  #secrets = new Map<string, Secret>();
  #active: Secret | undefined;
  #poolStamp = "";
  #revokedStamp = "";
  #wrapped = false;
  #revoked = new Map<string, number>();
  #cache = new Map<string, { claims: TokenClaims; kid: string }>();
  #refreshedAt = -Infinity;
  // Pool reads: how many started, the one in flight, when the last started (real time).
  #readsStarted = 0;
  #readsDone = 0;
  #reading: { n: number; done: Promise<void> } | undefined;
  #lastReadStart = -Infinity;
  #nextReadSlot: Promise<void> | undefined;

  private constructor(
    kv: Deno.Kv,
    options: KvTokenAuthorityOptions,
    masterKey: CryptoKey | undefined,
  ) {
    this.#kv = kv;
    this.vault = checkId('Option "vault"', options.vault ?? "default");
    this.#clock = options.clock ?? Date.now;
    this.#mono = options.monotonicClock ?? (() => performance.now());
    this.#randomBytes = options.randomBytes ?? defaultRandomBytes;
    this.#retiredTtlMs = 1000 * numberOption("retiredTtlSecs", options.retiredTtlSecs, 300, 86_400);
    this.#leewayMs = 1000 * numberOption("leewaySecs", options.leewaySecs, 0, 300);
    this.#defaultTtlSecs = checkTtl(options.defaultTtlSecs ?? 3600);
    this.#refreshMs = 1000 *
      numberOption("refreshIntervalSecs", options.refreshIntervalSecs, 1, 3600);
    this.#cacheSize = Math.floor(
      numberOption("verifyCacheSize", options.verifyCacheSize, 1024, 1_000_000),
    );
    this.#masterKey = masterKey;
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
  static async open(kv: Deno.Kv, options: KvTokenAuthorityOptions = {}): Promise<KvTokenAuthority> {
    const initial = options.initialSecret === undefined
      ? undefined
      : parseInitialSecret(options.initialSecret);
    const masterKey = options.masterKey === undefined
      ? undefined
      : await importMasterKey(parseMasterKey(options.masterKey));
    const authority = new KvTokenAuthority(kv, options, masterKey);
    await authority.#bootstrap(initial, options.wrapRawSecrets === true);
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
    if (typeof request !== "object" || request === null) {
      throw new TypeError("Issue request must be an object");
    }
    await this.#maybeRefresh(this.#clock());
    const iat = Math.floor(this.#clock() / 1000);
    const ttl = checkTtl(request.ttlSecs ?? this.#defaultTtlSecs);
    if (!Array.isArray(request.permissions)) throw new TypeError("permissions must be an array");
    const claims: TokenClaims = {
      sub: request.sub,
      vault: this.vault,
      permissions: [...request.permissions],
      iat,
      exp: iat + ttl,
      jti: this.#newId(16),
    };
    if (request.nbf !== undefined) claims.nbf = request.nbf;
    return this.#sign(claims);
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
    const now = this.#clock();
    await this.#maybeRefresh(now);
    try {
      return this.#check(token, now);
    } catch (error) {
      if (!(error instanceof InvalidTokenError) || error.reason !== "unknown_kid") throw error;
      // Another process may have rotated: wait for a read that starts after this moment.
      // Reads are shared and rate-limited, so a flood of bogus kids costs at most one read
      // per 100 ms, and never makes a valid token fail.
      await this.#readAfter(this.#readsStarted);
      return this.#check(token, this.#clock());
    }
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
    if (typeof options !== "object" || options === null || !Array.isArray(options.permissions)) {
      throw new TypeError("permissions must be an array");
    }
    for (const p of options.permissions) {
      assertPermission(p);
      if (!permits(parent.permissions, p)) throw new CapabilityDeniedError(p, parent.sub);
    }
    const iat = Math.floor(this.#clock() / 1000);
    let exp = parent.exp;
    if (options.ttlSecs !== undefined) {
      exp = iat + checkTtl(options.ttlSecs);
      if (exp > parent.exp) {
        throw new RangeError(
          `ttlSecs ${options.ttlSecs} would outlive the parent token, which expires in ${
            parent.exp - iat
          } seconds`,
        );
      }
    }
    const claims: TokenClaims = {
      sub: parent.sub,
      vault: this.vault,
      permissions: [...options.permissions],
      iat,
      exp,
      jti: this.#newId(16),
    };
    if (parent.nbf !== undefined) claims.nbf = parent.nbf;
    const ancestors = [...(parent.ancestors ?? []), parent.jti];
    if (ancestors.length > MAX_ANCESTORS) {
      throw new RangeError(
        `Cannot attenuate a token attenuated ${MAX_ANCESTORS} times already`,
      );
    }
    claims.ancestors = ancestors;
    return this.#sign(claims);
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
    const fresh: Secret = {
      kid: this.#newId(8),
      createdAt: this.#clock(),
      bytes: this.#newSecret(),
    };
    const stored = await toStored(fresh, this.#masterKey, this.#randomBytes);
    for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
      const entry = await retryLocked(() => this.#kv.get(POOL_KEY));
      let next: StoredPool;
      if (entry.versionstamp === null) next = { v: 1, active: stored, retired: [] };
      else {
        const pool = asStoredPool(entry.value);
        assertWrapped(pool, this.#masterKey);
        // A commit reported as failed may still have landed; never rotate twice.
        if ([pool.active, ...pool.retired].some((s) => s.kid === fresh.kid)) break;
        const now = this.#clock();
        const retired = [{ ...pool.active, retiredAt: now }, ...pool.retired]
          .filter((s) => now < s.retiredAt! + this.#retiredTtlMs);
        if (retired.length > MAX_RETIRED) this.#poolFull(retired);
        next = { v: 1, active: stored, retired };
      }
      const result = await retryLocked(() =>
        this.#kv.atomic().check(entry).set(POOL_KEY, next).commit()
      );
      if (result.ok) break;
      await conflictPause(attempt);
      if (attempt === MAX_CAS_ATTEMPTS - 1) {
        throw new SecretPoolError(
          "secret_pool_busy",
          "Cannot rotate the secret: too many conflicts",
        );
      }
    }
    await this.#load();
    return { kid: fresh.kid };
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
    checkId("jti", jti);
    const now = this.#clock();
    const until = exp ?? Math.ceil(now / 1000) + MAX_LIFETIME_SECS;
    if (!Number.isSafeInteger(until)) throw new TypeError("exp must be an integer of seconds");
    const remainingMs = until * 1000 + this.#leewayMs - now;
    if (remainingMs > 2 * MAX_LIFETIME_SECS * 1000) {
      throw new RangeError("exp must be at most 48 hours from now, in seconds since the epoch");
    }
    await retryLocked(() =>
      this.#kv.atomic()
        .set([...REVOKED_PREFIX, jti], until, { expireIn: Math.max(1000, remainingMs) })
        .set(REVOCATIONS_MARKER, now)
        .commit()
    );
    this.#revoked.set(jti, until);
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
    await this.#load();
    const now = this.#clock();
    const secrets: SecretInfo[] = [...this.#secrets.values()]
      .sort((a, b) => (b.retiredAt ?? Infinity) - (a.retiredAt ?? Infinity))
      .map((s) => {
        if (s.retiredAt === undefined) {
          return { kid: s.kid, state: "active", createdAt: s.createdAt };
        }
        const validUntil = s.retiredAt + this.#retiredTtlMs;
        return {
          kid: s.kid,
          state: this.#retiredExpired(s, now) ? "expired" : "retired",
          createdAt: s.createdAt,
          retiredAt: s.retiredAt,
          validUntil,
        };
      });
    let revoked = 0;
    for (const exp of this.#revoked.values()) if (exp * 1000 + this.#leewayMs > now) revoked++;
    return {
      vault: this.vault,
      activeKid: this.#active!.kid,
      wrapped: this.#wrapped,
      retiredTtlSecs: this.#retiredTtlMs / 1000,
      secrets,
      revoked,
    };
  }

  // Hex, so that an id never starts with "-" and reads as an option on a command line.
  #newId(bytes: number): string {
    return Array.from(this.#takeRandom(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
  }

  #newSecret(): Uint8Array {
    return this.#takeRandom(32).slice();
  }

  #takeRandom(n: number): Uint8Array {
    const bytes = this.#randomBytes(n);
    if (!(bytes instanceof Uint8Array) || bytes.length !== n) {
      throw new RangeError(`randomBytes(${n}) must return ${n} bytes`);
    }
    return bytes;
  }

  #sign(claims: TokenClaims): string {
    const problem = claimsProblem(claims as unknown as Record<string, unknown>);
    if (problem) {
      throw problem.kind === "type"
        ? new TypeError(problem.message)
        : new RangeError(problem.message);
    }
    return sign(claims, this.#active!.kid, this.#active!.bytes);
  }

  #usableSecret(kid: string, now: number): Secret {
    const secret = this.#secrets.get(kid);
    if (secret === undefined) throw new InvalidTokenError("unknown_kid");
    if (this.#retiredExpired(secret, now)) throw new InvalidTokenError("key_expired");
    return secret;
  }

  // By the wall clock, but never longer than retiredTtlSecs after this process first saw the
  // retirement by its monotonic clock: a backward jump of the wall clock extends nothing.
  #retiredExpired(secret: Secret, now: number): boolean {
    return secret.retiredAt !== undefined &&
      (now >= secret.retiredAt + this.#retiredTtlMs ||
        this.#mono() - secret.seenRetiredAt! >= this.#retiredTtlMs);
  }

  #poolFull(retired: StoredSecret[]): never {
    const freeAt = Math.min(...retired.map((s) => s.retiredAt!)) + this.#retiredTtlMs;
    throw new SecretPoolError(
      "secret_pool_full",
      `Cannot rotate the secret: ${MAX_RETIRED} retired secrets are still within their grace (retiredTtlSecs ${
        this.#retiredTtlMs / 1000
      }), and another rotation would end one early; try again after ${
        new Date(freeAt).toISOString()
      }`,
    );
  }

  #check(token: string, now: number): TokenClaims {
    const hit = this.#cache.get(token);
    let claims: TokenClaims;
    if (hit !== undefined) {
      this.#usableSecret(hit.kid, now);
      claims = hit.claims;
    } else {
      const parsed = parseToken(token);
      checkSignature(parsed, this.#usableSecret(parsed.kid, now).bytes);
      claims = freezeClaims(decodeClaims(parsed));
      if (claims.vault !== this.vault) throw new InvalidTokenError("wrong_vault");
      this.#checkTimes(claims, now);
      if (this.#cacheSize > 0) {
        if (this.#cache.size >= this.#cacheSize) {
          this.#cache.delete(this.#cache.keys().next().value!);
        }
        this.#cache.set(token, { claims, kid: parsed.kid });
      }
      return claims;
    }
    this.#checkTimes(claims, now);
    return claims;
  }

  #checkTimes(claims: TokenClaims, now: number): void {
    if (now >= claims.exp * 1000 + this.#leewayMs) throw new TokenExpiredError(claims.exp);
    // Otherwise a token "issued" in the future would escape the lifetime cap and outlive
    // its revocation, which is kept only until the latest possible expiry.
    if (claims.iat * 1000 > now + this.#leewayMs) throw new InvalidTokenError("issued_in_future");
    if (claims.nbf !== undefined && now + this.#leewayMs < claims.nbf * 1000) {
      throw new InvalidTokenError("not_yet_valid");
    }
    if (this.#revoked.has(claims.jti)) throw new TokenRevokedError(claims.jti);
    // Revoking a token revokes every token attenuated from it.
    for (const ancestor of claims.ancestors ?? []) {
      if (this.#revoked.has(ancestor)) throw new TokenRevokedError(ancestor, claims.jti);
    }
  }

  async #bootstrap(initial: Uint8Array | undefined, wrapRaw: boolean): Promise<void> {
    const entry = await retryLocked(() => this.#kv.get(POOL_KEY));
    if (entry.versionstamp === null) {
      const secret: Secret = {
        kid: this.#newId(8),
        createdAt: this.#clock(),
        bytes: initial ?? this.#newSecret(),
      };
      const value: StoredPool = {
        v: 1,
        active: await toStored(secret, this.#masterKey, this.#randomBytes),
        retired: [],
      };
      // Losing this race is fine: the winner's pool is read below.
      await retryLocked(() =>
        this.#kv.atomic().check({ key: POOL_KEY, versionstamp: null }).set(POOL_KEY, value).commit()
      );
    } else if (wrapRaw && this.#masterKey !== undefined) {
      await this.#wrapRawSecrets();
    }
    await this.#load();
  }

  // The explicit migration of a raw pool: wraps every raw secret in one
  // compare-and-set, and says which.
  async #wrapRawSecrets(): Promise<void> {
    for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
      const entry = await retryLocked(() => this.#kv.get(POOL_KEY));
      const pool = asStoredPool(entry.value);
      const raw = [pool.active, ...pool.retired].filter((s) => s.secret !== undefined);
      if (raw.length === 0) return;
      const wrap = async (s: StoredSecret) =>
        s.secret === undefined
          ? s
          : await toStored(await fromStored(s, undefined), this.#masterKey, this.#randomBytes);
      const next: StoredPool = {
        v: 1,
        active: await wrap(pool.active),
        retired: await Promise.all(pool.retired.map(wrap)),
      };
      const result = await retryLocked(() =>
        this.#kv.atomic().check(entry).set(POOL_KEY, next).commit()
      );
      if (result.ok) {
        logger.warn("Wrapped {count} raw secrets of the pool with the master key: {kids}", {
          count: raw.length,
          kids: raw.map((s) => s.kid),
        });
        return;
      }
      await conflictPause(attempt);
    }
    throw new SecretPoolError(
      "secret_pool_busy",
      "Cannot wrap the secret pool: too many conflicts",
    );
  }

  #maybeRefresh(now: number): Promise<void> | undefined {
    if (now - this.#refreshedAt >= this.#refreshMs || now < this.#refreshedAt) {
      return this.#refresh();
    }
  }

  /** Re-reads the pool, sharing one read among concurrent callers. */
  #refresh(): Promise<void> {
    return this.#reading?.done ?? this.#startRead();
  }

  #startRead(): Promise<void> {
    const n = ++this.#readsStarted;
    this.#lastReadStart = performance.now();
    const done = this.#load().finally(() => {
      this.#readsDone = Math.max(this.#readsDone, n);
      if (this.#reading?.n === n) this.#reading = undefined;
    });
    this.#reading = { n, done };
    return done;
  }

  /** Waits for a read that started after `after` reads had started, starting one if needed. */
  async #readAfter(after: number): Promise<void> {
    for (;;) {
      const reading = this.#reading;
      if (reading !== undefined && reading.n > after) return await reading.done;
      if (this.#readsDone > after) return;
      if (reading !== undefined) {
        await reading.done.catch(() => {});
        continue;
      }
      // Rate-limited: one read per 100 ms at most, shared by every waiter.
      this.#nextReadSlot ??= delay(
        Math.max(0, this.#lastReadStart + UNKNOWN_KID_REFRESH_MS - performance.now()),
      ).finally(() => this.#nextReadSlot = undefined);
      await this.#nextReadSlot;
      if (this.#reading === undefined && this.#readsStarted <= after) this.#startRead();
    }
  }

  async #load(): Promise<void> {
    const [pool, marker] = await retryLocked(() =>
      this.#kv.getMany([POOL_KEY, REVOCATIONS_MARKER])
    );
    if (pool.versionstamp === null) {
      throw new SecretPoolError(
        "secret_pool_corrupt",
        `The secret pool at ["auth","pool"] is missing`,
      );
    }
    // Versionstamps only grow: an older read finishing late never undoes a newer one.
    if (pool.versionstamp > this.#poolStamp) {
      const stored = asStoredPool(pool.value);
      assertWrapped(stored, this.#masterKey);
      const seenAt = this.#mono();
      const secrets = new Map<string, Secret>();
      for (const s of [stored.active, ...stored.retired]) {
        const known = this.#secrets.get(s.kid);
        const secret = known === undefined
          ? await fromStored(s, this.#masterKey)
          : { kid: s.kid, createdAt: s.createdAt, bytes: known.bytes } as Secret;
        if (s.retiredAt !== undefined) {
          secret.retiredAt = s.retiredAt;
          secret.seenRetiredAt = known?.seenRetiredAt ?? seenAt;
        }
        secrets.set(s.kid, secret);
      }
      if (pool.versionstamp > this.#poolStamp) {
        this.#secrets = secrets;
        this.#active = secrets.get(stored.active.kid);
        this.#wrapped = isWrapped(stored);
        this.#poolStamp = pool.versionstamp;
      }
    }
    if (marker.versionstamp !== null && marker.versionstamp > this.#revokedStamp) {
      const listed = await retryLocked(() =>
        Array.fromAsync(this.#kv.list<number>({ prefix: REVOKED_PREFIX }))
      );
      const now = this.#clock();
      // Merge, so a revocation made here while this read was in flight is kept.
      for (const e of listed) this.#revoked.set(e.key[2] as string, e.value);
      for (const [jti, exp] of this.#revoked) {
        if (exp * 1000 + this.#leewayMs <= now) this.#revoked.delete(jti);
      }
      this.#revokedStamp = marker.versionstamp;
    }
    this.#refreshedAt = this.#clock();
  }
}
