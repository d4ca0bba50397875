// Writes to the secret pool: creating it, the raw-to-wrapped migration and rotation, each a
// compare-and-set retried on conflict.
import { getLogger } from "@logtape/logtape";
import type { PoolCache } from "./_pool_cache.ts";
import {
  assertWrapped,
  asStoredPool,
  conflictPause,
  fromStored,
  MAX_RETIRED,
  POOL_KEY,
  retryLocked,
  type Secret,
  type StoredPool,
  type StoredSecret,
  toStored,
} from "./_pool_store.ts";
import { SecretPoolError } from "./errors.ts";

const MAX_CAS_ATTEMPTS = 100;
const logger = getLogger(["toka", "auth"]);

export async function bootstrap(
  cache: PoolCache,
  initial: Uint8Array | undefined,
  wrapRaw: boolean,
): Promise<void> {
  const { kv, clock, masterKey, randomBytes } = cache.config;
  const entry = await retryLocked(() => kv.get(POOL_KEY));
  if (entry.versionstamp === null) {
    const secret: Secret = {
      kid: cache.newId(8),
      createdAt: clock(),
      bytes: initial ?? cache.newSecret(),
    };
    const value: StoredPool = {
      v: 1,
      active: await toStored(secret, masterKey, randomBytes),
      retired: [],
    };
    // Losing this race is fine: the winner's pool is read below.
    await retryLocked(() =>
      kv.atomic().check({ key: POOL_KEY, versionstamp: null }).set(POOL_KEY, value).commit()
    );
  } else if (wrapRaw && masterKey !== undefined) {
    await wrapRawSecrets(cache);
  }
  await cache.load();
}

// The explicit migration of a raw pool: wraps every raw secret in one
// compare-and-set, and says which.
async function wrapRawSecrets(cache: PoolCache): Promise<void> {
  const { kv, masterKey, randomBytes } = cache.config;
  for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
    const entry = await retryLocked(() => kv.get(POOL_KEY));
    const pool = asStoredPool(entry.value);
    const raw = [pool.active, ...pool.retired].filter((s) => s.secret !== undefined);
    if (raw.length === 0) return;
    const wrap = async (s: StoredSecret) =>
      s.secret === undefined
        ? s
        : await toStored(await fromStored(s, undefined), masterKey, randomBytes);
    const next: StoredPool = {
      v: 1,
      active: await wrap(pool.active),
      retired: await Promise.all(pool.retired.map(wrap)),
    };
    const result = await retryLocked(() => kv.atomic().check(entry).set(POOL_KEY, next).commit());
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

export async function rotate(cache: PoolCache): Promise<{ kid: string }> {
  const { kv, clock, masterKey, randomBytes, retiredTtlMs } = cache.config;
  const fresh: Secret = {
    kid: cache.newId(8),
    createdAt: clock(),
    bytes: cache.newSecret(),
  };
  const stored = await toStored(fresh, masterKey, randomBytes);
  for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
    const entry = await retryLocked(() => kv.get(POOL_KEY));
    let next: StoredPool;
    if (entry.versionstamp === null) next = { v: 1, active: stored, retired: [] };
    else {
      const pool = asStoredPool(entry.value);
      assertWrapped(pool, masterKey);
      // A commit reported as failed may still have landed; never rotate twice.
      if ([pool.active, ...pool.retired].some((s) => s.kid === fresh.kid)) break;
      const now = clock();
      const retired = [{ ...pool.active, retiredAt: now }, ...pool.retired]
        .filter((s) => now < s.retiredAt! + retiredTtlMs);
      if (retired.length > MAX_RETIRED) poolFull(retired, retiredTtlMs);
      next = { v: 1, active: stored, retired };
    }
    const result = await retryLocked(() => kv.atomic().check(entry).set(POOL_KEY, next).commit());
    if (result.ok) break;
    await conflictPause(attempt);
    if (attempt === MAX_CAS_ATTEMPTS - 1) {
      throw new SecretPoolError(
        "secret_pool_busy",
        "Cannot rotate the secret: too many conflicts",
      );
    }
  }
  await cache.load();
  return { kid: fresh.kid };
}

function poolFull(retired: StoredSecret[], retiredTtlMs: number): never {
  const freeAt = Math.min(...retired.map((s) => s.retiredAt!)) + retiredTtlMs;
  throw new SecretPoolError(
    "secret_pool_full",
    `Cannot rotate the secret: ${MAX_RETIRED} retired secrets are still within their grace (retiredTtlSecs ${
      retiredTtlMs / 1000
    }), and another rotation would end one early; try again after ${
      new Date(freeAt).toISOString()
    }`,
  );
}
