// Verification of the Deno KV log: every page read tolerantly, so that damage
// is reported rather than thrown.
import type { EventRecord, VerifyProblem, VerifyReport } from "../runtime/event_store.ts";
import { formatPosition } from "./_event.ts";
import { decodePage, type StoredEvent, toRecord } from "./_page.ts";
import { verifyLog } from "./_verify.ts";
import { payloadOf } from "./_kv_blobs.ts";
import { type KvState, PAGE, retryLockedIterable } from "./_kv_state.ts";

/** Recomputes every digest and parent link, and checks positions, versions and large payloads. */
export async function verify(s: KvState): Promise<VerifyReport> {
  s.assertOpen();
  const problems: VerifyProblem[] = [];
  const report = await verifyLog(scanTolerant(s, problems));
  const all = [...problems, ...report.problems].sort((a, b) =>
    a.position < b.position ? -1 : a.position > b.position ? 1 : 0
  );
  return { ok: all.length === 0, checked: report.checked, problems: all };
}

async function* scanTolerant(
  s: KvState,
  problems: VerifyProblem[],
): AsyncIterableIterator<EventRecord> {
  let expected = 1;
  const pages = s.kv.list<Uint8Array>({ prefix: PAGE }, { batchSize: 100 });
  for await (const page of retryLockedIterable(pages)) {
    const start = page.key[2] as number;
    let events: StoredEvent[];
    try {
      events = decodePage(page.value);
    } catch {
      problems.push({ id: "?", position: formatPosition(start), reason: "page is unreadable" });
      continue;
    }
    if (start !== expected) {
      problems.push({
        id: events[0]?.i ?? "?",
        position: formatPosition(start),
        reason: `gap in positions: expected ${expected}`,
      });
    }
    expected = start + events.length;
    for (const [i, stored] of events.entries()) {
      let payload: unknown;
      try {
        payload = await payloadOf(s.kv, stored);
      } catch (error) {
        problems.push({
          id: stored.i,
          position: formatPosition(start + i),
          reason: (error as Error).message,
        });
        payload = undefined;
      }
      yield toRecord(stored, start + i, payload);
    }
  }
}
