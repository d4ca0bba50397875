// Compact JWS (HS256) encoding, parsing and claim checks. Synchronous
// node:crypto on purpose: verification is on the hot path.
import { createHmac, timingSafeEqual } from "node:crypto";
import { Buffer } from "node:buffer";
import type { TokenClaims } from "../runtime/token_authority.ts";
import { InvalidTokenError, type InvalidTokenReason } from "./errors.ts";
import { isValidPermission, MAX_PERMISSION_LENGTH } from "../internal/permissions.ts";
import { MAX_ID_LENGTH, MAX_LIFETIME_SECS, MAX_PERMISSIONS } from "./limits.ts";

export { MAX_ID_LENGTH, MAX_LIFETIME_SECS, MAX_PERMISSIONS };

const TOKEN_TYPE = "toka.cap+jwt";
const MAX_TOKEN_LENGTH = 16_384;
/** How many times a token may be attenuated, one from another. */
export const MAX_ANCESTORS = 8;
const MAX_KID_LENGTH = 64;
const B64URL_RE = /^[A-Za-z0-9_-]+$/;

/** Decodes strict base64url; undefined on any other character. */
function b64urlDecode(text: string): Buffer | undefined {
  return B64URL_RE.test(text) ? Buffer.from(text, "base64url") : undefined;
}

function hmac(secret: Uint8Array, input: string): Buffer {
  return createHmac("sha256", secret).update(input).digest();
}

/** Signs claims with a secret under a key id. Claims must already be checked. */
export function sign(claims: TokenClaims, kid: string, secret: Uint8Array): string {
  const header = Buffer.from(JSON.stringify({ alg: "HS256", typ: TOKEN_TYPE, kid }))
    .toString("base64url");
  const payload = Buffer.from(JSON.stringify(claims)).toString("base64url");
  const input = `${header}.${payload}`;
  return `${input}.${hmac(secret, input).toString("base64url")}`;
}

/** A token split and its header checked, signature not yet verified. */
export interface ParsedToken {
  kid: string;
  signingInput: string;
  payload: string;
  signature: Buffer;
}

function parseJson(segment: string): unknown {
  const bytes = b64urlDecode(segment);
  if (bytes === undefined) throw new InvalidTokenError("malformed", "bad base64url");
  try {
    return JSON.parse(bytes.toString("utf8"));
  } catch {
    throw new InvalidTokenError("malformed", "not JSON");
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Splits a token and checks its header: HS256 only, our `typ`, a `kid`, no `crit`. */
export function parseToken(token: unknown): ParsedToken {
  if (typeof token !== "string" || token.length === 0 || token.length > MAX_TOKEN_LENGTH) {
    throw new InvalidTokenError("malformed", "empty, too long or not a string");
  }
  const parts = token.split(".");
  if (parts.length !== 3) throw new InvalidTokenError("malformed", "expected 3 segments");
  const [h, p, s] = parts;
  const header = parseJson(h);
  if (!isRecord(header)) throw new InvalidTokenError("malformed", "header is not an object");
  if (header.alg !== "HS256") throw new InvalidTokenError("alg_not_allowed");
  if (header.typ !== TOKEN_TYPE || "crit" in header) {
    throw new InvalidTokenError("malformed", "unexpected header");
  }
  const kid = header.kid;
  if (typeof kid !== "string" || kid.length === 0 || kid.length > MAX_KID_LENGTH) {
    throw new InvalidTokenError("malformed", "missing kid");
  }
  const signature = b64urlDecode(s);
  // Re-encoding rejects non-canonical base64url, so one signature has one spelling.
  if (signature === undefined || signature.length !== 32 || signature.toString("base64url") !== s) {
    throw new InvalidTokenError("bad_signature");
  }
  if (!B64URL_RE.test(p)) throw new InvalidTokenError("malformed", "bad base64url");
  return { kid, signingInput: `${h}.${p}`, payload: p, signature };
}

/** Throws unless the signature was made with this secret. */
export function checkSignature(parsed: ParsedToken, secret: Uint8Array): void {
  if (!timingSafeEqual(hmac(secret, parsed.signingInput), parsed.signature)) {
    throw new InvalidTokenError("bad_signature");
  }
}

/** A claim problem: which error class a caller should see, and a one-line message. */
export interface ClaimProblem {
  kind: "type" | "range";
  reason: InvalidTokenReason;
  message: string;
}

function idProblem(name: string, value: unknown): ClaimProblem | undefined {
  if (typeof value !== "string" || value.trim().length === 0) {
    return {
      kind: "type",
      reason: "bad_claims",
      message: `Claim "${name}" must be a non-blank string`,
    };
  }
  if (value.length > MAX_ID_LENGTH) {
    return {
      kind: "range",
      reason: "bad_claims",
      message: `Claim "${name}" must be at most ${MAX_ID_LENGTH} characters, got ${value.length}`,
    };
  }
}

function timeProblem(name: string, value: unknown): ClaimProblem | undefined {
  if (!Number.isSafeInteger(value) || (value as number) < 0) {
    return {
      kind: "type",
      reason: "bad_claims",
      message: `Claim "${name}" must be a non-negative integer of seconds`,
    };
  }
}

/** Finds the first problem in a claim set, or undefined when it is valid. */
export function claimsProblem(c: Record<string, unknown>): ClaimProblem | undefined {
  const problem = idProblem("sub", c.sub) ?? idProblem("vault", c.vault) ??
    idProblem("jti", c.jti) ?? timeProblem("iat", c.iat) ?? timeProblem("exp", c.exp) ??
    (c.nbf === undefined ? undefined : timeProblem("nbf", c.nbf));
  if (problem) return problem;
  const permissions = c.permissions;
  if (!Array.isArray(permissions)) {
    return { kind: "type", reason: "bad_claims", message: `Claim "permissions" must be an array` };
  }
  if (permissions.length > MAX_PERMISSIONS) {
    return {
      kind: "range",
      reason: "bad_claims",
      message: `At most ${MAX_PERMISSIONS} permissions are allowed, got ${permissions.length}`,
    };
  }
  for (const p of permissions) {
    if (!isValidPermission(p)) {
      const shown = typeof p === "string" ? JSON.stringify(p.slice(0, 80)) : typeof p;
      return {
        kind: "type",
        reason: "bad_claims",
        message:
          `Invalid permission ${shown}: expected "resource:action[:target]" of at most ${MAX_PERMISSION_LENGTH} characters`,
      };
    }
  }
  const ancestors = c.ancestors;
  if (ancestors !== undefined) {
    if (!Array.isArray(ancestors)) {
      return { kind: "type", reason: "bad_claims", message: `Claim "ancestors" must be an array` };
    }
    if (ancestors.length === 0 || ancestors.length > MAX_ANCESTORS) {
      return {
        kind: "range",
        reason: "bad_claims",
        message:
          `Claim "ancestors" must hold 1 to ${MAX_ANCESTORS} token ids, got ${ancestors.length}`,
      };
    }
    for (const id of ancestors) {
      const problem = idProblem("ancestors", id);
      if (problem) return problem;
    }
  }
  const iat = c.iat as number, exp = c.exp as number;
  if (exp <= iat) {
    return { kind: "range", reason: "bad_claims", message: `Claim "exp" must be after "iat"` };
  }
  if (c.nbf !== undefined && (c.nbf as number) >= exp) {
    return { kind: "range", reason: "bad_claims", message: `Claim "nbf" must be before "exp"` };
  }
  if (exp - iat > MAX_LIFETIME_SECS) {
    return {
      kind: "range",
      reason: "lifetime_too_long",
      message: `Token lifetime must be at most ${MAX_LIFETIME_SECS} seconds, got ${exp - iat}`,
    };
  }
}

/** Decodes and checks the payload of a token whose signature was verified. */
export function decodeClaims(parsed: ParsedToken): TokenClaims {
  const c = parseJson(parsed.payload);
  if (!isRecord(c)) throw new InvalidTokenError("bad_claims");
  const problem = claimsProblem(c);
  if (problem) throw new InvalidTokenError(problem.reason);
  const claims: TokenClaims = {
    sub: c.sub as string,
    vault: c.vault as string,
    permissions: [...(c.permissions as string[])],
    iat: c.iat as number,
    exp: c.exp as number,
    jti: c.jti as string,
  };
  if (c.nbf !== undefined) claims.nbf = c.nbf as number;
  if (c.ancestors !== undefined) claims.ancestors = [...(c.ancestors as string[])];
  return claims;
}
