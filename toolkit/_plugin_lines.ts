// Splits a plugin's output into lines as bytes arrive, in time linear in its size: each chunk is
// scanned once for "\n" (a byte that never occurs inside a multi-byte UTF-8 character, so a line
// is decoded whole), and the pieces of an unfinished line are kept, not joined, until it ends.

/** One line is longer than the cap; thrown as soon as the bytes past it arrive. */
export class LineTooLongError extends RangeError {
  constructor(maxBytes: number) {
    super(`sent a line longer than ${formatBytes(maxBytes)}`);
    this.name = "LineTooLongError";
  }
}

/** Feeds chunks of a byte stream; hands out each complete line, decoded, without its "\n". */
export class LineSplitter {
  #max: number;
  #parts: Uint8Array[] = [];
  #size = 0;
  #decoder = new TextDecoder();

  constructor(maxBytes: number) {
    this.#max = maxBytes;
  }

  /**
   * Hands each complete line of `chunk` (with the unfinished one before it) to `onLine`, which
   * returns false to stop. Throws a {@linkcode LineTooLongError} when a line passes the cap, the
   * unfinished one included; the lines before it in the chunk are handed out first.
   */
  push(chunk: Uint8Array, onLine: (line: string) => boolean | void): void {
    let start = 0;
    for (;;) {
      const end = chunk.indexOf(0x0a, start);
      const piece = end < 0 ? chunk.length - start : end - start;
      if (this.#size + piece > this.#max) {
        this.#parts = [];
        this.#size = 0;
        throw new LineTooLongError(this.#max);
      }
      if (end < 0) {
        if (piece > 0) {
          this.#parts.push(chunk.subarray(start));
          this.#size += piece;
        }
        return;
      }
      const line = this.#line(chunk.subarray(start, end));
      start = end + 1;
      if (onLine(line) === false) return;
    }
  }

  // The unfinished line's pieces and this last one, as text.
  #line(last: Uint8Array): string {
    if (this.#parts.length === 0) return this.#decoder.decode(last);
    const bytes = new Uint8Array(this.#size + last.length);
    let at = 0;
    for (const part of this.#parts) {
      bytes.set(part, at);
      at += part.length;
    }
    bytes.set(last, at);
    this.#parts = [];
    this.#size = 0;
    return this.#decoder.decode(bytes);
  }
}

function formatBytes(n: number): string {
  return n % (1024 * 1024) === 0 ? `${n / (1024 * 1024)} MiB` : `${n} bytes`;
}
