// Checks of KvTokenAuthority's options and arguments, and small claim helpers.
import { Buffer } from "node:buffer";
import type { TokenClaims } from "../runtime/token_authority.ts";
import { intOption } from "../internal/int_option.ts";
import { MAX_ID_LENGTH, MAX_LIFETIME_SECS } from "./_jws.ts";

export function defaultRandomBytes(n: number): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(n));
}

export function numberOption(
  name: string,
  value: number | undefined,
  fallback: number,
  max: number,
): number {
  return intOption(name, value, fallback, 0, max, {
    fractions: true,
    message: () => `Option "${name}" must be a number from 0 to ${max}`,
  });
}

export function checkId(name: string, value: unknown): string {
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

export function checkTtl(ttl: unknown): number {
  // Callers apply the default first, so undefined is as wrong as any other non-number.
  return intOption("ttlSecs", ttl ?? NaN, 0, 1, MAX_LIFETIME_SECS, {
    message: () => `ttlSecs must be an integer from 1 to ${MAX_LIFETIME_SECS}`,
  });
}

export function parseInitialSecret(secret: string | Uint8Array): Uint8Array {
  let bytes: Uint8Array | undefined;
  if (secret instanceof Uint8Array) bytes = secret.slice();
  else if (typeof secret === "string" && /^[A-Za-z0-9_-]+$/.test(secret)) {
    bytes = new Uint8Array(Buffer.from(secret, "base64url"));
  }
  if (bytes === undefined || bytes.length < 32) {
    throw new RangeError(
      'Option "initialSecret" must be base64url text or bytes of at least 32 bytes',
    );
  }
  return bytes;
}

export function freezeClaims(claims: TokenClaims): TokenClaims {
  Object.freeze(claims.permissions);
  if (claims.ancestors !== undefined) Object.freeze(claims.ancestors);
  return Object.freeze(claims);
}
