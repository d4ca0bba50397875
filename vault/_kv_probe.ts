// For tests only: what a Deno KV store holds in memory. Not part of the API;
// kv_store.ts registers each store's state here.
import type { KvState } from "./_kv_state.ts";

const states = new WeakMap<object, KvState>();

/** Notes the state behind a store. */
export function registerState(store: object, state: KvState): void {
  states.set(store, state);
}

/** How many unindexed events the store holds in its tail (about 24 bytes each). */
export function unindexedHeld(store: object): number {
  const state = states.get(store);
  if (state === undefined) throw new TypeError("Not a KvEventStore");
  return state.tail.length;
}
