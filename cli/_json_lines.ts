// Reading JSON Lines from a byte stream, for `events import`.

/**
 * Yields the text lines of a UTF-8 byte stream, without their line endings.
 *
 * @param bytes The stream.
 * @returns The lines, the last one even without a final newline.
 */
export async function* textLines(bytes: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let pending = "";
  for await (const chunk of bytes.pipeThrough(new TextDecoderStream())) {
    const parts = (pending + chunk).split("\n");
    pending = parts.pop()!;
    for (const line of parts) yield line.endsWith("\r") ? line.slice(0, -1) : line;
  }
  if (pending !== "") yield pending;
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
 * @param lines The lines.
 * @returns The values with their line numbers, in order.
 * @throws {SyntaxError} Naming the line number, at the first line that is not JSON.
 */
export async function* parseJsonLines(lines: AsyncIterable<string>): AsyncGenerator<JsonLine> {
  let number = 0;
  for await (const line of lines) {
    number++;
    if (line.trim() === "") continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (error) {
      throw new SyntaxError(
        `Invalid JSON on line ${number}: ${error instanceof Error ? error.message : error}`,
      );
    }
    yield { line: number, value };
  }
}
