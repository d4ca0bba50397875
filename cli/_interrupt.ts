// Stopping long commands on the first SIGINT (`ctx.io.signal`): they finish the
// step in hand, say how far they got and exit 130, as shells report an interrupt.

/** What {@linkcode abortable} throws once the signal aborts. */
export const INTERRUPTED: Error = new Error("Interrupted");

/** The exit code of an interrupted command (128 + SIGINT). */
export const INTERRUPTED_EXIT = 130;

/**
 * Reads a byte stream until it ends or the signal aborts, even while a read
 * is waiting for input (a pipe nobody writes to yet): then the stream is
 * cancelled and {@linkcode INTERRUPTED} thrown.
 *
 * @param stream The stream.
 * @param signal Aborted by an interrupt; none reads to the end.
 * @returns The stream's chunks.
 * @throws {Error} {@linkcode INTERRUPTED} once the signal aborts.
 */
export async function* abortable(
  stream: ReadableStream<Uint8Array>,
  signal: AbortSignal | undefined,
): AsyncGenerator<Uint8Array> {
  const reader = stream.getReader();
  // Cancelling settles a read still waiting. (Not a race against a promise that
  // never settles: each race would keep its chunk alive until the end.)
  const onAbort = () => void reader.cancel().catch(() => {});
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    for (;;) {
      if (signal?.aborted) throw INTERRUPTED;
      const read = await reader.read();
      if (signal?.aborted) throw INTERRUPTED;
      if (read.done) return;
      yield read.value;
    }
  } finally {
    signal?.removeEventListener("abort", onAbort);
    await reader.cancel().catch(() => {});
    reader.releaseLock();
  }
}
