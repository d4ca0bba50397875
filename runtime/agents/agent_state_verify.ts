/**
 * The check of the agents' state index that a Deno KV vault's `verify()`
 * makes: `runtime.stateAt`, `toka agent state` and an agent's state at start
 * read the index, not the events, so an entry edited, removed or added beside
 * the log would change what they say while the chain still verifies.
 *
 * @module
 */
import type { Kv, KvKey } from "../../internal/platform.ts";
import { retryLocked } from "../../internal/kv_retry.ts";
import { canonicalJson } from "../log/event_rules.ts";
import type { EventRecord } from "../log/event_store.ts";
import { INDEXED_STATE_BYTES, STATE_PREFIX } from "./_state_index.ts";

/** Reports a problem found at a position, by event id when there is one. */
export type StateProblem = (position: number, reason: string, id?: string) => void;

// getMany's limit on a remote vault.
const BATCH = 10;
const LATEST = "latest";
const CHECKPOINTS = ["runtime", "checkpoint"] as const;
const decoder = new TextDecoder();

interface Expected {
  at: number;
  id: string;
  agent: string;
  after: string;
  state: string;
}

/**
 * Checks the index against the `agent.state` events the runtime recorded:
 * each has its entry (same position, same state) when its agent has a
 * checkpoint here, no entry is there that none of them made, and each agent's
 * latest entry repeats its last change.
 * It keeps about 20 bytes per `agent.state` event.
 *
 * @example
 * ```ts
 * import { StateIndexCheck } from "./agent_state_verify.ts";
 *
 * using kv = await Deno.openKv(":memory:");
 * const check = new StateIndexCheck(kv, (at, reason) => console.log(at, reason));
 * await check.finish(); // an empty index: nothing to say
 * ```
 */
export class StateIndexCheck {
  readonly #kv: Kv;
  readonly #report: StateProblem;
  #pending: Expected[] = [];
  // Per agent.state event, in position order: its position, `after` and agent (hashed).
  #positions: number[] = [];
  #afters: number[] = [];
  #agents: number[] = [];
  // Keys whose entry was already reported while checking their event.
  #reported = new Set<string>();
  // Events whose entry points at a later position: fine once a later event with that key has it.
  #superseded = new Map<string, { at: number; id: string; p: string; reason: string }>();
  // Per agent, whether it has a checkpoint here.
  #hosted = new Map<string, boolean>();

  /**
   * @param kv The vault's database.
   * @param report Where problems go.
   */
  constructor(kv: Kv, report: StateProblem) {
    this.#kv = kv;
    this.#report = report;
  }

  /**
   * Takes the next event of the log, in position order.
   *
   * @param event The event as read back.
   * @returns When its entry has been checked (every 10 events at most).
   */
  async event(event: EventRecord): Promise<void> {
    if (event.kind !== "agent.state") return;
    const payload = event.payload as { agent?: unknown; after?: unknown; state?: unknown } | null;
    const agent = payload?.agent;
    const after = payload?.after;
    // Only the runtime's own: an event of that kind emitted by hand has no entry.
    if (
      typeof agent !== "string" || typeof after !== "string" || !/^\d{16}$/.test(after) ||
      event.stream !== `agent/${agent}` || event.meta.actor !== `agent/${agent}`
    ) return;
    const at = Number(event.position);
    this.#positions.push(at);
    this.#afters.push(Number(after));
    this.#agents.push(hash(agent));
    const state = canonicalJson(payload?.state ?? null);
    this.#pending.push({ at, id: event.id, agent, after, state });
    if (this.#pending.length >= BATCH) await this.#flush();
  }

  /**
   * Checks what is left, then every entry of the index.
   *
   * @returns When done.
   */
  async finish(): Promise<void> {
    await this.#flush();
    for (const [key, earlier] of this.#superseded) this.#problem(key, earlier);
    let agent: string | undefined;
    let last: { p: string; after: string; s?: Uint8Array } | undefined;
    const entries = this.#kv.list<unknown>({ prefix: [...STATE_PREFIX] });
    for (;;) {
      const next = await retryLocked(() => entries.next());
      if (next.done) break;
      const { key, value } = next.value;
      const name = String(key[2]);
      const after = String(key[3]);
      if (name !== agent) [agent, last] = [name, undefined];
      const entry = value as { p?: unknown; s?: unknown; a?: unknown } | null;
      const p = typeof entry?.p === "string" && /^\d{16}$/.test(entry.p) ? entry.p : undefined;
      if (after === LATEST) {
        const s = entry?.s;
        if (
          last === undefined || p !== last.p || entry?.a !== last.after ||
          !sameBytes(s instanceof Uint8Array ? s : undefined, last.s)
        ) {
          this.#report(
            Number(p ?? 1),
            `the latest state index entry of agent "${name}" is not its last change`,
          );
        }
        continue;
      }
      if (p !== undefined && (last === undefined || p > last.p)) {
        last = { p, after, s: entry?.s instanceof Uint8Array ? entry.s : undefined };
      }
      if (this.#reported.has(keyOf(name, after))) continue;
      const i = p === undefined ? -1 : search(this.#positions, Number(p));
      if (i >= 0 && this.#afters[i] === Number(after) && this.#agents[i] === hash(name)) continue;
      this.#report(
        Number(p ?? 1),
        `the state index entry of agent "${name}" after ${after} was made by no agent.state event` +
          (p === undefined ? "" : ` (it points at position ${p})`),
      );
    }
  }

  async #flush(): Promise<void> {
    const pending = this.#pending;
    if (pending.length === 0) return;
    this.#pending = [];
    // An agent without a checkpoint has no index either (a log imported into a new vault):
    // it handles everything again and records its state anew.
    const unknown = [...new Set(pending.map((e) => e.agent))].filter((a) => !this.#hosted.has(a));
    if (unknown.length > 0) {
      const keys: KvKey[] = unknown.map((agent) => [...CHECKPOINTS, agent]);
      const found = await retryLocked(() => this.#kv.getMany<unknown[]>(keys));
      unknown.forEach((agent, i) => this.#hosted.set(agent, found[i].value !== null));
    }
    const batch = pending.filter((e) => this.#hosted.get(e.agent));
    if (batch.length === 0) return;
    const keys: KvKey[] = batch.map((e) => [...STATE_PREFIX, e.agent, e.after]);
    const found = await retryLocked(() => this.#kv.getMany<unknown[]>(keys));
    for (const [i, expected] of batch.entries()) {
      const key = keyOf(expected.agent, expected.after);
      const value = found[i].value;
      const reason = mismatch(expected, value);
      const earlier = this.#superseded.get(key);
      if (earlier !== undefined && (reason === undefined || expected.at >= Number(earlier.p))) {
        this.#superseded.delete(key);
        // The handling was done again and recorded later: the entry is this event's.
        if (Number(earlier.p) !== expected.at) this.#problem(key, earlier);
      }
      if (reason === undefined) continue;
      const p = (value as { p?: unknown } | null)?.p;
      if (typeof p === "string" && /^\d{16}$/.test(p) && Number(p) > expected.at) {
        this.#superseded.set(key, { at: expected.at, id: expected.id, p, reason });
      } else this.#problem(key, { ...expected, reason });
    }
  }

  #problem(key: string, problem: { at: number; id: string; reason: string }): void {
    this.#reported.add(key);
    this.#report(problem.at, problem.reason, problem.id);
  }
}

/** What is wrong with the entry of an agent.state event, if anything. */
function mismatch(expected: Expected, value: unknown): string | undefined {
  const where = `the state index entry of agent "${expected.agent}" after ${expected.after}`;
  if (value === null || value === undefined) {
    return `the state index has no entry of agent "${expected.agent}" after ${expected.after} ` +
      "for this agent.state event";
  }
  const entry = value as { p?: unknown; s?: unknown };
  const position = String(expected.at).padStart(16, "0");
  if (entry.p !== position) {
    return `${where} points at position ${
      typeof entry.p === "string" ? entry.p.slice(0, 20) : "(none)"
    }, not at this agent.state event`;
  }
  if (entry.s === undefined) {
    if (new TextEncoder().encode(expected.state).length > INDEXED_STATE_BYTES) return undefined;
  } else if (entry.s instanceof Uint8Array) {
    try {
      if (canonicalJson(JSON.parse(decoder.decode(entry.s))) === expected.state) return undefined;
    } catch {
      // Not JSON: reported below.
    }
  }
  return `${where} does not hold the state of this agent.state event`;
}

function keyOf(agent: string, after: string): string {
  return `${agent}\u0000${after}`;
}

// A 32-bit FNV-1a of an agent's name: enough to tell one entry's agent from another's at a position.
function hash(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

// The index of `n` in an ascending array, or -1.
function search(sorted: number[], n: number): number {
  let [low, high] = [0, sorted.length - 1];
  while (low <= high) {
    const mid = (low + high) >> 1;
    if (sorted[mid] === n) return mid;
    if (sorted[mid] < n) low = mid + 1;
    else high = mid - 1;
  }
  return -1;
}

function sameBytes(a: Uint8Array | undefined, b: Uint8Array | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
