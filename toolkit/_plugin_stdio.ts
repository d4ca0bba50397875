// The stdio transport: one child process speaking JSON-RPC 2.0, one message per line. Started
// on first use, restarted with backoff after it dies (on the next call, not eagerly), killed
// when a call times out (it is stuck or lost) and on close. The child leads a process group of
// its own, and killing it ends the group: a wrapper (`sh -c`, `npx`, `uv run`) leaves no orphan.
import { parseResponse, rpcError, rpcRequest } from "./_plugin_jsonrpc.ts";
import { deadline, preview, stderrHint, timedOut } from "./_plugin_remote.ts";
import { getEnv, isNotFound, type PipedChild, spawnPiped } from "../internal/platform.ts";
import { deferred } from "../internal/deferred.ts";
import { LineSplitter, LineTooLongError } from "./_plugin_lines.ts";

/** How to start the child, and how long to wait between restarts. */
export interface StdioOptions {
  command: string;
  args?: string[];
  env?: Record<string, string>;
  cwd?: string;
  /** Delay before the first restart after a death; doubled per death in a row. */
  restartDelayMs: number;
  /** The longest delay between restarts. */
  maxRestartDelayMs: number;
}

interface Pending {
  resolve(value: unknown): void;
  reject(error: unknown): void;
}

interface Proc {
  child: PipedChild;
  writer: WritableStreamDefaultWriter<Uint8Array>;
  pending: Map<number, Pending>;
  stderr: string;
  /** Why we killed it, when we did. */
  killed?: string;
  /** Stops reading its stdout and stderr: what is still in the pipes is dropped. */
  stopReading(): void;
  done: Promise<void>;
}

// A line longer than this is not an answer we want to hold in memory.
const MAX_LINE_BYTES = 16 * 1024 * 1024;
// How long the pipes may stay open once the child has exited (a process that left its group
// may hold them): its last output is read meanwhile, then the rest is not waited for.
const PIPE_GRACE_MS = 1000;
// What a child inherits from our environment: enough to run, never our secrets.
const INHERITED_ENV = [
  "PATH",
  "HOME",
  "USER",
  "LOGNAME",
  "SHELL",
  "TERM",
  "LANG",
  "TMPDIR",
  "DENO_DIR",
  "XDG_CACHE_HOME",
  "SYSTEMROOT",
];
const encoder = new TextEncoder();

/** Starts a plugin process with piped stdio and only the environment {@linkcode childEnv} gives. */
export function spawnPlugin(
  options: { command: string; args?: string[]; env?: Record<string, string>; cwd?: string },
): PipedChild {
  const { command, args, env, cwd } = options;
  return spawnPiped(command, { args, cwd, env: childEnv(env) });
}

// The environment of a plugin process: a few inherited variables plus the spec's own.
function childEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of INHERITED_ENV) {
    try {
      const value = getEnv(name);
      if (value !== undefined) env[name] = value;
    } catch {
      // No --allow-env for it: the child goes without.
    }
  }
  return { ...env, ...extra };
}

/** Sleeps, or rejects with the signal's reason when it aborts first. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/** Delays restarts: none before the first start, then doubling per death in a row. */
export class Backoff {
  #failures = 0;
  #retryAt = 0;
  #options: { restartDelayMs: number; maxRestartDelayMs: number };

  constructor(options: { restartDelayMs: number; maxRestartDelayMs: number }) {
    this.#options = options;
  }

  /** Counts a death (or a failed start). */
  failed(): void {
    const { restartDelayMs, maxRestartDelayMs } = this.#options;
    const delay = Math.min(maxRestartDelayMs, restartDelayMs * 2 ** Math.min(this.#failures, 30));
    this.#failures++;
    this.#retryAt = performance.now() + delay;
  }

  /** Forgets past deaths: the plugin answered. */
  succeeded(): void {
    this.#failures = 0;
    this.#retryAt = 0;
  }

  /** Waits until a (re)start is due. */
  async wait(signal: AbortSignal): Promise<void> {
    const ms = this.#retryAt - performance.now();
    if (ms > 0) await sleep(ms, signal);
  }
}

/** A connection to a stdio plugin: requests are multiplexed by id over one child. */
export class StdioConnection {
  #options: StdioOptions;
  #proc?: Proc;
  #procs = new Set<Proc>();
  #nextId = 1;
  #backoff: Backoff;
  #closed = new AbortController();

  constructor(options: StdioOptions) {
    this.#options = options;
    this.#backoff = new Backoff(options);
  }

  /** Sends a request and waits for its answer; rejects when `signal` aborts. */
  async request(method: string, params: unknown, signal: AbortSignal): Promise<unknown> {
    const proc = await this.#ready(signal);
    const id = this.#nextId++;
    const answer = deferred<unknown>();
    proc.pending.set(id, answer);
    const onAbort = () => {
      proc.pending.delete(id);
      answer.reject(signal.reason);
      // A call that times out leaves a child that is stuck or has lost track: start afresh.
      if (timedOut(signal)) this.#kill(proc, "was stopped after a call timed out");
    };
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      proc.writer.write(encoder.encode(rpcRequest(id, method, params) + "\n")).catch(
        (error: unknown) => {
          proc.pending.delete(id);
          answer.reject(new Error(`cannot write to the plugin process: ${preview(String(error))}`));
        },
      );
      return await answer.promise;
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
  }

  /** Kills the child (if any) and waits for it; later requests fail. */
  async close(): Promise<void> {
    this.#closed.abort(new Error("the plugin is closed"));
    for (const proc of this.#procs) this.#kill(proc, "was closed");
    await Promise.all([...this.#procs].map((proc) => proc.done));
  }

  async #ready(signal: AbortSignal): Promise<Proc> {
    // The common case, without making a combined signal.
    if (this.#proc !== undefined && !signal.aborted && !this.#closed.signal.aborted) {
      return this.#proc;
    }
    const stop = AbortSignal.any([signal, this.#closed.signal]);
    for (;;) {
      stop.throwIfAborted();
      if (this.#proc !== undefined) return this.#proc;
      await this.#backoff.wait(stop);
      if (this.#proc !== undefined) continue; // another call started it meanwhile
      stop.throwIfAborted();
      try {
        this.#proc = this.#spawn();
      } catch (error) {
        this.#backoff.failed();
        const reason = isNotFound(error)
          ? `command ${JSON.stringify(this.#options.command)} not found`
          : preview((error as Error).message ?? error);
        throw new Error(`cannot start the plugin process: ${reason}`, { cause: error });
      }
    }
  }

  #spawn(): Proc {
    const child = spawnPlugin(this.#options);
    const stdout = child.stdout.getReader();
    const stderr = child.stderr.getReader();
    const proc: Proc = {
      child,
      writer: child.stdin.getWriter(),
      pending: new Map(),
      stderr: "",
      stopReading: () => {
        stdout.cancel().catch(() => {});
        stderr.cancel().catch(() => {});
      },
      done: Promise.resolve(),
    };
    this.#procs.add(proc);
    proc.done = (async () => {
      let why: string | undefined;
      try {
        const reading = Promise.all([this.#readAnswers(proc, stdout), readTail(proc, stderr)]);
        reading.catch(() => {}); // awaited below; until then a failure is not unhandled
        const status = await child.status;
        why = `exited with ${status.signal ? `signal ${status.signal}` : `code ${status.code}`}`;
        // What it started goes with it; a pipe still held open past the grace is dropped.
        child.kill("SIGKILL");
        const grace = deadline(PIPE_GRACE_MS);
        await Promise.race([reading, new Promise((resolve) => grace.signal.onabort = resolve)]);
        grace.clear();
        proc.stopReading();
        await reading;
      } catch (error) {
        why ??= `could not be read: ${preview(String(error))}`;
        child.kill("SIGKILL");
        proc.stopReading();
      } finally {
        await proc.writer.close().catch(() => {});
        this.#procs.delete(proc);
        this.#gone(proc);
        const error = new Error(
          `the plugin process ${proc.killed ?? why}${stderrHint(proc.stderr)}`,
        );
        for (const pending of proc.pending.values()) pending.reject(error);
        proc.pending.clear();
      }
    })();
    return proc;
  }

  // Forgets a child that died or was killed, once, and delays the next start.
  #gone(proc: Proc): void {
    if (this.#proc !== proc) return;
    this.#proc = undefined;
    if (!this.#closed.signal.aborted) this.#backoff.failed();
  }

  #kill(proc: Proc, why: string): void {
    if (proc.killed !== undefined) return;
    proc.killed = why;
    this.#gone(proc);
    const error = new Error(`the plugin process ${why}`);
    for (const pending of proc.pending.values()) pending.reject(error);
    proc.pending.clear();
    proc.child.kill("SIGKILL"); // the group: a wrapper's children too
    proc.stopReading(); // nothing it says now matters, and a pipe may never close
  }

  // Reads answers as they arrive: each chunk is split once, and the line cap is enforced as the
  // bytes arrive, so neither a long line nor a flood of lines holds up the event loop.
  async #readAnswers(
    proc: Proc,
    stdout: ReadableStreamDefaultReader<Uint8Array>,
  ): Promise<void> {
    const lines = new LineSplitter(MAX_LINE_BYTES);
    const onLine = (line: string) => {
      const text = line.trim();
      if (text !== "") this.#answer(proc, text);
      return proc.killed === undefined;
    };
    while (proc.killed === undefined) {
      const { done, value } = await stdout.read();
      if (done) return;
      try {
        lines.push(value, onLine);
      } catch (error) {
        if (!(error instanceof LineTooLongError)) throw error;
        this.#kill(proc, `${error.message}, and was stopped`);
      }
    }
  }

  #answer(proc: Proc, line: string): void {
    let response;
    try {
      let message: unknown;
      try {
        message = JSON.parse(line);
      } catch {
        throw new Error(`printed "${preview(line)}", which is not JSON`);
      }
      response = parseResponse(message);
    } catch (error) {
      return this.#kill(proc, `${(error as Error).message}, and was stopped`);
    }
    if (response === "other" || typeof response.id !== "number") return;
    const pending = proc.pending.get(response.id);
    if (pending === undefined) return; // the answer to a call that timed out or was aborted
    proc.pending.delete(response.id);
    this.#backoff.succeeded();
    if (response.error) pending.reject(rpcError(response.error));
    else pending.resolve(response.result);
  }
}

// Keeps the end of the child's stderr for error messages.
async function readTail(
  proc: Proc,
  stderr: ReadableStreamDefaultReader<Uint8Array>,
): Promise<void> {
  const decoder = new TextDecoder();
  for (;;) {
    const { done, value } = await stderr.read();
    if (done) return;
    proc.stderr = (proc.stderr + decoder.decode(value.subarray(-2048), { stream: true })).slice(
      -2048,
    );
  }
}
