// Log verification shared by both stores: digests, parent links, order, versions.
import type { EventRecord, VerifyProblem, VerifyReport } from "../runtime/event_store.ts";
import { canonicalJson, eventDigest } from "./_event.ts";

export async function verifyLog(records: AsyncIterable<EventRecord>): Promise<VerifyReport> {
  const digests = new Map<string, string>();
  const versions = new Map<string, number>();
  const problems: VerifyProblem[] = [];
  let checked = 0;
  let lastPosition = "";
  for await (const record of records) {
    checked++;
    const report = (reason: string) =>
      problems.push({ id: record.id, position: record.position, reason });
    if (record.position <= lastPosition) {
      report(`position ${record.position} does not follow ${lastPosition}`);
    }
    lastPosition = record.position;
    if (digests.has(record.id)) report(`id ${record.id} is stored twice`);
    const expectedVersion = (versions.get(record.stream) ?? 0) + 1;
    if (record.version !== expectedVersion) {
      report(
        `stream "${record.stream}" has version ${record.version}, expected ${expectedVersion}`,
      );
    }
    versions.set(record.stream, record.version);
    const parentDigests: string[] = [];
    let parentsKnown = true;
    for (const parent of record.parents) {
      const digest = digests.get(parent);
      if (digest === undefined) {
        report(`parent ${parent} is not an earlier event`);
        parentsKnown = false;
      } else parentDigests.push(digest);
    }
    if (parentsKnown) {
      let actual: string | undefined;
      try {
        actual = eventDigest(canonicalJson(record.payload), parentDigests);
      } catch {
        actual = undefined;
      }
      if (actual !== record.digest) report("digest does not match the payload and parents");
    }
    digests.set(record.id, record.digest);
  }
  return { ok: problems.length === 0, checked, problems };
}
