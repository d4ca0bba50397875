// The README's "Go back: fork the log at a position": the library example
// prints what it says, and each shell command prints the lines under it.
import assert from "node:assert/strict";
import { toka } from "../cli/_process.ts";
import { example, run, section } from "./_readme.ts";

const HEADING = "## Go back: fork the log at a position";

/** A line as the README shows it: "…" stands for anything. */
function pattern(line: string): RegExp {
  return new RegExp(`^${line.replace(/[.*+?^${}()|[\]\\]/g, "\\$&").replaceAll("…", ".*")}$`);
}

Deno.test("README: fork the log at a position", async (t) => {
  const dir = await Deno.makeTempDir();
  try {
    await t.step(
      "the example forks, re-runs the changed agent and prints both states",
      async () => {
        const result = await run(example(HEADING), dir);
        assert.equal(result.code, 0, result.err);
        assert.equal(
          result.out,
          "{ coffee: 1, tea: 1 }\n0000000000000002\n{ coffee: 2, tea: 2 }\n",
        );
      },
    );

    await t.step("each shell command prints the lines under it", async () => {
      const steps: { args: string[]; expected: string[] }[] = [];
      for (const line of example(HEADING, "sh").split("\n")) {
        if (line.startsWith("toka ")) {
          steps.push({ args: line.split(/\s+/).slice(1), expected: [] });
        } else if (line.startsWith("# ")) steps.at(-1)!.expected.push(line.slice(2));
      }
      assert.deepEqual(steps.map((s) => s.args[s.args.indexOf("events") + 1]), [
        "fork",
        "verify",
        "diff",
      ]);
      for (const { args, expected } of steps) {
        const { code, out, err } = await toka(args, { cwd: dir });
        assert.equal(code, args.includes("diff") ? 1 : 0, err);
        const lines = out.trimEnd().split("\n");
        assert.equal(lines.length, expected.length, out);
        lines.forEach((line, i) => assert.match(line, pattern(expected[i])));
      }
      assert.match(section(HEADING), /about 8×\s+the\s+speed\s+of\s+`toka\s+events\s+import`/);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
