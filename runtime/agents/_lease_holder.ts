// One agent's lease as its runner holds it: taken at start (or awaited while
// another process runs the agent), renewed every third of a lease, confirmed
// before appending after a pause, and given back at stop.
import type { Logger } from "@logtape/logtape";
import type { LeaseBook } from "./_lease.ts";
import type { AppendGuard } from "../log/event_store.ts";
import { TokaError } from "../errors.ts";
import { delay } from "../../internal/retry.ts";
import { errorMessage } from "../../internal/error_message.ts";

export class LeaseHolder {
  /** This start's owner id; "" when none is held or asked for. */
  owner = "";
  #book: LeaseBook;
  #name: string;
  #monotonic: () => number;
  #logger: Logger;
  #onLost: () => void;
  #renewer: ReturnType<typeof setInterval> | undefined;
  #renewing: Promise<void> | undefined;
  // When (by the monotonic clock) this holder last asked for the lease and got
  // it: no other process can take it over before a whole lease after that.
  #confirmed = -Infinity;
  // The lease's version as this holder last wrote it.
  #version: string | undefined;

  constructor(
    book: LeaseBook,
    name: string,
    monotonic: () => number,
    logger: Logger,
    onLost: () => void,
  ) {
    this.#book = book;
    this.#name = name;
    this.#monotonic = monotonic;
    this.#logger = logger;
    this.#onLost = onLost;
  }

  get ttlMs(): number {
    return this.#book.ttlMs;
  }

  /** Asks for the lease under a new owner id; true when held (and renewed from now on). */
  async take(): Promise<boolean> {
    this.owner = crypto.randomUUID();
    if (!(await this.#acquire())) return false;
    this.#logger.debug("Agent {name} took its lease for {secs} s", {
      name: this.#name,
      secs: this.ttlMs / 1000,
    });
    return true;
  }

  /**
   * Polls until the lease is taken (true) or `signal` aborts (false; a lease
   * taken meanwhile is still this holder's to release).
   */
  async waitFor(signal: AbortSignal): Promise<boolean> {
    const poll = Math.min(5_000, Math.max(50, this.ttlMs / 3));
    while (await delay(poll, signal)) {
      if (!(await this.#acquire())) continue;
      return !signal.aborted;
    }
    return false;
  }

  async #acquire(): Promise<boolean> {
    const asked = this.#monotonic();
    const version = await this.#book.acquire(this.#name, this.owner);
    if (version === undefined) return false;
    this.#confirmed = asked;
    this.#version = version;
    this.#renewer = setInterval(() => {
      this.#renewing ??= this.renew().then(() => {}).finally(() => this.#renewing = undefined);
    }, this.ttlMs / 3);
    return true;
  }

  /** True when this holder confirmed the lease less than half a lease ago. */
  get fresh(): boolean {
    return this.#monotonic() - this.#confirmed < this.ttlMs / 2;
  }

  /**
   * Renews the lease: false once another process has taken it (`onLost` is
   * called); true when renewed, or when the store could not say (the next
   * renewal asks again).
   */
  async renew(): Promise<boolean> {
    const asked = this.#monotonic();
    try {
      const version = await this.#book.renew(this.#name, this.owner);
      if (version !== undefined) {
        this.#confirmed = asked;
        this.#version = version;
        this.#logger.trace("Agent {name} renewed its lease", { name: this.#name });
        return true;
      }
    } catch (error) {
      this.#logger.warn("Could not renew agent {name}'s lease: {message}", {
        name: this.#name,
        message: errorMessage(error),
      });
      return true;
    }
    this.#onLost();
    return false;
  }

  /**
   * The append guard that holds while the lease is as this holder last wrote
   * it; undefined when none is held or the lease store makes no guards.
   */
  guard(): AppendGuard | undefined {
    if (this.owner === "" || this.#version === undefined) return undefined;
    return this.#book.guard(this.#name, this.#version);
  }

  /**
   * Renews the lease now: false when another process took it.
   *
   * @throws {TokaError} When the store did not answer, so the lease is unconfirmed.
   */
  async confirm(): Promise<boolean> {
    if (!(await this.renew())) return false;
    if (this.fresh) return true;
    throw new TokaError(
      "lease_unconfirmed",
      `Cannot confirm agent "${this.#name}"'s lease: the vault did not answer`,
    );
  }

  /** Stops renewing and gives the lease back, after `before` (e.g. a checkpoint flush). */
  async release(before: () => Promise<void>): Promise<void> {
    clearInterval(this.#renewer);
    this.#renewer = undefined;
    await this.#renewing;
    if (this.owner === "") return;
    await before();
    await this.#book.release(this.#name, this.owner).then(
      () => this.#logger.debug("Agent {name} released its lease", { name: this.#name }),
      (error) =>
        this.#logger.warn("Could not release agent {name}'s lease: {message}", {
          name: this.#name,
          message: errorMessage(error),
        }),
    );
    this.owner = "";
    this.#version = undefined;
  }
}
