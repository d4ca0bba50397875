// The writer of the Deno KV log: a queue of appends, group-committed in
// batches within the remote KV limits, each commit guarded by one check.
import type {
  AppendEffect,
  AppendGuard,
  AppendOptions,
  AppendResult,
  EventInput,
  EventRecord,
  ExpectedVersion,
  KvWrite,
} from "../runtime/log/event_store.ts";
import type { AtomicCheck } from "../internal/platform.ts";
import { retryLocked } from "../internal/kv_retry.ts";
import {
  assertTimestamp,
  deepFreeze,
  makeEventId,
  positionInId,
  type PreparedInput,
  prepareInputs,
  recordDigest,
} from "../runtime/log/event_rules.ts";
import {
  assertEffect,
  assertExpectedVersion,
  assertGuard,
  checkedWrites,
  checkExpectedVersion,
  MAX_EFFECT_WRITES,
} from "../runtime/log/append_rules.ts";
import { GuardFailedError } from "../runtime/errors.ts";
import { encodePage, encodeStored, packPages, type StoredEvent, toRecord } from "./_page.ts";
import { INLINE_PAYLOAD_BYTES } from "../runtime/log/event_limits.ts";
import { storeBlob } from "./_kv_blobs.ts";
import { catchUp, INDEX_EVERY, indexInBackground, loadStreams } from "./_kv_index.ts";
import { get, storedAmong } from "./_kv_reader.ts";
import {
  type IdEntry,
  IDS,
  type ImportGroup,
  type KvState,
  LAYOUT,
  LAYOUT_KEY,
  PAGE,
  type Pending,
} from "./_kv_state.ts";

const COMMIT_BYTES = 740 * 1024;
const COMMIT_MUTATIONS = 900;
// Guarded appends add a check each. With the page check and one to spare, a
// commit takes at most `s.commitGuards` different guards (commitChecks less
// two: 8 on a remote KV's 10 checks); later guarded appends wait a commit.
// Every agent's emits and steps are guarded by its lease, so this bounds how
// many agents' appends share a commit. Equal checks (one agent's appends
// under one lease) count once and are checked once.

// Keys one getMany may read (both local and remote Deno KV).
const READ_KEYS = 10;

/** What an imported event's append resolves to when its id was stored meanwhile. */
export const ALREADY_STORED: AppendResult = Object.freeze({
  version: 0,
  position: "",
  events: [],
});

/**
 * Validates an append, finds its parents' digests (storing large payloads
 * first) and queues it; the events' own digests are made at commit, where
 * their positions and the digest they chain to are known.
 */
export function append(
  s: KvState,
  stream: string,
  events: EventInput[],
  options: AppendOptions,
): Promise<AppendResult> {
  let prepared: PreparedInput[];
  try {
    s.assertOpen();
    assertExpectedVersion(options.expectedVersion);
    assertGuard(options.guard, false);
    assertEffect(options.effect, false);
    prepared = prepareInputs(stream, events);
  } catch (error) {
    return Promise.reject(error);
  }
  // Fast path: inline payloads whose parents are recent; otherwise blobs or reads first.
  const parentDigests: string[][] = [];
  for (const p of prepared) {
    if (p.bytes > INLINE_PAYLOAD_BYTES) break;
    const parents: string[] = [];
    for (const id of p.parents) {
      const digest = recentDigest(s, id);
      if (digest === undefined) break;
      parents.push(digest);
    }
    if (parents.length < p.parents.length) break;
    parentDigests.push(parents);
  }
  if (parentDigests.length === prepared.length) {
    return enqueue(s, stream, prepared, parentDigests, [], options.expectedVersion, {
      guard: options.guard,
      effect: options.effect,
    });
  }
  return prepareSlow(s, stream, prepared).then(({ parentDigests, blobs }) =>
    enqueue(s, stream, prepared, parentDigests, blobs, options.expectedVersion, {
      guard: options.guard,
      effect: options.effect,
    })
  );
}

async function prepareSlow(
  s: KvState,
  stream: string,
  prepared: PreparedInput[],
): Promise<{ parentDigests: string[][]; blobs: (string | undefined)[] }> {
  const parentDigests: string[][] = [];
  const blobs: (string | undefined)[] = [];
  for (const [i, p] of prepared.entries()) {
    parentDigests.push(await Promise.all(p.parents.map((id) => parentDigest(s, stream, i, id))));
    blobs.push(p.bytes > INLINE_PAYLOAD_BYTES ? await storeBlob(s.kv, p.canonical) : undefined);
  }
  return { parentDigests, blobs };
}

/** The digest of a recent event, found by the position its id encodes. */
function recentDigest(s: KvState, id: string): string | undefined {
  const record = s.recent.at(positionInId(id));
  return record?.id === id ? record.digest : undefined;
}

/** The digest of a stored parent; a TypeError when it is not stored. */
export async function parentDigest(
  s: KvState,
  stream: string,
  index: number,
  id: string,
): Promise<string> {
  const digest = recentDigest(s, id) ?? (await get(s, id))?.digest;
  if (digest === undefined) {
    throw new TypeError(
      `Invalid parent of event ${index} in stream "${stream}": "${id}" is not stored`,
    );
  }
  return digest;
}

/** Queues an append for the next group commit. */
export function enqueue(
  s: KvState,
  stream: string,
  prepared: PreparedInput[],
  parentDigests: string[][],
  blobs: (string | undefined)[],
  expected: ExpectedVersion | undefined,
  extra: {
    imported?: EventRecord;
    group?: ImportGroup;
    guard?: AppendGuard;
    effect?: AppendEffect;
  } = {},
): Promise<AppendResult> {
  if (s.closed) return Promise.reject(new TypeError("The event store is closed"));
  return new Promise((resolve, reject) => {
    s.queue.push({
      stream,
      prepared,
      parentDigests,
      blobs,
      expected,
      ...extra,
      resolve,
      reject,
    }, () => drain(s));
  });
}

async function drain(s: KvState): Promise<void> {
  // Callers are released in commit order, so appends resolve in position order.
  let settle: (() => void) | undefined;
  let released: { settle: () => void; timer: ReturnType<typeof setTimeout> } | undefined;
  const releaseEarlier = () => {
    if (released === undefined) return;
    clearTimeout(released.timer);
    const earlier = released.settle;
    released = undefined;
    earlier();
  };
  try {
    // Let appends issued in the same turn join the commit. A commit is
    // dispatched before the callers of the previous one are released (in a
    // macrotask), so their next appends are prepared while it runs.
    for (let i = 0; i < 3; i++) await null;
    while (s.queue.length > 0) {
      const committing = commit(s, takeBatch(s));
      if (settle !== undefined) {
        releaseEarlier();
        const previous = settle;
        const timer = setTimeout(() => {
          released = undefined;
          previous();
        }, 0);
        released = { settle: previous, timer };
      }
      settle = await committing;
    }
  } finally {
    releaseEarlier();
    settle?.();
    s.queue.drainEnded();
  }
}

/** Takes queued appends while the commit stays within the remote KV limits. */
function takeBatch(s: KvState): Pending[] {
  let size = 0;
  let mutations = 0;
  let count = 0;
  const guards = new Set<string>();
  while (count < s.queue.length) {
    const pending = s.queue.at(count);
    const check = pending.guard?.check;
    if (check !== undefined) {
      const id = checkId(check);
      if (!guards.has(id)) {
        if (guards.size === s.commitGuards) {
          // This one waits for the next commit; unguarded ones behind it may not
          // overtake it (appends commit in the order they were made).
          break;
        }
        guards.add(id);
      }
    }
    let pendingSize = 0;
    for (const p of pending.prepared) pendingSize += p.size + 1;
    if (pending.effect?.writes !== undefined) pendingSize += pending.effect.bytes ?? 0;
    // At most a page per event, plus an id entry per imported event, plus an effect's writes.
    const pendingMutations = pending.prepared.length + (pending.imported === undefined ? 0 : 1) +
      (pending.effect?.writes === undefined ? 0 : MAX_EFFECT_WRITES);
    if (
      count > 0 &&
      (size + pendingSize > COMMIT_BYTES || mutations + pendingMutations > COMMIT_MUTATIONS)
    ) break;
    size += pendingSize;
    mutations += pendingMutations;
    count++;
  }
  return s.queue.take(count);
}

/** Commits a batch and returns what settles its callers. */
async function commit(s: KvState, batch: Pending[]): Promise<() => void> {
  try {
    let caughtUp = false;
    // Appends whose guard failed: refused, while the others are committed.
    const guardFailed = new Set<Pending>();
    for (;;) {
      if (batch.some((pending) => !s.streams.has(pending.stream))) {
        await loadStreams(s, batch);
      }
      // An imported event may have been stored since it was queued (a
      // concurrent import, here or in another process): the check on the
      // next page makes this read consistent with the commit below.
      const importedIds: string[] = [];
      for (const pending of batch) {
        if (pending.imported !== undefined) importedIds.push(pending.imported.id);
      }
      const alreadyStored = importedIds.length === 0
        ? new Set<string>()
        : await storedAmong(s, importedIds);
      const base = s.end.next;
      const timestamp = s.clock();
      assertTimestamp(timestamp);
      const versions = new Map<string, number>();
      const rejected: [Pending, unknown][] = [];
      const accepted: [Pending, StoredEvent[]][] = [];
      const encoded: { json: string; size: number }[] = [];
      const ids: [string, IdEntry][] = [];
      const refusedGroups = new Map<ImportGroup, unknown>();
      let previous = s.end.lastDigest;
      let position = base;
      let eventCount = 0;
      for (const pending of batch) eventCount += pending.prepared.length;
      const random = s.randomBytes(new Uint8Array(eventCount * 4));
      // The records of appends with an effect, built early (the effect writes from them).
      const early = new Map<Pending, EventRecord[]>();
      const writes: KvWrite[] = [];
      const skipped: Pending[] = [];
      const seen = new Set<string>();
      for (const pending of batch) {
        const imported = pending.imported?.id;
        if (imported !== undefined) {
          if (alreadyStored.has(imported) || seen.has(imported)) {
            skipped.push(pending);
            continue;
          }
          seen.add(imported);
        }
        const group = pending.group;
        if (group !== undefined && (group.refused ?? refusedGroups.get(group)) !== undefined) {
          // An earlier record of this import was refused: the import stops there.
          rejected.push([pending, group.refused ?? refusedGroups.get(group)]);
          continue;
        }
        const current = versions.get(pending.stream) ??
          s.streams.version(pending.stream) ?? 0;
        try {
          checkExpectedVersion(pending.stream, pending.expected, current);
          const guard = pending.guard;
          if (
            guardFailed.has(pending) ||
            (guard?.check === undefined && guard?.holds !== undefined && guard.holds() !== true)
          ) throw new GuardFailedError(pending.stream);
        } catch (error) {
          rejected.push([pending, error]);
          if (group !== undefined) refusedGroups.set(group, error);
          continue;
        }
        const first = position;
        const undo = { previous, encoded: encoded.length, ids: ids.length };
        const stored = pending.prepared.map((p, i): StoredEvent => {
          const at = position++;
          const t = pending.imported?.timestamp ?? timestamp;
          const id = pending.imported?.id ?? makeEventId(t, at, random, (at - base) * 4);
          const version = current + i + 1;
          const digest = recordDigest(
            {
              id,
              position: at,
              stream: pending.stream,
              version,
              kind: p.kind,
              canonicalPayload: p.canonical,
              parents: p.parents,
              intent: p.intent,
              timestamp: t,
              meta: p.meta,
            },
            pending.parentDigests[i],
            previous,
          );
          previous = digest;
          const exported = pending.imported;
          if (exported !== undefined && (positionInId(id) !== at || exported.digest !== digest)) {
            ids.push([id, exported.digest === digest ? { p: at } : { p: at, d: exported.digest }]);
          }
          const event = {
            i: id,
            s: pending.stream,
            v: version,
            k: p.kind,
            b: pending.blobs[i],
            d: digest,
            t,
            a: p.parents,
            n: p.intent,
            m: p.meta,
          };
          encoded.push({
            json: encodeStored(event, event.b === undefined ? p.canonical : undefined),
            size: p.size,
          });
          return event;
        });
        const effect = pending.effect?.writes;
        if (effect !== undefined) {
          try {
            const records = stored.map((event, i) =>
              toRecord(event, first + i, ownPayload(pending.prepared[i]))
            );
            writes.push(...checkedWrites(effect(records)));
            early.set(pending, records);
          } catch (error) {
            // Refused alone: the events it would have taken are given back.
            position = first;
            previous = undo.previous;
            encoded.length = undo.encoded;
            ids.length = undo.ids;
            rejected.push([pending, error]);
            continue;
          }
        }
        versions.set(pending.stream, current + stored.length);
        accepted.push([pending, stored]);
      }
      if (rejected.some(([, error]) => !(error instanceof GuardFailedError)) && !caughtUp) {
        // The versions known here may be stale: another process may have
        // appended. Confirm a conflict against the log before reporting it.
        await catchUp(s);
        caughtUp = true;
        continue;
      }
      if (accepted.length > 0) {
        const op = s.kv.atomic().check({ key: [...PAGE, base], versionstamp: null });
        if (s.end.layoutPending) op.set(LAYOUT_KEY, LAYOUT);
        const pageStarts: number[] = [];
        let start = base;
        for (const page of packPages(encoded)) {
          op.set([...PAGE, start], encodePage(page));
          for (let i = 0; i < page.length; i++) pageStarts.push(start);
          start += page.length;
        }
        for (const [id, at] of ids) op.set([...IDS, id], at);
        for (const write of writes) op.set(write.key, write.value);
        // Each distinct check once: equal ones hold or fail together.
        const checks = new Map<string, AtomicCheck>();
        for (const [pending] of accepted) {
          const check = pending.guard?.check;
          if (check !== undefined) checks.set(checkId(check), check);
        }
        for (const check of checks.values()) op.check(check);
        const committing = retryLocked(() => op.commit());
        // Built while the KV thread commits: the records callers and subscribers get.
        let at = base;
        const results = accepted.map(([pending, stored]) => {
          const records = early.get(pending) ??
            stored.map((event, i) => toRecord(event, at + i, ownPayload(pending.prepared[i])));
          at += stored.length;
          return records;
        });
        const result = await committing;
        if (!result.ok) {
          if (checks.size > 0) {
            // Which guards failed: their appends are refused, the others retried.
            const ids = [...checks.keys()];
            const keys = [...checks.values()].map((check) => check.key);
            const entries: { versionstamp: string | null }[] = [];
            for (let i = 0; i < keys.length; i += READ_KEYS) {
              const some = keys.slice(i, i + READ_KEYS);
              entries.push(...await retryLocked(() => s.kv.getMany(some)));
            }
            const failed = new Set(
              ids.filter((id, i) => entries[i].versionstamp !== checks.get(id)!.versionstamp),
            );
            for (const [pending] of accepted) {
              const check = pending.guard?.check;
              if (check !== undefined && failed.has(checkId(check))) guardFailed.add(pending);
            }
          }
          // Another process appended first: learn what it wrote, then decide again.
          await catchUp(s);
          caughtUp = true;
          continue;
        }
        for (const [group, error] of refusedGroups) group.refused = error;
        accepted.forEach(([pending], n) => {
          // An effect without KV writes (a store beside the log elsewhere): made once committed.
          if (pending.effect?.writes === undefined) pending.effect?.apply?.(results[n]);
        });
        s.committed(position, previous, results.flat(), base, pageStarts);
        if (s.end.next - s.tail.watermark >= INDEX_EVERY) indexInBackground(s);
        return () => {
          accepted.forEach(([pending], n) => {
            const records = results[n];
            const last = records[records.length - 1];
            pending.resolve({ version: last.version, position: last.position, events: records });
          });
          for (const [pending, error] of rejected) pending.reject(error);
          for (const pending of skipped) pending.resolve(ALREADY_STORED);
        };
      }
      for (const [group, error] of refusedGroups) group.refused = error;
      return () => {
        for (const [pending, error] of rejected) pending.reject(error);
        for (const pending of skipped) pending.resolve(ALREADY_STORED);
      };
    }
  } catch (error) {
    return () => {
      for (const pending of batch) pending.reject(error);
    };
  }
}

/** What tells a guard's check from others: its key's parts (typed) and versionstamp. */
function checkId(check: AtomicCheck): string {
  const parts = check.key.map((part) =>
    part instanceof Uint8Array
      ? `u${Array.from(part, (byte) => byte.toString(16).padStart(2, "0")).join("")}`
      : `${typeof part}${typeof part === "string" ? JSON.stringify(part) : String(part)}`
  );
  return `${parts.join(",")}@${check.versionstamp}`;
}

/** A frozen copy of the payload, so that neither the caller nor a reader can change what others see. */
function ownPayload(prepared: PreparedInput): unknown {
  const payload = prepared.payload;
  return payload === null || typeof payload !== "object"
    ? payload
    : deepFreeze(JSON.parse(prepared.canonical));
}
