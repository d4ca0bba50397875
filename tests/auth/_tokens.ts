// Token helpers shared by the auth tests: forging signed tokens that bypass
// every check, reading a token's kid, and matching an InvalidTokenError.
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { createHmac } from "node:crypto";
import { InvalidTokenError } from "../../auth/mod.ts";

/** base64url of a value's JSON. */
export const b64 = (value: unknown): string =>
  Buffer.from(JSON.stringify(value)).toString("base64url");

/** Signs arbitrary header and claims with `secret` (HS256), bypassing every check. */
export function sign(header: Record<string, unknown>, claims: unknown, secret: Uint8Array): string {
  const input = `${b64(header)}.${b64(claims)}`;
  return `${input}.${createHmac("sha256", secret).update(input).digest("base64url")}`;
}

/** The `kid` in a token's header. */
export function kidOf(token: string): string {
  return JSON.parse(Buffer.from(token.split(".")[0], "base64url").toString()).kid;
}

/** An `assert.rejects` matcher for an InvalidTokenError with this reason. */
export function isInvalid(reason: string): (error: unknown) => boolean {
  return (error: unknown) => {
    assert.ok(error instanceof InvalidTokenError, String(error));
    assert.equal(error.code, "invalid_token");
    assert.equal(error.reason, reason);
    return true;
  };
}
