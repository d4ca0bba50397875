// Revoking token ids, and describing the pool and revocations for `toka auth status`.
import { MAX_LIFETIME_SECS } from "./_jws.ts";
import { checkId } from "./_options.ts";
import type { PoolCache } from "./_pool_cache.ts";
import type { Kv } from "../internal/platform.ts";
import {
  asStoredPool,
  ISSUED_PREFIX,
  isWrapped,
  POOL_KEY,
  REMEMBER_REVOKED_MS,
  REMEMBERED_PREFIX,
  retryLocked,
  REVOCATIONS_MARKER,
  REVOKED_PREFIX,
  type Secret,
} from "./_pool_store.ts";
import type { PoolStatus, SecretInfo } from "./kv_token_authority.ts";

export async function revoke(pool: PoolCache, jti: string, exp?: number): Promise<void> {
  checkId("jti", jti);
  const { kv, clock, leewayMs } = pool.config;
  const now = clock();
  const until = exp ?? Math.ceil(now / 1000) + MAX_LIFETIME_SECS;
  if (!Number.isSafeInteger(until)) throw new TypeError("exp must be an integer of seconds");
  const remainingMs = until * 1000 + leewayMs - now;
  if (remainingMs > 2 * MAX_LIFETIME_SECS * 1000) {
    throw new RangeError("exp must be at most 48 hours from now, in seconds since the epoch");
  }
  await retryLocked(() =>
    kv.atomic()
      .set([...REVOKED_PREFIX, jti], until, { expireIn: Math.max(1000, remainingMs) })
      .set([...REMEMBERED_PREFIX, jti], now, { expireIn: REMEMBER_REVOKED_MS })
      .set(REVOCATIONS_MARKER, now)
      .commit()
  );
  pool.revoked.set(jti, until);
}

/** Whether a token id was revoked, read from KV (another process's revocation too). */
export async function isRevoked(pool: PoolCache, jti: string): Promise<boolean> {
  checkId("jti", jti);
  if (pool.revoked.has(jti)) return true;
  const { kv } = pool.config;
  const entries = await retryLocked(() =>
    kv.getMany([[...REVOKED_PREFIX, jti], [...REMEMBERED_PREFIX, jti]])
  );
  return entries.some((entry) => entry.versionstamp !== null);
}

/** The recorded `exp` of a token id issued here, or undefined when unknown or expired. */
export async function issuedExpiry(pool: PoolCache, jti: string): Promise<number | undefined> {
  checkId("jti", jti);
  const { kv, clock, leewayMs } = pool.config;
  const { value } = await retryLocked(() => kv.get<number>([...ISSUED_PREFIX, jti]));
  // KV's expireIn is only a lower bound: an entry past the token's expiry may linger.
  if (typeof value !== "number" || value * 1000 + leewayMs <= clock()) return undefined;
  return value;
}

export async function status(pool: PoolCache): Promise<PoolStatus> {
  await pool.load();
  const { clock, retiredTtlMs, leewayMs, vault } = pool.config;
  const now = clock();
  let revoked = 0;
  for (const exp of pool.revoked.values()) if (exp * 1000 + leewayMs > now) revoked++;
  return {
    vault,
    activeKid: pool.active!.kid,
    wrapped: pool.wrapped,
    retiredTtlSecs: retiredTtlMs / 1000,
    secrets: describeSecrets(
      [...pool.secrets.values()],
      retiredTtlMs,
      (s) => pool.retiredExpired(s as Secret, now),
    ),
    revoked,
  };
}

/** What {@linkcode readStatus} needs of the authority's options. */
export interface StatusConfig {
  vault: string;
  clock: () => number;
  retiredTtlMs: number;
  leewayMs: number;
}

/**
 * The pool's status read straight from KV, unwrapping nothing: key ids, states and times are
 * not secret, so a reader without the master key may see them. Null when there is no pool.
 */
export async function readStatus(kv: Kv, config: StatusConfig): Promise<PoolStatus | null> {
  const { clock, retiredTtlMs, leewayMs, vault } = config;
  const entry = await retryLocked(() => kv.get(POOL_KEY));
  if (entry.versionstamp === null) return null;
  const stored = asStoredPool(entry.value);
  const revocations = await retryLocked(async () => {
    const values: unknown[] = [];
    for await (const e of kv.list({ prefix: REVOKED_PREFIX })) values.push(e.value);
    return values;
  });
  const now = clock();
  return {
    vault,
    activeKid: stored.active.kid,
    wrapped: isWrapped(stored),
    retiredTtlSecs: retiredTtlMs / 1000,
    secrets: describeSecrets(
      [stored.active, ...stored.retired],
      retiredTtlMs,
      (s) => now >= s.retiredAt! + retiredTtlMs,
    ),
    revoked: revocations.filter((exp) => typeof exp === "number" && exp * 1000 + leewayMs > now)
      .length,
  };
}

interface SecretTimes {
  kid: string;
  createdAt: number;
  retiredAt?: number;
}

// The active secret first, then retired ones, newest first.
function describeSecrets(
  secrets: SecretTimes[],
  retiredTtlMs: number,
  expired: (s: SecretTimes) => boolean,
): SecretInfo[] {
  return [...secrets]
    .sort((a, b) => (b.retiredAt ?? Infinity) - (a.retiredAt ?? Infinity))
    .map((s) => {
      if (s.retiredAt === undefined) return { kid: s.kid, state: "active", createdAt: s.createdAt };
      return {
        kid: s.kid,
        state: expired(s) ? "expired" : "retired",
        createdAt: s.createdAt,
        retiredAt: s.retiredAt,
        validUntil: s.retiredAt + retiredTtlMs,
      };
    });
}
