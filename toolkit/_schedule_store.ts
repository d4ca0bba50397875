// Where the schedule tool keeps its timers, and how a due timer fires once.
//
// In Deno KV (durable, shared by every process on the vault; remote KV too, since
// nothing here needs kv.enqueue), under ["schedule"]:
//   ["schedule", "timer", id]      the timer (a Timer)
//   ["schedule", "due", due, id]   true: the index the poller reads by due time
//   ["schedule", "count"]          the number of pending timers, changed in the same
//                                  commits as they are, so the limit costs one read
//   ["schedule", "count_by", sub]  the same, per subject (scheduledBy), for the quota
//   ["schedule", "done", id]       a fired or cancelled timer scheduled while handling an
//                                  event (a TimerInfo, expiring after DONE_TTL_MS): the
//                                  same call made again when the event is handled again
//                                  finds it instead of scheduling a second timer
//
// Firing is exactly once, even with several processes and crashes: a poller first
// claims the timer (a commit that checks the timer's versionstamp and records the
// log head), then appends the event guarded by the claimed versionstamp, then
// deletes the timer under the same check. Whoever changes the timer meanwhile
// (cancel, another poller's claim) makes the append fail. A claim left behind by
// a process that died, or whose commit outcome is unknown, is taken over after
// `claimTimeoutMs` of no change: the new claim fences the old claimer out, then the
// log after the recorded head is searched for the event before appending it.
import type { AtomicCheck, AtomicOperation, Kv } from "../internal/platform.ts";
import { GuardFailedError } from "../runtime/errors.ts";
import type { EmitInput } from "../runtime/bus/subscription.ts";
import type { AppendGuard, EventStore } from "../runtime/log/event_store.ts";
import { retryLocked } from "../internal/kv_retry.ts";

/** A pending timer, as stored. */
export interface Timer {
  id: string;
  kind: string;
  /** The payload as JSON text: its size is known and it is stored compactly. */
  payloadJson: string;
  stream: string;
  /** Milliseconds since the epoch. */
  due: number;
  scheduledAt: number;
  /** The subject of the token that scheduled it. */
  scheduledBy: string;
  /**
   * The ids of that token and of those it was attenuated from (root first): revoking any
   * of them skips the timer. Absent on timers stored before they were kept.
   */
  tokenIds?: string[];
  /** The event whose handler scheduled it, if any. */
  cause?: string;
  correlationId?: string;
  /** The fired event's depth in its causal chain (`meta.causalDepth`); absent on older timers. */
  causalDepth?: number;
  /** Set while a poller fires it: who, and the log head before the append. */
  claim?: { by: string; from: string | null };
}

/** What a caller is told about a timer. */
export type TimerInfo = Pick<Timer, "id" | "kind" | "stream" | "due">;

/** How long a fired or cancelled timer's id is remembered: 30 days. */
const DONE_TTL_MS = 30 * 86_400_000;

function info(timer: TimerInfo): TimerInfo {
  return { id: timer.id, kind: timer.kind, stream: timer.stream, due: timer.due };
}

/** What cancel found. */
export type CancelOutcome = "cancelled" | "not_found" | "firing";

/** Appends a timer's event; a guard makes the append conditional on the timer. */
export type FireEmit = (input: EmitInput) => Promise<unknown>;

/** The event to append for a timer at fire time: its own, or {@linkcode skippedEvent}. */
export type FireEvent = (timer: Timer) => Promise<EmitInput>;

/** The kind of the event recorded instead of a timer's own when it is skipped. */
const SKIPPED_KIND = "schedule.skipped";

/** The limits a new timer must fit in. */
export interface PendingLimits {
  /** Timers pending in the store. */
  maxPending: number;
  /** Timers pending of the new timer's subject (`scheduledBy`). */
  maxPerSubject: number;
}

/** Why a timer was not added: the store's limit, or its subject's. */
export type AddRefusal = "full" | "subject_full";

/** The timers of one scheduler. */
export interface TimerStore {
  /**
   * Adds a timer unless a limit is reached (then which). A timer whose id is pending, fired
   * or cancelled already is not added again: that one is returned.
   */
  add(timer: Timer, limits: PendingLimits): Promise<TimerInfo | AddRefusal>;
  /** Every pending timer, by due time. */
  list(): Promise<Timer[]>;
  /** Cancels a pending timer of `owner`. */
  cancel(id: string, owner: string): Promise<CancelOutcome>;
  /** Ids of timers due at `now`, earliest first, at most `limit`. */
  due(now: number, limit: number): Promise<string[]>;
  /** The earliest due time of a pending timer. */
  nextDue(): Promise<number | undefined>;
  /**
   * Fires one timer if it is still pending, appending the event `event` makes of it (by
   * default its own); true when this call appended it.
   */
  fire(id: string, emit: FireEmit, event?: FireEvent): Promise<boolean>;
}

/** The event a timer fires. */
export function firedEvent(timer: Timer): EmitInput {
  const meta: Record<string, string> = {
    scheduleId: timer.id,
    scheduledBy: timer.scheduledBy,
  };
  if (timer.cause !== undefined) {
    meta.causationId = timer.cause;
    meta.correlationId = timer.correlationId ?? timer.cause;
    if (timer.causalDepth !== undefined) meta.causalDepth = String(timer.causalDepth);
  }
  return {
    kind: timer.kind,
    payload: JSON.parse(timer.payloadJson),
    stream: timer.stream,
    parents: timer.cause === undefined ? [] : [timer.cause],
    meta,
  };
}

/**
 * The event recorded instead of a timer's own when it is skipped: which timer, and why; never
 * a token.
 */
export function skippedEvent(timer: Timer, reason: "token_revoked"): EmitInput {
  return {
    ...firedEvent(timer),
    kind: SKIPPED_KIND,
    payload: {
      scheduleId: timer.id,
      kind: timer.kind,
      stream: timer.stream,
      due: new Date(timer.due).toISOString(),
      reason,
    },
  };
}

const ownEvent: FireEvent = (timer) => Promise.resolve(firedEvent(timer));

/** Timers in memory: they live as long as the process. */
export class MemoryTimerStore implements TimerStore {
  #timers = new Map<string, Timer>();
  #firing = new Set<string>();
  // Fired or cancelled timers with a cause, oldest first, with when they ended.
  #done = new Map<string, { info: TimerInfo; at: number }>();

  add(timer: Timer, limits: PendingLimits): Promise<TimerInfo | AddRefusal> {
    const now = performance.now();
    for (const [id, { at }] of this.#done) {
      if (now - at < DONE_TTL_MS) break;
      this.#done.delete(id);
    }
    const known = this.#timers.get(timer.id) ?? this.#done.get(timer.id)?.info;
    if (known !== undefined) return Promise.resolve(info(known));
    if (this.#timers.size >= limits.maxPending) return Promise.resolve("full");
    let mine = 0;
    for (const t of this.#timers.values()) if (t.scheduledBy === timer.scheduledBy) mine++;
    if (mine >= limits.maxPerSubject) return Promise.resolve("subject_full");
    this.#timers.set(timer.id, structuredClone(timer));
    return Promise.resolve(info(timer));
  }

  #end(timer: Timer): void {
    this.#timers.delete(timer.id);
    if (timer.cause !== undefined) {
      this.#done.set(timer.id, { info: info(timer), at: performance.now() });
    }
  }

  list(): Promise<Timer[]> {
    return Promise.resolve(
      [...this.#timers.values()].sort(byDue).map((timer) => structuredClone(timer)),
    );
  }

  cancel(id: string, owner: string): Promise<CancelOutcome> {
    const timer = this.#timers.get(id);
    if (timer === undefined || timer.scheduledBy !== owner) return Promise.resolve("not_found");
    if (this.#firing.has(id)) return Promise.resolve("firing");
    this.#end(timer);
    return Promise.resolve("cancelled");
  }

  due(now: number, limit: number): Promise<string[]> {
    return Promise.resolve(
      [...this.#timers.values()].filter((t) => t.due <= now).sort(byDue).slice(0, limit)
        .map((t) => t.id),
    );
  }

  nextDue(): Promise<number | undefined> {
    let next: number | undefined;
    for (const timer of this.#timers.values()) {
      if (!this.#firing.has(timer.id) && (next === undefined || timer.due < next)) {
        next = timer.due;
      }
    }
    return Promise.resolve(next);
  }

  async fire(id: string, emit: FireEmit, event: FireEvent = ownEvent): Promise<boolean> {
    const timer = this.#timers.get(id);
    if (timer === undefined || this.#firing.has(id)) return false;
    this.#firing.add(id);
    try {
      // One process: marking it firing is enough to fire it once.
      await emit(await event(timer));
      this.#end(timer);
      return true;
    } finally {
      this.#firing.delete(id);
    }
  }
}

const TIMER = ["schedule", "timer"] as const;
const DUE = ["schedule", "due"] as const;
const DONE = ["schedule", "done"] as const;
const COUNT = ["schedule", "count"] as const;
const COUNT_BY = ["schedule", "count_by"] as const;
const countOf = (timer: Timer) => [...COUNT_BY, timer.scheduledBy];

/** Timers in Deno KV, beside the vault: durable, and fired once across processes. */
export class KvTimerStore implements TimerStore {
  #kv: Kv;
  #vault: EventStore;
  #claimTimeoutMs: number;
  // This store's claims, told apart from those of other processes and earlier runs.
  #instance = crypto.randomUUID();
  #firing = new Set<string>();
  // Claims of others, by timer id: the versionstamp seen and when it was first seen.
  #seen = new Map<string, { versionstamp: string; at: number }>();

  constructor(kv: Kv, vault: EventStore, claimTimeoutMs: number) {
    this.#kv = kv;
    this.#vault = vault;
    this.#claimTimeoutMs = claimTimeoutMs;
  }

  async add(timer: Timer, limits: PendingLimits): Promise<TimerInfo | AddRefusal> {
    const key = [...TIMER, timer.id];
    const doneKey = [...DONE, timer.id];
    for (;;) {
      const [pending, done, count, mine] = await retryLocked(() =>
        this.#kv.getMany<[Timer, TimerInfo, number, number]>([key, doneKey, COUNT, countOf(timer)])
      );
      const known = pending.value ?? done.value;
      if (known !== null) return info(known);
      if ((count.value ?? 0) >= limits.maxPending) return "full";
      if ((mine.value ?? 0) >= limits.maxPerSubject) return "subject_full";
      // Four checks, within KV's ten per commit (remote KV included).
      const result = await retryLocked(() =>
        this.#kv.atomic()
          .check(pending, done, count, mine)
          .set(key, timer)
          .set([...DUE, timer.due, timer.id], true)
          .set(COUNT, (count.value ?? 0) + 1)
          .set(countOf(timer), (mine.value ?? 0) + 1)
          .commit()
      );
      if (result.ok) return info(timer);
      // Another timer was added or ended, or this one added, fired or cancelled
      // meanwhile: read again.
    }
  }

  async list(): Promise<Timer[]> {
    const timers: Timer[] = [];
    for await (const entry of this.#kv.list<Timer>({ prefix: TIMER })) timers.push(entry.value);
    return timers.sort(byDue);
  }

  async cancel(id: string, owner: string): Promise<CancelOutcome> {
    const key = [...TIMER, id];
    for (;;) {
      const [entry, count, mine] = await retryLocked(() =>
        this.#kv.getMany<[Timer, number, number]>([key, COUNT, [...COUNT_BY, owner]])
      );
      const timer = entry.value;
      if (timer === null || timer.scheduledBy !== owner) return "not_found";
      if (timer.claim !== undefined) return "firing";
      const result = await retryLocked(() =>
        this.#end(this.#kv.atomic().check(entry), timer, count, mine).commit()
      );
      if (result.ok) return "cancelled";
      // Changed meanwhile (claimed, fired, or another timer came or went): look again.
    }
  }

  async due(now: number, limit: number): Promise<string[]> {
    const ids: string[] = [];
    const entries = this.#kv.list({ start: [...DUE], end: [...DUE, now + 1] }, { limit });
    for await (const entry of entries) ids.push(entry.key[3] as string);
    // Forget the claims seen on timers that are gone (fired or cancelled elsewhere).
    if (ids.length < limit) {
      for (const id of this.#seen.keys()) if (!ids.includes(id)) this.#seen.delete(id);
    }
    return ids;
  }

  async nextDue(): Promise<number | undefined> {
    for await (const entry of this.#kv.list({ prefix: DUE }, { limit: 1 })) {
      return entry.key[2] as number;
    }
    return undefined;
  }

  async fire(id: string, emit: FireEmit, event: FireEvent = ownEvent): Promise<boolean> {
    if (this.#firing.has(id)) return false;
    this.#firing.add(id);
    try {
      return await this.#fire(id, emit, event);
    } finally {
      this.#firing.delete(id);
    }
  }

  async #fire(id: string, emit: FireEmit, event: FireEvent): Promise<boolean> {
    const key = [...TIMER, id];
    const entry = await retryLocked(() => this.#kv.get<Timer>(key));
    const timer = entry.value;
    if (timer === null) {
      this.#seen.delete(id);
      return false;
    }
    if (timer.claim !== undefined && timer.claim.by !== this.#instance) {
      // Another process fires it now, or died doing so: wait until its claim has
      // not changed for claimTimeoutMs, as this process observes it.
      const seen = this.#seen.get(id);
      if (seen === undefined || seen.versionstamp !== entry.versionstamp) {
        this.#seen.set(id, { versionstamp: entry.versionstamp!, at: performance.now() });
        if (this.#claimTimeoutMs > 0) return false;
      } else if (performance.now() - seen.at < this.#claimTimeoutMs) {
        return false;
      }
    }
    this.#seen.delete(id);
    // The search for an earlier append starts at the first claim's head.
    const from = timer.claim !== undefined
      ? timer.claim.from
      : (await this.#vault.head())?.position ?? null;
    const claimed: Timer = { ...timer, claim: { by: this.#instance, from } };
    const claim = await retryLocked(() =>
      this.#kv.atomic().check(entry).set(key, claimed).commit()
    );
    if (!claim.ok) return false; // Cancelled or claimed meanwhile.
    const guard: AppendGuard = { check: { key, versionstamp: claim.versionstamp } };
    // A former claim may have appended before it stopped: never append twice.
    if (timer.claim !== undefined && await this.#appended(timer, from)) {
      await this.#finish(timer, guard);
      return false;
    }
    try {
      // Decided after the claim: a revocation before it is seen.
      await emit({ ...await event(timer), guard });
    } catch (error) {
      // Someone changed the timer after the claim: cancelled, or claimed by another poller.
      if (error instanceof GuardFailedError) return false;
      throw error;
    }
    await this.#finish(timer, guard);
    return true;
  }

  // Whether the log after `from` holds the timer's event.
  async #appended(timer: Timer, from: string | null): Promise<boolean> {
    const events = this.#vault.read({
      from: from ?? undefined,
      stream: timer.stream,
      kinds: [timer.kind, SKIPPED_KIND],
    });
    for await (const event of events) {
      if (event.meta.scheduleId === timer.id) return true;
    }
    return false;
  }

  async #finish(timer: Timer, guard: AppendGuard): Promise<void> {
    const check = guard.check!;
    for (;;) {
      const [count, mine] = await retryLocked(() =>
        this.#kv.getMany<[number, number]>([COUNT, countOf(timer)])
      );
      const result = await retryLocked(() =>
        this.#end(this.#kv.atomic().check(check), timer, count, mine).commit()
      );
      if (result.ok) return;
      // Another poller took over (it finds the event and finishes), or the count moved.
      const now = await retryLocked(() => this.#kv.get(check.key));
      if (now.versionstamp !== check.versionstamp) return;
    }
  }

  // Deletes a timer, counted; one scheduled while handling an event is remembered as done.
  #end(
    op: AtomicOperation,
    timer: Timer,
    count: AtomicCheck & { value: number | null },
    mine: AtomicCheck & { value: number | null },
  ): AtomicOperation {
    // A subject's count at zero is deleted, so that subjects gone leave no key behind.
    const left = Math.max(0, (mine.value ?? 0) - 1);
    if (left === 0) op.delete(countOf(timer));
    else op.set(countOf(timer), left);
    op.check(count, mine)
      .set(COUNT, Math.max(0, (count.value ?? 0) - 1))
      .delete([...TIMER, timer.id])
      .delete([...DUE, timer.due, timer.id]);
    if (timer.cause === undefined) return op;
    return op.set([...DONE, timer.id], info(timer), { expireIn: DONE_TTL_MS });
  }
}

function byDue(a: Timer, b: Timer): number {
  return a.due - b.due || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}
