// Subscriptions to the Deno KV log: served from this process's recent events
// while possible, otherwise from the pages; other processes' appends are
// found by polling with backoff.
import type { EventRecord, SubscribeOptions } from "../runtime/log/event_store.ts";
import { compileKindFilter } from "../runtime/log/kind_pattern.ts";
import { startAfter } from "../runtime/log/append_rules.ts";
import { end, scan } from "./_kv_reader.ts";
import type { KvState } from "./_kv_state.ts";
import { refreshWatermark } from "./_kv_index.ts";
import { delay } from "../internal/retry.ts";

const POLL_MIN_MS = 20;
const POLL_MAX_MS = 500;

/** Delivers stored events after a position, then new ones, with no gap and no duplicate. */
export async function* subscribe(
  s: KvState,
  options: SubscribeOptions,
): AsyncIterableIterator<EventRecord> {
  s.assertOpen();
  const matches = compileKindFilter(options.kinds);
  const signal = options.signal;
  let cursor = await startAfter(options.after, async () => (await end(s)) - 1);
  const ended = () => s.closing || signal?.aborted === true;
  try {
    while (!ended()) {
      // Served from memory while possible: events this process wrote or has seen.
      let record: EventRecord | undefined;
      let served = false;
      while (
        cursor + 1 < s.end.next && !ended() &&
        (record = s.recent.at(cursor + 1)) !== undefined
      ) {
        cursor++;
        served = true;
        if (matches(record.kind)) yield record;
      }
      if (ended()) return;
      if (served && cursor + 1 >= s.end.next) {
        // Caught up with this process; the wait polls for other processes' appends.
        await waitForNews(s, cursor, signal);
        continue;
      }
      let progressed = false;
      for await (const record of scan(s, cursor + 1, false)) {
        cursor = Number(record.position);
        progressed = true;
        if (matches(record.kind)) yield record;
        if (ended()) return;
      }
      if (!progressed) await waitForNews(s, cursor, signal);
    }
  } catch (error) {
    if (s.closed) return;
    throw error;
  }
}

async function waitForNews(
  s: KvState,
  cursor: number,
  signal: AbortSignal | undefined,
): Promise<void> {
  let wait = POLL_MIN_MS;
  while (!s.closing && !signal?.aborted && s.end.next <= cursor + 1) {
    if (await sleep(s, wait, signal)) return;
    if (s.closing || signal?.aborted) return;
    if ((await end(s)) > cursor + 1) {
      // Another process appended: it may have indexed what this one still holds.
      await refreshWatermark(s);
      return;
    }
    wait = Math.min(wait * 2, POLL_MAX_MS);
  }
}

/** Resolves true when woken by a local commit (or the signal), false after `ms`. */
async function sleep(s: KvState, ms: number, signal: AbortSignal | undefined): Promise<boolean> {
  const woken = new AbortController();
  const wake = () => woken.abort();
  const stopWaking = s.onWake(wake);
  try {
    const cut = signal === undefined ? woken.signal : AbortSignal.any([woken.signal, signal]);
    return !(await delay(ms, cut));
  } finally {
    stopWaking();
  }
}
