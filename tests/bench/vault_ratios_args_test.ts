import assert from "node:assert/strict";
import { benchOptions } from "../../bench/_args.ts";

Deno.test("bench/vault_ratios.ts options", async (t) => {
  await t.step("each flag is read from its own value; defaults otherwise", () => {
    assert.deepEqual(benchOptions([]), { replay: 200_000, rounds: 5 });
    // Used to read "--replay" as the rounds and print NaN.
    assert.deepEqual(benchOptions(["--replay", "1000"]), { replay: 1000, rounds: 5 });
    assert.deepEqual(benchOptions(["--rounds", "3"]), { replay: 200_000, rounds: 3 });
    assert.deepEqual(benchOptions(["--rounds", "2", "--replay", "10"]), { replay: 10, rounds: 2 });
  });

  await t.step("a bad value or unknown flag is a one-line error", () => {
    for (const args of [["--rounds", "0"], ["--rounds", "x"], ["--replay", "-1"], ["--bogus"]]) {
      assert.throws(() => benchOptions(args), TypeError, args.join(" "));
    }
  });
});
