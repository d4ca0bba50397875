// Importing exported records into the Deno KV log, keeping their ids and
// versions, and their positions and digests where the log allows it.
import { VersionConflictError } from "../runtime/errors.ts";
import type { AppendResult, EventRecord, ImportResult } from "../runtime/log/event_store.ts";
import { assertRecord, type PreparedInput, prepareInput } from "../runtime/log/event_rules.ts";
import { digestMismatch } from "../runtime/log/append_rules.ts";
import { exportedDigest, previousInExport, streamConflict } from "../runtime/log/import_rules.ts";
import { INLINE_PAYLOAD_BYTES } from "../runtime/log/event_limits.ts";
import { storeBlob } from "./_kv_blobs.ts";
import * as reader from "./_kv_reader.ts";
import { ALREADY_STORED, enqueue, parentDigest } from "./_kv_writer.ts";
import type { ImportGroup, KvState } from "./_kv_state.ts";

// Records checked per round: their ids are looked up together.
const IMPORT_CHUNK = 1000;
// Queued appends not yet committed, at most: the writer group-commits them meanwhile.
const IMPORT_WINDOW = 4000;

interface Ready {
  record: EventRecord;
  index: number;
  prepared: PreparedInput;
}

/**
 * Stores exported records in order. Each record's digest is checked against
 * the export's own chain (the record before it in the export, its parents'
 * exported digests); ids already stored are skipped; a record is appended
 * with its version as expected version, so a stream that has other events
 * here is refused. Imported into an empty vault (or one that ends just
 * before them) records keep their positions and so their digests. The
 * import stops at the first bad record; what was imported before it stays.
 *
 * Records are queued to the writer as they are checked, while earlier ones
 * commit, so that an import commits as many events at once as appends do.
 */
export async function importEvents(
  s: KvState,
  records: Iterable<EventRecord> | AsyncIterable<EventRecord>,
): Promise<ImportResult> {
  s.assertOpen();
  const result: ImportResult = { imported: 0, skipped: 0 };
  const group: ImportGroup = {};
  // Exported digests of this call's records, for their children.
  const exported = new Map<string, string>();
  // The chain goes on from the previous import call (e.g. the next batch of one export).
  let last = s.lastImported;
  let chunk: { record: EventRecord; index: number }[] = [];
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

  const queue = async (ready: Ready[]) => {
    for (const { record, index, prepared } of ready) {
      // A parent queued here gets its digest in this vault once it is committed.
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
        }).catch((error: unknown) =>
          error instanceof VersionConflictError
            ? streamConflict(index, record, error.actual)
            : error instanceof Error
            ? error
            : new Error(String(error))
        ),
      );
    }
    if (appends.length >= IMPORT_WINDOW) await settle();
  };

  const flush = async () => {
    const stored = await reader.storedAmong(s, chunk.map(({ record }) => record.id));
    const ready: Ready[] = [];
    try {
      for (const { record, index } of chunk) {
        if (stored.has(record.id) || exported.has(record.id)) {
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
        last = { position: Number(record.position), digest: record.digest };
        s.imported(last);
      }
    } catch (error) {
      // What was checked before a bad record is still imported, in order.
      await queue(ready);
      await settle();
      throw error;
    }
    chunk = [];
    await queue(ready);
  };

  try {
    let index = 0;
    for await (const record of records) {
      assertRecord(record, index);
      chunk.push({ record, index: index++ });
      if (chunk.length >= IMPORT_CHUNK) await flush();
    }
    await flush();
  } finally {
    // Every queued append settles before the call returns or throws.
    await settle();
  }
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
