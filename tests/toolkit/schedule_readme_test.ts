// The README's schedule example, run as a user runs it and checked for what it prints.
import assert from "node:assert/strict";
import { example, run } from "../docs/_readme.ts";

Deno.test("README: the schedule example prints what its comments say", async () => {
  const code = example("## Timers: the schedule tools");
  const dir = await Deno.makeTempDir();
  try {
    const result = await run(code, dir);
    assert.equal(result.code, 0, result.err);
    const expected = [...code.matchAll(/console\.log\(.*\);(?: \/\/ (.*))?\n/g)].map((m) => m[1]);
    assert.equal(expected.length, 2);
    // console.log breaks long objects over lines: compare with whitespace collapsed.
    const squash = (text: string) => text.replace(/\s+/g, " ").trim();
    assert.equal(squash(result.out), squash(expected.join("\n")));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
