/**
 * The options of {@linkcode Runtime.create}.
 *
 * @module
 */

import type { EventStore } from "./log/event_store.ts";
import type { ToolRegistry } from "./tool_registry.ts";
import type { TokenAuthority } from "./token_authority.ts";
import type { StorageAdapter } from "./storage/storage.ts";
import type { CheckpointStore, LeaseStore } from "./agents/agent_state.ts";

/**
 * Work that lives with a runtime, such as a timer poller, run at its lifecycle's edges.
 * Each hook runs in the runtime's start/stop order, so it never overlaps them.
 */
export interface RuntimeHooks {
  /** Runs when `start()` has started the agents (not when already running). */
  afterStart?: () => void | Promise<void>;
  /** Runs when `stop()` begins, before the agents stop (not when already stopped). */
  beforeStop?: () => void | Promise<void>;
  /** Runs when `close()` has stopped the runtime: release what the runtime was given to own. */
  onClose?: () => void | Promise<void>;
}

/** How a failing handler is retried before it is recorded as `agent.failed`. */
export interface RetryOptions {
  /** Tries in all, the first included (3). */
  attempts?: number;
  /** Milliseconds to wait before try `attempt + 1`; 100 ms doubling, at most 5 s, by default. */
  backoffMs?: (attempt: number) => number;
}

/** Options of {@linkcode Runtime.create}; every field is optional. */
export interface RuntimeConfig {
  /**
   * The event store agents consume: events are appended before delivery. A
   * `MemoryEventStore` by default. A store that keeps agents' state beside its
   * log (an `AgentStateSource`, as the Deno KV vault is) gives the
   * `checkpoints` and `leases` unless they are passed.
   */
  vault?: EventStore;
  /** The tool registry agents call; a {@linkcode NoopToolRegistry} by default. */
  tools?: ToolRegistry;
  /** Issues agent tokens; an {@linkcode AllowAllAuthority} (every call allowed) by default. */
  auth?: TokenAuthority;
  /** The most agents that may be registered at once (100). */
  maxAgents?: number;
  /** Events each bus subscriber may have waiting (1000). */
  eventBufferSize?: number;
  /** The directory of the default `storage("local")` (`./.toka/storage`). */
  storageRoot?: string;
  /**
   * Files and folders that the default `storage("local")` (and `createRuntime()`'s fs tools)
   * never reach, whatever `storageRoot` is: see `createLocalStorage`. `createRuntime()` adds
   * the vault it opens (with its SQLite files and folder); give the config file and, when
   * passing `vault`, the vault's path.
   */
  protectedPaths?: string[];
  /**
   * Storage adapters by scheme. `local` defaults to files under
   * `storageRoot`; `vault` has no default (`createRuntime()` gives one in the
   * vault's Deno KV). See `createKvStorage`, `createLocalStorage` and
   * `createMemoryStorage`.
   */
  storage?: Readonly<Record<string, StorageAdapter>>;
  /** Milliseconds since the epoch; `Date.now` by default. */
  clock?: () => number;
  /**
   * Milliseconds from a monotonic clock (`performance.now` by default): agent
   * leases are judged by it, so a wall-clock jump neither delays a takeover
   * nor lets a paused holder append.
   */
  monotonicClock?: () => number;
  /**
   * How deep a causal chain may go (100, at most 1,000,000): an event an agent
   * emits while handling another is one deeper than it (`meta.causalDepth`).
   * An emit deeper than this is refused with a `CausalDepthError`, and the
   * agent records it once as `agent.failed` (no retries), so an agent that
   * triggers itself stops. Raise it when a chain that deep is meant.
   */
  maxCausalDepth?: number;
  /** Retries of a failing handler. */
  retry?: RetryOptions;
  /**
   * Where agents' checkpoints are kept: by default the vault's own (see
   * `vault`), else in memory ({@linkcode MemoryCheckpointStore}), lost with the
   * process. Pass it with `leases`: with a vault that keeps agents' state, one
   * without the other is refused.
   */
  checkpoints?: CheckpointStore;
  /**
   * Agents' leases, so that one process at a time runs each agent: by default
   * the vault's own (see `vault`), else none (a runtime alone in its process
   * needs none). Pass a `MemoryLeaseStore` shared by runtimes in one process,
   * with `checkpoints`.
   */
  leases?: LeaseStore;
  /**
   * Seconds an agent's lease lasts unless renewed (10). On a vault with a
   * Deno KV shared by several processes, one process at a time runs a given
   * agent; the others stand by and take over when it stops, or this long
   * after it crashed.
   */
  agentLeaseSecs?: number;
  /**
   * Milliseconds `stop()` lets agents drain (10000): they handle the events
   * appended before it and finish the one in hand. Past this, their
   * `ctx.signal` aborts; an unfinished event is handled again at the next
   * start. 0 aborts at once.
   */
  stopTimeoutMs?: number;
  /** Work started and stopped with the runtime and released by `close()`; none by default. */
  hooks?: RuntimeHooks;
}
