// The in-memory copy of the secret pool and revocations that verification reads, and the
// shared, rate-limited re-reads that keep it fresh.
import type { Kv, KvEntry } from "../internal/platform.ts";
import {
  assertWrapped,
  asStoredPool,
  fromStored,
  isWrapped,
  POOL_KEY,
  retryLocked,
  REVOCATIONS_MARKER,
  REVOKED_PREFIX,
  type Secret,
} from "./_pool_store.ts";
import { InvalidTokenError, SecretPoolError } from "./errors.ts";
import { delay } from "../internal/retry.ts";

const UNKNOWN_KID_REFRESH_MS = 100;

/** KvTokenAuthority's resolved options. */
export interface AuthorityConfig {
  kv: Kv;
  vault: string;
  clock: () => number;
  mono: () => number;
  randomBytes: (n: number) => Uint8Array;
  retiredTtlMs: number;
  leewayMs: number;
  defaultTtlSecs: number;
  refreshMs: number;
  cacheSize: number;
  masterKey: CryptoKey | undefined;
}

export class PoolCache {
  readonly config: AuthorityConfig;

  secrets = new Map<string, Secret>();
  active: Secret | undefined;
  wrapped = false;
  revoked = new Map<string, number>();
  #poolStamp = "";
  // When the pool read that gave the current secrets started, by the wall clock.
  #poolReadAt = -Infinity;
  #revokedStamp = "";
  #refreshedAt = -Infinity;
  // Pool reads: how many started, the one in flight, when the last started (real time).
  #readsStarted = 0;
  #readsDone = 0;
  #reading: { n: number; done: Promise<void> } | undefined;
  #lastReadStart = -Infinity;
  #nextReadSlot: Promise<unknown> | undefined;

  constructor(config: AuthorityConfig) {
    this.config = config;
  }

  get readsStarted(): number {
    return this.#readsStarted;
  }

  // Hex, so that an id never starts with "-" and reads as an option on a command line.
  newId(bytes: number): string {
    return Array.from(this.#takeRandom(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
  }

  newSecret(): Uint8Array {
    return this.#takeRandom(32).slice();
  }

  #takeRandom(n: number): Uint8Array {
    const bytes = this.config.randomBytes(n);
    if (!(bytes instanceof Uint8Array) || bytes.length !== n) {
      throw new RangeError(`randomBytes(${n}) must return ${n} bytes`);
    }
    return bytes;
  }

  usableSecret(kid: string, now: number): Secret {
    const secret = this.secrets.get(kid);
    if (secret === undefined) throw new InvalidTokenError("unknown_kid");
    if (this.retiredExpired(secret, now)) throw new InvalidTokenError("key_expired");
    return secret;
  }

  // Counted by this process's own clocks (see `graceFrom`); a backward jump of the wall clock
  // extends nothing, as the monotonic clock ends it too.
  retiredExpired(secret: Secret, now: number): boolean {
    if (secret.retiredAt === undefined) return false;
    const ttl = this.config.retiredTtlMs;
    return this.config.mono() - secret.seenRetiredAt! >= ttl || now >= secret.graceFrom! + ttl;
  }

  /** Re-reads the pool when another process changed it since the last read (one KV read). */
  async ensureCurrent(): Promise<void> {
    const entry = await retryLocked(() => this.config.kv.get(POOL_KEY));
    if (entry.versionstamp !== null && entry.versionstamp > this.#poolStamp) await this.load();
  }

  maybeRefresh(now: number): Promise<void> | undefined {
    if (now - this.#refreshedAt >= this.config.refreshMs || now < this.#refreshedAt) {
      return this.#refresh();
    }
  }

  /** Re-reads the pool, sharing one read among concurrent callers. */
  #refresh(): Promise<void> {
    return this.#reading?.done ?? this.#startRead();
  }

  #startRead(): Promise<void> {
    const n = ++this.#readsStarted;
    this.#lastReadStart = performance.now();
    const done = this.load().finally(() => {
      this.#readsDone = Math.max(this.#readsDone, n);
      if (this.#reading?.n === n) this.#reading = undefined;
    });
    this.#reading = { n, done };
    return done;
  }

  /** Waits for a read that started after `after` reads had started, starting one if needed. */
  async readAfter(after: number): Promise<void> {
    for (;;) {
      const reading = this.#reading;
      if (reading !== undefined && reading.n > after) return await reading.done;
      if (this.#readsDone > after) return;
      if (reading !== undefined) {
        await reading.done.catch(() => {});
        continue;
      }
      // Rate-limited: one read per 100 ms at most, shared by every waiter.
      this.#nextReadSlot ??= delay(
        Math.max(0, this.#lastReadStart + UNKNOWN_KID_REFRESH_MS - performance.now()),
      ).finally(() => this.#nextReadSlot = undefined);
      await this.#nextReadSlot;
      if (this.#reading === undefined && this.#readsStarted <= after) this.#startRead();
    }
  }

  async load(): Promise<void> {
    const { kv, masterKey } = this.config;
    const readAt = this.config.clock();
    const [pool, marker] = await retryLocked(() => kv.getMany([POOL_KEY, REVOCATIONS_MARKER]));
    if (pool.versionstamp === null) {
      throw new SecretPoolError(
        "secret_pool_corrupt",
        `The secret pool at ["auth","pool"] is missing`,
      );
    }
    // Versionstamps only grow: an older read finishing late never undoes a newer one.
    if (pool.versionstamp > this.#poolStamp) {
      const stored = asStoredPool(pool.value);
      assertWrapped(stored, masterKey);
      const seenAt = this.config.mono();
      const secrets = new Map<string, Secret>();
      for (const s of [stored.active, ...stored.retired]) {
        const known = this.secrets.get(s.kid);
        const secret = known === undefined
          ? await fromStored(s, masterKey)
          : { kid: s.kid, createdAt: s.createdAt, bytes: known.bytes } as Secret;
        if (s.retiredAt !== undefined) {
          secret.retiredAt = s.retiredAt;
          secret.seenRetiredAt = known?.seenRetiredAt ?? seenAt;
          // Retired between the last read that had it active and now, by this clock: the
          // retiring process's time is kept within those bounds, so its clock neither ends the
          // grace early nor stretches it, and noticing late adds nothing.
          secret.graceFrom = known?.graceFrom ?? Math.min(
            Math.max(s.retiredAt, known === undefined ? -Infinity : this.#poolReadAt),
            readAt,
          );
        }
        secrets.set(s.kid, secret);
      }
      if (pool.versionstamp > this.#poolStamp) {
        this.secrets = secrets;
        this.active = secrets.get(stored.active.kid);
        this.wrapped = isWrapped(stored);
        this.#poolStamp = pool.versionstamp;
        this.#poolReadAt = readAt;
      }
    }
    if (marker.versionstamp !== null && marker.versionstamp > this.#revokedStamp) {
      const listed = await retryLocked(async () => {
        const entries: KvEntry<number>[] = [];
        for await (const e of kv.list<number>({ prefix: REVOKED_PREFIX })) entries.push(e);
        return entries;
      });
      const now = this.config.clock();
      // Merge, so a revocation made here while this read was in flight is kept.
      for (const e of listed) this.revoked.set(e.key[2] as string, e.value);
      for (const [jti, exp] of this.revoked) {
        if (exp * 1000 + this.config.leewayMs <= now) this.revoked.delete(jti);
      }
      this.#revokedStamp = marker.versionstamp;
    }
    this.#refreshedAt = this.config.clock();
  }
}
