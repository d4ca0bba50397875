// A progress line for long commands, on standard error and only on a terminal:
// piped or redirected, a command prints exactly what it printed before.
import type { CliIo } from "./_io.ts";

const WIDTH = 24;
const MIN_WIDTH = 6;
const EVERY_MS = 100;

/** A progress line that long work advances; a no-op unless standard error is a terminal. */
export interface Progress {
  /** Adds `n` items done; redraws at most every 100 ms. */
  advance(n: number): void;
  /** Sets the number of items expected, once known. */
  total(n: number): void;
  /** Removes the line, leaving the terminal as it was. */
  done(): void;
}

/** Options of {@linkcode progress}. */
export interface ProgressOptions {
  /** Items expected; without it the line shows a count only. */
  total?: number;
  /** Milliseconds, for the rate and redraw pacing; `performance.now` by default. */
  now?: () => number;
}

/**
 * Starts a progress line such as
 * `importing [██████░░░░░░] 52% 52,000/100,000 events 21,450/s` on the io's
 * standard error, when it is a terminal (`io.stderrIsTty`); otherwise does
 * nothing. The line is fitted to the terminal's width (`io.columns`) at each
 * redraw.
 *
 * @param io Where the line goes.
 * @param label What is being done, e.g. `"importing"`.
 * @param options The total, and the clock.
 * @returns The progress line.
 */
export function progress(io: CliIo, label: string, options: ProgressOptions = {}): Progress {
  if (io.stderrIsTty !== true) return { advance() {}, total() {}, done() {} };
  const now = options.now ?? (() => performance.now());
  const started = now();
  let total = options.total;
  let count = 0;
  let drawn = -Infinity;
  let shown = false;
  const draw = () => {
    drawn = now();
    const seconds = (drawn - started) / 1000;
    const rate = seconds > 0 ? ` ${fmt(count / seconds)}/s` : "";
    const line = fit(label, count, total, rate, io.columns?.());
    // Carriage return and erase-line: the line is redrawn in place.
    io.stderr(`\r\x1b[2K${line}`);
    shown = true;
  };
  return {
    advance(n) {
      count += n;
      if (now() - drawn >= EVERY_MS) draw();
    },
    total(n) {
      total = n;
    },
    done() {
      if (shown) io.stderr("\r\x1b[2K");
      shown = false;
    },
  };
}

// One row narrower than the terminal, so the line never wraps: the erase-line that redraws it
// clears one row only, and each wrapped row would stay behind. Narrower terminals get a shorter
// bar, then no bar, then no rate, then the line cut.
function fit(
  label: string,
  count: number,
  total: number | undefined,
  rate: string,
  columns: number | undefined,
): string {
  const max = Math.max(1, (columns ?? Infinity) - 1);
  const candidates: string[] = [];
  if (total !== undefined && total > 0) {
    const share = Math.min(1, count / total);
    const counts = `${Math.floor(share * 100)}% ${fmt(count)}/${fmt(total)} events`;
    const width = Math.min(WIDTH, max - `${label} [] ${counts}${rate}`.length);
    if (width >= MIN_WIDTH) {
      const full = Math.round(share * width);
      candidates.push(`${label} [${"█".repeat(full)}${"░".repeat(width - full)}] ${counts}${rate}`);
    }
    candidates.push(`${label} ${counts}${rate}`, `${label} ${counts}`);
  } else {
    candidates.push(`${label} ${fmt(count)} events${rate}`, `${label} ${fmt(count)} events`);
  }
  const line = candidates.find((c) => [...c].length <= max) ?? candidates.at(-1)!;
  const chars = [...line];
  return chars.length <= max ? line : max < 2 ? chars[0] : `${chars.slice(0, max - 1).join("")}…`;
}

function fmt(n: number): string {
  return Math.round(n).toLocaleString("en-US");
}
