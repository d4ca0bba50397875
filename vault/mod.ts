/**
 * The vault: Toka's canonical event store. Every event is appended to a
 * stream with optimistic concurrency, gets a global position and a causal
 * digest, and can be replayed, followed live and verified.
 *
 * @example
 * ```ts
 * import { MemoryEventStore } from "@toka/runtime/vault";
 *
 * const store = new MemoryEventStore();
 * const first = await store.append("agent/planner", [{ kind: "task.created", payload: { id: 1 } }], {
 *   expectedVersion: "no_stream",
 * });
 * await store.append("agent/planner", [{ kind: "task.done", parents: [first.events[0].id] }], {
 *   expectedVersion: first.version,
 * });
 * console.log((await store.verify()).ok); // true
 * await store.close();
 * ```
 *
 * @module
 */

export { KvEventStore, type KvEventStoreOptions, vaultKv } from "./kv_store.ts";
export {
  MemoryEventStore,
  type MemoryEventStoreOptions,
} from "../runtime/log/memory_event_store.ts";
export { DEFAULT_VAULT_PATH, openVault, type OpenVaultOptions } from "./open_vault.ts";
export { type ForkResult, forkVault, type ForkVaultOptions } from "./fork_vault.ts";
export { TokaError, VersionConflictError } from "../runtime/errors.ts";
export type {
  AppendOptions,
  AppendResult,
  EventInput,
  EventRecord,
  EventStore,
  ExpectedVersion,
  ImportResult,
  JsonValue,
  LogHead,
  ReadOptions,
  StoreStats,
  SubscribeOptions,
  VerifyOptions,
  VerifyProblem,
  VerifyReport,
} from "../runtime/log/event_store.ts";
export {
  INLINE_PAYLOAD_BYTES,
  MAX_APPEND_BYTES,
  MAX_EVENTS_PER_APPEND,
  MAX_PAYLOAD_BYTES,
  MAX_PAYLOAD_DEPTH,
} from "../runtime/log/event_limits.ts";
