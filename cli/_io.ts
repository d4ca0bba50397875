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
  /** True when standard output is a terminal. */
  isTty?: boolean;
  /** True when standard error is a terminal: long commands then show progress there. */
  stderrIsTty?: boolean;
  /** The words that start this program as a user types them; `["toka"]` when absent. */
  program?: string[];
  /** The terminal's width in columns, read when asked (it may be resized); undefined if unknown. */
  columns?(): number | undefined;
}

/**
 * The real process's streams. Writing to a closed standard output (as in
 * `toka events export | head`) throws `Deno.errors.BrokenPipe`, which `main`
 * turns into a quiet exit; a closed standard error is ignored.
 *
 * @param signal Aborted when the user interrupts the process.
 * @returns The process's io.
 */
export function processIo(signal?: AbortSignal): CliIo {
  const encoder = new TextEncoder();
  let program: string[] | undefined;
  return {
    stdout: (text) => writeAll(Deno.stdout, encoder.encode(text)),
    stderr: (text) => {
      try {
        writeAll(Deno.stderr, encoder.encode(text));
      } catch (error) {
        if (!(error instanceof Deno.errors.BrokenPipe)) throw error;
      }
    },
    // Lazy, so commands that never read stdin leave it alone.
    get stdin() {
      return Deno.stdin.readable;
    },
    env: (name) => Deno.env.get(name),
    signal,
    isTty: Deno.stdout.isTerminal(),
    stderrIsTty: Deno.stderr.isTerminal(),
    columns: () => {
      try {
        return Deno.consoleSize().columns || undefined;
      } catch {
        return undefined; // no terminal
      }
    },
    // Lazy: only the commands that print hints ask, and finding it may look through PATH.
    get program() {
      return program ??= programWords();
    },
  };
}

// How to run this program again from the same folder: the compiled `toka` by its name
// (or path), a checkout as `deno run -A cli.ts`, as in the README.
function programWords(): string[] {
  const exec = Deno.execPath();
  if (Deno.build.standalone) {
    const name = exec.replace(/^.*[\\/]/, "");
    const onPath = (Deno.env.get("PATH") ?? "").split(":").some((dir) => `${dir}/${name}` === exec);
    if (onPath) return [name];
    const path = relative(exec);
    return [path.includes("/") ? path : `./${path}`];
  }
  const main = Deno.mainModule;
  if (installedAsToka(main)) return ["toka"];
  return ["deno", "run", "-A", main.startsWith("file:") ? relative(new URL(main).pathname) : main];
}

// Whether `toka` on PATH is a `deno install` script that runs this very module, as
// `deno task install` makes: then a user types `toka`, whatever checkout it came from.
function installedAsToka(main: string): boolean {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    if (dir === "") continue;
    try {
      // A script is small; a compiled toka there is not read.
      if (Deno.statSync(`${dir}/toka`).size > 4096) continue;
      if (Deno.readTextFileSync(`${dir}/toka`).includes(`'${main}'`)) return true;
    } catch {
      // Not there or not readable: look further.
    }
  }
  return false;
}

function relative(path: string): string {
  const cwd = Deno.cwd();
  return path.startsWith(`${cwd}/`) ? path.slice(cwd.length + 1) : path;
}

// writeSync may write only part of the buffer.
function writeAll(writer: { writeSync(p: Uint8Array): number }, bytes: Uint8Array): void {
  let written = 0;
  while (written < bytes.length) written += writer.writeSync(bytes.subarray(written));
}
