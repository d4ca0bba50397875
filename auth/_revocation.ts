// Revoking token ids, and describing the pool and revocations for `toka auth status`.
import { MAX_LIFETIME_SECS } from "./_jws.ts";
import { checkId } from "./_options.ts";
import type { PoolCache } from "./_pool_cache.ts";
import { ISSUED_PREFIX, retryLocked, REVOCATIONS_MARKER, REVOKED_PREFIX } from "./_pool_store.ts";
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
      .set(REVOCATIONS_MARKER, now)
      .commit()
  );
  pool.revoked.set(jti, until);
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
  const secrets: SecretInfo[] = [...pool.secrets.values()]
    .sort((a, b) => (b.retiredAt ?? Infinity) - (a.retiredAt ?? Infinity))
    .map((s) => {
      if (s.retiredAt === undefined) {
        return { kid: s.kid, state: "active", createdAt: s.createdAt };
      }
      const validUntil = s.retiredAt + retiredTtlMs;
      return {
        kid: s.kid,
        state: pool.retiredExpired(s, now) ? "expired" : "retired",
        createdAt: s.createdAt,
        retiredAt: s.retiredAt,
        validUntil,
      };
    });
  let revoked = 0;
  for (const exp of pool.revoked.values()) if (exp * 1000 + leewayMs > now) revoked++;
  return {
    vault,
    activeKid: pool.active!.kid,
    wrapped: pool.wrapped,
    retiredTtlSecs: retiredTtlMs / 1000,
    secrets,
    revoked,
  };
}
