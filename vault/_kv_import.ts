// Importing exported records into the Deno KV log, keeping their ids and
// versions, and their positions and digests where the log allows it.
import { VersionConflictError } from "../runtime/errors.ts";
import type { AppendResult, EventRecord, ImportResult } from "../runtime/event_store.ts";
import { assertRecord, type PreparedInput, prepareInput } from "./_event.ts";
import { digestMismatch } from "./_append.ts";
import { exportedDigest, previousInExport, streamConflict } from "./_import.ts";
import { INLINE_PAYLOAD_BYTES } from "./limits.ts";
import { storeBlob } from "./_kv_blobs.ts";
import * as reader from "./_kv_reader.ts";
import { ALREADY_STORED, enqueue, parentDigest } from "./_kv_writer.ts";
import type { ImportGroup, KvState } from "./_kv_state.ts";

const IMPORT_CHUNK = 200;

/**
 * Stores exported records in order. Each record's digest is checked against
 * the export's own chain (the record before it in the export, its parents'
 * exported digests); ids already stored are skipped; a record is appended
 * with its version as expected version, so a stream that has other events
 * here is refused. Imported into an empty vault (or one that ends just
 * before them) records keep their positions and so their digests. The
 * import stops at the first bad record; what was imported before it stays.
 */
export async function importEvents(
  s: KvState,
  records: Iterable<EventRecord> | AsyncIterable<EventRecord>,
): Promise<ImportResult> {
  s.assertOpen();
  const result: ImportResult = { imported: 0, skipped: 0 };
  const group: ImportGroup = {};
  // Exported digests of this call's records, for their children in the same chunk.
  const exported = new Map<string, string>();
  // The chain goes on from the previous import call (e.g. the next batch of one export).
  let last = s.lastImported;
  let chunk: { record: EventRecord; index: number }[] = [];
  const flush = async () => {
    const existing = await Promise.all(chunk.map(({ record }) => reader.has(s, record.id)));
    const ready: { record: EventRecord; index: number; prepared: PreparedInput }[] = [];
    try {
      for (const [n, { record, index }] of chunk.entries()) {
        if (existing[n] || exported.has(record.id)) {
          result.skipped++;
        } else {
          const prepared = prepareInput(record.stream, record, index);
          const previous = await previousInExport(
            record,
            index,
            last,
            (position) => reader.digestAt(s, position),
          );
          const parents = await Promise.all(
            prepared.parents.map((id) => exported.get(id) ?? exportedParent(s, record, index, id)),
          );
          if (exportedDigest(record, prepared, parents, previous) !== record.digest) {
            throw digestMismatch(index, record.id);
          }
          ready.push({ record, index, prepared });
        }
        exported.set(record.id, record.digest);
        s.lastImported = last = { position: Number(record.position), digest: record.digest };
      }
    } finally {
      // What was checked before a bad record is still imported, in order.
      await store(ready);
    }
    chunk = [];
  };
  const store = async (
    ready: { record: EventRecord; index: number; prepared: PreparedInput }[],
  ) => {
    let appends: Promise<AppendResult | Error>[] = [];
    let unsettled = new Set<string>();
    const settle = async () => {
      const settled = await Promise.all(appends);
      appends = [];
      unsettled = new Set();
      for (const appended of settled) {
        if (appended instanceof Error) throw appended;
        if (appended === ALREADY_STORED) result.skipped++;
        else result.imported++;
      }
    };
    for (const { record, index, prepared } of ready) {
      // A parent queued in this chunk has its digest here once it is committed.
      if (prepared.parents.some((id) => unsettled.has(id))) await settle();
      const parents = await Promise.all(
        prepared.parents.map((id) => parentDigest(s, record.stream, index, id)),
      );
      const blob = prepared.bytes > INLINE_PAYLOAD_BYTES
        ? await storeBlob(s.kv, prepared.canonical)
        : undefined;
      unsettled.add(record.id);
      appends.push(
        enqueue(s, record.stream, [prepared], [parents], [blob], record.version - 1, {
          imported: record,
          group,
        })
          .catch((error: unknown) =>
            error instanceof VersionConflictError
              ? streamConflict(index, record, error.actual)
              : error instanceof Error
              ? error
              : new Error(String(error))
          ),
      );
    }
    await settle();
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

async function exportedParent(
  s: KvState,
  record: EventRecord,
  index: number,
  id: string,
): Promise<string> {
  const digest = await reader.exportedDigest(s, id);
  if (digest === undefined) {
    throw new TypeError(
      `Invalid parent of record ${index} in stream "${record.stream}": "${id}" is not stored`,
    );
  }
  return digest;
}
