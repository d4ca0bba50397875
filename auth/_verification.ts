// Token verification against the cached pool and revocations, with a cache of verified
// tokens (still re-checked for key expiry, times and revocation on every call).
import type { TokenClaims } from "../runtime/token_authority.ts";
import { checkSignature, decodeClaims, parseToken } from "./_jws.ts";
import { freezeClaims } from "./_options.ts";
import type { PoolCache } from "./_pool_cache.ts";
import { InvalidTokenError, TokenExpiredError, TokenRevokedError } from "./errors.ts";

/** How far in the future (by this verifier's clock) a token's `iat` may be, at least. */
const IAT_LEEWAY_MS = 60_000;

export class TokenVerifier {
  #pool: PoolCache;
  #cache = new Map<string, { claims: TokenClaims; kid: string }>();

  constructor(pool: PoolCache) {
    this.#pool = pool;
  }

  async verify(token: string): Promise<TokenClaims> {
    const pool = this.#pool;
    const now = pool.config.clock();
    await pool.maybeRefresh(now);
    try {
      return this.#check(token, now);
    } catch (error) {
      if (!(error instanceof InvalidTokenError) || error.reason !== "unknown_kid") throw error;
      // Another process may have rotated: wait for a read that starts after this moment.
      // Reads are shared and rate-limited, so a flood of bogus kids costs at most one read
      // per 100 ms, and never makes a valid token fail.
      await pool.readAfter(pool.readsStarted);
      return this.#check(token, pool.config.clock());
    }
  }

  #check(token: string, now: number): TokenClaims {
    const pool = this.#pool;
    const hit = this.#cache.get(token);
    let claims: TokenClaims;
    if (hit !== undefined) {
      pool.usableSecret(hit.kid, now);
      claims = hit.claims;
    } else {
      const parsed = parseToken(token);
      checkSignature(parsed, pool.usableSecret(parsed.kid, now).bytes);
      claims = freezeClaims(decodeClaims(parsed));
      if (claims.vault !== pool.config.vault) throw new InvalidTokenError("wrong_vault");
      this.#checkTimes(claims, now);
      const size = pool.config.cacheSize;
      if (size > 0) {
        if (this.#cache.size >= size) {
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
    const { leewayMs } = this.#pool.config;
    const revoked = this.#pool.revoked;
    if (now >= claims.exp * 1000 + leewayMs) throw new TokenExpiredError(claims.exp);
    // Otherwise a token "issued" in the future would escape the lifetime cap and outlive
    // its revocation, which is kept only until the latest possible expiry. A minute at
    // least is tolerated: the issuer's clock may be a little ahead, or this one was
    // stepped back (by NTP, say) since.
    if (claims.iat * 1000 > now + Math.max(leewayMs, IAT_LEEWAY_MS)) {
      throw new InvalidTokenError("issued_in_future");
    }
    if (claims.nbf !== undefined && now + leewayMs < claims.nbf * 1000) {
      throw new InvalidTokenError("not_yet_valid");
    }
    if (revoked.has(claims.jti)) throw new TokenRevokedError(claims.jti);
    // Revoking a token revokes every token attenuated from it.
    for (const ancestor of claims.ancestors ?? []) {
      if (revoked.has(ancestor)) throw new TokenRevokedError(ancestor, claims.jti);
    }
  }
}
