// Forking a Deno KV vault at a position: its pages up to there are copied as
// stored (the page holding the fork point cut after it), so every event keeps
// its id, version, position and digest, and the fork's head is the source's
// head at that position. The stream index is written as the pages are, the
// large payloads and import id entries those events use are copied, and the
// agents' checkpoints and state index as of the fork point.
import { open, stat, unlink } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { agentStateAt } from "../runtime/agents/agent_state_fork.ts";
import type { LogHead } from "../runtime/log/event_store.ts";
import { canonicalJson } from "../runtime/log/event_rules.ts";
import { formatPosition, isEventId, positionInId } from "../internal/ids.ts";
import { retryLocked } from "../internal/kv_retry.ts";
import { type AtomicOperation, type Kv, type KvKey, openKv } from "../internal/platform.ts";
import { KvEventStore } from "./kv_store.ts";
import { openVault } from "./open_vault.ts";
import { IndexEntries } from "./_kv_index.ts";
import { decodePage, encodePage, encodeStored } from "./_page.ts";
import {
  BLOB,
  CHUNK,
  corrupt,
  type IdEntry,
  IDS,
  LAYOUT_KEY,
  PAGE,
  PAGE_BATCH,
  retryLockedIterable,
  WATERMARK,
} from "./_kv_state.ts";

/** Options of {@linkcode forkVault}. */
export interface ForkVaultOptions {
  /** The position of the fork's last event: from 1 to the source's head, up to 16 digits. */
  at: string;
  /**
   * Where the fork goes: the path of a file that does not exist yet (in a
   * folder that does), the http(s) URL of an empty remote Deno KV (with
   * `DENO_KV_ACCESS_TOKEN`), or an open Deno KV database that holds nothing,
   * left open.
   */
  into: string | Kv;
  /** Stops the fork between commits; what was written is removed and it rejects with the reason. */
  signal?: AbortSignal;
  /** Called with the number of events copied so far, after each page. */
  onProgress?: (copied: number) => void;
}

/** What {@linkcode forkVault} made. */
export interface ForkResult {
  /** The fork's head: the source's head at the fork point. */
  head: LogHead;
  /** Events copied: those at positions 1 to the fork point. */
  events: number;
  /** Agents' checkpoints copied (each at most the fork point). */
  checkpoints: number;
  /** Agents' state changes copied (those recorded at or before the fork point). */
  stateChanges: number;
}

// Within the remote limits (1,000 mutations, 800 KiB a commit), with room to spare.
const COMMIT_MUTATIONS = 500;
const COMMIT_BYTES = 600 * 1024;

/**
 * Writes a new vault holding the source's events up to a position, with
 * their ids, versions, positions and digests: its `head()` equals the
 * source's head at that position (which proves where it branched) and its
 * `verify()` passes where the source's does. The source is only read.
 * Agents' checkpoints are copied at `min(position, at)`, so a runtime started
 * on the fork resumes every agent as of the fork point, and the index of
 * their state changes up to there comes along. An agent whose handling of
 * an event before the fork point left records after it (a step, an emit,
 * its new state: events with `meta.actor` "agent/<name>" caused by that
 * event) resumes before that event and handles it again: what it recorded up
 * to the fork point (steps, tool results) is served back from the journal,
 * the rest runs live. Not copied: the secret pool
 * (tokens issued on the source are not valid on the fork), revocations,
 * leases, schedules and files kept with `storage("vault")`.
 *
 * Nothing is overwritten: an existing file, a non-empty database or the
 * source itself is refused before anything is written, as is a position
 * beyond the source's head. Should the fork fail or be stopped midway, what
 * it wrote is removed.
 *
 * @param source The vault to fork: an open store, or its location (opened to read only).
 * @param options The fork point, where the fork goes, a signal and a progress callback.
 * @returns The fork's head and what was copied.
 * @throws {TypeError} When the options are missing, `at` is not a position, `into` is neither a
 *   path, a URL nor a database, or `into` exists, is not empty, is the
 *   source or one of SQLite's side files (`-wal`, `-shm`, `-journal`), or cannot be made.
 * @throws {RangeError} When `at` is 0 or beyond the source's head.
 * @throws {Error} When a read or write fails (a full disk, say); nothing is left behind.
 *
 * @example
 * ```ts
 * import { forkVault, KvEventStore, openVault } from "@toka/runtime/vault";
 *
 * const source = await openVault(":memory:");
 * await source.append("agent/planner", [{ kind: "task.created" }, { kind: "task.done" }]);
 * const kv = await Deno.openKv(":memory:");
 * const { head } = await forkVault(source, { at: "1", into: kv });
 * const fork = await KvEventStore.open(kv, { closeKv: true });
 * console.log((await fork.head())?.digest === head.digest); // true
 * console.log((await fork.verify()).ok); // true
 * await fork.close();
 * await source.close();
 * ```
 */
export async function forkVault(
  source: KvEventStore | string,
  options: ForkVaultOptions,
): Promise<ForkResult> {
  if (typeof options !== "object" || options === null) {
    throw new TypeError("Invalid fork options: expected { at, into }");
  }
  const { at, into, signal, onProgress } = options;
  // Duck-typed, so that Node's @deno/kv database counts too.
  if (typeof into !== "string" && typeof (into as Kv | null)?.list !== "function") {
    throw new TypeError("Invalid into: expected a file path, an http(s) URL or an open KV handle");
  }
  if (typeof at !== "string" || !/^\d{1,16}$/.test(at)) {
    throw new TypeError(`Invalid position ${JSON.stringify(at)}: expected up to 16 digits`);
  }
  const end = Number(at);
  if (end < 1) throw new RangeError(`Cannot fork at "${at}": the first event is at position 1`);
  if (typeof into === "string") checkTarget(into, typeof source === "string" ? source : undefined);
  const store = typeof source === "string" ? await openVault(source, { readOnly: true }) : source;
  try {
    if (into === store.kv) throw new TypeError("Cannot fork a vault into its own database");
    const head = await store.head();
    if (head === null || Number(head.position) < end) {
      throw new RangeError(
        `Cannot fork at "${at}": ${
          head === null ? "the log is empty" : `the log ends at position "${Number(head.position)}"`
        }`,
      );
    }
    const target = await openTarget(into);
    try {
      const result = await copy(store, target.kv, end, signal, onProgress);
      const fork = await KvEventStore.open(target.kv);
      const forkHead = await fork.head();
      await fork.close();
      if (forkHead?.position !== result.head.position || forkHead.digest !== result.head.digest) {
        throw new Error(`The fork's head does not match the source's at "${at}"`);
      }
      await target.close();
      return result;
    } catch (error) {
      try {
        await target.remove();
      } catch {
        const reason = error instanceof Error ? error.message : String(error);
        throw new Error(`${reason}; what the fork wrote could not be removed: clear it`, {
          cause: error,
        });
      }
      throw error;
    }
  } finally {
    if (typeof source === "string") await store.close();
  }
}

/** Refuses a target path that could be Toka's or SQLite's own file, before anything opens. */
function checkTarget(into: string, source: string | undefined): void {
  if (into.trim() === "") throw new TypeError("Cannot fork: the target location is empty");
  if (into === ":memory:") {
    throw new TypeError(
      'Cannot fork into ":memory:": the fork would be gone when it closes; pass an open Deno KV',
    );
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(into)) {
    if (!/^https?:\/\//i.test(into)) {
      throw new TypeError(`Cannot fork into "${into}": use a file path or an http(s) URL`);
    }
    if (source !== undefined && into === source) {
      throw new TypeError(`Cannot fork into "${into}": it is the vault being forked`);
    }
    return;
  }
  if (/-(wal|shm|journal)$/i.test(into)) {
    throw new TypeError(`Cannot fork into "${into}": the name is that of an SQLite side file`);
  }
  if (source !== undefined && !/^https?:\/\//i.test(source) && source !== ":memory:") {
    if (resolve(into) === resolve(source)) {
      throw new TypeError(`Cannot fork into "${into}": it is the vault being forked`);
    }
  }
}

interface Target {
  kv: Kv;
  /** Closes what was opened for the fork (a database given by the caller stays open). */
  close(): Promise<void>;
  /** Removes what the fork wrote, after a failure. */
  remove(): Promise<void>;
}

async function openTarget(into: string | Kv): Promise<Target> {
  if (typeof into !== "string") {
    await assertEmpty(into, "the database");
    return { kv: into, close: () => Promise.resolve(), remove: () => clear(into) };
  }
  if (/^https?:\/\//i.test(into)) {
    const kv = await openKv(into);
    try {
      await assertEmpty(kv, `"${into}"`);
    } catch (error) {
      kv.close();
      throw error;
    }
    return {
      kv,
      close: () => Promise.resolve(kv.close()),
      remove: async () => {
        try {
          await clear(kv);
        } finally {
          kv.close();
        }
      },
    };
  }
  const folder = dirname(resolve(into));
  const isFolder = await stat(folder).then((info) => info.isDirectory(), () => false);
  if (!isFolder) throw new TypeError(`Cannot fork into "${into}": there is no folder "${folder}"`);
  // "wx": made here or refused, never an existing file; the owner's only, as a vault is.
  try {
    await (await open(into, "wx", 0o600)).close();
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (code === "EEXIST") {
      throw new TypeError(`Cannot fork into "${into}": it exists, and a fork never overwrites`);
    }
    const reason = (error instanceof Error ? error.message : String(error)).split("\n")[0];
    throw new TypeError(`Cannot fork into "${into}": ${reason}`);
  }
  const removeFiles = async () => {
    for (const suffix of ["", "-wal", "-shm", "-journal"]) {
      await unlink(`${into}${suffix}`).catch(() => {});
    }
  };
  let kv: Kv;
  try {
    kv = await openKv(into);
  } catch (error) {
    await removeFiles();
    const reason = (error instanceof Error ? error.message : String(error)).split("\n")[0];
    throw new TypeError(`Cannot fork into "${into}": ${reason}`);
  }
  return {
    kv,
    close: () => Promise.resolve(kv.close()),
    remove: async () => {
      kv.close();
      await removeFiles();
    },
  };
}

async function assertEmpty(kv: Kv, what: string): Promise<void> {
  for await (const _ of kv.list({ prefix: [] }, { limit: 1 })) {
    throw new TypeError(`Cannot fork into ${what}: it is not empty, and a fork never overwrites`);
  }
}

async function clear(kv: Kv): Promise<void> {
  const keys: KvKey[] = [];
  for await (const entry of kv.list({ prefix: [] })) keys.push(entry.key);
  for (let i = 0; i < keys.length; i += COMMIT_MUTATIONS) {
    const op = kv.atomic();
    for (const key of keys.slice(i, i + COMMIT_MUTATIONS)) op.delete(key);
    await retryLocked(() => op.commit());
  }
}

/** Commits writes in batches within the limits, one commit in flight while the next fills. */
class Batches {
  #kv: Kv;
  #signal: AbortSignal | undefined;
  #op: AtomicOperation;
  #mutations = 0;
  #bytes = 0;
  #inFlight: Promise<unknown> = Promise.resolve();

  constructor(kv: Kv, signal: AbortSignal | undefined) {
    this.#kv = kv;
    this.#signal = signal;
    this.#op = kv.atomic();
  }

  async set(key: KvKey, value: unknown, bytes: number): Promise<void> {
    if (this.#mutations >= COMMIT_MUTATIONS || this.#bytes + bytes > COMMIT_BYTES) {
      await this.flush(false);
    }
    this.#op.set(key, value);
    this.#mutations++;
    this.#bytes += bytes + 64;
  }

  /** Commits what is pending; with `wait`, also waits for it. */
  async flush(wait = true): Promise<void> {
    await this.#inFlight;
    this.#signal?.throwIfAborted();
    if (this.#mutations > 0) {
      const op = this.#op;
      this.#op = this.#kv.atomic();
      this.#mutations = 0;
      this.#bytes = 0;
      const commit = retryLocked(() => op.commit());
      // Awaited by the next flush; a failure is its error.
      commit.catch(() => {});
      this.#inFlight = commit;
    }
    if (wait) await this.#inFlight;
  }
}

/**
 * The agents whose handling of an event up to `end` left records after it
 * (steps, emits, state, failures: `meta.actor` "agent/<name>" and the
 * handled event as `meta.causationId`), each with the first such event's
 * position: on the fork, the agent handles it again.
 */
async function cutHandlings(store: KvEventStore, end: number): Promise<Map<string, number>> {
  const cut = new Map<string, number>();
  const positions = new Map<string, number | null>();
  for await (const event of store.read({ from: String(end + 1) })) {
    const actor = event.meta.actor;
    const cause = event.meta.causationId;
    if (actor === undefined || !actor.startsWith("agent/") || cause === undefined) continue;
    // An id tells the position it was minted at: a cause minted after `end`
    // is after it (one imported elsewhere is looked up).
    if (!isEventId(cause) || positionInId(cause) > end) continue;
    if (!positions.has(cause)) {
      const found = await store.get(cause);
      positions.set(cause, found === null ? null : Number(found.position));
    }
    const at = positions.get(cause);
    if (at === null || at === undefined || at > end) continue;
    const agent = actor.slice("agent/".length);
    cut.set(agent, Math.min(cut.get(agent) ?? at, at));
  }
  return cut;
}

async function copy(
  store: KvEventStore,
  into: Kv,
  end: number,
  signal: AbortSignal | undefined,
  onProgress: ((copied: number) => void) | undefined,
): Promise<ForkResult> {
  const from = store.kv;
  const out = new Batches(into, signal);
  const index = new IndexEntries();
  const blobs = new Set<string>();
  let lastDigest = "";
  const pages = from.list<Uint8Array>({ prefix: PAGE, end: [...PAGE, end + 1] }, {
    batchSize: PAGE_BATCH,
  });
  for (;;) {
    const page = await retryLocked(() => pages.next());
    if (page.done) break;
    const start = page.value.key[2] as number;
    let bytes = page.value.value;
    let events;
    try {
      events = decodePage(bytes);
    } catch {
      throw corrupt(`page ${start} is unreadable`);
    }
    const count = Math.min(events.length, end - start + 1);
    if (count < events.length) {
      // The page holding the fork point, cut after it.
      bytes = encodePage(
        events.slice(0, count).map((e) =>
          encodeStored(e, e.b === undefined ? canonicalJson(e.p) : undefined)
        ),
      );
    }
    for (let i = 0; i < count; i++) {
      const event = events[i];
      index.add(event.s, event.v, start + i, start);
      if (event.b !== undefined) blobs.add(event.b);
    }
    lastDigest = events[count - 1].d;
    await out.set([...PAGE, start], bytes, bytes.length);
    for (const [key, entry] of index.take(true)) await out.set(key, entry, 36 * entry.p.length);
    onProgress?.(start + count - 1);
  }
  for (const hex of blobs) {
    const chunks = from.list<Uint8Array>({ prefix: [...CHUNK, hex] }, { batchSize: 10 });
    for await (const chunk of retryLockedIterable(chunks)) {
      await out.set(chunk.key, chunk.value, chunk.value.length);
    }
    // After its chunks, as the store writes it: its presence means they are there.
    const meta = await retryLocked(() => from.get([...BLOB, hex]));
    if (meta.value !== null) await out.set(meta.key, meta.value, 64);
  }
  for await (
    const entry of retryLockedIterable(from.list<IdEntry>({ prefix: IDS }, { batchSize: 500 }))
  ) {
    if (entry.value.p <= end) await out.set(entry.key, entry.value, 128);
  }
  const counts = { checkpoints: 0, stateChanges: 0 };
  const cut = await cutHandlings(store, end);
  for await (const [key, value] of agentStateAt(from, end, counts, cut)) {
    await out.set(key, value, 1024);
  }
  for (const [key, entry] of index.take()) await out.set(key, entry, 36 * entry.p.length);
  const layout = await retryLocked(() => from.get(LAYOUT_KEY));
  if (layout.value !== null) await out.set(LAYOUT_KEY, layout.value, 16);
  // Every event is in the stream index: the fork's end is a page start.
  await out.set(WATERMARK, end + 1, 16);
  await out.flush();
  return {
    head: { position: formatPosition(end), digest: lastDigest },
    events: end,
    ...counts,
  };
}
