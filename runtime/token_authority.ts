/**
 * The token authority contract: how the runtime and the toolkit issue and
 * check capability tokens without loading the auth feature, and the allow-all
 * authority used when auth is not attached.
 *
 * @module
 */

import { CapabilityDeniedError } from "./errors.ts";

/** The verified claims of a capability token. */
export interface TokenClaims {
  /** Subject: who holds the token, e.g. `"agent/planner"`. */
  sub: string;
  /** The vault (store) the token is valid for. */
  vault: string;
  /** Granted permissions, `resource:action[:target]` with `*` wildcards. */
  permissions: string[];
  /** Issued at, seconds since the epoch. */
  iat: number;
  /** Expires at, seconds since the epoch. */
  exp: number;
  /** Not before, seconds since the epoch. */
  nbf?: number;
  /** Unique token id, used for revocation. */
  jti: string;
  /**
   * The ids of the tokens this one was attenuated from, root first: revoking
   * any of them revokes this one too. Absent on issued tokens.
   */
  ancestors?: string[];
}

/** What to put into a new token. */
export interface IssueRequest {
  /** Subject of the token. */
  sub: string;
  /** Permissions to grant. */
  permissions: string[];
  /** Lifetime in seconds; the authority's default when omitted. */
  ttlSecs?: number;
}

/** Issues and checks capability tokens. */
export interface TokenAuthority {
  /** True when tokens are really checked; false for the allow-all authority. */
  readonly enforcing: boolean;
  /** Issues a signed token. */
  issue(request: IssueRequest): Promise<string>;
  /**
   * Verifies a token and returns its claims.
   *
   * @throws {TokaError} A subclass naming why the token is not valid.
   */
  verify(token: string): Promise<TokenClaims>;
  /**
   * Verifies a token and checks that it grants a permission.
   *
   * @throws {CapabilityDeniedError} When the permission is not granted.
   */
  authorize(token: string | undefined, permission: string): Promise<TokenClaims>;
  /**
   * Rotates the signing secret, for an authority that keeps secrets (optional):
   * {@linkcode Runtime.rotateSecrets} needs it.
   *
   * @returns The key id of the new active secret.
   */
  rotate?(): Promise<{ kid: string }>;
  /**
   * Whether a token id was revoked, also after the token expired (optional): the scheduler
   * skips the timers of a revoked token, or of one it was attenuated from. Without it, no
   * timer is skipped.
   */
  isRevoked?(jti: string): Promise<boolean>;
}

/**
 * The authority used without auth: every token and every call is allowed.
 * The runtime logs once that it runs without authorization.
 *
 * @example
 * ```ts
 * import { AllowAllAuthority } from "@toka/runtime/runtime";
 *
 * const auth = new AllowAllAuthority();
 * const claims = await auth.authorize(undefined, "tool:echo:invoke");
 * console.log(claims.permissions); // ["*"]
 * ```
 */
export class AllowAllAuthority implements TokenAuthority {
  /** Always false: nothing is checked. */
  readonly enforcing: boolean = false;
  #clock: () => number;

  /**
   * Creates the allow-all authority.
   *
   * @param clock Milliseconds since the epoch; `Date.now` by default.
   */
  constructor(clock: () => number = Date.now) {
    this.#clock = clock;
  }

  /**
   * Returns an opaque, unsigned placeholder token.
   *
   * @param request The subject and permissions.
   * @returns A placeholder that this authority accepts.
   */
  issue(request: IssueRequest): Promise<string> {
    return Promise.resolve(`allow-all.${encodeURIComponent(request.sub)}`);
  }

  /**
   * Accepts any token.
   *
   * @param token Ignored.
   * @returns Claims granting everything.
   */
  verify(token: string): Promise<TokenClaims> {
    return Promise.resolve(this.#claims(token));
  }

  /**
   * Allows every permission.
   *
   * @param token Ignored.
   * @param permission Checked only to be a non-empty string.
   * @returns Claims granting everything.
   * @throws {CapabilityDeniedError} Never, unless the permission is empty.
   */
  authorize(token: string | undefined, permission: string): Promise<TokenClaims> {
    if (typeof permission !== "string" || permission.length === 0) {
      return Promise.reject(new CapabilityDeniedError(String(permission)));
    }
    return Promise.resolve(this.#claims(token));
  }

  /**
   * Nothing is ever revoked here.
   *
   * @param _jti Ignored.
   * @returns False.
   */
  isRevoked(_jti: string): Promise<boolean> {
    return Promise.resolve(false);
  }

  #claims(token: string | undefined): TokenClaims {
    const now = Math.floor(this.#clock() / 1000);
    const sub = token?.startsWith("allow-all.")
      ? decodeURIComponent(token.slice("allow-all.".length))
      : "anonymous";
    return { sub, vault: "*", permissions: ["*"], iat: now, exp: now + 86400, jti: "allow-all" };
  }
}
