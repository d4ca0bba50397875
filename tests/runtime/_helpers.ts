// Fakes shared by the runtime tests.
import {
  type CheckpointStore,
  type EventRecord,
  type EventStore,
  KvCheckpointStore,
  KvLeaseStore,
  type LeaseStore,
  MemoryCheckpointStore,
  MemoryEventStore,
  MemoryLeaseStore,
} from "../../runtime/mod.ts";
import { KvEventStore, vaultKv } from "../../vault/mod.ts";

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

/** `store` with its append replaced by `append`; every other member is the store's own. */
export function withAppend(store: EventStore, append: EventStore["append"]): EventStore {
  return new Proxy(store, {
    get(target, key) {
      if (key === "append") return append;
      const value = Reflect.get(target, key);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/** The lease and checkpoint stores a runtime on `store` uses with `leases`: the KV ones on a KV vault. */
export function leasePorts(
  store: EventStore,
  leases: LeaseStore,
): { leases: LeaseStore; checkpoints: CheckpointStore } {
  const kv = vaultKv(store);
  return {
    leases,
    checkpoints: kv === undefined
      ? new MemoryCheckpointStore(leases as MemoryLeaseStore)
      : new KvCheckpointStore(kv),
  };
}

/**
 * Runs `body` in step `names[0]` on a new in-memory store and lease store, then in step
 * `names[1]` on a new Deno KV vault and its lease store, closing each after.
 */
export async function onEachStore(
  t: Deno.TestContext,
  body: (store: EventStore, leases: LeaseStore) => Promise<void>,
  names: [string, string] = ["in memory", "Deno KV"],
): Promise<void> {
  await t.step(names[0], async () => {
    const store = new MemoryEventStore();
    await body(store, new MemoryLeaseStore());
    await store.close();
  });
  await t.step(names[1], async () => {
    const kv = await Deno.openKv(":memory:");
    const store = await KvEventStore.open(kv);
    await body(store, new KvLeaseStore(kv));
    await store.close();
    kv.close();
  });
}

/**
 * A `t.step` that opens a fresh set-up with `open`, hands it to the body and closes it after,
 * whether the body passed or not.
 */
export function stepWith<S extends { close(): Promise<void> }>(
  t: Deno.TestContext,
  open: () => Promise<S>,
): (name: string, body: (s: S) => Promise<void>) => Promise<boolean> {
  return (name, body) =>
    t.step(name, async () => {
      const s = await open();
      try {
        await body(s);
      } finally {
        await s.close();
      }
    });
}
