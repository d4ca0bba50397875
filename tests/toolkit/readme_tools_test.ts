// The README's fs and http tools example, run as a user runs it and checked for what it prints.
import assert from "node:assert/strict";
import { example, run } from "../docs/_readme.ts";

/** Runs the example in a temporary folder; returns its output. */
async function runIn(code: string): Promise<{ code: number; out: string; err: string }> {
  const dir = await Deno.makeTempDir();
  try {
    return await run(code, dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("README: the fs and http tools example prints what its comments say", async () => {
  const code = example("## Files and the web: fs and http tools");
  const result = await runIn(code);
  assert.equal(result.code, 0, result.err);
  // Each printed value is the comment below or beside its console.log.
  const expected = [...code.matchAll(/console\.log\(.*\);(?: \/\/ (.*))?\n(?:\/\/ (.*)\n)?/g)]
    .map((m) => m[1] ?? m[2]);
  assert.ok(expected.length >= 3 && expected.every((e) => e !== undefined), "comments say it");
  // console.log breaks long objects over lines: compare with whitespace collapsed.
  const squash = (text: string) => text.replace(/\s+/g, " ").trim();
  assert.equal(squash(result.out), squash(expected.join("\n")));
});

Deno.test("README: the model.chat example prints what its comments say", async () => {
  const code = example("## Models: model.chat");
  const result = await runIn(code);
  assert.equal(result.code, 0, result.err);
  const expected = [...code.matchAll(/console\.log\(.*\);(?: \/\/ (.*))?\n(?:\/\/ (.*)\n)?/g)]
    .map((m) => m[1] ?? m[2]);
  assert.equal(expected.length, 2);
  assert.equal(result.out, `${expected.join("\n")}\n`);
});
