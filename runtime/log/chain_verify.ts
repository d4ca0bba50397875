// Log verification shared by both stores: the digest chain, parent links,
// versions and a kept head, checked event by event in bounded memory.
import type {
  EventRecord,
  LogHead,
  VerifyOptions,
  VerifyProblem,
  VerifyReport,
} from "./event_store.ts";
import { canonicalJson, formatPosition, parsePosition, recordDigest } from "./event_rules.ts";

/** Digests of this many recent events are kept for parent links; older parents are read. */
const PARENT_WINDOW = 16_384;
/** A report lists at most this many problems (the first ones, in log order). */
export const MAX_PROBLEMS = 1000;

// Events between two progress reports and checks of the abort signal.
const PROGRESS_EVERY = 1000;

/** Where and what a parent is, for a store to look up when it is not recent. */
export type ParentLookup = (
  id: string,
) => Promise<{ position: number; digest: string } | undefined | "unreadable">;

/** Checks a caller's kept head and returns it with its position as a number. */
export function parseHead(head: unknown): { position: number; digest: string } {
  const h = head as Partial<LogHead> | null;
  if (
    h === null || typeof h !== "object" || typeof h.digest !== "string" ||
    !/^sha256:[0-9a-f]{64}$/.test(h.digest)
  ) {
    throw new TypeError(
      `Invalid expected head ${
        JSON.stringify(head)
      }: expected { position, digest } as returned by head()`,
    );
  }
  const position = parsePosition(h.position as string, "expected head position");
  if (position < 1) throw new TypeError("Invalid expected head position: expected 1 or more");
  return { position, digest: h.digest };
}

/** Verifies events fed in position order; `problems` holds what it found. */
export class ChainVerifier {
  readonly problems: VerifyProblem[] = [];
  checked = 0;
  #dropped = 0;
  #lookup: ParentLookup;
  #recent = new Map<string, { position: number; digest: string }>();
  /** Last version seen of each stream, and the gap count when it was seen. */
  #versions = new Map<string, [number, number]>();
  #gaps = 0;
  /** Digest of the event before the next one, `undefined` when the link is unknown. */
  #previous: string | null | undefined = null;
  #expected?: { position: number; digest: string };
  #expectedSeen: { id: string; digest: string } | undefined;

  #hooks: Pick<VerifyOptions, "signal" | "onProgress">;

  constructor(
    lookup: ParentLookup,
    expectHead?: LogHead,
    hooks: Pick<VerifyOptions, "signal" | "onProgress"> = {},
  ) {
    this.#lookup = lookup;
    if (expectHead !== undefined) this.#expected = parseHead(expectHead);
    this.#hooks = hooks;
    hooks.signal?.throwIfAborted();
  }

  /** Notes a problem; past {@linkcode MAX_PROBLEMS} only counts it. */
  report(position: number, reason: string, id?: string): void {
    if (this.problems.length >= MAX_PROBLEMS) {
      this.#dropped++;
      return;
    }
    const problem: VerifyProblem = { position: formatPosition(position), reason };
    if (id !== undefined) problem.id = id;
    this.problems.push(problem);
  }

  /** The link to the next event cannot be checked: events before it are missing or unreadable. */
  breakChain(): void {
    this.#previous = undefined;
    this.#gaps++;
  }

  /**
   * Checks one event at position `at`; `canonicalPayload` is undefined when
   * its payload could not be read (already reported).
   */
  async check(record: EventRecord, at: number, canonicalPayload?: string): Promise<void> {
    if (++this.checked % PROGRESS_EVERY === 0) {
      this.#hooks.signal?.throwIfAborted();
      this.#hooks.onProgress?.(this.checked);
    }
    const report = (reason: string) => this.report(at, reason, record.id);
    if (at === this.#expected?.position) {
      this.#expectedSeen = { id: record.id, digest: record.digest };
    }
    const [last, gaps] = this.#versions.get(record.stream) ?? [0, 0];
    // Across missing or unreadable events (reported there), a stream may skip versions.
    if (record.version !== last + 1 && !(gaps < this.#gaps && record.version > last)) {
      report(`stream "${record.stream}" has version ${record.version}, expected ${last + 1}`);
    }
    this.#versions.set(record.stream, [record.version, this.#gaps]);
    const parentDigests: string[] = [];
    let known = canonicalPayload !== undefined && this.#previous !== undefined;
    for (const parent of Array.isArray(record.parents) ? record.parents : []) {
      const found = this.#recent.get(parent) ?? await this.#lookup(parent);
      if (found === "unreadable") known = false;
      else if (found === undefined || found.position >= at) {
        report(`parent ${parent} is not an earlier event`);
        known = false;
      } else parentDigests.push(found.digest);
    }
    if (known) {
      let actual: string | undefined;
      try {
        actual = recordDigest(
          {
            id: record.id,
            position: at,
            stream: record.stream,
            version: record.version,
            kind: record.kind,
            canonicalPayload: canonicalPayload!,
            parents: record.parents,
            intent: record.intent,
            timestamp: record.timestamp,
            meta: record.meta,
          },
          parentDigests,
          this.#previous!,
        );
      } catch {
        actual = undefined;
      }
      if (actual !== record.digest) {
        report(
          at === 1
            ? "digest does not match the event"
            : "digest does not match the event and the digest before it",
        );
      }
    }
    this.#previous = typeof record.digest === "string" ? record.digest : undefined;
    this.#recent.set(record.id, { position: at, digest: record.digest });
    if (this.#recent.size > PARENT_WINDOW) {
      this.#recent.delete(this.#recent.keys().next().value!);
    }
  }

  /** Checks the kept head against a log that ends before `end`, and sorts the report. */
  finish(end: number): VerifyReport {
    const expected = this.#expected;
    if (expected !== undefined) {
      if (expected.position >= end) {
        this.report(
          end,
          `the log ends at position ${
            end - 1
          }, before the expected head ${expected.position}: events were cut off`,
        );
      } else if (this.#expectedSeen?.digest !== expected.digest) {
        this.report(
          expected.position,
          "digest differs from the expected head: the log up to this event was rewritten",
          this.#expectedSeen?.id,
        );
      }
    }
    const problems = this.problems.sort((a, b) =>
      a.position < b.position ? -1 : a.position > b.position ? 1 : 0
    );
    if (this.#dropped > 0) {
      problems.push({
        position: problems[problems.length - 1].position,
        reason: `${this.#dropped} more problems not listed`,
      });
    }
    return { ok: problems.length === 0, checked: this.checked, problems };
  }
}

/** Canonical JSON of a payload read back, or undefined when it is not JSON. */
export function canonicalOf(payload: unknown): string | undefined {
  try {
    return canonicalJson(payload);
  } catch {
    return undefined;
  }
}
