// What a handler does through its context while the runner has an event in
// hand: emits (idempotent by emit index, through the emit journal) and tool
// calls, each fenced by the agent's lease and tracked until it settles.
import type { Logger } from "@logtape/logtape";
import type { EventRecord, EventStore } from "../log/event_store.ts";
import type { EventBus } from "../bus/event_bus.ts";
import type { EmitInput } from "../bus/subscription.ts";
import type { ToolRegistry } from "../tool_registry.ts";
import type { LeaseHolder } from "./_lease_holder.ts";
import { InFlight } from "./_in_flight.ts";
import { EmitJournal } from "./_emit_journal.ts";
import { GuardFailedError, LeaseLostError } from "../errors.ts";
import { staleToken, type TokenKeeper } from "./_token_keeper.ts";
import { errorMessage } from "../../internal/error_message.ts";

/** The event in hand, its emits so far and the context calls made for it. */
export interface Handling {
  event: EventRecord;
  index: number;
  calls: InFlight;
}

export interface HandlingDeps {
  name: string;
  bus: EventBus;
  tools: ToolRegistry;
  tokens: TokenKeeper;
  lease: LeaseHolder | undefined;
  logger: Logger;
  /** True when no lease is needed, or it was confirmed recently enough. */
  leaseFresh: () => boolean;
  /** Renews the lease; false (and handling stopped) when another process took it. */
  confirmLease: () => Promise<boolean>;
}

export class HandlingCalls {
  /** The event in hand, if any. */
  current: Handling | undefined;
  #deps: HandlingDeps;
  #actor: string;
  #journal: EmitJournal;

  constructor(deps: HandlingDeps) {
    this.#deps = deps;
    this.#actor = `agent/${deps.name}`;
    this.#journal = new EmitJournal(this.#actor);
  }

  /** Takes `event` in hand for one attempt; the context calls made for it are tracked. */
  begin(event: EventRecord): InFlight {
    const calls = new InFlight();
    this.current = { event, index: 0, calls };
    return calls;
  }

  /** Ends the attempt in hand. */
  end(): void {
    this.current = undefined;
  }

  /** Reads what the agent recorded for events after `position` (a run that died before its checkpoint). */
  scan(store: EventStore, position: string | null): Promise<void> {
    return this.#journal.scan(store, position);
  }

  /** Forgets what was recorded for a finished event. */
  forget(id: string): void {
    this.#journal.forget(id);
  }

  // Calls a tool with the agent's token; when the token is refused as stale,
  // renews it once and calls once more. Authorization comes before the tool
  // runs, so the tool itself runs at most once.
  call(name: string, input: unknown, signal: AbortSignal): Promise<unknown> {
    return this.#tracked(this.#call(name, input, signal));
  }

  async #call(name: string, input: unknown, signal: AbortSignal): Promise<unknown> {
    const { tools, tokens, logger } = this.#deps;
    const cause = this.current?.event;
    await this.#fence();
    const token = await tokens.fresh();
    const agent = this.#deps.name;
    logger.debug("Agent {agent} calls tool {tool}", { agent, tool: name });
    try {
      const output = await tools.call(name, input, { token, signal, cause });
      logger.debug("Tool {tool} returned to agent {agent}", { agent, tool: name });
      return output;
    } catch (error) {
      logger.debug("Tool {tool} failed for agent {agent}: {message}", {
        agent,
        tool: name,
        message: errorMessage(error),
      });
      if (!staleToken(error) || signal.aborted) throw error;
      const renewed = await tokens.afterRefusal(token, error);
      logger.info("Renewed agent {name}'s refused token; calling tool {tool} again", {
        name: agent,
        tool: name,
      });
      return await tools.call(name, input, { token: renewed, signal, cause });
    }
  }

  // A context call as the agent sees it, tracked; outside handling (init, stop) one that fails unseen is logged.
  #tracked<T>(call: Promise<T>): Promise<T> {
    if (this.current !== undefined) return this.current.calls.track(call);
    const calls = new InFlight();
    const tracked = calls.track(call);
    void calls.settle().then((failure) => {
      if (failure === undefined) return;
      this.#deps.logger.error("Agent {name}'s call that nobody awaited failed: {message}", {
        name: this.#deps.name,
        message: errorMessage(failure.error),
      });
    });
    return tracked;
  }

  // The fence of everything the agent appends: after a pause past its lease
  // (a suspended process, a blocked event loop), an emit or tool call is made
  // only once the lease is renewed, and refused when another process took it.
  async #fence(): Promise<void> {
    if (this.#deps.leaseFresh()) return;
    if (!(await this.#deps.confirmLease())) throw new LeaseLostError(this.#deps.name);
  }

  // Emits under the lease's guard, so the vault appends nothing once the lease
  // changed, however long a pause fell after #fence(). A guard that failed
  // because this holder renewed the lease meanwhile is replaced and retried.
  async #fencedEmit(input: EmitInput, cause?: EventRecord): Promise<EventRecord> {
    for (let attempt = 1;; attempt++) {
      const guard = this.#deps.lease?.guard();
      try {
        return await this.#deps.bus.emit(guard === undefined ? input : { ...input, guard }, cause);
      } catch (error) {
        if (!(error instanceof GuardFailedError) || guard === undefined) throw error;
        if (attempt >= 3 || !(await this.#deps.confirmLease())) {
          throw new LeaseLostError(this.#deps.name);
        }
      }
    }
  }

  /**
   * Appends an event the runner records for `cause` once its handler
   * returned (its agent.state): fenced and guarded by the lease as emits are,
   * outside the emit journal.
   */
  async record(input: EmitInput, cause: EventRecord): Promise<EventRecord> {
    await this.#fence();
    const meta = { ...input.meta, actor: this.#actor };
    return await this.#fencedEmit({ ...input, stream: input.stream ?? this.#actor, meta }, cause);
  }

  // The event in hand and the emit's index are taken when the emit is made,
  // not after its fence: an emit the handler did not await keeps its parent.
  emit(input: EmitInput): Promise<EventRecord> {
    const current = this.current;
    const emit = input === null || typeof input !== "object"
      ? Promise.reject(
        new TypeError(`Invalid event ${JSON.stringify(input)}: expected an object with a kind`),
      )
      : this.#emitFor(input, current, current === undefined ? 0 : current.index++);
    return this.#tracked(emit);
  }

  async #emitFor(
    input: EmitInput,
    current: Handling | undefined,
    index: number,
  ): Promise<EventRecord> {
    await this.#fence();
    const full = {
      ...input,
      stream: input.stream ?? this.#actor,
      meta: { ...input.meta, actor: this.#actor },
    };
    if (current === undefined) return this.#fencedEmit(full);
    const id = current.event.id;
    const prior = this.#journal.prior(id, index, input.kind);
    if (prior !== undefined) return prior;
    const record = await this.#fencedEmit(full, current.event);
    this.#journal.record(id, index, record);
    return record;
  }
}
