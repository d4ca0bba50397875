// Puts 8 MiB values under one key into storage("vault") of a KV file, over and
// over, until it is killed: the parent kills it in the middle of a put.
import { KvStorage } from "../../../runtime/storage/_kv_storage.ts";

const kv = await Deno.openKv(Deno.args[0]);
const storage = new KvStorage(kv);
const value = new Uint8Array(8 * 1024 * 1024).fill(7);
console.log("ready");
for (let i = 0;; i++) {
  value[0] = i % 256;
  await storage.put("big.bin", value);
}
