// storage("vault"): values in Deno KV under ["storage", ...], in 60 KiB chunks.
//
// A put writes its chunks under a fresh generation id, announced first by a
// "pending" record, then publishes the value with one commit that checks the
// previous metadata and the pending record, sets the new metadata and marks
// the replaced generation as "garbage". Readers so see the old or the new
// value, never a mix. A put or delete killed part-way leaves a pending record
// (abandoned after ABANDONED_MS) or a garbage record: every put and delete
// first sweeps garbage records (normally none: one empty read), and looks for
// abandoned puts at most once a minute (they only become so with time), so no
// chunk outlives its value for long. Every KV call retries a locked database.
import type { AtomicOperation, Kv, KvEntry, KvKey } from "../../internal/platform.ts";
import type { StorageAdapter } from "./storage.ts";
import { assertStorageKey, shownKey, toBytes } from "./_storage_key.ts";
import { TokaError } from "../errors.ts";
import { retryLocked } from "../../internal/kv_retry.ts";

const CHUNK_BYTES = 60 * 1024;
// 12 chunks of 60 KiB stay within the 800 KiB and 1000 mutations of a commit.
const CHUNKS_PER_COMMIT = 12;
/** A pending put older than this is taken as abandoned (its process died) and swept. */
const ABANDONED_MS = 10 * 60 * 1000;
// Reads of a value that keeps being replaced meanwhile, before giving up.
const READ_TRIES = 20;
/** How often (by the adapter's clock) puts and deletes look for abandoned puts. */
const ABANDONED_SCAN_MS = 60 * 1000;

interface Meta {
  size: number;
  chunks: number;
  generation: string;
}

const ROOT = "storage";
const metaKey = (key: string): KvKey => [ROOT, "meta", key];
const chunkPrefix = (key: string, generation: string): KvKey => [
  ROOT,
  "chunk",
  key,
  generation,
];
const pendingKey = (key: string, generation: string): KvKey => [
  ROOT,
  "pending",
  key,
  generation,
];
const garbageKey = (key: string, generation: string): KvKey => [
  ROOT,
  "garbage",
  key,
  generation,
];

export class KvStorage implements StorageAdapter {
  readonly scheme: string = "vault";
  #kv: Kv;
  #clock: () => number;
  #scannedAt: number | undefined;

  constructor(kv: Kv, clock: () => number = Date.now) {
    this.#kv = kv;
    this.#clock = clock;
  }

  async put(key: string, value: Uint8Array | string): Promise<void> {
    assertStorageKey(key);
    const bytes = toBytes(value);
    await this.#sweep();
    const generation = crypto.randomUUID();
    const pending = pendingKey(key, generation);
    await retryLocked(() => this.#kv.set(pending, { since: this.#clock() }));
    try {
      await this.#publish(key, generation, bytes);
    } catch (error) {
      // Not killed, only failed: leave nothing behind.
      await this.#discard(key, generation).catch(() => {});
      throw error;
    }
  }

  async #publish(key: string, generation: string, bytes: Uint8Array): Promise<void> {
    const chunks: Uint8Array[] = [];
    for (let i = 0; i < bytes.length; i += CHUNK_BYTES) {
      chunks.push(bytes.slice(i, i + CHUNK_BYTES));
    }
    const meta: Meta = { size: bytes.length, chunks: chunks.length, generation };
    const prefix = chunkPrefix(key, generation);
    const pending = pendingKey(key, generation);
    // Every commit but the last holds only chunks of the new generation.
    let i = 0;
    for (; chunks.length - i > CHUNKS_PER_COMMIT; i += CHUNKS_PER_COMMIT) {
      const op = this.#kv.atomic();
      for (let j = i; j < i + CHUNKS_PER_COMMIT; j++) op.set([...prefix, j], chunks[j]);
      await commit(op);
    }
    for (;;) {
      const [old, mark] = await retryLocked(() =>
        this.#kv.getMany<[Meta, unknown]>([metaKey(key), pending])
      );
      if (mark.value === null) {
        throw new TokaError(
          "storage_conflict",
          `Cannot put storage key ${
            shownKey(key)
          }: it took so long that its chunks were swept as abandoned`,
        );
      }
      const op = this.#kv.atomic().check(old, mark).delete(pending);
      for (let j = i; j < chunks.length; j++) op.set([...prefix, j], chunks[j]);
      op.set(metaKey(key), meta);
      if (old.value !== null) op.set(garbageKey(key, old.value.generation), true);
      // Another writer published first: publish over it.
      if (!(await retryLocked(() => op.commit())).ok) continue;
      if (old.value !== null) await this.#collect(key, old.value.generation);
      return;
    }
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    assertStorageKey(key);
    for (let tries = 0; tries < READ_TRIES; tries++) {
      const meta = await retryLocked(() => this.#kv.get<Meta>(metaKey(key)));
      if (meta.value === null) return undefined;
      const { size, chunks, generation } = meta.value;
      const read = await retryLocked(() => this.#read(key, generation, size));
      if (read.next === chunks && read.offset === size) return read.out;
      // A put may have replaced this generation and deleted it meanwhile: read
      // again. If the metadata did not change, the value is damaged.
      const now = await retryLocked(() => this.#kv.get<Meta>(metaKey(key)));
      if (now.versionstamp === meta.versionstamp) {
        const why = read.next < chunks
          ? `chunk ${read.next + 1} of ${chunks} is missing`
          : `its chunks do not add up to its ${size} bytes`;
        throw new TokaError(
          "storage_damaged",
          `Cannot get storage key ${shownKey(key)}: its value is damaged (${why})`,
        );
      }
    }
    throw new TokaError(
      "storage_conflict",
      `Cannot get storage key ${
        shownKey(key)
      }: it was replaced ${READ_TRIES} times while being read`,
    );
  }

  // Reads a generation's chunks in order, up to the first gap.
  async #read(
    key: string,
    generation: string,
    size: number,
  ): Promise<{ out: Uint8Array; offset: number; next: number }> {
    const out = new Uint8Array(size);
    let offset = 0;
    let next = 0;
    for await (const entry of this.#kv.list<Uint8Array>({ prefix: chunkPrefix(key, generation) })) {
      if (entry.key.at(-1) !== next || offset + entry.value.byteLength > size) break;
      out.set(entry.value, offset);
      offset += entry.value.byteLength;
      next++;
    }
    return { out, offset, next };
  }

  async delete(key: string): Promise<boolean> {
    assertStorageKey(key);
    await this.#sweep();
    for (;;) {
      const old = await retryLocked(() => this.#kv.get<Meta>(metaKey(key)));
      if (old.value === null) return false;
      const garbage = garbageKey(key, old.value.generation);
      const op = this.#kv.atomic().check(old).delete(metaKey(key)).set(garbage, true);
      const result = await retryLocked(() => op.commit());
      if (!result.ok) continue;
      await this.#collect(key, old.value.generation);
      return true;
    }
  }

  async list(prefix = ""): Promise<string[]> {
    // Keys under a prefix are contiguous from the prefix itself: read only those.
    const keys = await retryLocked(async () => {
      const found: string[] = [];
      const entries = this.#kv.list({ prefix: [ROOT, "meta"], start: [ROOT, "meta", prefix] });
      for await (const entry of entries) {
        const key = String(entry.key[2]);
        if (!key.startsWith(prefix)) break;
        found.push(key);
      }
      return found;
    });
    return keys.sort();
  }

  // Deletes every garbage generation, after marking abandoned puts as garbage
  // when none were looked for within the last minute.
  async #sweep(): Promise<void> {
    const now = this.#clock();
    if (this.#scannedAt === undefined || Math.abs(now - this.#scannedAt) >= ABANDONED_SCAN_MS) {
      this.#scannedAt = now;
      const cutoff = now - ABANDONED_MS;
      for (const entry of await entries<{ since: number }>(this.#kv, [ROOT, "pending"])) {
        const since = entry.value?.since;
        if (typeof since === "number" && since > cutoff) continue;
        const [, , key, generation] = entry.key as [string, string, string, string];
        // The check makes the put's own publish fail if it was still alive.
        const op = this.#kv.atomic().check(entry).delete(entry.key)
          .set(garbageKey(key, generation), true);
        await retryLocked(() => op.commit());
      }
    }
    for (const entry of await entries(this.#kv, [ROOT, "garbage"])) {
      const [, , key, generation] = entry.key as [string, string, string, string];
      await this.#collect(key, generation);
    }
  }

  // A put that failed (not killed): its generation becomes garbage at once.
  async #discard(key: string, generation: string): Promise<void> {
    const pending = await retryLocked(() => this.#kv.get(pendingKey(key, generation)));
    if (pending.value === null) return; // Published, or already swept.
    const op = this.#kv.atomic().check(pending).delete(pending.key)
      .set(garbageKey(key, generation), true);
    await retryLocked(() => op.commit());
    await this.#collect(key, generation);
  }

  // Deletes a generation's chunks, then its garbage record.
  async #collect(key: string, generation: string): Promise<void> {
    const chunks = await entries(this.#kv, chunkPrefix(key, generation));
    let op = this.#kv.atomic();
    for (let i = 0; i < chunks.length; i++) {
      op.delete(chunks[i].key);
      if ((i + 1) % 500 === 0) {
        await commit(op);
        op = this.#kv.atomic();
      }
    }
    op.delete(garbageKey(key, generation));
    await commit(op);
  }
}

// Every entry under a prefix, read again from the start if the database was
// locked. (A loop: Node 20 has no Array.fromAsync.)
function entries<T>(kv: Kv, prefix: KvKey): Promise<KvEntry<T>[]> {
  return retryLocked(async () => {
    const found: KvEntry<T>[] = [];
    for await (const entry of kv.list<T>({ prefix })) found.push(entry);
    return found;
  });
}

async function commit(op: AtomicOperation): Promise<void> {
  const result = await retryLocked(() => op.commit());
  if (!result.ok) throw new TokaError("storage_conflict", "A storage commit failed its checks");
}
