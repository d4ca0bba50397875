// Large payloads: stored once per content digest, chunked across KV values.
import type { Kv, KvKey } from "../internal/platform.ts";
import { retryLocked } from "../internal/kv_retry.ts";
import { sha256Hex } from "../runtime/log/event_rules.ts";
import type { StoredEvent } from "./_page.ts";
import { BLOB, CHUNK, corrupt } from "./_kv_state.ts";

const CHUNK_BYTES = 60 * 1024;
const CHUNKS_PER_COMMIT = 12;

/** Stores a canonical payload as a blob (unless stored already) and returns its hex digest. */
export async function storeBlob(kv: Kv, canonical: string): Promise<string> {
  const bytes = new TextEncoder().encode(canonical);
  const hex = sha256Hex(bytes);
  const meta = await retryLocked(() => kv.get([...BLOB, hex]));
  if (meta.value !== null) return hex;
  const chunks = Math.ceil(bytes.length / CHUNK_BYTES);
  for (let first = 0; first < chunks; first += CHUNKS_PER_COMMIT) {
    const op = kv.atomic();
    for (let n = first; n < Math.min(chunks, first + CHUNKS_PER_COMMIT); n++) {
      op.set([...CHUNK, hex, n], bytes.subarray(n * CHUNK_BYTES, (n + 1) * CHUNK_BYTES));
    }
    await retryLocked(() => op.commit());
  }
  // Written last: its presence means every chunk is there.
  await retryLocked(() => kv.set([...BLOB, hex], { size: bytes.length, chunks }));
  return hex;
}

/** The payload of a stored event, read from its blob when it is not inline. */
export async function payloadOf(kv: Kv, stored: StoredEvent): Promise<unknown> {
  if (stored.b === undefined) return stored.p;
  const hex = stored.b;
  const meta = await retryLocked(() => kv.get<{ size: number; chunks: number }>([...BLOB, hex]));
  if (meta.value === null) throw corrupt(`payload ${hex} is missing`);
  const bytes = new Uint8Array(meta.value.size);
  for (let first = 0; first < meta.value.chunks; first += 10) {
    const keys: KvKey[] = [];
    for (let n = first; n < Math.min(meta.value.chunks, first + 10); n++) {
      keys.push([...CHUNK, hex, n]);
    }
    const chunks = await retryLocked(() => kv.getMany<Uint8Array[]>(keys));
    for (const [n, chunk] of chunks.entries()) {
      if (chunk.value === null) throw corrupt(`payload ${hex} is missing a chunk`);
      bytes.set(chunk.value, (first + n) * CHUNK_BYTES);
    }
  }
  if (sha256Hex(bytes) !== hex) throw corrupt(`payload ${hex} does not match its digest`);
  return JSON.parse(new TextDecoder().decode(bytes));
}
