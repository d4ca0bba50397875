/**
 * The master key that wraps the secret pool at rest (AES-256-GCM). Its text
 * form is base64url without padding of exactly 32 bytes: 43 characters.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { getEnv } from "../internal/platform.ts";

/**
 * The environment variable the CLI reads the master key from.
 *
 * @example
 * ```ts
 * import { MASTER_KEY_ENV } from "@toka/runtime/auth";
 *
 * console.log(MASTER_KEY_ENV); // "TOKA_MASTER_KEY"
 * ```
 */
export const MASTER_KEY_ENV = "TOKA_MASTER_KEY";

const MASTER_KEY_RE = /^[A-Za-z0-9_-]{43}$/;

/**
 * Reads the master key from `TOKA_MASTER_KEY`; the only place auth touches
 * the environment.
 *
 * @returns The variable's value, or undefined when it is unset or empty.
 * @throws {Deno.errors.NotCapable} When env access to the variable is not granted.
 *
 * @example
 * ```ts ignore
 * import { KvTokenAuthority, masterKeyFromEnv } from "@toka/runtime/auth";
 *
 * using kv = await Deno.openKv(":memory:");
 * const auth = await KvTokenAuthority.open(kv, { masterKey: masterKeyFromEnv() });
 * ```
 */
export function masterKeyFromEnv(): string | undefined {
  const value = getEnv(MASTER_KEY_ENV);
  return value === undefined || value === "" ? undefined : value;
}

/**
 * Generates a new master key in its text form.
 *
 * @param randomBytes Source of random bytes; Web Crypto by default.
 * @returns 43 base64url characters encoding 32 random bytes.
 *
 * @example
 * ```ts
 * import { generateMasterKey } from "@toka/runtime/auth";
 *
 * console.log(generateMasterKey().length); // 43
 * ```
 */
export function generateMasterKey(
  randomBytes: (n: number) => Uint8Array = (n) => crypto.getRandomValues(new Uint8Array(n)),
): string {
  const bytes = randomBytes(32);
  if (!(bytes instanceof Uint8Array) || bytes.length !== 32) {
    throw new RangeError("randomBytes(32) must return 32 bytes");
  }
  return Buffer.from(bytes).toString("base64url");
}

/**
 * Decodes and validates a master key.
 *
 * @param key 43 base64url characters, or 32 raw bytes.
 * @returns The 32 key bytes.
 * @throws {TypeError} When the key has another form; the message never shows the key.
 *
 * @example
 * ```ts
 * import { generateMasterKey, parseMasterKey } from "@toka/runtime/auth";
 *
 * console.log(parseMasterKey(generateMasterKey()).length); // 32
 * ```
 */
export function parseMasterKey(key: string | Uint8Array): Uint8Array {
  if (key instanceof Uint8Array && key.length === 32) return key;
  if (typeof key === "string" && MASTER_KEY_RE.test(key)) {
    const bytes = new Uint8Array(Buffer.from(key, "base64url"));
    if (bytes.length === 32) return bytes;
  }
  throw new TypeError(
    `Invalid master key: expected base64url of 32 bytes (43 characters), as ${MASTER_KEY_ENV} holds`,
  );
}
