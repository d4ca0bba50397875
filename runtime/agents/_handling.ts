// What a handler does through its context while the runner has an event in
// hand: emits (idempotent by emit index), steps and tool calls (journaled by
// step index), each fenced by the agent's lease and tracked until it settles.
// The journal (_emit_journal.ts) serves what an earlier attempt recorded.
import type { Logger } from "@logtape/logtape";
import type { EventRecord, EventStore } from "../log/event_store.ts";
import type { EventBus } from "../bus/event_bus.ts";
import type { EmitInput } from "../bus/subscription.ts";
import type { ToolInvocation, ToolOutcome, ToolRegistry } from "../tool_registry.ts";
import type { LeaseHolder } from "./_lease_holder.ts";
import { InFlight } from "./_in_flight.ts";
import { EmitJournal, STEP_META } from "./_emit_journal.ts";
import { GuardFailedError, LeaseLostError, NonDeterminismError } from "../errors.ts";
import {
  checkRecordable,
  describeCall,
  describeRecord,
  describeStep,
  inputDigest,
  type StepAt,
  type StepPayload,
  type ToolPayload,
} from "./_steps.ts";
import { staleToken, type TokenKeeper } from "./_token_keeper.ts";
import { errorMessage } from "../../internal/error_message.ts";
import { markReplayed, traceStep } from "../../internal/tracing.ts";

/** The stream createRuntime's tool registry records tool events to. */
const TOOL_STREAM = "toolkit";

/** The event in hand, its emits and steps so far and the context calls made for it. */
export interface Handling {
  event: EventRecord;
  /** The next emit's index. */
  index: number;
  /** The next step's index (ctx.step and journaled tool calls). */
  step: number;
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
    this.current = { event, index: 0, step: 0, calls };
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

  /** Whether the agent recorded that it gave up on the event (before a crash, say). */
  gaveUp(id: string): boolean {
    return this.#journal.gaveUp(id);
  }

  /** Forgets what was recorded for a finished event. */
  forget(id: string): void {
    this.#journal.forget(id);
  }

  // Calls a tool with the agent's token; when the token is refused as stale,
  // renews it once and calls once more. Authorization comes before the tool
  // runs, so the tool itself runs at most once.
  // While handling, a call is the next step (unless its tool opted out of the
  // journal): an earlier attempt's recorded output is served without calling.
  call(name: string, input: unknown, signal: AbortSignal): Promise<unknown> {
    const current = this.current;
    const info = current === undefined ? undefined : this.#deps.tools.get(name);
    const step = info === undefined || info.journal === false
      ? undefined
      : { event: current!.event, index: current!.step++ };
    return this.#tracked(this.#call(name, input, signal, step));
  }

  async #call(
    name: string,
    input: unknown,
    signal: AbortSignal,
    step: StepAt | undefined,
  ): Promise<unknown> {
    const { tools, tokens, logger } = this.#deps;
    const cause = this.current?.event;
    let recordOutcome:
      | ((outcome: ToolOutcome, invoked?: ToolInvocation) => Promise<unknown>)
      | undefined;
    let recorded = false;
    if (step !== undefined) {
      const digest = inputDigest(input);
      const prior = this.#prior(step, describeCall(name, digest), (record) => {
        const payload = record.payload as ToolPayload;
        return record.kind === "tool.completed" && payload.tool === name &&
          payload.inputDigest === digest;
      });
      if (prior !== undefined) return (prior.payload as ToolPayload).output;
      recordOutcome = (outcome, invoked) => {
        recorded = true;
        return this.#recordOutcome(step, outcome, invoked);
      };
    }
    await this.#fence();
    const token = await tokens.fresh();
    const agent = this.#deps.name;
    logger.debug("Agent {agent} calls tool {tool}", { agent, tool: name });
    try {
      const output = await tools.call(name, input, { token, signal, cause, recordOutcome });
      logger.debug("Tool {tool} returned to agent {agent}", { agent, tool: name });
      // A registry that records no outcome for the caller: the journal records it here.
      if (step !== undefined && !recorded) {
        await this.#recordOutcome(step, {
          kind: "tool.completed",
          payload: {
            tool: name,
            callId: crypto.randomUUID(),
            inputDigest: inputDigest(input),
            durationMs: 0,
            output,
          },
        });
      }
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
      return await tools.call(name, input, { token: renewed, signal, cause, recordOutcome });
    }
  }

  /**
   * Runs `fn` as the next step of the event in hand, at most once: when an
   * earlier attempt recorded this step's result, it is returned instead.
   * Outside handling (init, stop), `fn` just runs.
   */
  step<T>(name: string, fn: () => T | Promise<T>): Promise<T> {
    const current = this.current;
    let run: Promise<T>;
    if (typeof name !== "string" || name.length === 0 || name.length > 200) {
      run = Promise.reject(
        new TypeError(`Invalid step name ${JSON.stringify(name)}: expected 1 to 200 characters`),
      );
    } else if (typeof fn !== "function") {
      run = Promise.reject(
        new TypeError(`Invalid step ${JSON.stringify(name)}: expected a function to run`),
      );
    } else if (current === undefined) run = (async () => await fn())();
    else {
      const step = { event: current.event, index: current.step++ };
      run = traceStep(
        name,
        step.index,
        step.event.id,
        this.#deps.name,
        () => this.#stepFor(name, fn, step),
      );
    }
    return this.#tracked(run);
  }

  async #stepFor<T>(name: string, fn: () => T | Promise<T>, step: StepAt): Promise<T> {
    const prior = this.#prior(
      step,
      describeStep(name),
      (record) => record.kind === "step.completed" && (record.payload as StepPayload).name === name,
    );
    if (prior !== undefined) {
      markReplayed();
      return (prior.payload as StepPayload).result as T;
    }
    await this.#fence();
    const what = `step ${JSON.stringify(name)} (index ${step.index})`;
    let payload: StepPayload;
    try {
      const result = await fn();
      payload = { name, index: step.index, ...(result !== undefined && { result }) };
      checkRecordable(payload, what);
    } catch (error) {
      // Recorded for the log's reader; the step runs again at the next attempt.
      await this.#recordStep(step, {
        kind: "step.failed",
        payload: { name, index: step.index, error: errorMessage(error) },
      }).catch((e) =>
        this.#deps.logger.warn("Could not record that {what} failed: {message}", {
          what,
          message: errorMessage(e),
        })
      );
      throw error;
    }
    try {
      await this.#recordStep(step, { kind: "step.completed", payload });
    } catch (error) {
      // Another process took the agent over: when it recorded this step
      // first, its result is the one recorded, and this holder gets it too.
      if (!(error instanceof LeaseLostError)) throw error;
      const other = await this.#recordedByOther(step).catch(() => undefined);
      if ((other?.payload as StepPayload | undefined)?.name !== name) throw error;
      return (other!.payload as StepPayload).result as T;
    }
    return payload.result as T;
  }

  // The completion of this step another holder recorded: a read of the
  // agent's stream back to the handled event (rare: only after a takeover).
  async #recordedByOther(step: StepAt): Promise<EventRecord | undefined> {
    const store = this.#deps.bus.store;
    if (store === undefined) return undefined;
    for await (
      const record of store.read({ stream: this.#actor, direction: "backward" })
    ) {
      if (record.position <= step.event.position) return undefined;
      if (
        record.kind === "step.completed" && record.meta.causationId === step.event.id &&
        record.meta[STEP_META] === String(step.index)
      ) return record;
    }
    return undefined;
  }

  // The completion an earlier attempt recorded for this step; a
  // NonDeterminismError when it was another step.
  #prior(
    step: StepAt,
    asked: string,
    same: (record: EventRecord) => boolean,
  ): EventRecord | undefined {
    const record = this.#journal.step(step.event.id, step.index);
    if (record === undefined || same(record)) return record;
    throw new NonDeterminismError(step.event.id, step.index, describeRecord(record), asked);
  }

  // Records a journaled call's outcome, after its tool.invoked when the
  // registry left that to the journal (a read-only tool: one append); an output
  // that cannot be recorded fails the call as a step's result would, and is
  // recorded as tool.failed.
  async #recordOutcome(
    step: StepAt,
    outcome: ToolOutcome,
    invoked?: ToolInvocation,
  ): Promise<void> {
    if (outcome.kind === "tool.completed") {
      const { tool, callId, inputDigest, durationMs } = outcome.payload;
      try {
        checkRecordable(
          outcome.payload,
          `tool ${JSON.stringify(tool)} output (index ${step.index})`,
        );
      } catch (error) {
        const message = errorMessage(error).replace("big result", "big output");
        await this.#recordStep(step, {
          kind: "tool.failed",
          payload: {
            tool,
            callId,
            ...(inputDigest && { inputDigest }),
            durationMs,
            error: { code: (error as Error).name, message },
          },
        }, invoked);
        throw error instanceof RangeError ? new RangeError(message) : error;
      }
    }
    await this.#recordStep(step, outcome, invoked);
  }

  // Appends a step's record under the lease's guard (a tool's outcome where
  // the registry records its other events, or with its tool.invoked in one
  // append); a completion goes into the journal, so a later attempt in this
  // process is served it too.
  async #recordStep(
    step: StepAt,
    input: { kind: string; payload: unknown },
    invoked?: ToolInvocation,
  ): Promise<void> {
    const stream = input.kind.startsWith("tool.") ? TOOL_STREAM : this.#actor;
    const meta = { actor: this.#actor, [STEP_META]: String(step.index) };
    const inputs = [{ ...input, stream, meta }];
    if (invoked !== undefined) inputs.unshift({ ...invoked, stream, meta });
    const records = await this.#fencedEmit(inputs, step.event);
    const record = records[records.length - 1];
    if (record.kind.endsWith(".completed")) {
      this.#journal.recordStep(step.event.id, step.index, record);
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
  // Several inputs (to one stream) are one append, guarded as a whole.
  #fencedEmit(input: EmitInput, cause?: EventRecord): Promise<EventRecord>;
  #fencedEmit(inputs: EmitInput[], cause?: EventRecord): Promise<EventRecord[]>;
  async #fencedEmit(
    inputs: EmitInput | EmitInput[],
    cause?: EventRecord,
  ): Promise<EventRecord | EventRecord[]> {
    const bus = this.#deps.bus;
    for (let attempt = 1;; attempt++) {
      const guard = this.#deps.lease?.guard();
      try {
        if (!Array.isArray(inputs)) {
          return await bus.emit(guard === undefined ? inputs : { ...inputs, guard }, cause);
        }
        if (inputs.length === 1) {
          const [input] = inputs;
          return [await bus.emit(guard === undefined ? input : { ...input, guard }, cause)];
        }
        const [first, ...rest] = inputs;
        return await bus.emitBatch(
          [guard === undefined ? first : { ...first, guard }, ...rest],
          cause,
        );
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
    if (input.meta?.[STEP_META] !== undefined) {
      throw new TypeError(
        `Invalid meta "${STEP_META}" of event "${input.kind}": reserved for steps`,
      );
    }
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
