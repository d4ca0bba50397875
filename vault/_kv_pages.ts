// Listing the log's pages for a read: all at once for a replay, in growing
// batches for a read with a limit.
import { retryLocked } from "../internal/kv_retry.ts";
import type { Kv, KvEntry, KvListIterator } from "../internal/platform.ts";
import { PAGE_BATCH } from "./_kv_state.ts";

/** The range of page keys a read lists. */
export type PageRange = Parameters<Kv["list"]>[0];

/**
 * Pages in a range, in key order or reversed. Unlimited, one list fetches
 * {@linkcode PAGE_BATCH} pages at a time; limited (a read with a limit, which
 * may stop after its first page), the batches start at one page and double up
 * to that, each a list resumed from the last one's cursor, so that the 51
 * newest events cost their few pages rather than a batch of 100.
 */
export class PageList implements AsyncIterableIterator<KvEntry<Uint8Array>> {
  #kv: Kv;
  #range: PageRange;
  #reverse: boolean;
  #limited: boolean;
  #batch: number;
  #list: KvListIterator<Uint8Array> | undefined;
  #taken = 0;
  #cursor: string | undefined;
  #done = false;

  constructor(kv: Kv, range: PageRange, reverse: boolean, limited: boolean) {
    this.#kv = kv;
    this.#range = range;
    this.#reverse = reverse;
    this.#limited = limited;
    this.#batch = limited ? 1 : PAGE_BATCH;
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<KvEntry<Uint8Array>> {
    return this;
  }

  /** The next page; a list that hits "database is locked" is resumed from its cursor. */
  async next(): Promise<IteratorResult<KvEntry<Uint8Array>>> {
    while (!this.#done) {
      this.#list ??= this.#kv.list<Uint8Array>(this.#range, {
        reverse: this.#reverse,
        batchSize: this.#batch,
        limit: this.#limited ? this.#batch : undefined,
        cursor: this.#cursor,
      });
      const list = this.#list;
      const page = await retryLocked(() => list.next());
      if (!page.done) {
        this.#taken++;
        return page;
      }
      // A limited list that ended short reached the end of the range.
      if (!this.#limited || this.#taken < this.#batch) break;
      this.#cursor = list.cursor;
      this.#batch = Math.min(this.#batch * 2, PAGE_BATCH);
      this.#list = undefined;
      this.#taken = 0;
    }
    this.#done = true;
    this.#list = undefined;
    return { done: true, value: undefined };
  }

  /** Stops listing. */
  return(): Promise<IteratorResult<KvEntry<Uint8Array>>> {
    this.#done = true;
    this.#list = undefined;
    return Promise.resolve({ done: true, value: undefined });
  }
}
