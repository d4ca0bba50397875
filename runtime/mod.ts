/**
 * The runtime: an event bus, agents with durable checkpoints, and storage,
 * with the vault, toolkit and auth attached through small interfaces. This
 * entry point loads no vault, toolkit or auth code.
 *
 * @example
 * ```ts
 * import { defineAgent, Runtime } from "@toka/runtime/runtime";
 *
 * const runtime = await Runtime.create();
 * const done: unknown[] = [];
 * runtime.register(defineAgent({
 *   name: "worker",
 *   subscribe: ["task.*"],
 *   async handle(event, ctx) {
 *     const result = await ctx.emit({ kind: "work.done", payload: event.payload });
 *     done.push(result.payload);
 *   },
 * }));
 * await runtime.start();
 * await runtime.emit({ kind: "task.created", payload: { id: 1 } });
 * await runtime.stop();
 * console.log(done); // [{ id: 1 }]
 * ```
 *
 * @module
 */

export { Runtime } from "./runtime.ts";
export type { AgentStatus } from "./agents/agent_status.ts";
export type { RetryOptions, RuntimeConfig, RuntimeHooks } from "./runtime_config.ts";
export type { AtomicCheck, Kv } from "../internal/platform.ts";
export { EventBus, type EventBusOptions } from "./bus/event_bus.ts";
export type {
  BusSubscribeOptions,
  EmitInput,
  EventHandler,
  EventStream,
  HandlerContext,
  Subscription,
} from "./bus/subscription.ts";
export {
  type Agent,
  type AgentContext,
  type AgentLogger,
  type AgentState,
  type AgentTools,
  defineAgent,
} from "./agents/agent.ts";
export {
  type AgentStorageOptions,
  MAX_STORAGE_VALUE_BYTES,
  type StorageAdapter,
} from "./storage/storage.ts";
export {
  createKvStorage,
  createLocalStorage,
  createMemoryStorage,
  type KvStorageOptions,
  type LocalStorageOptions,
} from "./storage/storage_adapters.ts";
export {
  type AgentStatePorts,
  type AgentStateSource,
  type Checkpoint,
  type CheckpointStore,
  KvCheckpointStore,
  KvLeaseStore,
  type Lease,
  type LeaseStore,
  type SaveResult,
  type StateChange,
  type StoredLease,
} from "./agents/agent_state.ts";
export { MemoryCheckpointStore, MemoryLeaseStore } from "./agents/memory_agent_state.ts";
export { type FailedEvent, readFailedEvents } from "./agents/failed_events.ts";
export { MemoryEventStore, type MemoryEventStoreOptions } from "./log/memory_event_store.ts";
export {
  CapabilityDeniedError,
  CausalDepthError,
  GuardFailedError,
  LeaseLostError,
  NonDeterminismError,
  type RetryRefusal,
  RetryRefusedError,
  TokaError,
  VersionConflictError,
} from "./errors.ts";
export type {
  AppendEffect,
  AppendGuard,
  AppendOptions,
  AppendResult,
  EventInput,
  EventRecord,
  EventStore,
  ExpectedVersion,
  ImportResult,
  JsonValue,
  KvWrite,
  LogHead,
  ReadOptions,
  StoreStats,
  SubscribeOptions,
  VerifyOptions,
  VerifyProblem,
  VerifyReport,
} from "./log/event_store.ts";
export {
  NoopToolRegistry,
  type ToolAnnotations,
  type ToolCallOptions,
  type ToolInfo,
  type ToolInvocation,
  ToolNotFoundError,
  type ToolOutcome,
  type ToolRegistry,
} from "./tool_registry.ts";
export {
  AllowAllAuthority,
  type IssueRequest,
  type TokenAuthority,
  type TokenClaims,
} from "./token_authority.ts";
export { compileKindFilter, type KindFilter } from "./log/kind_pattern.ts";
