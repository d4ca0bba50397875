// An agent's capability token: issued at start and after a rotation, renewed
// ahead of its expiry, and renewed once more when a call is refused as stale.
import type { Logger } from "@logtape/logtape";
import type { TokenAuthority } from "../token_authority.ts";
import { TokaError } from "../errors.ts";
import { errorMessage } from "../../internal/error_message.ts";

/** The most time before its expiry that a token is renewed (10% of its life, at least this). */
const RENEW_MARGIN_MS = 60_000;
/**
 * A token whose `iat` is this far ahead of the clock (which stepped back since
 * it was issued) is renewed before it is used: half the verifier's least
 * leeway on `iat` (60 s), so that it is never refused for it.
 */
const STEP_BACK_MS = 30_000;

/**
 * Why a tool call may be refused only because the agent's token is stale: it
 * expired, its secret was rotated out (here or by another process), its key
 * id is unknown, or it was issued "in the future" by the verifier's clock
 * (the wall clock stepped back since). A revoked token is not re-issued.
 */
export function staleToken(error: unknown): boolean {
  if (!(error instanceof TokaError)) return false;
  if (error.code === "token_expired") return true;
  const reason = (error as { reason?: unknown }).reason;
  return error.code === "invalid_token" &&
    (reason === "key_expired" || reason === "unknown_kid" || reason === "issued_in_future");
}

export class TokenKeeper {
  #auth: TokenAuthority;
  #name: string;
  #subject: string;
  #permissions: readonly string[];
  #clock: () => number;
  #logger: Logger;
  #token = "";
  // When (by the clock) the token is due for renewal; never when its claims are unknown.
  #renewAt = Infinity;
  // When (by the clock) the token was issued; a clock before it stepped back.
  #issuedAt = -Infinity;
  #renewing: Promise<void> | undefined;
  #issued = 0;
  #applied = 0;

  constructor(
    auth: TokenAuthority,
    name: string,
    permissions: readonly string[],
    clock: () => number,
    logger: Logger,
  ) {
    this.#auth = auth;
    this.#name = name;
    this.#subject = `agent/${name}`;
    this.#permissions = permissions;
    this.#clock = clock;
    this.#logger = logger;
  }

  /** The current token; starts its renewal when due (a getter cannot wait). */
  get current(): string {
    if (this.#renewDue()) void this.fresh();
    return this.#token;
  }

  /** Issues a fresh token, e.g. after a rotation. */
  async renew(): Promise<void> {
    const renewal = this.#issue();
    this.#renewing = renewal;
    try {
      await renewal;
    } finally {
      if (this.#renewing === renewal) this.#renewing = undefined;
    }
  }

  /** Waits for a renewal in flight, if any; never throws. */
  async settle(): Promise<void> {
    await this.#renewing?.catch(() => {});
  }

  // The token to call with: renewed first when it is due. A failed renewal is
  // logged and the current token used; a refused call renews it again.
  async fresh(): Promise<string> {
    try {
      if (this.#renewDue()) await this.renew();
      else if (this.#renewing !== undefined) await this.#renewing;
    } catch (error) {
      this.#logger.warn("Cannot renew agent {name}'s token: {message}", {
        name: this.#name,
        message: errorMessage(error),
      });
    }
    return this.#token;
  }

  /**
   * After a call refused with `token` as stale: renews it (unless another
   * renewal already replaced it) and returns the token to try again with.
   *
   * @throws The refusal, when the renewal fails.
   */
  async afterRefusal(token: string, refusal: unknown): Promise<string> {
    if (this.#token === token) {
      try {
        await this.renew();
      } catch (error) {
        this.#logger.warn("Cannot renew agent {name}'s token: {message}", {
          name: this.#name,
          message: errorMessage(error),
        });
        throw refusal;
      }
    }
    return this.#token;
  }

  async #issue(): Promise<void> {
    const seq = ++this.#issued;
    const token = await this.#auth.issue({
      sub: this.#subject,
      permissions: [...this.#permissions],
    });
    let renewAt = Infinity;
    let issuedAt = -Infinity;
    try {
      const { iat, exp } = await this.#auth.verify(token);
      const life = (exp - iat) * 1000;
      renewAt = exp * 1000 - Math.min(life / 2, Math.max(life / 10, RENEW_MARGIN_MS));
      issuedAt = iat * 1000;
    } catch (error) {
      // Without its claims the token is renewed only when a call is refused.
      this.#logger.warn("Cannot read the expiry of agent {name}'s token: {message}", {
        name: this.#name,
        message: errorMessage(error),
      });
    }
    // Of renewals that overlap (a rotation during a due renewal), the latest issued wins.
    if (seq < this.#applied) return;
    this.#applied = seq;
    this.#token = token;
    this.#renewAt = Number.isFinite(renewAt) ? renewAt : Infinity;
    // An authority whose clock runs ahead of this one would be renewed at every call.
    this.#issuedAt = issuedAt - STEP_BACK_MS > this.#clock() ? -Infinity : issuedAt;
    // Never the token itself: only when it is due for renewal.
    this.#logger.debug("Agent {name} has a new token, due for renewal at {renewAt}", {
      name: this.#name,
      renewAt: Number.isFinite(renewAt) ? new Date(renewAt).toISOString() : "never",
    });
  }

  #renewDue(): boolean {
    if (this.#renewing !== undefined) return false;
    const now = this.#clock();
    return now >= this.#renewAt || now < this.#issuedAt - STEP_BACK_MS;
  }
}
