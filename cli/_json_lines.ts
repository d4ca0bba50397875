// Reading JSON Lines from a byte stream, for `events import`: in bounded memory
// whatever the size of the input, a chunk's lines at a time.

const NEWLINE = 0x0a;
const CARRIAGE_RETURN = 0x0d;

/** One line of a byte stream, with its 1-based number. */
export interface ByteLine {
  /** The line number. */
  line: number;
  /** The line's bytes, without its line ending (`\n` or `\r\n`). */
  bytes: Uint8Array;
}

/**
 * Yields the lines of a byte stream without their line endings, the lines
 * each chunk completes at a time, holding at most one line (and one chunk)
 * in memory. A line longer than `maxBytes` is refused as soon as that many
 * bytes of it are read, without reading the rest.
 *
 * @param bytes The stream.
 * @param maxBytes The longest line accepted, in bytes.
 * @returns The lines, the last one even without a final newline.
 * @throws {RangeError} Naming the line, when a line is longer than `maxBytes`.
 */
export async function* byteLines(
  bytes: AsyncIterable<Uint8Array>,
  maxBytes: number,
): AsyncGenerator<ByteLine[]> {
  let line = 0;
  let parts: Uint8Array[] = [];
  let pending = 0;
  const tooLong = () =>
    new RangeError(`Line ${line + 1} is longer than ${maxBytes.toLocaleString("en-US")} bytes`);
  const take = (last: Uint8Array): ByteLine => {
    let joined = last;
    if (parts.length > 0) {
      joined = new Uint8Array(pending + last.length);
      let at = 0;
      for (const part of parts) {
        joined.set(part, at);
        at += part.length;
      }
      joined.set(last, at);
    }
    parts = [];
    pending = 0;
    const end = joined.length;
    if (end > maxBytes && !(end === maxBytes + 1 && joined[end - 1] === CARRIAGE_RETURN)) {
      throw tooLong();
    }
    line++;
    return {
      line,
      bytes: end > 0 && joined[end - 1] === CARRIAGE_RETURN ? joined.subarray(0, end - 1) : joined,
    };
  };
  for await (const chunk of bytes) {
    const lines: ByteLine[] = [];
    let start = 0;
    for (;;) {
      const end = chunk.indexOf(NEWLINE, start);
      if (end === -1) break;
      if (pending + end - start > maxBytes + 1) throw tooLong();
      lines.push(take(chunk.subarray(start, end)));
      start = end + 1;
    }
    if (start < chunk.length) {
      // Copied: the stream may reuse its buffer.
      parts.push(chunk.slice(start));
      pending += chunk.length - start;
      if (pending > maxBytes + 1) throw tooLong();
    }
    if (lines.length > 0) yield lines;
  }
  if (pending > 0) yield [take(new Uint8Array(0))];
}

/** A value parsed from JSON Lines, with the 1-based number of its line. */
export interface JsonLine {
  /** The line number. */
  line: number;
  /** The parsed value. */
  value: unknown;
}

/**
 * Parses one JSON value per non-blank line.
 *
 * @param lines Lines, as {@linkcode byteLines} yields them.
 * @returns The values with their line numbers, in order, as many at a time as `lines` gives.
 * @throws {SyntaxError} Naming the line number, at the first line that is not JSON or UTF-8.
 */
export async function* parseJsonLines(
  lines: AsyncIterable<ByteLine[]>,
): AsyncGenerator<JsonLine[]> {
  const decoder = new TextDecoder("utf-8", { fatal: true });
  for await (const some of lines) {
    const values: JsonLine[] = [];
    for (const { line, bytes } of some) {
      let value: unknown;
      try {
        const text = decoder.decode(bytes);
        if (text.trim() === "") continue;
        value = JSON.parse(text);
      } catch (error) {
        throw new SyntaxError(
          `Invalid JSON on line ${line}: ${error instanceof Error ? error.message : error}`,
        );
      }
      values.push({ line, value });
    }
    if (values.length > 0) yield values;
  }
}
