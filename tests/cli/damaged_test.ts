// Damaged, empty and read-only vault files, through the real program in a subprocess: a
// damaged KV file used to make Deno panic with a backtrace (a Rust panic in a background
// thread of Deno KV, which no JavaScript can catch).
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { openVault } from "../../vault/mod.ts";

const CLI = new URL("../../cli.ts", import.meta.url).pathname;
const PAGE = 4096;

async function run(
  command: string[],
  options: { cwd?: string } = {},
): Promise<{ code: number; out: string; err: string }> {
  const [program, ...args] = command;
  const { code, stdout, stderr } = await new Deno.Command(program, {
    args,
    cwd: options.cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const decoder = new TextDecoder();
  return { code, out: decoder.decode(stdout), err: decoder.decode(stderr) };
}

function toka(args: string[]) {
  return run([Deno.execPath(), "run", "-A", CLI, ...args]);
}

async function digest(path: string): Promise<string> {
  const bytes = await Deno.readFile(path);
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)).toHex();
}

/** Zeroes the first page of a table or index, as a bad disk block would. */
async function zeroPageOf(path: string, name: string): Promise<void> {
  const db = new DatabaseSync(path, { readOnly: true });
  const row = db.prepare("SELECT rootpage FROM sqlite_master WHERE name = ?").get(name) as {
    rootpage: number;
  };
  db.close();
  using file = await Deno.open(path, { write: true });
  await file.seek((row.rootpage - 1) * PAGE, Deno.SeekMode.Start);
  await file.write(new Uint8Array(PAGE));
}

Deno.test("damaged, empty and read-only vault files", async (t) => {
  const dir = await Deno.makeTempDir();
  const good = `${dir}/good.kv`;
  try {
    const vault = await openVault(good);
    for (let i = 0; i < 20; i++) {
      await vault.append(`s/${i % 3}`, [{ kind: "task.created", payload: { i } }]);
    }
    await vault.close();

    await t.step("reading commands leave a healthy vault byte for byte as it was", async () => {
      const before = await digest(good);
      // auth verify fails (no pool, so no token is valid), and writes nothing either.
      const reads: [string[], number][] = [
        [["events", "list"], 0],
        [["events", "stats"], 0],
        [["events", "verify"], 0],
        [["agent", "list"], 0],
        [["auth", "status"], 0],
        [["auth", "verify", "a.b.c"], 1],
      ];
      for (const [command, expected] of reads) {
        const { code, err } = await toka(["--db", good, ...command]);
        assert.equal(code, expected, `${command.join(" ")}: ${err}`);
        assert.equal(await digest(good), before, command.join(" "));
      }
      const entries = (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name);
      assert.deepEqual(entries, ["good.kv"]);
    });

    await t.step("a zeroed page: one line saying the file is damaged, file unchanged", async () => {
      // queue_running's page made Deno KV's queue thread panic; kv's page is an SQLite error.
      for (const table of ["queue_running", "kv"]) {
        const damaged = `${dir}/damaged-${table}.kv`;
        await Deno.copyFile(good, damaged);
        await zeroPageOf(damaged, table);
        const before = await digest(damaged);
        for (
          const command of [["events", "list"], ["events", "stats"], ["events", "verify"], ["demo"]]
        ) {
          const { code, out, err } = await toka(["--db", damaged, ...command]);
          const what = `${table}: ${command.join(" ")}`;
          assert.equal(code, 1, `${what}: ${err}`);
          assert.equal(out, "", what);
          assert.match(
            err,
            new RegExp(
              `^error: The vault file "${damaged}" is damaged \\([^)\\n]+\\): restore it from a ` +
                `backup \\(a copy of the file or an "events export"\\), then run "toka events verify"\\n$`,
            ),
            what,
          );
          assert.equal(await digest(damaged), before, `${what}: the file was modified`);
        }
      }
    });

    await t.step("a 0-byte file or a text file is not a vault, and is left as it was", async () => {
      const empty = `${dir}/empty.kv`;
      await Deno.writeFile(empty, new Uint8Array());
      const text = `${dir}/notes.txt`;
      await Deno.writeTextFile(text, "not a database\n".repeat(300));
      const textBefore = await digest(text);
      for (const command of [["events", "stats"], ["events", "list"], ["auth", "status"]]) {
        const onEmpty = await toka(["--db", empty, ...command]);
        assert.equal(onEmpty.code, 1);
        assert.equal(onEmpty.err, `error: "${empty}" is not a vault: the file is empty\n`);
        assert.equal((await Deno.stat(empty)).size, 0);
        const onText = await toka(["--db", text, ...command]);
        assert.equal(onText.code, 1);
        assert.equal(onText.err, `error: "${text}" is not a vault: file is not a database\n`);
        assert.equal(await digest(text), textBefore);
      }
      const entries = (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name);
      assert.ok(!entries.some((name) => /^(empty\.kv|notes\.txt)-/.test(name)), `${entries}`);
    });

    await t.step({
      name: "a read-only vault (0444 file in a 0555 folder, as a non-root user) can be inspected",
      ignore: Deno.build.os === "windows",
      fn: async () => {
        // Tests run as root, who may write anywhere: run the program as "nobody" instead,
        // from a bundle, since nobody cannot read root's Deno cache.
        const shared = await Deno.makeTempDir({ dir: "/tmp" });
        try {
          await Deno.chmod(shared, 0o755);
          const bundle = `${shared}/toka.js`;
          const built = await run([
            Deno.execPath(),
            "bundle",
            "--platform",
            "deno",
            CLI,
            "-o",
            bundle,
          ]);
          assert.equal(built.code, 0, built.err);
          await Deno.chmod(bundle, 0o644);
          const folder = `${shared}/ro`;
          await Deno.mkdir(folder);
          const readOnly = `${folder}/v.kv`;
          await Deno.copyFile(good, readOnly);
          await Deno.chmod(readOnly, 0o444);
          await Deno.chmod(folder, 0o555);
          const asUser = Deno.uid() === 0
            ? [
              "setpriv",
              "--reuid=nobody",
              "--regid=nogroup",
              "--clear-groups",
              "env",
              `HOME=${shared}`,
            ]
            : ["env"];
          const cli = [
            ...asUser,
            `DENO_DIR=${shared}/deno`,
            Deno.execPath(),
            "run",
            "-A",
            "--unstable-kv",
            bundle,
            "--db",
            readOnly,
          ];
          const before = await digest(readOnly);
          const stats = await run([...cli, "--json", "events", "stats"], { cwd: shared });
          assert.equal(stats.code, 0, stats.err);
          assert.equal(JSON.parse(stats.out).events, 20);
          const verified = await run([...cli, "events", "verify"], { cwd: shared });
          assert.equal(verified.code, 0, verified.err);
          assert.match(verified.out, /^OK: 20 events verified/);
          const listed = await run([...cli, "events", "list", "--limit", "2"], { cwd: shared });
          assert.equal(listed.code, 0, listed.err);
          assert.equal(listed.out.trimEnd().split("\n").length, 2);
          // A snapshot sees no later appends: following it would wait forever.
          const tail = await run([...cli, "events", "tail", "--follow"], { cwd: shared });
          assert.equal(tail.code, 1);
          assert.equal(tail.out, "");
          // Readable by others (0444), so the CLI warns first (issue 17 item 2).
          assert.match(
            tail.err,
            /^warning: The vault at .* is open to other accounts \(mode 0444\)/,
          );
          assert.equal(
            tail.err.replace(/^warning: .*\n/, ""),
            `error: Cannot follow "${readOnly}": this process may not write it, so it is read ` +
              `from a snapshot that shows no later events; run without --follow\n`,
          );
          // toka ui serves the snapshot and says it cannot be live (issue 22); one SIGINT ends it.
          const ui = await run(["timeout", "--preserve-status", "-s", "INT", "3", ...cli, "ui"], {
            cwd: shared,
          });
          assert.equal(ui.code, 0, ui.err);
          assert.match(ui.out, /^Serving .* \(read-only\) at\n {2}http:\/\/127\.0\.0\.1:\d+\/t\//);
          assert.match(
            ui.err,
            /\nwarning: This process may not write ".*", so it shows a snapshot: no live updates\n/,
          );
          // A writing command is refused in one line.
          const rotated = await run([...cli, "auth", "rotate-secret"], { cwd: shared });
          assert.equal(rotated.code, 1);
          assert.match(
            rotated.err,
            /^error: Cannot open the vault at .*: attempt to write a readonly database\n$/,
          );
          assert.equal(await digest(readOnly), before);
          assert.deepEqual((await Array.fromAsync(Deno.readDir(folder))).map((e) => e.name), [
            "v.kv",
          ]);
        } finally {
          await Deno.chmod(`${shared}/ro`, 0o755).catch(() => {});
          await Deno.remove(shared, { recursive: true });
        }
      },
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
