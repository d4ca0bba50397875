// Fakes shared by the CLI tests: an io that records, and a store the CLI cannot close.
import assert from "node:assert/strict";
import { main } from "../../cli.ts";
import type { CliIo } from "../../cli/_io.ts";
import type { EventStore } from "../../runtime/log/event_store.ts";

/** An io whose output is kept in memory. */
export interface RecordingIo extends CliIo {
  /** Everything written to stdout, in order. */
  readonly out: string[];
  /** Everything written to stderr, in order. */
  readonly err: string[];
  /** Stdout's complete lines. */
  outLines(): string[];
  /** Stderr's complete lines. */
  errLines(): string[];
  /** Resolves once stdout has at least `n` lines. */
  waitForLines(n: number): Promise<void>;
}

/** Creates a recording io with the given stdin text (or chunks), environment and signal. */
export function recordingIo(
  options: { stdin?: string | string[]; env?: Record<string, string>; signal?: AbortSignal } = {},
): RecordingIo {
  const out: string[] = [];
  const err: string[] = [];
  const waiters = new Set<() => void>();
  const lines = (chunks: string[]) => chunks.join("").split("\n").slice(0, -1);
  const encoder = new TextEncoder();
  const stdin = options.stdin === undefined ? undefined : ReadableStream.from(
    (typeof options.stdin === "string" ? [options.stdin] : options.stdin).map((chunk) =>
      encoder.encode(chunk)
    ),
  );
  return {
    out,
    err,
    stdout(text) {
      out.push(text);
      for (const wake of waiters) wake();
    },
    stderr: (text) => err.push(text),
    stdin,
    env: (name) => options.env?.[name],
    signal: options.signal,
    outLines: () => lines(out),
    errLines: () => lines(err),
    waitForLines(n) {
      return new Promise((resolve) => {
        const check = () => {
          if (lines(out).length < n) return;
          waiters.delete(check);
          resolve();
        };
        waiters.add(check);
        check();
      });
    },
  };
}

/** The same store, with `close()` a no-op, so several `main()` calls can share it. */
export function unclosable(store: EventStore, overrides: Partial<EventStore> = {}): EventStore {
  return {
    append: (...args) => store.append(...args),
    read: (...args) => store.read(...args),
    readStream: (...args) => store.readStream(...args),
    get: (...args) => store.get(...args),
    head: () => store.head(),
    stats: () => store.stats(),
    subscribe: (...args) => store.subscribe(...args),
    verify: (options) => store.verify(options),
    importEvents: (...args) => store.importEvents(...args),
    close: () => Promise.resolve(),
    ...overrides,
  };
}

/** True when no line looks like a stack frame. */
export function hasNoStackTrace(io: RecordingIo): boolean {
  return ![...io.out, ...io.err].some((text) => text.includes("    at "));
}

/** A store factory that always hands out `store`. */
export function opener(store: EventStore): () => Promise<EventStore> {
  return () => Promise.resolve(store);
}

/** Whether a file or folder is there (links followed). */
export async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

/** What an in-process `toka` run gave: its exit code, its io, stdout's text and stderr's lines. */
export interface InProcessRun {
  code: number;
  io: RecordingIo;
  out: string;
  errLines: string[];
}

/**
 * Runs `toka <args>` in-process on a recording io (or `options.io`) and asserts that it printed
 * no stack trace.
 */
export async function runToka(
  args: string[],
  options: { stdin?: string; env?: Record<string, string>; cwd?: string; io?: RecordingIo } = {},
): Promise<InProcessRun> {
  const io = options.io ?? recordingIo({ stdin: options.stdin, env: options.env });
  const code = await main(args, io, { cwd: options.cwd });
  assert.ok(hasNoStackTrace(io), io.err.join(""));
  return { code, io, out: io.out.join(""), errLines: io.errLines() };
}

/** The arguments of `toka --db <db> auth issue --sub me` with a `--perm` for each of `perms`. */
export function issueArgs(db: string, ...perms: string[]): string[] {
  return ["--db", db, "auth", "issue", "--sub", "me", ...perms.flatMap((p) => ["--perm", p])];
}
