// Importing exported records into the Deno KV log, keeping their ids.
import type { AppendResult, EventRecord, ImportResult } from "../runtime/event_store.ts";
import { assertRecord, eventDigest, type PreparedInput, prepareInput } from "./_event.ts";
import { digestMismatch } from "./_append.ts";
import { INLINE_PAYLOAD_BYTES } from "./limits.ts";
import { storeBlob } from "./_kv_blobs.ts";
import { get } from "./_kv_reader.ts";
import { ALREADY_STORED, enqueue, parentDigest } from "./_kv_writer.ts";
import type { KvState } from "./_kv_state.ts";

const IMPORT_CHUNK = 200;

/** Stores exported records in order, skipping ids already stored; stops at a bad record. */
export async function importEvents(
  s: KvState,
  records: Iterable<EventRecord> | AsyncIterable<EventRecord>,
): Promise<ImportResult> {
  s.assertOpen();
  const result: ImportResult = { imported: 0, skipped: 0 };
  const seen = new Map<string, string>();
  let chunk: { record: EventRecord; index: number }[] = [];
  const flush = async () => {
    const existing = await Promise.all(chunk.map(({ record }) => get(s, record.id)));
    const appends: Promise<AppendResult>[] = [];
    const ready: [EventRecord, PreparedInput, string, string | undefined][] = [];
    for (const [n, { record, index }] of chunk.entries()) {
      if (existing[n] !== null || seen.has(record.id)) {
        result.skipped++;
        continue;
      }
      const prepared = prepareInput(record.stream, record, index);
      const parents = await Promise.all(
        prepared.parents.map((id) => seen.get(id) ?? parentDigest(s, record.stream, index, id)),
      );
      const digest = eventDigest(prepared.canonical, parents);
      if (digest !== record.digest) throw digestMismatch(index, record.id);
      seen.set(record.id, digest);
      const blob = prepared.bytes > INLINE_PAYLOAD_BYTES
        ? await storeBlob(s.kv, prepared.canonical)
        : undefined;
      ready.push([record, prepared, digest, blob]);
    }
    for (const [record, prepared, digest, blob] of ready) {
      appends.push(enqueue(s, record.stream, [prepared], [digest], [blob], "any", record));
    }
    for (const appended of await Promise.all(appends)) {
      if (appended === ALREADY_STORED) result.skipped++;
      else result.imported++;
    }
    chunk = [];
  };
  let index = 0;
  for await (const record of records) {
    assertRecord(record, index);
    chunk.push({ record, index: index++ });
    if (chunk.length >= IMPORT_CHUNK) await flush();
  }
  await flush();
  return result;
}
