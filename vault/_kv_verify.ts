// Verification of the Deno KV log in one pass over the pages, in bounded
// memory: the digest chain and parent links (ChainVerifier), damage reported
// by position where no event can be read, then the stream index and its
// watermark checked against what the pages hold, and the agents' state index against the
// agent.state events.
import type { VerifyOptions, VerifyReport } from "../runtime/log/event_store.ts";
import { retryLocked } from "../internal/kv_retry.ts";
import { positionInId } from "../runtime/log/event_rules.ts";
import { decodePage, type StoredEvent, toRecord } from "./_page.ts";
import { canonicalOf, ChainVerifier } from "../runtime/log/chain_verify.ts";
import { payloadOf } from "./_kv_blobs.ts";
import { get } from "./_kv_reader.ts";
import { StateIndexCheck } from "../runtime/agents/agent_state_verify.ts";
import {
  type IdEntry,
  IDS,
  INDEX,
  type IndexEntry,
  type KvState,
  PAGE,
  PAGE_BATCH,
  retryLockedIterable,
  WATERMARK,
} from "./_kv_state.ts";

/** Recomputes the chain and parent links, checks payloads, the stream index and watermark. */
export async function verify(s: KvState, options: VerifyOptions): Promise<VerifyReport> {
  s.assertOpen();
  const verifier = new ChainVerifier(
    async (id) => {
      let event;
      try {
        event = await get(s, id);
      } catch {
        return "unreadable"; // its page or payload is damaged, reported there
      }
      return event === null
        ? undefined
        : { position: Number(event.position), digest: event.digest };
    },
    options.expectHead,
    options,
  );
  // What the index check needs of each position, about 9 bytes an event.
  const layout = new PositionTable();
  const states = new StateIndexCheck(s.kv, (at, reason, id) => verifier.report(at, reason, id));
  let expected = 1;
  const pages = s.kv.list<Uint8Array>({ prefix: PAGE }, { batchSize: PAGE_BATCH });
  let unreadable: number | undefined;
  for await (const page of retryLockedIterable(pages)) {
    const start = page.key[2] as number;
    if (unreadable !== undefined) {
      verifier.report(
        unreadable,
        `the page of positions ${unreadable} to ${start - 1} is unreadable`,
      );
      unreadable = undefined;
    } else if (start > expected) {
      verifier.report(
        expected,
        start - 1 === expected
          ? `the event at position ${expected} is missing`
          : `the events at positions ${expected} to ${start - 1} are missing`,
      );
      verifier.breakChain();
    } else if (start < expected) {
      verifier.report(start, `a page starts at ${start}, inside the page before it`);
    }
    let events: StoredEvent[];
    try {
      events = decodePage(page.value);
      if (events.length === 0) throw new TypeError("empty page");
    } catch {
      unreadable = start;
      verifier.breakChain();
      expected = start + 1;
      continue;
    }
    layout.page(start);
    expected = start + events.length;
    for (const [i, stored] of events.entries()) {
      const at = start + i;
      let canonical: string | undefined;
      let payload: unknown;
      try {
        payload = await payloadOf(s.kv, stored);
        canonical = canonicalOf(payload);
      } catch (error) {
        verifier.report(at, (error as Error).message, stored.i);
      }
      layout.event(at, stored.s, stored.v);
      const record = toRecord(stored, at, payload);
      await verifier.check(record, at, canonical);
      if (canonical !== undefined) await states.event(record);
      if (positionInId(stored.i) !== at) await checkIdEntry(s, verifier, stored.i, at);
    }
  }
  if (unreadable !== undefined) {
    verifier.report(unreadable, `the page at position ${unreadable} is unreadable`);
  }
  await checkIndex(s, verifier, layout, expected);
  await states.finish();
  return verifier.finish(expected);
}

/** An event whose id does not encode its position must be found by its id entry. */
async function checkIdEntry(
  s: KvState,
  verifier: ChainVerifier,
  id: string,
  at: number,
): Promise<void> {
  const entry = await retryLocked(() => s.kv.get<IdEntry>([...IDS, id]));
  if (entry.value?.p !== at) {
    verifier.report(at, `the id entry of ${id} does not point at this event`, id);
  }
}

/**
 * Checks the stream index against the pages: every entry names the stream,
 * version and page of the events at its positions, every position below the
 * watermark is in exactly one entry, and the watermark is a page start
 * within the log.
 */
async function checkIndex(
  s: KvState,
  verifier: ChainVerifier,
  layout: PositionTable,
  end: number,
): Promise<void> {
  const mark = await retryLocked(() => s.kv.get<number>(WATERMARK));
  const watermark = mark.value ?? 1;
  if (!Number.isSafeInteger(watermark) || watermark < 1) {
    verifier.report(1, `the index watermark ${JSON.stringify(watermark)} is not a position`);
    return;
  }
  if (watermark > end) {
    verifier.report(
      end,
      `the index watermark is at ${watermark}, past the end of the log (${
        end - 1
      }): events from position ${end} on are missing or the watermark was moved`,
    );
  } else if (
    // In an unreadable or missing page it cannot be judged; that page is reported already.
    watermark < end && !layout.isPageStart(watermark) && layout.at(watermark) !== undefined
  ) {
    verifier.report(watermark, `the index watermark ${watermark} is not at the start of a page`);
  }
  const covered = new Bits();
  const entries = s.kv.list<IndexEntry>({ prefix: INDEX }, { batchSize: 500 });
  for await (const { key, value } of retryLockedIterable(entries)) {
    const stream = key[2] as string;
    const first = key[3] as number;
    const where = `the stream index entry of "${stream}" from version ${first}`;
    if (value === null || !Array.isArray(value.p) || !Array.isArray(value.g)) {
      verifier.report(1, `${where} is unreadable`);
      continue;
    }
    for (let i = 0; i < value.p.length; i++) {
      const at = value.p[i];
      if (!Number.isSafeInteger(at) || at < 1) {
        verifier.report(1, `${where} holds ${JSON.stringify(at)}, not a position`);
        break;
      }
      if (at >= watermark) continue; // readers ignore it; the tail is scanned
      if (covered.get(at)) {
        verifier.report(at, `${where} lists position ${at}, which the index already lists`);
        break;
      }
      covered.set(at);
      if (at >= end) continue; // reported with the watermark
      const found = layout.at(at);
      if (found === undefined) continue; // an unreadable or missing page, reported
      if (found.stream !== stream || found.version !== first + i) {
        verifier.report(
          at,
          `${where} says position ${at} is version ${
            first + i
          } of "${stream}", the log says version ${found.version} of "${found.stream}"`,
        );
        break;
      }
      if (value.g[i] !== layout.pageOf(at)) {
        verifier.report(at, `${where} gives the wrong page for position ${at}`);
        break;
      }
    }
  }
  for (let at = 1; at < Math.min(watermark, end); at++) {
    if (!covered.get(at) && layout.at(at) !== undefined) {
      verifier.report(
        at,
        `the event at position ${at} is below the index watermark but not in the stream index`,
      );
      break;
    }
  }
}

/** A growable bit set over positions. */
class Bits {
  #bits = new Uint8Array(1024);
  get(n: number): boolean {
    return n >> 3 < this.#bits.length && (this.#bits[n >> 3] & (1 << (n & 7))) !== 0;
  }
  set(n: number): void {
    if (n >> 3 >= this.#bits.length) {
      const grown = new Uint8Array(Math.max(this.#bits.length * 2, (n >> 3) + 1));
      grown.set(this.#bits);
      this.#bits = grown;
    }
    this.#bits[n >> 3] |= 1 << (n & 7);
  }
}

/** Stream and version of each position (8 bytes an event), and where pages start. */
class PositionTable {
  #streams = new Map<string, number>();
  #names: string[] = [];
  #stream = new Int32Array(1024);
  #version = new Int32Array(1024);
  #starts = new Bits();

  page(start: number): void {
    this.#starts.set(start);
  }

  isPageStart(position: number): boolean {
    return this.#starts.get(position);
  }

  /** The start of the page holding a position. */
  pageOf(position: number): number {
    let at = position;
    while (at > 0 && !this.#starts.get(at)) at--;
    return at;
  }

  event(position: number, stream: string, version: number): void {
    if (position >= this.#stream.length) {
      const size = Math.max(this.#stream.length * 2, position + 1);
      const streams = new Int32Array(size);
      streams.set(this.#stream);
      this.#stream = streams;
      const versions = new Int32Array(size);
      versions.set(this.#version);
      this.#version = versions;
    }
    let n = this.#streams.get(stream);
    if (n === undefined) {
      n = this.#names.length;
      this.#names.push(stream);
      this.#streams.set(stream, n);
    }
    this.#stream[position] = n + 1;
    this.#version[position] = version;
  }

  at(position: number): { stream: string; version: number } | undefined {
    const n = position < this.#stream.length ? this.#stream[position] : 0;
    return n === 0 ? undefined : { stream: this.#names[n - 1], version: this.#version[position] };
  }
}
