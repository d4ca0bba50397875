// What an agent recorded while handling each event it has not finished: its
// emits, by emit index, and its completed steps (ctx.step and journaled tool
// calls), by step index. When such an event is handled again (after a crash,
// a retry or a takeover), the n-th emit of the same kind gets the stored event
// back instead of appending it twice, and the n-th step its recorded result.
import type { EventRecord, EventStore } from "../log/event_store.ts";
import { formatPosition } from "../../internal/ids.ts";

/** The meta key that marks a step's record (`step.*`, `tool.*`) and holds its index. */
export const STEP_META = "step";

export class EmitJournal {
  #actor: string;
  #emitted = new Map<string, EventRecord[]>();
  #steps = new Map<string, Map<number, EventRecord>>();

  constructor(actor: string) {
    this.#actor = actor;
  }

  /** Reads the actor's records after `position` (those of a run that died before its checkpoint). */
  async scan(store: EventStore, position: string | null): Promise<void> {
    this.#emitted.clear();
    this.#steps.clear();
    const from = position === null ? undefined : formatPosition(Number(position) + 1);
    for await (const event of store.read({ from })) {
      const cause = event.meta.causationId;
      if (event.meta.actor !== this.#actor || cause === undefined) continue;
      const step = event.meta[STEP_META];
      if (step === undefined) this.#list(cause).push(event);
      // A failed step runs again: only completions are served.
      else if (event.kind.endsWith(".completed")) this.recordStep(cause, Number(step), event);
    }
  }

  /** The event stored as the `index`-th emit for `cause`, if it has this kind. */
  prior(cause: string, index: number, kind: string): EventRecord | undefined {
    const prior = this.#emitted.get(cause)?.[index];
    return prior?.kind === kind ? prior : undefined;
  }

  /** Whether `agent.failed` is among the emits recorded for `cause`. */
  gaveUp(cause: string): boolean {
    return this.#emitted.get(cause)?.some((event) => event?.kind === "agent.failed") ?? false;
  }

  record(cause: string, index: number, event: EventRecord): void {
    this.#list(cause)[index] = event;
  }

  /** The completion recorded as the `index`-th step for `cause`, if any. */
  step(cause: string, index: number): EventRecord | undefined {
    return this.#steps.get(cause)?.get(index);
  }

  recordStep(cause: string, index: number, event: EventRecord): void {
    let steps = this.#steps.get(cause);
    if (steps === undefined) this.#steps.set(cause, steps = new Map());
    steps.set(index, event);
  }

  /** Forgets a finished event's emits and steps. */
  forget(cause: string): void {
    this.#emitted.delete(cause);
    this.#steps.delete(cause);
  }

  #list(cause: string): EventRecord[] {
    let list = this.#emitted.get(cause);
    if (list === undefined) this.#emitted.set(cause, list = []);
    return list;
  }
}
