// The runtime's own state ports in memory: for runtimes of one process (the
// default without a vault) and for tests.
import type { AppendEffect, AppendGuard } from "../log/event_store.ts";
import type {
  Checkpoint,
  CheckpointStore,
  Lease,
  LeaseStore,
  SaveResult,
  StateChange,
  StoredLease,
} from "./agent_state.ts";
import { MemoryStateIndex } from "./_state_index.ts";

/**
 * Leases in memory: for runtimes of one process that share it, and for tests.
 *
 * @example
 * ```ts
 * import { MemoryLeaseStore } from "@toka/runtime/runtime";
 *
 * const leases = new MemoryLeaseStore();
 * console.log(await leases.read("worker")); // { lease: null, version: null }
 * ```
 */
export class MemoryLeaseStore implements LeaseStore {
  #leases = new Map<string, { lease: Lease; version: string }>();
  #versions = 0;

  /**
   * Reads an agent's lease.
   *
   * @param agent The agent's name.
   * @returns The lease and its version.
   */
  read(agent: string): Promise<StoredLease> {
    const stored = this.#leases.get(agent);
    return Promise.resolve(
      stored === undefined
        ? { lease: null, version: null }
        : { lease: { ...stored.lease }, version: stored.version },
    );
  }

  /**
   * Compare-and-sets the lease.
   *
   * @param agent The agent's name.
   * @param version The version read.
   * @param lease The new lease, or `null` to delete it.
   * @returns The new version, or `undefined` when it had changed.
   */
  swap(agent: string, version: string | null, lease: Lease | null): Promise<string | undefined> {
    if ((this.#leases.get(agent)?.version ?? null) !== version) return Promise.resolve(undefined);
    if (lease === null) {
      this.#leases.delete(agent);
      return Promise.resolve("");
    }
    const next = String(++this.#versions).padStart(20, "0");
    this.#leases.set(agent, { lease: { ...lease }, version: next });
    return Promise.resolve(next);
  }

  /**
   * A guard that holds while the lease is still at `version`, checked by the
   * in-memory event store synchronously with its append.
   *
   * @param agent The agent's name.
   * @param version The lease's version, as `swap` returned it.
   * @returns The guard, for `AppendOptions.guard`.
   *
   * @example
   * ```ts
   * import { MemoryLeaseStore } from "@toka/runtime/runtime";
   *
   * const leases = new MemoryLeaseStore();
   * const version = await leases.swap("worker", null, { owner: "a", expiresAt: 0 });
   * const guard = leases.guard("worker", version!);
   * console.log(guard.holds?.()); // true
   * ```
   */
  guard(agent: string, version: string): AppendGuard {
    return { holds: () => this.#leases.get(agent)?.version === version };
  }

  /**
   * Lists every lease.
   *
   * @returns Agent names and leases, by name.
   */
  async *list(): AsyncIterable<[string, Lease]> {
    const names = [...this.#leases.keys()].sort();
    for (const name of names) yield [name, { ...this.#leases.get(name)!.lease }];
  }

  /**
   * The owner of an agent's lease, read synchronously (so a check and a write
   * that depends on it are one step).
   *
   * @param agent The agent's name.
   * @returns The owner, or `undefined` when nobody holds the lease.
   */
  ownerOf(agent: string): string | undefined {
    return this.#leases.get(agent)?.lease.owner;
  }
}

/**
 * Checkpoints in memory, fenced by a {@linkcode MemoryLeaseStore} when given one.
 *
 * @example
 * ```ts
 * import { MemoryCheckpointStore } from "@toka/runtime/runtime";
 *
 * const checkpoints = new MemoryCheckpointStore();
 * await checkpoints.save("worker", { position: null, failures: 0, updatedAt: 0 });
 * console.log(await checkpoints.load("worker")); // { position: null, failures: 0, updatedAt: 0 }
 * ```
 */
export class MemoryCheckpointStore implements CheckpointStore {
  #checkpoints = new Map<string, Checkpoint>();
  #states = new MemoryStateIndex();
  #leases: MemoryLeaseStore | undefined;

  /**
   * Creates the store.
   *
   * @param leases The leases that fence saves made for an owner.
   */
  constructor(leases?: MemoryLeaseStore) {
    this.#leases = leases;
  }

  /**
   * Reads an agent's checkpoint.
   *
   * @param agent The agent's name.
   * @returns Its checkpoint, or `undefined`.
   */
  load(agent: string): Promise<Checkpoint | undefined> {
    const checkpoint = this.#checkpoints.get(agent);
    return Promise.resolve(checkpoint === undefined ? undefined : structuredClone(checkpoint));
  }

  /**
   * Saves a checkpoint; with `owner`, only while it holds the lease.
   *
   * @param agent The agent's name.
   * @param checkpoint Where it is.
   * @param owner The lease owner it is written for.
   * @returns Whether it was written.
   */
  save(agent: string, checkpoint: Checkpoint, owner?: string): Promise<SaveResult> {
    if (owner !== undefined && this.#leases?.ownerOf(agent) !== owner) {
      return Promise.resolve("fenced");
    }
    this.#checkpoints.set(agent, structuredClone(checkpoint));
    return Promise.resolve("written");
  }

  /**
   * Lists every checkpoint.
   *
   * @returns Agent names and checkpoints, by name.
   */
  async *list(): AsyncIterable<[string, Checkpoint]> {
    const names = [...this.#checkpoints.keys()].sort();
    for (const name of names) yield [name, structuredClone(this.#checkpoints.get(name)!)];
  }

  /**
   * Saves the checkpoint and indexes the state as the in-memory event store
   * stores the `agent.state` event (its `apply`).
   *
   * @param agent The agent's name.
   * @param checkpoint Where it is.
   * @param state The new state as JSON.
   * @returns The effect.
   * @throws {TypeError} When the checkpoint has no position.
   */
  withState(agent: string, checkpoint: Checkpoint, state: string): AppendEffect {
    return this.#states.effect(
      agent,
      checkpoint,
      state,
      (saved) => this.#checkpoints.set(agent, saved),
    );
  }

  /**
   * The agent's state after handling everything up to `position`.
   *
   * @param agent The agent's name.
   * @param position A global position; the latest change when omitted.
   * @returns The change, or `undefined`.
   * @throws {TypeError} When the name or the position is invalid.
   */
  stateAt(agent: string, position?: string): Promise<StateChange | undefined> {
    try {
      return Promise.resolve(this.#states.at(agent, position));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Lists the agent's state changes, oldest first.
   *
   * @param agent The agent's name.
   * @returns Its changes.
   * @throws {TypeError} When the name is invalid.
   */
  async *stateHistory(agent: string): AsyncIterable<StateChange> {
    yield* this.#states.history(agent);
  }
}
