// A step or a journaled tool call survives SIGKILL: the process that took over
// serves the recorded result, and the effect happened once.
import assert from "node:assert/strict";
import { join } from "node:path";
import { killWhen, spawnChild } from "../_helpers.ts";

const CHILD = new URL("./_step_crash_child.ts", import.meta.url).pathname;

const child = (mode: string, db: string, effects: string, using: string) =>
  spawnChild(CHILD, [mode, db, effects, using]);

for (const using of ["step", "tool"]) {
  Deno.test(`after SIGKILL past a ${using}, the next process serves its result`, async () => {
    const dir = await Deno.makeTempDir();
    const db = join(dir, "toka.kv");
    const effects = join(dir, "effects.txt");
    try {
      const first = child("first", db, effects, using);
      await killWhen(first, (text) => text.includes("stepped"));
      assert.equal((await first.status).signal, "SIGKILL");

      const output = await child("resume", db, effects, using).output();
      assert.equal(output.code, 0);
      const result = JSON.parse(new TextDecoder().decode(output.stdout));
      assert.deepEqual(result, { charged: "first" }, "the recorded result");
      assert.equal(
        await Deno.readTextFile(effects),
        "charged by first\n",
        "the effect happened once",
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}
