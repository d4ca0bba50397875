import { KvEventStore, MemoryEventStore } from "../../vault/mod.ts";
import { runContract } from "./contract.ts";

Deno.test("contract: MemoryEventStore", async (t) => {
  await runContract(t, (clock) => Promise.resolve({ store: new MemoryEventStore({ clock }) }));
});

Deno.test("contract: KvEventStore on :memory:", async (t) => {
  await runContract(t, async (clock) => {
    const kv = await Deno.openKv(":memory:");
    return { store: await KvEventStore.open(kv, { clock, closeKv: true }) };
  });
});

Deno.test("contract: KvEventStore on a file", async (t) => {
  const dir = await Deno.makeTempDir();
  let n = 0;
  await runContract(t, async (clock) => {
    const kv = await Deno.openKv(`${dir}/store-${n++}.kv`);
    return { store: await KvEventStore.open(kv, { clock, closeKv: true }) };
  });
  await Deno.remove(dir, { recursive: true });
});
