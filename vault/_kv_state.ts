// The state every part of the Deno KV event store shares (writer, index,
// reader, subscriptions, verify and import): one object, passed explicitly.
import type { Kv, KvEntry, KvListIterator } from "../internal/platform.ts";
import type {
  AppendGuard,
  AppendResult,
  EventRecord,
  ExpectedVersion,
} from "../runtime/log/event_store.ts";
import { TokaError } from "../runtime/errors.ts";
import { retryLocked } from "../internal/kv_retry.ts";
import type { PreparedInput } from "../runtime/log/event_rules.ts";
import type { ImportLink } from "../runtime/log/import_rules.ts";

// Key layout, all under ["vault"]:
//   ["vault", "layout"]                    the layout version of everything below (LAYOUT)
//   ["vault", "ev", firstPosition]         a page: JSON array of the events of one commit (≤ 60 KiB)
//   ["vault", "si", stream, firstVersion]  stream index entry: positions and page starts, written in bulk
//   ["vault", "ix"]                        index watermark: every position below it is in the stream index
//   ["vault", "id", id]                    { p: position, d?: exported digest } of an imported event
//                                          stored at another position or with another digest
//   ["vault", "blob", hex]                 a large payload's size and chunk count, written last
//   ["vault", "bc", hex, n]                its chunks (60 KiB each)
export const LAYOUT_KEY = ["vault", "layout"] as const;
export const PAGE = ["vault", "ev"] as const;
export const INDEX = ["vault", "si"] as const;
export const WATERMARK = ["vault", "ix"] as const;
export const IDS = ["vault", "id"] as const;
export const BLOB = ["vault", "blob"] as const;
export const CHUNK = ["vault", "bc"] as const;
/**
 * Pages per KV read when listing pages (each up to 60 KiB, so about 480 KiB a
 * read): @deno/kv on Node lists 100 such pages at a time several times slower
 * than 5 or 8 (bench/node_vault.ts); on Deno the size makes no clear difference.
 */
export const PAGE_BATCH = 8;

/**
 * The version of the key layout and page format above. A store records it
 * with its first commit and checks it at open: a newer one is refused, so a
 * later change of format comes with a migration from this one.
 */
export const LAYOUT = 2;

/** Layout 1 (before chained digests): events carried a digest of their payload and parents only. */
export const LAYOUT_UNCHAINED = 1;

/** Cached events of this process, for `get`, parent digests and subscribers. */
const RECENT_EVENTS = 8192;
/** Beyond this many known streams, those whose last event is indexed are forgotten. */
const STREAM_CACHE = 10_000;

/** An append waiting for the next group commit. */
export interface Pending {
  stream: string;
  prepared: PreparedInput[];
  /** The stored digests of each event's parents. */
  parentDigests: string[][];
  blobs: (string | undefined)[];
  expected: ExpectedVersion | undefined;
  imported?: EventRecord;
  /** The import it belongs to: once one of its records is refused, the later ones are too. */
  group?: ImportGroup;
  /** The condition the append is committed under. */
  guard?: AppendGuard;
  resolve(result: AppendResult): void;
  reject(error: unknown): void;
}

/** An import in progress, as the writer sees it. */
export interface ImportGroup {
  /** Why a record of the import was refused, once one was. */
  refused?: unknown;
}

/** An imported event's id entry. */
export interface IdEntry {
  /** Its position here. */
  p: number;
  /** Its digest in the export, when it differs from the one here. */
  d?: string;
}

/** What the store knows of a stream: its version and the position of its last event. */
export interface StreamState {
  version: number;
  position: number;
}

/** A stream index entry: the positions and page starts of consecutive versions. */
export interface IndexEntry {
  p: number[];
  g: number[];
}

/** Stream, version and page of each event from `start` on, for the bulk index. */
export interface Tail {
  start: number;
  streams: string[];
  versions: number[];
  pages: number[];
}

/** Options of the shared state, as given to `KvEventStore.open`. */
export interface KvStateOptions {
  clock?: () => number;
  randomBytes?: (bytes: Uint8Array) => Uint8Array;
  closeKv?: boolean;
}

export class KvState {
  readonly kv: Kv;
  readonly clock: () => number;
  readonly randomBytes: (bytes: Uint8Array) => Uint8Array;
  readonly closeKv: boolean;
  /** The position the next commit starts at. */
  next = 1;
  /** Every position below it is in the stream index, as far as this process knows. */
  watermark = 1;
  /** Whether the layout key still has to be written (with the next commit). */
  layoutPending = false;
  /** The digest of the event at `next - 1`, which the next commit chains to. */
  lastDigest: string | null = null;
  /** The last record an import went through, for the next import call to chain to. */
  lastImported: ImportLink | undefined;
  streams: Map<string, StreamState> = new Map();
  tail: Tail = { start: 1, streams: [], versions: [], pages: [] };
  /** Events this process wrote or saw, from `recentStart` on. */
  recent: EventRecord[] = [];
  recentStart = 1;
  queue: Pending[] = [];
  writing: Promise<void> | null = null;
  indexing: Promise<void> | null = null;
  waiters: Set<() => void> = new Set();
  closing = false;
  closed = false;

  constructor(kv: Kv, options: KvStateOptions) {
    this.kv = kv;
    this.clock = options.clock ?? Date.now;
    this.randomBytes = options.randomBytes ?? ((b) => crypto.getRandomValues(b));
    this.closeKv = options.closeKv ?? false;
  }

  assertOpen(): void {
    if (this.closing) throw new TypeError("The event store is closed");
  }

  /** Wakes every subscription waiting for news. */
  wake(): void {
    for (const wake of [...this.waiters]) wake();
  }

  /** Notes the version and position of a stream's latest event. */
  track(stream: string, version: number, position: number): void {
    const state = this.streams.get(stream);
    if (state === undefined) this.streams.set(stream, { version, position });
    else {
      state.version = version;
      state.position = position;
    }
  }

  /** Keeps a committed record for `get`, parent digests and subscribers. */
  remember(record: EventRecord, version: number): void {
    this.track(record.stream, version, this.recentStart + this.recent.length);
    Object.freeze(record);
    this.recent.push(record);
    if (this.recent.length > RECENT_EVENTS * 2) {
      this.recent = this.recent.slice(RECENT_EVENTS);
      this.recentStart += RECENT_EVENTS;
    }
  }

  /** The recent record at a position, if this process still holds it. */
  recentAt(position: number): EventRecord | undefined {
    return this.recent[position - this.recentStart];
  }

  /** Notes an event in the unindexed tail; `position` must follow the tail's last one. */
  noteTail(stream: string, version: number, position: number, page: number): void {
    const tail = this.tail;
    if (position !== tail.start + tail.streams.length) {
      this.tail = { start: position, streams: [], versions: [], pages: [] };
    }
    this.tail.streams.push(stream);
    this.tail.versions.push(version);
    this.tail.pages.push(page);
  }

  /** Moves the known watermark forward and forgets what it covers. */
  advanceWatermark(watermark: number): void {
    if (watermark <= this.watermark) return;
    this.watermark = watermark;
    const drop = Math.min(watermark - this.tail.start, this.tail.streams.length);
    if (drop > 0) {
      this.tail = {
        start: this.tail.start + drop,
        streams: this.tail.streams.slice(drop),
        versions: this.tail.versions.slice(drop),
        pages: this.tail.pages.slice(drop),
      };
    }
    if (this.streams.size <= STREAM_CACHE) return;
    // Streams whose last event is indexed can be looked up again when needed.
    for (const [stream, state] of this.streams) {
      if (state.position < watermark) this.streams.delete(stream);
    }
  }
}

/** A list that hits "database is locked" is resumed from its cursor. */
export async function* retryLockedIterable<T>(
  iterator: KvListIterator<T>,
): AsyncIterableIterator<KvEntry<T>> {
  for (;;) {
    const entry = await retryLocked(() => iterator.next());
    if (entry.done) return;
    yield entry.value;
  }
}

/** The error of a damaged vault: a missing page, chunk or index entry. */
export function corrupt(detail: string): TokaError {
  return new TokaError("vault_corrupt", `The vault is damaged: ${detail}`);
}

/** Whether `error` says the vault's bytes are damaged (not that a read failed). */
export function isCorrupt(error: unknown): boolean {
  return error instanceof TokaError && error.code === "vault_corrupt";
}
