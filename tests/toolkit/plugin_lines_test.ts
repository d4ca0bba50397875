// The stdio plugin's line splitter: lines across any chunking, the byte cap as bytes arrive.
import assert from "node:assert/strict";
import { LineSplitter, LineTooLongError } from "../../toolkit/_plugin_lines.ts";

const encoder = new TextEncoder();

// Feeds `bytes` in chunks of the given sizes (cycled) and collects the lines.
function split(bytes: Uint8Array, sizes: number[], max = 1 << 20): string[] {
  const splitter = new LineSplitter(max);
  const lines: string[] = [];
  for (let at = 0, i = 0; at < bytes.length; i++) {
    const size = sizes[i % sizes.length];
    splitter.push(bytes.subarray(at, at + size), (line) => void lines.push(line));
    at += size;
  }
  return lines;
}

Deno.test("LineSplitter", async (t) => {
  const expected = ["", "plain", "é and 😀 split anywhere", "x".repeat(5000), "", '{"a":1}\r'];
  const text = expected.join("\n") + "\nunfinished";
  const bytes = encoder.encode(text);

  for (const sizes of [[1], [2], [3], [7], [64], [1, 5, 2, 4099], [bytes.length]]) {
    await t.step(`the same lines in chunks of ${sizes.join(", ")} bytes`, () => {
      assert.deepEqual(split(bytes, sizes), expected);
    });
  }

  await t.step("a 4 MiB line in 65,536 chunks of 64 bytes is one line", () => {
    // Rescanning or rebuilding the pending text per chunk would take 2^16 × 2 MiB steps here.
    const line = encoder.encode("é".repeat(2 * 1024 * 1024) + "\n");
    const lines = split(line, [64], 8 << 20);
    assert.equal(lines.length, 1);
    assert.equal(lines[0].length, 2 * 1024 * 1024);
  });

  await t.step("many lines in one chunk", () => {
    const many = Array.from({ length: 100_000 }, (_, i) => `line ${i}`);
    assert.deepEqual(split(encoder.encode(many.join("\n") + "\n"), [1 << 30]), many);
  });

  await t.step("the cap counts bytes, as they arrive, before any newline", () => {
    const splitter = new LineSplitter(4);
    const lines: string[] = [];
    splitter.push(encoder.encode("abcd\nabc"), (line) => void lines.push(line)); // 4 bytes: fine
    assert.throws(() => splitter.push(encoder.encode("é"), () => {}), (error: Error) => {
      assert.ok(error instanceof LineTooLongError);
      assert.ok(error instanceof RangeError);
      assert.equal(error.message, "sent a line longer than 4 bytes");
      return true;
    });
    assert.deepEqual(lines, ["abcd"]);
  });

  await t.step("lines before an oversized one in the same chunk are handed out first", () => {
    const lines: string[] = [];
    assert.throws(
      () => new LineSplitter(3).push(encoder.encode("ab\nabcd\nx\n"), (l) => void lines.push(l)),
      LineTooLongError,
    );
    assert.deepEqual(lines, ["ab"]);
  });

  await t.step("the cap is named in MiB when it is whole MiB", () => {
    assert.equal(new LineTooLongError(16 * 1024 * 1024).message, "sent a line longer than 16 MiB");
  });

  await t.step("onLine returning false stops the chunk", () => {
    const lines: string[] = [];
    new LineSplitter(100).push(encoder.encode("a\nb\nc\n"), (line) => {
      lines.push(line);
      return line !== "b";
    });
    assert.deepEqual(lines, ["a", "b"]);
  });
});
