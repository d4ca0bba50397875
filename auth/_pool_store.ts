// The secret pool and the revocation list in Deno KV. One key holds the whole
// pool so a rotation is one compare-and-set on its versionstamp.
import type { KvKey } from "../internal/platform.ts";
import { isLocked, retryLocked as retryWhileLocked } from "../internal/kv_retry.ts";
import { delay } from "../internal/retry.ts";
import { SecretPoolError } from "./errors.ts";

/** The one KV key that holds the whole secret pool. */
export const POOL_KEY: KvKey = ["auth", "pool"];
export const REVOKED_PREFIX: KvKey = ["auth", "revoked"];
/**
 * Every revoked token id, valued by when it was revoked, kept for REMEMBER_REVOKED_MS: long
 * after the token expires (when REVOKED_PREFIX's entry goes), so that a timer it scheduled
 * for later is still known to be a revoked token's.
 */
export const REMEMBERED_PREFIX: KvKey = ["auth", "revoked_ids"];
/** Longer than a timer can wait (10 years): 3654 days. */
export const REMEMBER_REVOKED_MS = 3654 * 86_400_000;
/** Every token id issued here, valued by its `exp`, kept until then (for `toka auth revoke`). */
export const ISSUED_PREFIX: KvKey = ["auth", "issued"];
/** Rewritten by every revocation, so a reader lists revocations only when it moved. */
export const REVOCATIONS_MARKER: KvKey = ["auth", "revocations"];
/** Older retired secrets are dropped first beyond this, keeping the value far below 64 KiB. */
export const MAX_RETIRED = 100;

const LOCKED_MESSAGE = "Cannot unwrap the secret pool: wrong or missing TOKA_MASTER_KEY";
const enc = new TextEncoder();

/** A secret as stored: raw, or wrapped with AES-GCM under the master key (AAD = kid). */
export interface StoredSecret {
  kid: string;
  createdAt: number;
  retiredAt?: number;
  secret?: Uint8Array;
  iv?: Uint8Array;
  wrapped?: Uint8Array;
}

/** The value under {@link POOL_KEY}. */
export interface StoredPool {
  v: 1;
  active: StoredSecret;
  retired: StoredSecret[];
}

/** A usable secret. */
export interface Secret {
  kid: string;
  createdAt: number;
  retiredAt?: number;
  /** When this process first saw it retired, by its monotonic clock. */
  seenRetiredAt?: number;
  /**
   * Where this process counts the grace from, by its own wall clock: `retiredAt` kept between
   * the start of the last read that had the secret active and the read that saw it retired.
   */
  graceFrom?: number;
  bytes: Uint8Array;
}

/** Runs a KV call, retrying while SQLite reports the file locked by another process. */
export async function retryLocked<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await retryWhileLocked(fn);
  } catch (error) {
    if (!isLocked(error)) throw error;
    throw new SecretPoolError("secret_pool_busy", "The secret pool stayed locked; try again", {
      cause: error,
    });
  }
}

/** Backs off a little between compare-and-set attempts so racing writers spread out. */
export async function conflictPause(attempt: number): Promise<void> {
  await delay(Math.random() * Math.min(20, attempt + 1));
}

function isSecretShape(s: unknown): s is StoredSecret {
  if (typeof s !== "object" || s === null) return false;
  const x = s as StoredSecret;
  return typeof x.kid === "string" && typeof x.createdAt === "number" &&
    (x.retiredAt === undefined || typeof x.retiredAt === "number") &&
    (x.secret instanceof Uint8Array ||
      (x.iv instanceof Uint8Array && x.wrapped instanceof Uint8Array));
}

/** Checks the shape of a stored pool value. */
export function asStoredPool(value: unknown): StoredPool {
  const p = value as StoredPool;
  if (
    typeof p !== "object" || p === null || p.v !== 1 || !isSecretShape(p.active) ||
    !Array.isArray(p.retired) || !p.retired.every(isSecretShape)
  ) {
    throw new SecretPoolError(
      "secret_pool_corrupt",
      `The secret pool at ["auth","pool"] is corrupt`,
    );
  }
  return p;
}

/**
 * With a master key, every secret must be wrapped: anyone able to write the KV
 * could have planted a raw one to sign tokens of their choosing.
 */
export function assertWrapped(pool: StoredPool, masterKey: CryptoKey | undefined): void {
  if (masterKey === undefined) return;
  const raw = [pool.active, ...pool.retired].find((s) => s.secret !== undefined);
  if (raw !== undefined) {
    throw new SecretPoolError(
      "secret_pool_unwrapped",
      `The secret pool holds an unwrapped secret ${
        JSON.stringify(raw.kid.slice(0, 64))
      } while a master key is configured: refusing it`,
    );
  }
}

/** Whether every secret of the pool is wrapped. */
export function isWrapped(pool: StoredPool): boolean {
  return [pool.active, ...pool.retired].every((s) => s.secret === undefined);
}

/** Imports the master key for AES-GCM. */
export function importMasterKey(bytes: Uint8Array): Promise<CryptoKey> {
  return crypto.subtle.importKey("raw", bytes as Uint8Array<ArrayBuffer>, "AES-GCM", false, [
    "encrypt",
    "decrypt",
  ]);
}

/** Stores a secret wrapped when a master key is given, raw otherwise. */
export async function toStored(
  secret: Secret,
  masterKey: CryptoKey | undefined,
  randomBytes: (n: number) => Uint8Array,
): Promise<StoredSecret> {
  const meta: StoredSecret = { kid: secret.kid, createdAt: secret.createdAt };
  if (secret.retiredAt !== undefined) meta.retiredAt = secret.retiredAt;
  if (masterKey === undefined) return { ...meta, secret: secret.bytes };
  const iv = randomBytes(12);
  const wrapped = new Uint8Array(
    await crypto.subtle.encrypt(
      {
        name: "AES-GCM",
        iv: iv as Uint8Array<ArrayBuffer>,
        additionalData: enc.encode(secret.kid),
      },
      masterKey,
      secret.bytes as Uint8Array<ArrayBuffer>,
    ),
  );
  return { ...meta, iv, wrapped };
}

/** Unwraps a stored secret; a wrong or missing master key is a locked pool, never garbage. */
export async function fromStored(
  stored: StoredSecret,
  masterKey: CryptoKey | undefined,
): Promise<Secret> {
  let bytes = stored.secret;
  if (bytes === undefined) {
    if (masterKey === undefined) throw new SecretPoolError("secret_pool_locked", LOCKED_MESSAGE);
    try {
      bytes = new Uint8Array(
        await crypto.subtle.decrypt(
          {
            name: "AES-GCM",
            iv: stored.iv as Uint8Array<ArrayBuffer>,
            additionalData: enc.encode(stored.kid),
          },
          masterKey,
          stored.wrapped as Uint8Array<ArrayBuffer>,
        ),
      );
    } catch (error) {
      throw new SecretPoolError("secret_pool_locked", LOCKED_MESSAGE, { cause: error });
    }
  }
  const secret: Secret = { kid: stored.kid, createdAt: stored.createdAt, bytes };
  if (stored.retiredAt !== undefined) secret.retiredAt = stored.retiredAt;
  return secret;
}
