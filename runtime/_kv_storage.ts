// storage("vault"): values in Deno KV under ["storage", ...], in 60 KiB chunks.
// A value is written under a fresh generation and published by one commit of
// its metadata, so readers see the old or the new value, never a mix.
import type { StorageAdapter } from "./storage.ts";
import { assertStorageKey, toBytes } from "./_storage_key.ts";

const CHUNK_BYTES = 60 * 1024;
// 12 chunks of 60 KiB stay within the 800 KiB and 1000 mutations of a commit.
const CHUNKS_PER_COMMIT = 12;

interface Meta {
  size: number;
  chunks: number;
  generation: string;
}

const metaKey = (key: string): Deno.KvKey => ["storage", "meta", key];
const chunkPrefix = (key: string, generation: string): Deno.KvKey => [
  "storage",
  "chunk",
  key,
  generation,
];

export class KvStorage implements StorageAdapter {
  readonly scheme: string = "vault";
  #kv: Deno.Kv;

  constructor(kv: Deno.Kv) {
    this.#kv = kv;
  }

  async put(key: string, value: Uint8Array | string): Promise<void> {
    assertStorageKey(key);
    const bytes = toBytes(value);
    const generation = crypto.randomUUID();
    const chunks: Uint8Array[] = [];
    for (let i = 0; i < bytes.length; i += CHUNK_BYTES) {
      chunks.push(bytes.slice(i, i + CHUNK_BYTES));
    }
    const meta: Meta = { size: bytes.length, chunks: chunks.length, generation };
    const prefix = chunkPrefix(key, generation);
    // Every commit but the last holds only chunks of the new generation.
    let i = 0;
    for (; chunks.length - i > CHUNKS_PER_COMMIT; i += CHUNKS_PER_COMMIT) {
      const op = this.#kv.atomic();
      for (let j = i; j < i + CHUNKS_PER_COMMIT; j++) op.set([...prefix, j], chunks[j]);
      await commit(op);
    }
    for (;;) {
      const old = await this.#kv.get<Meta>(metaKey(key));
      const op = this.#kv.atomic().check(old);
      for (let j = i; j < chunks.length; j++) op.set([...prefix, j], chunks[j]);
      const result = await op.set(metaKey(key), meta).commit();
      if (!result.ok) continue; // Another writer published first: publish over it.
      if (old.value !== null) await this.#deleteChunks(key, old.value.generation);
      return;
    }
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    assertStorageKey(key);
    for (;;) {
      const meta = await this.#kv.get<Meta>(metaKey(key));
      if (meta.value === null) return undefined;
      const out = new Uint8Array(meta.value.size);
      let offset = 0;
      let count = 0;
      for await (
        const entry of this.#kv.list<Uint8Array>({
          prefix: chunkPrefix(key, meta.value.generation),
        })
      ) {
        out.set(entry.value, offset);
        offset += entry.value.length;
        count++;
      }
      // A concurrent put may have replaced and deleted this generation: read again.
      if (count === meta.value.chunks && offset === meta.value.size) return out;
    }
  }

  async delete(key: string): Promise<boolean> {
    assertStorageKey(key);
    for (;;) {
      const old = await this.#kv.get<Meta>(metaKey(key));
      if (old.value === null) return false;
      const result = await this.#kv.atomic().check(old).delete(metaKey(key)).commit();
      if (!result.ok) continue;
      await this.#deleteChunks(key, old.value.generation);
      return true;
    }
  }

  async list(prefix = ""): Promise<string[]> {
    const keys: string[] = [];
    for await (const entry of this.#kv.list({ prefix: ["storage", "meta"] })) {
      const key = String(entry.key[2]);
      if (key.startsWith(prefix)) keys.push(key);
    }
    return keys.sort();
  }

  async #deleteChunks(key: string, generation: string): Promise<void> {
    let op = this.#kv.atomic();
    let n = 0;
    for await (const entry of this.#kv.list({ prefix: chunkPrefix(key, generation) })) {
      op.delete(entry.key);
      if (++n % 500 === 0) {
        await commit(op);
        op = this.#kv.atomic();
      }
    }
    if (n % 500 !== 0) await commit(op);
  }
}

async function commit(op: Deno.AtomicOperation): Promise<void> {
  const result = await op.commit();
  if (!result.ok) throw new Error("A storage commit failed its checks");
}
