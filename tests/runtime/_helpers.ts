// Fakes shared by the runtime tests.
import {
  type CheckpointStore,
  type EventRecord,
  type EventStore,
  KvCheckpointStore,
  KvLeaseStore,
  type LeaseStore,
} from "../../runtime/mod.ts";

/** The KV checkpoint and lease stores on `kv`, as `createRuntime()` wires them. */
export function kvPorts(kv: Deno.Kv): { checkpoints: CheckpointStore; leases: LeaseStore } {
  return { checkpoints: new KvCheckpointStore(kv), leases: new KvLeaseStore(kv) };
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
