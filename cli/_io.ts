// What a CLI command may touch, injected so most CLI tests run in-process.

/** The streams and environment a command runs with. */
export interface CliIo {
  /** Writes text to standard output (the caller adds newlines). */
  stdout(text: string): void;
  /** Writes text to standard error. */
  stderr(text: string): void;
  /** Standard input, for `events import`. */
  stdin?: ReadableStream<Uint8Array>;
  /** Environment lookup (TOKA_DB, TOKA_MASTER_KEY, ...). */
  env(name: string): string | undefined;
  /** Ends long-running commands such as `events tail --follow`. */
  signal?: AbortSignal;
  /** True when standard output is a terminal (progress may be shown). */
  isTty?: boolean;
}

/** The real process's streams. */
export function processIo(signal?: AbortSignal): CliIo {
  const encoder = new TextEncoder();
  return {
    stdout: (text) => Deno.stdout.writeSync(encoder.encode(text)),
    stderr: (text) => Deno.stderr.writeSync(encoder.encode(text)),
    stdin: Deno.stdin.readable,
    env: (name) => Deno.env.get(name),
    signal,
    isTty: Deno.stdout.isTerminal(),
  };
}
