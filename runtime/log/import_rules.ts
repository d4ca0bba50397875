// Rules shared by both stores' imports: each record's digest is checked
// against the export's own chain before it is stored.
import type { EventRecord } from "./event_store.ts";
import { type PreparedInput, recordDigest } from "./event_rules.ts";

/** The last record an import went through (imported or skipped), to chain the next one to. */
export interface ImportLink {
  position: number;
  digest: string;
}

/**
 * The digest a record must carry: recomputed from its fields as exported
 * (position included), its parents' digests in the export, and the digest of
 * the record before it in the export.
 */
export function exportedDigest(
  record: EventRecord,
  prepared: PreparedInput,
  parentDigests: readonly string[],
  previous: string | null,
): string {
  return recordDigest(
    {
      id: record.id,
      position: Number(record.position),
      stream: record.stream,
      version: record.version,
      kind: prepared.kind,
      canonicalPayload: prepared.canonical,
      parents: prepared.parents,
      intent: prepared.intent,
      timestamp: record.timestamp,
      meta: prepared.meta,
    },
    parentDigests,
    previous,
  );
}

/**
 * The digest of the record before `record` in its export: the last record of
 * this import when it is the one, none for the first position, otherwise the
 * event the vault holds there (an import that continues the vault).
 */
export async function previousInExport(
  record: EventRecord,
  index: number,
  last: ImportLink | undefined,
  storedAt: (position: number) => Promise<string | undefined>,
): Promise<string | null> {
  const position = Number(record.position);
  if (last?.position === position - 1) return last.digest;
  if (position === 1) return null;
  const stored = await storedAt(position - 1);
  if (stored !== undefined) return stored;
  throw new TypeError(
    `Invalid record ${index}: its digest cannot be checked without the record before it (position ${
      position - 1
    }); import the export from its start`,
  );
}

export function streamConflict(index: number, record: EventRecord, current: number): TypeError {
  return new TypeError(
    `Invalid record ${index}: stream "${record.stream}" is at version ${current} here, the record has version ${record.version}; import into a vault where the stream is new or ends just before it`,
  );
}
