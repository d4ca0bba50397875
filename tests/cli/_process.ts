// The real `toka` in subprocesses, for the tests of `run`, `emit` and `init`: load-proof
// (every wait polls for a condition with a generous deadline) and cleaned up.
import { openVault } from "../../vault/mod.ts";
import type { EventRecord } from "../../runtime/mod.ts";

/** The program's entry point and the package's config, as an installed `toka` runs them. */
export const CLI: string = new URL("../../cli.ts", import.meta.url).pathname;
export const CONFIG: string = new URL("../../deno.json", import.meta.url).pathname;

const decoder = new TextDecoder();

/** How `toka` is started: the checkout's cli.ts with its config, as `deno task install` does. */
const DENO_RUN: string[] = [Deno.execPath(), "run", "-A", "--quiet", "--config", CONFIG, CLI];

/** Where and how a `toka` runs: `command` replaces the checkout's (e.g. a compiled binary). */
export interface TokaOptions {
  cwd?: string;
  env?: Record<string, string>;
  command?: string[];
}

/**
 * Where the `toka` of these tests records trusted configs (`toka init` trusts what it
 * writes): one file shared by the test run, never the user's own ~/.config/toka.
 */
export const TRUST_FILE: string = `${Deno.env.get("TMPDIR") ?? "/tmp"}/toka-tests-${
  Deno.uid() ?? "user"
}/trusted.json`;

/** How long a condition may take on a loaded machine before a test gives up. */
export const PATIENCE_MS = 120_000;

/** Runs `toka` to completion. */
export async function toka(
  args: string[],
  options: TokaOptions & { stdin?: string } = {},
): Promise<{ code: number; out: string; err: string }> {
  const [program, ...words] = options.command ?? DENO_RUN;
  const child = new Deno.Command(program, {
    args: [...words, ...args],
    cwd: options.cwd,
    env: { NO_COLOR: "1", TOKA_TRUST_FILE: TRUST_FILE, ...options.env },
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(options.stdin));
    await writer.close();
  }
  const { code, stdout, stderr } = await child.output();
  return { code, out: decoder.decode(stdout), err: decoder.decode(stderr) };
}

/** A long-running `toka` (such as `toka run`) whose stderr is collected as it comes. */
export class TokaProcess {
  readonly child: Deno.ChildProcess;
  /** Stderr so far. */
  err = "";
  readonly #done: Promise<Deno.CommandStatus>;
  readonly #reading: Promise<void>;

  constructor(args: string[], options: TokaOptions = {}) {
    const [program, ...words] = options.command ?? DENO_RUN;
    const child = new Deno.Command(program, {
      args: [...words, ...args],
      cwd: options.cwd,
      env: { NO_COLOR: "1", TOKA_TRUST_FILE: TRUST_FILE, ...options.env },
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    this.child = child;
    this.#reading = (async () => {
      for await (const chunk of child.stderr) this.err += decoder.decode(chunk);
    })();
    this.#done = child.status;
  }

  /** Waits until stderr matches `pattern`; fails at once if the process ends first. */
  async waitFor(pattern: RegExp): Promise<void> {
    let exited: Deno.CommandStatus | undefined;
    this.#done.then((status) => exited = status);
    await until(() => {
      if (pattern.test(this.err)) return true;
      if (exited !== undefined) {
        throw new Error(`Exited (${exited.code}) before ${pattern}; stderr:\n${this.err}`);
      }
      return false;
    }, () => `${pattern}; stderr so far:\n${this.err}`);
  }

  /** Sends a signal. */
  kill(signal: Deno.Signal): void {
    this.child.kill(signal);
  }

  /** Waits for the exit; stderr is complete then. */
  async exit(): Promise<Deno.CommandStatus> {
    const status = await this.#done;
    await this.#reading;
    return status;
  }

  /** Kills it if it still runs, and waits: for `finally` blocks. */
  async close(): Promise<void> {
    try {
      this.child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
    await this.exit();
  }
}

/** Polls `condition` every `intervalMs` until it holds, or fails after {@linkcode PATIENCE_MS}. */
export async function until(
  condition: () => boolean | Promise<boolean>,
  what: string | (() => string),
  intervalMs = 50,
): Promise<void> {
  const deadline = Date.now() + PATIENCE_MS;
  while (!await condition()) {
    if (Date.now() > deadline) {
      throw new Error(`Timed out waiting for ${typeof what === "string" ? what : what()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** Every event in a vault file, read while other processes may write to it. */
export async function eventsIn(db: string): Promise<EventRecord[]> {
  const vault = await openVault(db);
  try {
    return await Array.fromAsync(vault.read());
  } finally {
    await vault.close();
  }
}

/** Waits until the vault holds an event that `match` accepts, and returns it. */
export async function waitForEvent(
  db: string,
  match: (event: EventRecord) => boolean,
  what: string,
): Promise<EventRecord> {
  let found: EventRecord | undefined;
  await until(
    async () => {
      found = (await eventsIn(db)).find(match);
      return found !== undefined;
    },
    what,
    250,
  );
  return found!;
}
