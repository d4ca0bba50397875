/**
 * What subscribers of the event bus see: handlers, their context and
 * subscriptions, and the input of an emit.
 *
 * @module
 */

import type {
  AppendEffect,
  AppendGuard,
  EventInput,
  EventRecord,
  ExpectedVersion,
} from "../log/event_store.ts";

/** What `EventBus.emit` takes: an event, and where to append it. */
export interface EmitInput<P = unknown> extends EventInput<P> {
  /** The stream to append to; the bus's default stream (`"runtime"`) when omitted. */
  stream?: string;
  /** The version the stream must be at; `"any"` when omitted. */
  expectedVersion?: ExpectedVersion;
  /** Append only while this guard holds, atomically with the vault's commit (see `AppendGuard`). */
  guard?: AppendGuard;
  /** Records kept in step with the append, committed with it (see `AppendEffect`). */
  effect?: AppendEffect;
}

/** What a subscription handler gets besides the event. */
export interface HandlerContext {
  /**
   * Emits an event caused by the one being handled: it gets that event as a
   * parent and shares its correlation id.
   */
  emit(input: EmitInput): Promise<EventRecord>;
}

/** A subscription handler. Events reach it one at a time, in log order. */
export type EventHandler = (
  event: EventRecord,
  context: HandlerContext,
) => void | Promise<void>;

/** Options of `EventBus.subscribe`. */
export interface BusSubscribeOptions {
  /**
   * Replay stored events strictly after this position first (a vault is
   * required); by default only events emitted after subscribing are delivered.
   */
  after?: string;
  /** Closes the subscription when aborted. */
  signal?: AbortSignal;
}

/** A live subscription to the bus. */
export interface Subscription {
  /** The kind patterns it receives. */
  readonly patterns: readonly string[];
  /** Events lost because the buffer was full and no vault was attached. */
  readonly dropped: number;
  /** Events read back from the vault: replayed with `after`, or caught up after an overflow. */
  readonly replayed: number;
  /** True once closed. */
  readonly closed: boolean;
  /** Resolves when every event delivered so far has been handled (or taken by the iterator). */
  idle(): Promise<void>;
  /**
   * Stops delivery; waits for the event being handled, drops the rest. Called
   * from the subscription's own handler, it does not wait for that handler.
   */
  close(): Promise<void>;
}

/** A subscription consumed with `for await`. Leaving the loop closes it. */
export interface EventStream extends Subscription, AsyncIterableIterator<EventRecord> {}
