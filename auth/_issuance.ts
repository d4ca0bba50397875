// Making tokens: issuing with the active secret and attenuating a verified parent.
import { CapabilityDeniedError } from "../runtime/errors.ts";
import type { TokenClaims } from "../runtime/token_authority.ts";
import { assertPermission, permits } from "../internal/permissions.ts";
import { claimsProblem, MAX_ANCESTORS, sign } from "./_jws.ts";
import { checkTtl } from "./_options.ts";
import type { PoolCache } from "./_pool_cache.ts";
import { ISSUED_PREFIX, retryLocked } from "./_pool_store.ts";
import type { AttenuateOptions, IssueOptions } from "./kv_token_authority.ts";

export async function issue(pool: PoolCache, request: IssueOptions): Promise<string> {
  if (typeof request !== "object" || request === null) {
    throw new TypeError("Issue request must be an object");
  }
  const { clock, defaultTtlSecs, vault } = pool.config;
  await pool.maybeRefresh(clock());
  const iat = Math.floor(clock() / 1000);
  const ttl = checkTtl(request.ttlSecs ?? defaultTtlSecs);
  if (!Array.isArray(request.permissions)) throw new TypeError("permissions must be an array");
  const claims: TokenClaims = {
    sub: request.sub,
    vault,
    permissions: [...request.permissions],
    iat,
    exp: iat + ttl,
    jti: pool.newId(16),
  };
  if (request.nbf !== undefined) claims.nbf = request.nbf;
  return await signClaims(pool, claims);
}

/** Narrows `parent`, the claims of a token the caller has just verified. */
export async function attenuate(
  pool: PoolCache,
  parent: TokenClaims,
  options: AttenuateOptions,
): Promise<string> {
  if (typeof options !== "object" || options === null || !Array.isArray(options.permissions)) {
    throw new TypeError("permissions must be an array");
  }
  for (const p of options.permissions) {
    assertPermission(p);
    if (!permits(parent.permissions, p)) throw new CapabilityDeniedError(p, parent.sub);
  }
  const iat = Math.floor(pool.config.clock() / 1000);
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
    vault: pool.config.vault,
    permissions: [...options.permissions],
    iat,
    exp,
    jti: pool.newId(16),
  };
  if (parent.nbf !== undefined) claims.nbf = parent.nbf;
  const ancestors = [...(parent.ancestors ?? []), parent.jti];
  if (ancestors.length > MAX_ANCESTORS) {
    throw new RangeError(
      `Cannot attenuate a token attenuated ${MAX_ANCESTORS} times already`,
    );
  }
  claims.ancestors = ancestors;
  return await signClaims(pool, claims);
}

// Every token made here is recorded by id until it expires, so that revoking an id can tell
// a token of this vault from a typo. The record is written before the token is handed out.
async function signClaims(pool: PoolCache, claims: TokenClaims): Promise<string> {
  const problem = claimsProblem(claims as unknown as Record<string, unknown>);
  if (problem) {
    throw problem.kind === "type"
      ? new TypeError(problem.message)
      : new RangeError(problem.message);
  }
  // Never sign with a key another process may have retired since the last read.
  await pool.ensureCurrent();
  const token = sign(claims, pool.active!.kid, pool.active!.bytes);
  const { kv, clock, leewayMs } = pool.config;
  const expireIn = Math.max(1000, claims.exp * 1000 + leewayMs - clock());
  await retryLocked(() => kv.set([...ISSUED_PREFIX, claims.jti], claims.exp, { expireIn }));
  return token;
}
