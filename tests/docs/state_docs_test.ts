// The README's "An agent's state, at any point": the library example prints
// what it says, and the shell commands show that state on a vault file.
import assert from "node:assert/strict";
import { join } from "node:path";
import { main } from "../../cli.ts";
import { recordingIo } from "../cli/_fakes.ts";
import { example, run, section } from "./_readme.ts";

const HEADING = "## An agent's state, at any point";

Deno.test("README: an agent's state, at any point", async (t) => {
  const dir = await Deno.makeTempDir();
  try {
    const code = example(HEADING);

    await t.step("the example prints the state at a past position and now", async () => {
      const result = await run(code, dir);
      assert.equal(result.code, 0, result.err);
      assert.equal(result.out, "{ tea: 1 }\n{ coffee: 1, tea: 2 }\n");
    });

    await t.step("the shell commands read it from a vault", async () => {
      const db = join(dir, "toka.kv");
      const onVault = code
        .replace(
          'import { defineAgent, Runtime } from "@toka/runtime/runtime";',
          'import { defineAgent, Runtime } from "@toka/runtime/runtime";\n' +
            'import { openVault } from "@toka/runtime/vault";',
        )
        .replace(
          "await Runtime.create();",
          `await Runtime.create({ vault: await openVault(${JSON.stringify(db)}) });`,
        );
      assert.notEqual(onVault, code);
      const made = await run(onVault, dir);
      assert.equal(made.code, 0, made.err);
      const commands = example(HEADING, "sh").split("\n")
        .filter((line) => line.startsWith("toka "))
        .map((line) => line.replace(/#.*/, "").trim().split(/\s+/).slice(1));
      assert.deepEqual(commands, [["agent", "state", "tally", "--at", "1"], [
        "agent",
        "history",
        "tally",
      ]]);
      const outputs: string[][] = [];
      for (const args of commands) {
        const io = recordingIo();
        assert.equal(await main([...args, "--db", db], io), 0, io.err.join(""));
        outputs.push(io.outLines());
      }
      assert.deepEqual(outputs[0], ["{", '  "tea": 1', "}"]);
      assert.deepEqual(outputs[1], [
        "AFTER             POSITION          STATE",
        '0000000000000001  0000000000000004  {"tea":1}',
        '0000000000000002  0000000000000005  {"coffee":1,"tea":1}',
        '0000000000000003  0000000000000006  {"coffee":1,"tea":2}',
      ]);
      assert.match(section(HEADING), /about 2× one raw KV `get`/);
      // The comments show what the commands print: the first and last state, keys sorted.
      const sh = example(HEADING, "sh");
      assert.ok(sh.includes('{"tea":1} … {"coffee":1,"tea":2}'), sh);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
