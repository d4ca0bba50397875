// What an agent emitted while handling each event it has not finished, by
// emit index: when such an event is handled again (after a crash or a retry),
// the n-th emit of the same kind gets the stored event back instead of
// appending it twice.
import type { EventRecord, EventStore } from "../log/event_store.ts";
import { formatPosition } from "../../internal/ids.ts";

export class EmitJournal {
  #actor: string;
  #emitted = new Map<string, EventRecord[]>();

  constructor(actor: string) {
    this.#actor = actor;
  }

  /** Reads the actor's emits after `position` (those of a run that died before its checkpoint). */
  async scan(store: EventStore, position: string | null): Promise<void> {
    this.#emitted.clear();
    const from = position === null ? undefined : formatPosition(Number(position) + 1);
    for await (const event of store.read({ from })) {
      const cause = event.meta.causationId;
      if (event.meta.actor !== this.#actor || cause === undefined) continue;
      this.#list(cause).push(event);
    }
  }

  /** The event stored as the `index`-th emit for `cause`, if it has this kind. */
  prior(cause: string, index: number, kind: string): EventRecord | undefined {
    const prior = this.#emitted.get(cause)?.[index];
    return prior?.kind === kind ? prior : undefined;
  }

  record(cause: string, index: number, event: EventRecord): void {
    this.#list(cause)[index] = event;
  }

  /** Forgets a finished event's emits. */
  forget(cause: string): void {
    this.#emitted.delete(cause);
  }

  #list(cause: string): EventRecord[] {
    let list = this.#emitted.get(cause);
    if (list === undefined) this.#emitted.set(cause, list = []);
    return list;
  }
}
