// The one retry and delay helper of the package: the runner's backoff, the
// checkpoint writer, leases, the vault and the auth pool all wait through it.

/**
 * Waits `ms` milliseconds, or less when `signal` aborts.
 *
 * @returns True after the whole wait, false when cut short by the signal.
 */
export function delay(ms: number, signal?: AbortSignal): Promise<boolean> {
  if (signal?.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve(!signal?.aborted);
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** How {@linkcode retry} repeats an operation. */
export interface RetryOptions {
  /** Tries in all, the first included. */
  attempts: number;
  /** Milliseconds to wait after failed try `attempt` (1-based). */
  delayMs: (attempt: number) => number;
  /** Whether an error is worth another try; every error by default. */
  retryIf?: (error: unknown) => boolean;
  /** Stops waiting (and trying) when aborted; the last error is thrown. */
  signal?: AbortSignal;
}

/**
 * Runs `operation`, trying again after a delay while it throws an error that
 * `retryIf` accepts, up to `attempts` tries.
 *
 * @returns What the operation returned.
 * @throws The last error, or the first one `retryIf` refuses.
 */
export async function retry<T>(operation: () => Promise<T>, options: RetryOptions): Promise<T> {
  for (let attempt = 1;; attempt++) {
    try {
      return await operation();
    } catch (error) {
      if (attempt >= options.attempts || !(options.retryIf?.(error) ?? true)) throw error;
      if (!(await delay(options.delayMs(attempt), options.signal))) throw error;
    }
  }
}

/** Exponential backoff from `firstMs`, doubling up to `maxMs`, with ±50% jitter. */
export function backoff(firstMs: number, maxMs: number): (attempt: number) => number {
  return (attempt) => Math.min(maxMs, firstMs * 2 ** (attempt - 1)) * (0.5 + Math.random());
}
