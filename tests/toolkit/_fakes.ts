// Test fakes shared by the toolkit tests.
import { CapabilityDeniedError, TokaError } from "../../runtime/errors.ts";
import type { IssueRequest, TokenAuthority, TokenClaims } from "../../runtime/token_authority.ts";

/** An authority that knows a fixed set of tokens, each granting fixed permissions. */
export class FakeAuthority implements TokenAuthority {
  readonly enforcing = true;
  readonly #grants: Map<string, { sub: string; permissions: string[] }>;

  constructor(grants: Record<string, { sub: string; permissions: string[] }>) {
    this.#grants = new Map(Object.entries(grants));
  }

  issue(_request: IssueRequest): Promise<string> {
    return Promise.reject(new Error("Not supported by the fake"));
  }

  verify(token: string): Promise<TokenClaims> {
    const grant = this.#grants.get(token);
    if (grant === undefined) {
      return Promise.reject(new TokaError("token_invalid", "The token is not valid"));
    }
    return Promise.resolve({ ...grant, vault: "test", iat: 0, exp: 60, jti: token });
  }

  async authorize(token: string | undefined, permission: string): Promise<TokenClaims> {
    if (token === undefined) throw new CapabilityDeniedError(permission);
    const claims = await this.verify(token);
    if (!claims.permissions.includes(permission)) {
      throw new CapabilityDeniedError(permission, claims.sub);
    }
    return claims;
  }
}

/** Whether a process is still there (Linux): a killed plugin must not linger. */
function alive(pid: number): boolean {
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

/** Waits (load-proof: up to 20 s) for a stopped process to be gone. */
export async function gone(pid: number): Promise<boolean> {
  for (const started = performance.now(); performance.now() - started < 20_000;) {
    if (!alive(pid)) return true;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return false;
}

/**
 * A registry timer (`ToolRegistryOptions.startTimer`) that fires only when told, so a test of a
 * timeout waits for no real time and no other call times out on a loaded machine.
 */
export function manualTimer(): {
  start: (fire: () => void, ms: number) => () => void;
  started(): Promise<void>;
  fire(): void;
} {
  const running = new Set<() => void>();
  return {
    start(fire) {
      running.add(fire);
      return () => void running.delete(fire);
    },
    /** Resolves once a call's timer runs (the call got past its checks). */
    async started() {
      while (running.size === 0) await new Promise((resolve) => setTimeout(resolve, 0));
    },
    /** Fires every running timer: those calls time out now. */
    fire() {
      const fired = [...running];
      running.clear();
      for (const fire of fired) fire();
    },
  };
}
