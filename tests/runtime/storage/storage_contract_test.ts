import { join } from "node:path";
import { createKvStorage, createLocalStorage, createMemoryStorage } from "../../../runtime/mod.ts";
import { LocalStorage } from "../../../runtime/storage/_local_storage.ts";
import { storageContract } from "./storage_contract.ts";

Deno.test("storage contract: in memory", async (t) => {
  await storageContract(t, createMemoryStorage());
});

Deno.test("storage contract: Deno KV", async (t) => {
  const kv = await Deno.openKv(":memory:");
  try {
    await storageContract(t, createKvStorage(kv));
  } finally {
    kv.close();
  }
});

Deno.test("storage contract: files (default mode)", async (t) => {
  const dir = await Deno.makeTempDir();
  try {
    await storageContract(t, createLocalStorage(join(dir, "root")));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test('storage contract: files in "checked" mode (without -A)', async (t) => {
  const dir = await Deno.makeTempDir();
  try {
    await storageContract(t, new LocalStorage(join(dir, "root"), "checked"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
