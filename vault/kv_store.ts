import type { Kv } from "../internal/platform.ts";
import { TokaError } from "../runtime/errors.ts";
import type {
  AppendOptions,
  AppendResult,
  EventInput,
  EventRecord,
  EventStore,
  ImportResult,
  LogHead,
  ReadOptions,
  StoreStats,
  SubscribeOptions,
  VerifyOptions,
  VerifyReport,
} from "../runtime/log/event_store.ts";
import {
  type AgentStatePorts,
  type AgentStateSource,
  KvCheckpointStore,
  KvLeaseStore,
} from "../runtime/agents/agent_state.ts";
import { retryLocked } from "../internal/kv_retry.ts";
import {
  assertCommitChecks,
  KvState,
  LAYOUT,
  LAYOUT_KEY,
  LAYOUT_UNCHAINED,
  PAGE,
  WATERMARK,
} from "./_kv_state.ts";
import { append } from "./_kv_writer.ts";
import { catchUp, index } from "./_kv_index.ts";
import { registerState } from "./_kv_probe.ts";
import * as reader from "./_kv_reader.ts";
import { subscribe } from "./_kv_subscribe.ts";
import { verify } from "./_kv_verify.ts";
import { importEvents } from "./_kv_import.ts";

// The store's parts share one KvState (see _kv_state.ts for the key layout and
// which part owns which piece of it):
// _kv_writer.ts (queue, group commit), _kv_index.ts (stream index, watermark),
// _kv_reader.ts (pages, ids, streams), _kv_blobs.ts (large payloads),
// _kv_subscribe.ts, _kv_verify.ts and _kv_import.ts.

/** Options of {@linkcode KvEventStore.open}. */
export interface KvEventStoreOptions {
  /** Milliseconds since the epoch for event timestamps; `Date.now` by default. */
  clock?: () => number;
  /** Fills random bytes for event ids; `crypto.getRandomValues` by default. */
  randomBytes?: (bytes: Uint8Array) => Uint8Array;
  /** Close the `Deno.Kv` when the store closes; false by default, since the caller opened it. */
  closeKv?: boolean;
  /**
   * Write nothing: appends and imports are refused with a TypeError, and
   * `close()` leaves the stream index as it found it; false by default.
   */
  readOnly?: boolean;
  /**
   * How many checks one Deno KV commit may hold: 10 by default, the limit of
   * a Deno KV server reached over KV Connect (Deno Deploy KV, `denokv`).
   * Deno's own local KV (a file or `:memory:`) takes 100, which
   * {@linkcode openVault} gives it. Each guarded append whose check differs
   * from the others' takes one (see `AppendOptions.guard`), so this bounds how
   * many agents' appends share a commit; from 2 to 100.
   */
  commitChecks?: number;
}

/**
 * The Deno KV event store: durable, shared by processes on one KV file, and
 * the same code against a remote KV over KV Connect.
 *
 * Concurrent appends are group-committed: every append queued while a commit
 * is in flight joins the next one, which packs their events into a few KV
 * values and is guarded by a single check, so the remote limits (10 checks,
 * 1,000 mutations, 800 KiB per commit) hold for any number of streams.
 *
 * The stored data carries a layout version, checked at open: a vault written
 * by a newer layout is refused with one line instead of being misread.
 *
 * @example
 * ```ts
 * import { KvEventStore } from "@toka/runtime/vault";
 *
 * const kv = await Deno.openKv(":memory:");
 * {
 *   await using store = await KvEventStore.open(kv);
 *   await store.append("agent/planner", [{ kind: "task.created", payload: { title: "Plan" } }]);
 *   console.log((await store.head())?.position); // "0000000000000001"
 * } // closed here
 * kv.close();
 * ```
 */
export class KvEventStore implements EventStore, AgentStateSource, AsyncDisposable {
  /**
   * The Deno KV database behind the store, handed out by the vault (see
   * {@linkcode vaultKv}) for the state that lives beside the log under its
   * own key prefixes. It is not part of the `EventStore` interface.
   */
  readonly kv: Kv;
  #s: KvState;
  #readOnly: boolean;

  private constructor(state: KvState, readOnly: boolean) {
    this.kv = state.kv;
    this.#s = state;
    this.#readOnly = readOnly;
    registerState(this, state);
  }

  /**
   * Opens the event store in a Deno KV database the caller opened.
   *
   * @param kv The database; the store uses keys under `["vault"]`.
   * @param options Clock, random source, and whether `close()` closes the database.
   * @returns The store, ready for appends.
   * @throws {TokaError} With code `"vault_layout"` when the vault was written by a newer layout.
   * @throws {RangeError} When `commitChecks` is not a whole number from 2 to 100.
   * @throws {Error} When the database cannot be read.
   */
  static async open(kv: Kv, options: KvEventStoreOptions = {}): Promise<KvEventStore> {
    assertCommitChecks(options.commitChecks);
    const [layout, watermark] = await retryLocked(() =>
      kv.getMany<[unknown, number]>([LAYOUT_KEY, WATERMARK])
    );
    // Without the key, a vault is new, or was written before the key existed (layout 1).
    // The key is committed with the first events, so when events turn up after the
    // first read (another process's first append), a second read decides.
    let stored = layout.value;
    if (stored === null && await hasEvents(kv)) {
      stored = (await retryLocked(() => kv.get(LAYOUT_KEY))).value ?? LAYOUT_UNCHAINED;
    }
    assertLayout(stored);
    const s = new KvState(kv, options, {
      watermark: watermark.value ?? 1,
      layoutPending: stored === null,
    });
    await catchUp(s);
    s.end.chainTo((await reader.digestAt(s, s.end.next - 1)) ?? null);
    return new KvEventStore(s, options.readOnly ?? false);
  }

  /**
   * Appends events to one stream atomically.
   *
   * @param stream The stream name.
   * @param events The events to append, at least one.
   * @param options The expected version.
   * @returns The stream's new version, the last position and the stored events.
   * @throws {VersionConflictError} When the expected version does not match; nothing is stored.
   * @throws {TypeError} When a stream name, kind, payload or parent is invalid.
   * @throws {RangeError} When an event or the whole append exceeds its maximum size.
   */
  append(stream: string, events: EventInput[], options: AppendOptions = {}): Promise<AppendResult> {
    if (this.#readOnly) return Promise.reject(readOnlyError());
    return append(this.#s, stream, events, options);
  }

  /**
   * Reads the log in position order, optionally filtered.
   *
   * @param options Start position, stream, kinds, limit and direction.
   * @returns The matching events, read page by page in constant memory.
   * @throws {TypeError} When an option is invalid.
   */
  read(options: ReadOptions = {}): AsyncIterableIterator<EventRecord> {
    return reader.read(this.#s, options);
  }

  /**
   * Reads one stream in version order.
   *
   * @param stream The stream name.
   * @returns The stream's events.
   * @throws {TypeError} When the stream name is invalid.
   */
  readStream(stream: string): AsyncIterableIterator<EventRecord> {
    return reader.read(this.#s, { stream });
  }

  /**
   * Returns the event with this id.
   *
   * @param id The event id.
   * @returns The event, or `null` when no event has this id.
   */
  get(id: string): Promise<EventRecord | null> {
    return reader.get(this.#s, id);
  }

  /**
   * Returns the position and chain digest of the last event, including other
   * processes' appends: a value to keep and later pass to `verify({ expectHead })`.
   *
   * @returns The head, or `null` for an empty log.
   * @throws {TokaError} With code `"vault_corrupt"` when the last page is unreadable.
   */
  head(): Promise<LogHead | null> {
    return reader.head(this.#s);
  }

  /**
   * Counts events, streams and kinds by scanning the log.
   *
   * @returns The counts and the first and last timestamps.
   */
  stats(): Promise<StoreStats> {
    return reader.stats(this.#s);
  }

  /**
   * Delivers stored events after a position, then new ones as they are
   * appended by this or any other process, with no gap and no duplicate.
   * Other processes' appends are found by polling with backoff (20–500 ms).
   *
   * @param options Where to start, which kinds, and a signal that ends it.
   * @returns The events in position order.
   * @throws {TypeError} When `after` is not a position.
   */
  subscribe(options: SubscribeOptions = {}): AsyncIterableIterator<EventRecord> {
    return subscribe(this.#s, options);
  }

  /**
   * Recomputes the digest chain and every parent link, checks positions,
   * versions, large payloads, the stream index and its watermark, in one pass
   * in bounded memory (about 9 bytes an event for the index check). With
   * `expectHead` (a value `head()` returned earlier), also proves that
   * nothing up to that event was rewritten or cut off since.
   *
   * @param options A kept head the log must still hold.
   * @returns The problems found, first ones first, by event id or position.
   * @throws {TypeError} When `expectHead` is not a head.
   */
  verify(options: VerifyOptions = {}): Promise<VerifyReport> {
    return verify(this.#s, options);
  }

  /**
   * Stores exported records, keeping their ids, versions, timestamps,
   * metadata and parents; imported into an empty vault (or one that ends just
   * before them) they also keep their positions and digests, so the log
   * verifies and has the same head as the one exported. Each record's digest
   * is checked against the export's chain; a record of a stream that has
   * other events here is refused. Records whose id is already stored are
   * skipped, so importing the same export twice adds nothing. Records are
   * imported in order; on a bad record the import stops there, and what was
   * imported stays.
   *
   * @param records Records as returned by `read()` of any store, from the start of the log.
   * @returns How many were imported and how many were already stored.
   * @throws {TypeError} When a record is malformed, its parent is missing, its digest does not match or its stream has other events here.
   */
  importEvents(records: Iterable<EventRecord> | AsyncIterable<EventRecord>): Promise<ImportResult> {
    if (this.#readOnly) return Promise.reject(readOnlyError());
    return importEvents(this.#s, records);
  }

  /**
   * The agents' checkpoint and lease stores in the same database (under
   * `["runtime", "checkpoint"]` and `["runtime", "lease"]`), so that
   * `Runtime.create({ vault })` keeps agents' state as durable as the log and
   * several processes sharing the vault run each agent once.
   *
   * @returns A `KvCheckpointStore` and a `KvLeaseStore` on the vault's KV.
   *
   * @example
   * ```ts
   * import { KvEventStore } from "@toka/runtime/vault";
   *
   * const kv = await Deno.openKv(":memory:");
   * const store = await KvEventStore.open(kv);
   * const { checkpoints } = store.agentState();
   * console.log(await checkpoints.load("worker")); // undefined
   * await store.close();
   * kv.close();
   * ```
   */
  agentState(): AgentStatePorts {
    return { checkpoints: new KvCheckpointStore(this.kv), leases: new KvLeaseStore(this.kv) };
  }

  /**
   * Commits queued appends, writes the rest of the stream index when this
   * store appended or imported events (one that wrote none writes nothing, so
   * a lagging index stays for the next writer), ends every subscription and,
   * when opened by {@linkcode openVault}, closes the database.
   *
   * @returns When everything is flushed.
   */
  async close(): Promise<void> {
    const s = this.#s;
    if (s.closed) return;
    s.markClosing();
    await s.queue.idle();
    s.markClosed();
    await s.indexing.settled();
    try {
      // Only a store that wrote events indexes: a refused command must change nothing stored,
      // and the next writer (or reads, through the unindexed tail) covers the rest.
      if (s.wroteEvents) await index(s, s.end.next);
    } catch {
      // The next process to open the store indexes what is left.
    }
    if (s.closeKv) s.kv.close();
  }

  /**
   * Closes the store, for `await using store = await KvEventStore.open(kv)`.
   *
   * @returns When closed, as {@linkcode KvEventStore.close}.
   */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * Refuses a vault of another layout with one line. Layout 1 (before chained
 * digests) would migrate here, in place and before anything else reads the
 * vault: read the pages in position order, check each event's layout-1
 * digest (payload and parents), write its chained digest, and set the layout
 * key last, so that an interrupted migration simply runs again at the next
 * open. No layout-1 vault was released, so that migration is not written.
 */
function assertLayout(layout: unknown): void {
  if (layout === null || layout === LAYOUT) return;
  if (typeof layout === "number" && Number.isSafeInteger(layout) && layout > LAYOUT) {
    throw new TokaError(
      "vault_layout",
      `The vault was written by a newer Toka (vault layout ${layout}; this one reads layout ${LAYOUT}): upgrade Toka to open it`,
    );
  }
  if (layout === LAYOUT_UNCHAINED) {
    throw new TokaError(
      "vault_layout",
      `The vault was written by an older Toka (vault layout ${layout}, digests not chained; this one reads layout ${LAYOUT}): open it with the Toka that wrote it`,
    );
  }
  throw new TokaError(
    "vault_layout",
    `The vault has an unknown layout version ${
      String(JSON.stringify(layout)).slice(0, 40)
    }: it is not a Toka vault or it is damaged`,
  );
}

async function hasEvents(kv: Kv): Promise<boolean> {
  return await retryLocked(async () => {
    for await (const _ of kv.list({ prefix: PAGE }, { limit: 1 })) return true;
    return false;
  });
}

/**
 * The Deno KV database a vault keeps its log in, so that the state that lives
 * beside the log, under its own key prefixes, can be kept there too: agent
 * checkpoints and leases (`KvCheckpointStore`, `KvLeaseStore`),
 * `storage("vault")` (`createKvStorage`), the secret pool
 * (`KvTokenAuthority`) and timers. The vault hands it out here; the
 * `EventStore` interface has no KV.
 *
 * @param store An event store.
 * @returns The store's Deno KV, or `undefined` when it is not a Deno KV vault.
 *
 * @example
 * ```ts
 * import { MemoryEventStore, openVault, vaultKv } from "@toka/runtime/vault";
 *
 * const vault = await openVault(":memory:");
 * console.log(vaultKv(vault) instanceof Deno.Kv); // true
 * console.log(vaultKv(new MemoryEventStore())); // undefined
 * await vault.close();
 * ```
 */
export function vaultKv(store: EventStore): Kv | undefined {
  return store instanceof KvEventStore ? store.kv : undefined;
}

function readOnlyError(): TypeError {
  return new TypeError("Cannot write: the vault was opened to read only");
}
