// Long commands show a progress line on standard error when it is a terminal (a real
// pseudo-terminal, through util-linux `script`), and print nothing extra when piped.
import assert from "node:assert/strict";
import { openVault } from "../../vault/mod.ts";
import { progress } from "../../cli/_progress.ts";
import { recordingIo } from "./_fakes.ts";

const CLI = new URL("../../cli.ts", import.meta.url).pathname;
const ERASE = "\r\x1b[2K";

async function hasScript(): Promise<boolean> {
  try {
    return (await new Deno.Command("script", { args: ["--version"], stdout: "null" }).output())
      .success;
  } catch {
    return false;
  }
}

function quote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

/** Runs a shell command line in a pseudo-terminal; returns what the terminal showed, ⟲ for an erased line. */
async function inTerminal(command: string): Promise<{ code: number; screen: string }> {
  const output = await new Deno.Command("script", {
    args: ["-qec", command, "/dev/null"],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  // The erase-and-return sequence as one visible mark, for readable patterns.
  const screen = new TextDecoder().decode(output.stdout).replaceAll(ERASE, "⟲");
  return { code: output.code, screen };
}

/** Runs the CLI with every stream piped. */
async function piped(args: string[], stdin?: string) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, ...args],
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    await ReadableStream.from([new TextEncoder().encode(stdin)]).pipeTo(child.stdin);
  }
  const output = await child.output();
  const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return { code: output.code, stdout: decode(output.stdout), stderr: decode(output.stderr) };
}

Deno.test("progress of long commands", async (t) => {
  const dir = await Deno.makeTempDir();
  try {
    const db = `${dir}/source.kv`;
    const vault = await openVault(db);
    for (let n = 0; n < 3; n++) {
      await vault.append("s", Array.from({ length: 500 }, () => ({ kind: "a", payload: n })));
    }
    await vault.close();
    const exported = `${dir}/export.jsonl`;
    const toka = `${quote(Deno.execPath())} run -A ${quote(CLI)}`;

    // Without util-linux `script` there is no pseudo-terminal: reported as ignored, not passed.
    const noTerminal = !await hasScript();

    await t.step({
      name: "on a terminal: export, import and verify draw a line and erase it",
      ignore: noTerminal,
      fn: async () => {
        const exporting = await inTerminal(
          `${toka} --db ${quote(db)} events export > ${quote(exported)}`,
        );
        assert.equal(exporting.code, 0, exporting.screen);
        assert.match(exporting.screen, /⟲exporting \[[█░]{24}\] \d+% [\d,]+\/1,500 events/);
        assert.ok(exporting.screen.endsWith("⟲"), JSON.stringify(exporting.screen.slice(-80)));
        assert.equal((await Deno.readTextFile(exported)).split("\n").length, 1501);

        const copy = `${dir}/copy.kv`;
        const importing = await inTerminal(
          `${toka} --db ${quote(copy)} events import < ${quote(exported)}`,
        );
        assert.equal(importing.code, 0, importing.screen);
        assert.match(importing.screen, /⟲checking [\d,]+ events/);
        assert.match(importing.screen, /⟲importing \[[█░]{24}\] \d+% [\d,]+\/1,500 events/);
        assert.match(
          importing.screen,
          /⟲Imported 1500 events, skipped 0 already stored\r?\n$/,
        );

        const verifying = await inTerminal(`${toka} --db ${quote(copy)} events verify`);
        assert.equal(verifying.code, 0, verifying.screen);
        assert.match(verifying.screen, /⟲verifying \[[█░]{24}\] 66% 1,000\/1,500 events/);
      },
    });

    await t.step({
      name: "on a 40-column terminal every drawn line fits, so none is left behind",
      ignore: noTerminal,
      fn: async () => {
        // Issue 19 item 11: the line wrapped, and each redraw erased only its last row.
        const copy = `${dir}/narrow.kv`;
        const importing = await inTerminal(
          `stty cols 40; ${toka} --db ${quote(copy)} events import < ${quote(exported)}`,
        );
        assert.equal(importing.code, 0, importing.screen);
        const drawn = importing.screen.split("⟲").slice(1, -1);
        assert.ok(drawn.length >= 2, importing.screen);
        for (const line of drawn) {
          assert.ok([...line].length < 40, `${[...line].length}: ${JSON.stringify(line)}`);
          assert.ok(!line.includes("\n"), JSON.stringify(line));
        }
        assert.ok(drawn.some((line) => line.startsWith("importing")), importing.screen);
      },
    });

    await t.step("piped: nothing but the output", async () => {
      const exporting = await piped(["--db", db, "events", "export"]);
      assert.equal(exporting.code, 0);
      assert.equal(exporting.stderr, "");
      assert.equal(exporting.stdout.split("\n").length, 1501);
      const importing = await piped(
        ["--db", `${dir}/piped.kv`, "events", "import"],
        exporting.stdout,
      );
      assert.deepEqual(importing, {
        code: 0,
        stdout: "Imported 1500 events, skipped 0 already stored\n",
        stderr: "",
      });
      const verifying = await piped(["--db", `${dir}/piped.kv`, "events", "verify"]);
      assert.equal(verifying.code, 0);
      assert.equal(verifying.stderr, "");
      assert.ok(!verifying.stdout.includes("\x1b"));
    });

    await t.step("the line is redrawn at most every 100 ms, and erased at the end", () => {
      let now = 0;
      const io = { ...recordingIo(), stderrIsTty: true };
      const bar = progress(io, "working", { total: 200, now: () => now });
      bar.advance(1); // the first step is drawn at once
      now = 50;
      bar.advance(99); // too soon: not drawn
      now = 100;
      bar.advance(50);
      bar.done();
      assert.deepEqual(io.err, [
        `${ERASE}working [░░░░░░░░░░░░░░░░░░░░░░░░] 0% 1/200 events`,
        `${ERASE}working [██████████████████░░░░░░] 75% 150/200 events 1,500/s`,
        ERASE,
      ]);
      for (const columns of [80, 40, 30, 12, 1]) {
        const narrow = { ...recordingIo(), stderrIsTty: true, columns: () => columns };
        let at = 0;
        const line = progress(narrow, "importing", { total: 100_000, now: () => at });
        line.advance(1);
        at = 1000;
        line.advance(52_000);
        line.done();
        const drawn = narrow.err.slice(0, -1).map((text) => text.replace(ERASE, ""));
        assert.equal(drawn.length, 2);
        for (const text of drawn) {
          assert.ok([...text].length < Math.max(columns, 2), `${columns}: ${text}`);
        }
        if (columns === 80) {
          assert.equal(
            drawn[1],
            "importing [████████████░░░░░░░░░░░░] 52% 52,001/100,000 events 52,001/s",
          );
        }
        if (columns === 40) assert.match(drawn[1], /^importing .*52%/);
      }
      const quiet = recordingIo();
      const none = progress(quiet, "working", { total: 10 });
      none.advance(10);
      none.done();
      assert.deepEqual(quiet.err, []);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
