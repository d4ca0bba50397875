// Fakes shared by the runtime tests.
import type { EventRecord, EventStore } from "../../runtime/mod.ts";

/** The store, seen through an object that also carries a KV database. */
export function withKv(store: EventStore, kv: Deno.Kv): EventStore {
  return {
    kv,
    append: (stream, events, options) => store.append(stream, events, options),
    read: (options) => store.read(options),
    readStream: (stream) => store.readStream(stream),
    get: (id) => store.get(id),
    head: () => store.head(),
    stats: () => store.stats(),
    subscribe: (options) => store.subscribe(options),
    verify: (options) => store.verify(options),
    importEvents: (records) => store.importEvents(records),
    close: () => store.close(),
  };
}

/** A promise to resolve from outside. */
export function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => open = resolve);
  return { promise, open };
}

/** Waits until the condition holds, checking every few milliseconds. */
export async function until(condition: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("Timed out waiting for a condition");
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

/** Every event in the store. */
export async function all(store: EventStore, kinds?: string[]): Promise<EventRecord[]> {
  return await Array.fromAsync(store.read({ kinds }));
}
