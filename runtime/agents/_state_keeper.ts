// An agent's ctx.state: the state recorded last, and the value the handler
// set for the event in hand, committed by the runner once the handler returns
// (an agent.state event that carries the checkpoint: _checkpoint.ts).
import type { Logger } from "@logtape/logtape";
import type { Agent, AgentState } from "./agent.ts";
import type { EventRecord, EventStore, JsonValue } from "../log/event_store.ts";
import type { StateChange } from "./agent_state.ts";
import type { CheckpointBook } from "./_checkpoint.ts";
import type { HandlingCalls } from "./_handling.ts";
import { errorMessage } from "../../internal/error_message.ts";
import { CausalDepthError, LeaseLostError } from "../errors.ts";
import { canonicalJson, JsonValueError } from "../../internal/canonical_json.ts";
import { MAX_PAYLOAD_BYTES, MAX_PAYLOAD_DEPTH } from "../log/event_limits.ts";
import { Buffer } from "node:buffer";
import { TokaError } from "../errors.ts";

/** The largest state, in bytes of JSON: room is left for the rest of the agent.state payload. */
export const MAX_STATE_BYTES = MAX_PAYLOAD_BYTES - 1024;

export class StateKeeper implements AgentState {
  #name: string;
  #actor: string;
  #subscribe: readonly string[];
  #checkpoints: CheckpointBook;
  #calls: HandlingCalls;
  #logger: Logger;
  #failures: () => number;
  // As canonical JSON, so that "set to what it was" is seen and nothing is shared with the handler.
  #recorded: string | undefined;
  #set: string | undefined;
  #handling = false;

  constructor(
    agent: Agent,
    checkpoints: CheckpointBook,
    calls: HandlingCalls,
    logger: Logger,
    failures: () => number,
  ) {
    this.#name = agent.name;
    this.#actor = `agent/${agent.name}`;
    this.#subscribe = agent.subscribe;
    this.#checkpoints = checkpoints;
    this.#calls = calls;
    this.#logger = logger;
    this.#failures = failures;
  }

  /** Whether `event` records a change of this agent's own state. */
  isOwn(event: EventRecord): boolean {
    return event.kind === AGENT_STATE && event.meta.actor === this.#actor;
  }

  /** Loads the state the agent had at its checkpoint. */
  async load(store: EventStore, position: string | null): Promise<void> {
    this.#set = undefined;
    this.#recorded = undefined;
    if (position === null) return;
    const change = await this.#checkpoints.stateAt(this.#name, position);
    if (change !== undefined) {
      this.#recorded = canonicalJson(await stateOf(store, change), Infinity);
    }
  }

  /**
   * Records the state the handler set, if it changed, with the checkpoint
   * moved to `at`: an agent.state event caused by `cause`, one commit under
   * the lease's guard. Undefined when recorded (or nothing to record), else
   * the outcome of the event: "stopped" when the lease was lost.
   */
  async commit(at: EventRecord, cause: EventRecord): Promise<"stalled" | "stopped" | undefined> {
    const state = this.changed;
    if (state === undefined) return undefined;
    const name = this.#name;
    const payload: StatePayload = { agent: name, after: at.position, state: JSON.parse(state) };
    try {
      await this.#checkpoints.withState(
        name,
        at.position,
        this.#failures(),
        this.#subscribe,
        state,
        (effect) => this.#calls.record({ kind: AGENT_STATE, payload, effect }, cause),
      );
    } catch (error) {
      this.#logger.error(
        "Could not record the state of agent {name} for event {id}: {message}",
        { name, id: cause.id, message: errorMessage(error) },
      );
      // Past the causal depth limit it never can be: dropped, or the event would stall forever.
      if (error instanceof CausalDepthError) {
        this.#set = undefined;
        return undefined;
      }
      // "stalled": tried again (a stopping runner checks its signal itself).
      return error instanceof LeaseLostError ? "stopped" : "stalled";
    }
    this.#recorded = state;
    this.#set = undefined;
    return undefined;
  }

  /** An attempt at handling an event begins: a value set by an earlier one is dropped. */
  begin(): void {
    this.#set = undefined;
    this.#handling = true;
  }

  /** The attempt failed: what it set is dropped. */
  drop(): void {
    this.#set = undefined;
  }

  /** The attempt ended: sets are refused until the next one. */
  end(): void {
    this.#handling = false;
  }

  /** The JSON of the state the last attempt set, when it differs from the recorded one. */
  /**
   * The payload of a retry's `agent.recovered`: `stateChanged` marks a state
   * change committed after it, so a request delivered again before that
   * commit is retried again (failed_events.ts, dueRetry).
   */
  recovered(event: EventRecord): Record<string, unknown> {
    const payload = { agent: this.#name, eventId: event.id, kind: event.kind };
    return this.changed === undefined ? payload : { ...payload, stateChanged: true };
  }

  get changed(): string | undefined {
    return this.#set !== this.#recorded ? this.#set : undefined;
  }

  get<T extends JsonValue = JsonValue>(): T | undefined {
    const json = this.#set ?? this.#recorded;
    return json === undefined ? undefined : JSON.parse(json) as T;
  }

  set(value: JsonValue): void {
    if (!this.#handling) {
      throw new TypeError(
        `Cannot set the state of agent "${this.#name}" outside the handling of an event`,
      );
    }
    let json: string;
    try {
      // One level less than a payload's: the state sits in the agent.state payload.
      json = canonicalJson(value, MAX_PAYLOAD_DEPTH - 1);
    } catch (error) {
      if (!(error instanceof JsonValueError)) throw error;
      throw new TypeError(`Invalid state of agent "${this.#name}": ${error.message}`);
    }
    const bytes = Buffer.byteLength(json, "utf8");
    if (bytes > MAX_STATE_BYTES) {
      throw new RangeError(
        `State of agent "${this.#name}" is ${bytes} bytes, over the maximum of ${MAX_STATE_BYTES}`,
      );
    }
    this.#set = json;
  }
}

/** The kind of the events that record agents' state changes. */
export const AGENT_STATE = "agent.state";

/** The payload of an agent.state event. */
export interface StatePayload {
  agent: string;
  after: string;
  state: JsonValue;
}

/** The state a change holds: from its index entry, else (a large state) from its event. */
export async function stateOf(
  store: EventStore,
  change: StateChange,
): Promise<JsonValue> {
  if (change.state !== undefined) return change.state;
  let event: EventRecord | undefined;
  for await (const found of store.read({ from: change.position, limit: 1 })) event = found;
  if (event?.position !== change.position || event.kind !== AGENT_STATE) {
    throw new TokaError(
      "state_not_found",
      `The agent.state event at position "${change.position}" is missing`,
    );
  }
  return structuredClone((event.payload as StatePayload).state);
}
