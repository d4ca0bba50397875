/**
 * The runtime's own state, behind ports: where each agent is in the log (its
 * checkpoint) and which process runs it (its lease). Each port has a Deno KV
 * implementation, for a vault shared by processes, and an in-memory one; both
 * pass one contract suite. A Deno KV vault offers the KV ones (see
 * {@linkcode AgentStateSource}), which `Runtime.create({ vault })` takes; pass
 * others to it as `checkpoints` and `leases`.
 *
 * @module
 */

import type { Kv } from "../../internal/platform.ts";
import { retryLocked } from "../../internal/kv_retry.ts";
import type { AppendEffect, AppendGuard, JsonValue } from "../log/event_store.ts";
import { kvStateAt, kvStateHistory, stateWrites } from "./_state_index.ts";

/** Where an agent is in the log. */
export interface Checkpoint {
  /** Position of the last event the agent finished, or `null` before the first. */
  position: string | null;
  /** Events it gave up on (recorded as `agent.failed`), over its whole life. */
  failures: number;
  /** When the checkpoint was written, ms since the epoch. */
  updatedAt: number;
  /**
   * The agent's kind patterns when the checkpoint was written, so that tools
   * can count the events it has yet to handle. Missing in older records.
   */
  subscribe?: readonly string[];
}

/** Which runner (of which process) runs an agent. */
export interface Lease {
  /** The runner holding it: random, one per runner start. */
  owner: string;
  /** When it ends unless renewed, ms since the epoch by the holder's clock: informative only. */
  expiresAt: number;
}

/** A lease as read, with the version a compare-and-set is checked against. */
export interface StoredLease {
  /** The lease, or `null` when nobody holds one. */
  lease: Lease | null;
  /** Opaque; changes on every write. `null` when nothing is stored. */
  version: string | null;
}

/** What {@linkcode CheckpointStore.save} did. */
export type SaveResult =
  /** Written. */
  | "written"
  /** Not written: another owner holds the agent's lease. */
  | "fenced"
  /** Not written: the lease changed while saving (a renewal, say); try again. */
  | "conflict";

/** One change of an agent's state (`ctx.state.set()`), as its checkpoint store indexes it. */
export interface StateChange {
  /** Position of the event whose handling made the change: the state holds after it. */
  after: string;
  /** Position of the `agent.state` event that records it (later than `after`). */
  position: string;
  /**
   * The new state; absent when it was too large to index (over 32 KiB as
   * JSON): then it is the `state` of the event at `position`'s payload.
   */
  state?: JsonValue;
}

/** Stores agents' checkpoints, and the index of their state changes. */
export interface CheckpointStore {
  /**
   * Reads an agent's checkpoint.
   *
   * @param agent The agent's name.
   * @returns Its checkpoint, or `undefined` when none was saved.
   */
  load(agent: string): Promise<Checkpoint | undefined>;
  /**
   * Saves an agent's checkpoint. With `owner`, only while that owner holds
   * the agent's lease in the paired {@linkcode LeaseStore}, checked in the
   * same step as the write, so a process that lost the lease cannot move the
   * checkpoint back under the new holder.
   *
   * @param agent The agent's name.
   * @param checkpoint Where it is.
   * @param owner The lease owner it is written for, if it runs under a lease.
   * @returns Whether it was written.
   */
  save(agent: string, checkpoint: Checkpoint, owner?: string): Promise<SaveResult>;
  /**
   * Lists every stored checkpoint.
   *
   * @returns Agent names and checkpoints, by name.
   */
  list(): AsyncIterable<[string, Checkpoint]>;
  /**
   * What to commit with the append of an `agent.state` event, all or none:
   * the agent's checkpoint and the index entry of its new state (see
   * `AppendOptions.effect`), for an event store beside this one (the same
   * Deno KV, or memory). Fencing comes from the append's guard.
   *
   * @param agent The agent's name.
   * @param checkpoint Where it is: the event whose handling changed the state.
   * @param state The new state as JSON.
   * @returns The effect, for `AppendOptions.effect`.
   * @throws {TypeError} When the checkpoint has no position.
   */
  withState(agent: string, checkpoint: Checkpoint, state: string): AppendEffect;
  /**
   * The agent's last state change made while handling an event at or before
   * `position`: its state once it had handled everything up to there.
   *
   * @param agent The agent's name.
   * @param position A global position (16 digits); the latest change when omitted.
   * @returns The change, or `undefined` when it had none by then.
   * @throws {TypeError} When the name or the position is invalid.
   */
  stateAt(agent: string, position?: string): Promise<StateChange | undefined>;
  /**
   * Lists the agent's state changes, oldest first.
   *
   * @param agent The agent's name.
   * @returns Its changes.
   * @throws {TypeError} When the name is invalid.
   */
  stateHistory(agent: string): AsyncIterable<StateChange>;
}

/** Stores agents' leases: reads and compare-and-sets, the policy is the runtime's. */
export interface LeaseStore {
  /**
   * Reads an agent's lease.
   *
   * @param agent The agent's name.
   * @returns The lease and its version.
   */
  read(agent: string): Promise<StoredLease>;
  /**
   * Replaces the lease (or deletes it, with `null`) if its version is still
   * `version`. A lease stays until replaced or deleted: a store must not let
   * it expire, since an expiry judged by a reader's wall clock would hand
   * over a lease its holder still renews.
   *
   * @param agent The agent's name.
   * @param version The version read; `null` when nothing was stored.
   * @param lease The new lease, or `null` to delete it.
   * @returns The new version (`""` after a delete), or `undefined` when the version had changed.
   */
  swap(agent: string, version: string | null, lease: Lease | null): Promise<string | undefined>;
  /**
   * Lists every stored lease.
   *
   * @returns Agent names and leases, by name.
   */
  list(): AsyncIterable<[string, Lease]>;
  /**
   * A guard for the vault's append that holds while the lease is still at
   * `version`: a holder's emits carry it, so none is appended once another
   * process took (or the holder renewed) the lease. Without this method,
   * emits are fenced only by the runner's check before appending.
   *
   * @param agent The agent's name.
   * @param version The lease's version, as `swap` returned it.
   * @returns The guard, for `AppendOptions.guard`.
   */
  guard?(agent: string, version: string): AppendGuard;
}

/**
 * The checkpoint and lease stores that keep agents' state beside a log. A
 * store that offers them ({@linkcode AgentStateSource}) gives them to the
 * runtime, so that a durable vault never runs agents on volatile state.
 */
export interface AgentStatePorts {
  /** Where agents' checkpoints are kept. */
  readonly checkpoints: CheckpointStore;
  /** Agents' leases, which fence those checkpoints and the agents' emits. */
  readonly leases: LeaseStore;
}

/**
 * An event store that keeps agents' state beside its log, as the Deno KV
 * vault does: `Runtime.create({ vault })` takes these ports unless it is
 * given `checkpoints` and `leases`.
 */
export interface AgentStateSource {
  /**
   * The checkpoint and lease stores beside the log.
   *
   * @returns The two ports, sharing the store's database.
   */
  agentState(): AgentStatePorts;
}

const CHECKPOINT_PREFIX = ["runtime", "checkpoint"] as const;
const LEASE_PREFIX = ["runtime", "lease"] as const;

/**
 * Leases in a Deno KV database, at `["runtime", "lease", agent]`; a locked
 * database is retried.
 *
 * @example
 * ```ts
 * import { KvLeaseStore } from "@toka/runtime/runtime";
 *
 * using kv = await Deno.openKv(":memory:");
 * const leases = new KvLeaseStore(kv);
 * const { version } = await leases.read("worker");
 * await leases.swap("worker", version, { owner: "me", expiresAt: Date.now() + 10_000 });
 * console.log((await leases.read("worker")).lease?.owner); // me
 * ```
 */
export class KvLeaseStore implements LeaseStore {
  #kv: Kv;

  /**
   * Creates the store.
   *
   * @param kv The database, e.g. the one the vault keeps its log in.
   */
  constructor(kv: Kv) {
    this.#kv = kv;
  }

  /**
   * Reads an agent's lease.
   *
   * @param agent The agent's name.
   * @returns The lease and its version.
   */
  async read(agent: string): Promise<StoredLease> {
    const entry = await retryLocked(() => this.#kv.get<Lease>([...LEASE_PREFIX, agent]));
    return { lease: entry.value, version: entry.versionstamp };
  }

  /**
   * Compare-and-sets the lease in one checked commit. No `expireIn`: Deno KV
   * judges it by each reader's wall clock, so a reader whose clock is ahead
   * would see a renewed lease gone; a crashed holder's lease is taken over
   * by a standby's own observation instead.
   *
   * @param agent The agent's name.
   * @param version The version read.
   * @param lease The new lease, or `null` to delete it.
   * @returns The new version, or `undefined` when it had changed.
   */
  async swap(
    agent: string,
    version: string | null,
    lease: Lease | null,
  ): Promise<string | undefined> {
    const key = [...LEASE_PREFIX, agent];
    const op = this.#kv.atomic().check({ key, versionstamp: version });
    if (lease === null) op.delete(key);
    else op.set(key, lease);
    const commit = await retryLocked(() => op.commit());
    return commit.ok ? (lease === null ? "" : commit.versionstamp) : undefined;
  }

  /**
   * A guard that the Deno KV event store on the same KV checks in its commit:
   * the lease key's versionstamp is still `version`.
   *
   * @param agent The agent's name.
   * @param version The lease's version, as `swap` returned it.
   * @returns The guard, for `AppendOptions.guard`.
   *
   * @example
   * ```ts
   * import { KvLeaseStore } from "@toka/runtime/runtime";
   *
   * const kv = await Deno.openKv(":memory:");
   * const guard = new KvLeaseStore(kv).guard("worker", "00000000000000010000");
   * console.log(guard.check?.key); // ["runtime", "lease", "worker"]
   * kv.close();
   * ```
   */
  guard(agent: string, version: string): AppendGuard {
    return { check: { key: [...LEASE_PREFIX, agent], versionstamp: version } };
  }

  /**
   * Lists every stored lease.
   *
   * @returns Agent names and leases.
   */
  async *list(): AsyncIterable<[string, Lease]> {
    for await (const entry of this.#kv.list<Lease>({ prefix: [...LEASE_PREFIX] })) {
      yield [String(entry.key[2]), entry.value];
    }
  }
}

/**
 * Checkpoints in a Deno KV database, at `["runtime", "checkpoint", agent]`,
 * fenced by the {@linkcode KvLeaseStore} of the same database; a locked
 * database is retried.
 *
 * @example
 * ```ts
 * import { KvCheckpointStore } from "@toka/runtime/runtime";
 *
 * using kv = await Deno.openKv(":memory:");
 * const checkpoints = new KvCheckpointStore(kv);
 * await checkpoints.save("worker", { position: "0000000000000001", failures: 0, updatedAt: 0 });
 * console.log((await checkpoints.load("worker"))?.position); // 0000000000000001
 * ```
 */
export class KvCheckpointStore implements CheckpointStore {
  #kv: Kv;

  /**
   * Creates the store.
   *
   * @param kv The database, e.g. the one the vault keeps its log in.
   */
  constructor(kv: Kv) {
    this.#kv = kv;
  }

  /**
   * Reads an agent's checkpoint.
   *
   * @param agent The agent's name.
   * @returns Its checkpoint, or `undefined`.
   */
  async load(agent: string): Promise<Checkpoint | undefined> {
    const entry = await retryLocked(() => this.#kv.get<Checkpoint>([...CHECKPOINT_PREFIX, agent]));
    return entry.value ?? undefined;
  }

  /**
   * Saves a checkpoint; with `owner`, in one commit checked against the lease.
   *
   * @param agent The agent's name.
   * @param checkpoint Where it is.
   * @param owner The lease owner it is written for.
   * @returns Whether it was written.
   */
  async save(agent: string, checkpoint: Checkpoint, owner?: string): Promise<SaveResult> {
    const key = [...CHECKPOINT_PREFIX, agent];
    if (owner === undefined) {
      await retryLocked(() => this.#kv.set(key, checkpoint));
      return "written";
    }
    const lease = await retryLocked(() => this.#kv.get<Lease>([...LEASE_PREFIX, agent]));
    if (lease.value?.owner !== owner) return "fenced";
    const commit = await retryLocked(() =>
      this.#kv.atomic().check(lease).set(key, checkpoint).commit()
    );
    return commit.ok ? "written" : "conflict";
  }

  /**
   * Lists every stored checkpoint.
   *
   * @returns Agent names and checkpoints.
   */
  async *list(): AsyncIterable<[string, Checkpoint]> {
    for await (const entry of this.#kv.list<Checkpoint>({ prefix: [...CHECKPOINT_PREFIX] })) {
      yield [String(entry.key[2]), entry.value];
    }
  }

  /**
   * The checkpoint and state index writes to commit with an `agent.state`
   * append to the Deno KV vault on the same database: the index entry at
   * `["runtime", "state", agent, after]` holds the state when it is at most
   * 32 KiB, else only the event's position; `["runtime", "state", agent,
   * "latest"]` repeats the latest one.
   *
   * @param agent The agent's name.
   * @param checkpoint Where it is.
   * @param state The new state as JSON.
   * @returns The effect.
   * @throws {TypeError} When the checkpoint has no position.
   */
  withState(agent: string, checkpoint: Checkpoint, state: string): AppendEffect {
    return stateWrites([...CHECKPOINT_PREFIX, agent], agent, checkpoint, state);
  }

  /**
   * The agent's state after handling everything up to `position`: one
   * reverse-listed KV entry, whatever the length of its history; the latest
   * one, without a position, is one KV get.
   *
   * @param agent The agent's name.
   * @param position A global position; the latest change when omitted.
   * @returns The change, or `undefined`.
   * @throws {TypeError} When the name or the position is invalid.
   */
  stateAt(agent: string, position?: string): Promise<StateChange | undefined> {
    return kvStateAt(this.#kv, agent, position);
  }

  /**
   * Lists the agent's state changes, oldest first.
   *
   * @param agent The agent's name.
   * @returns Its changes.
   * @throws {TypeError} When the name is invalid.
   */
  stateHistory(agent: string): AsyncIterable<StateChange> {
    return kvStateHistory(this.#kv, agent);
  }
}
