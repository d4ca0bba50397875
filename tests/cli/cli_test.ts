import assert from "node:assert/strict";
import { getLogger } from "@logtape/logtape";
import { DEFAULT_DB, main } from "../../cli.ts";
import { MemoryEventStore } from "../../vault/mod.ts";
import type { EventStore } from "../../runtime/log/event_store.ts";
import { hasNoStackTrace, opener, recordingIo, unclosable } from "./_fakes.ts";
import denoJson from "../../deno.json" with { type: "json" };

const memory = () => Promise.resolve<EventStore>(new MemoryEventStore());

Deno.test("toka skeleton", async (t) => {
  await t.step("--version prints the version from deno.json and exits 0", async () => {
    const io = recordingIo();
    assert.equal(await main(["--version"], io, { openStore: memory }), 0);
    assert.deepEqual(io.outLines(), [`toka ${denoJson.version}`]);
    assert.deepEqual(io.err, []);
  });

  await t.step("--help on every command prints help on stdout and exits 0", async () => {
    const commands = [
      [],
      ["events"],
      ...["list", "tail", "show", "stats", "verify", "export", "import"]
        .map((name) => ["events", name]),
    ];
    for (const command of commands) {
      const io = recordingIo();
      assert.equal(await main([...command, "--help"], io, { openStore: memory }), 0);
      assert.match(io.out.join(""), new RegExp(`^Usage: toka ${command.join(" ")}`.trimEnd()));
      assert.deepEqual(io.err, [], command.join(" "));
    }
  });

  await t.step("a bare toka and toka help [command] print help, exit 0", async () => {
    const help = async (args: string[]) => {
      const io = recordingIo();
      assert.equal(await main(args, io, { openStore: memory }), 0, args.join(" "));
      assert.deepEqual(io.err, [], args.join(" "));
      return io.out.join("");
    };
    const top = await help(["--help"]);
    assert.equal(await help([]), top);
    assert.equal(await help(["help"]), top);
    for (const name of ["init", "run", "emit", "help \\[command\\.\\.\\.\\]"]) {
      assert.match(top, new RegExp(`^ {2}${name} +\\S`, "m"));
    }
    assert.equal(await help(["help", "events"]), await help(["events", "--help"]));
    assert.equal(await help(["help", "emit"]), await help(["emit", "--help"]));
    const version = await help(["--version"]);
    assert.equal(version, `toka ${denoJson.version}\n`);
  });

  await t.step("help of an unknown command is one line with a suggestion, exit 2", async () => {
    // Issue 19 item 7: `toka help nope` printed 47 lines of help.
    const cases: [string[], string][] = [
      [["help", "nope"], `Unknown command "nope": run "toka --help" to list them`],
      [
        ["help", "evnts"],
        `Unknown command "evnts" (did you mean "events"?): run "toka --help" to list them`,
      ],
      [
        ["evnts", "list"],
        `Unknown command "evnts" (did you mean "events"?): run "toka --help" to list them`,
      ],
      [
        ["events", "lst"],
        `Unknown command "lst" (did you mean "list"?): run "toka events --help" to list them`,
      ],
      [
        ["help", "events", "lst"],
        `Unknown command "lst" (did you mean "list"?): run "toka events --help" to list them`,
      ],
      [
        ["auth", "revok"],
        `Unknown command "revok" (did you mean "revoke"?): run "toka auth --help" to list them`,
      ],
      [
        ["help", "tools"],
        `Unknown command "tools" (did you mean "tool"?): run "toka --help" to list them`,
      ],
    ];
    for (const [args, message] of cases) {
      const io = recordingIo();
      assert.equal(await main(args, io, { openStore: memory }), 2, args.join(" "));
      assert.deepEqual(io.out, [], args.join(" "));
      assert.deepEqual(io.errLines(), [`error: ${message}`], args.join(" "));
    }
    const io = recordingIo();
    assert.equal(await main(["help", "events", "list"], io, { openStore: memory }), 0);
    assert.match(io.out.join(""), /^Usage: toka events list /);
  });

  await t.step("usage errors exit 2 with one line on stderr", async () => {
    const cases: [string[], RegExp][] = [
      [["bogus"], /^error: Unknown command "bogus"/],
      [["events"], /^error: Missing command: run "toka events --help"/],
      [["events", "lst"], /^error: Unknown command "lst"/],
      [["events", "list", "--bogus"], /^error: unknown option '--bogus'/],
      [["--bogus", "events", "list"], /^error: unknown option '--bogus'/],
      [["events", "list", "--limit", "abc"], /^error: option '--limit <n>' argument 'abc'/],
      [["events", "list", "--limit", "-1"], /^error: option '--limit <n>' argument '-1'/],
      [
        ["events", "list", "--kind", "bad kind"],
        /^error: option '--kind <pattern>' argument 'bad kind'/,
      ],
      [["events", "list", "--from", "x1"], /^error: option '--from <position>' argument 'x1'/],
      [["events", "tail", "-n", "1.5"], /^error: option '-n, --lines <n>' argument '1.5'/],
      [["events", "show"], /^error: missing required argument 'id'/],
      [["events", "show", "a", "b"], /^error: too many arguments/],
      [["events", "list", "--db"], /^error: option '--db <location>' argument missing/],
      [["--log-level", "loud", "events", "stats"], /^error: option '--log-level <level>'/],
    ];
    for (const [args, expected] of cases) {
      const io = recordingIo();
      let opened = false;
      const code = await main(args, io, { openStore: () => (opened = true, memory()) });
      assert.equal(code, 2, args.join(" "));
      assert.deepEqual(io.out, [], args.join(" "));
      assert.equal(io.errLines().length, 1, `${args.join(" ")}: ${io.err.join("")}`);
      assert.match(io.errLines()[0], expected);
      assert.equal(opened, false, "a usage error opens no store");
    }
  });

  await t.step("--db wins over TOKA_DB, which wins over the default", async () => {
    const seen: string[] = [];
    const openStore = (location: string) => (seen.push(location), memory());
    const env = { TOKA_DB: "/from/env.kv" };
    await main(["events", "stats"], recordingIo(), { openStore });
    await main(["events", "stats"], recordingIo({ env }), { openStore });
    await main(["--db", "/a.kv", "events", "stats"], recordingIo({ env }), { openStore });
    await main(["events", "stats", "--db", ":memory:"], recordingIo({ env }), { openStore });
    assert.deepEqual(seen, [DEFAULT_DB, "/from/env.kv", "/a.kv", ":memory:"]);
  });

  await t.step("a failure is one line on stderr and exit 1, never a stack trace", async () => {
    const failures: unknown[] = [
      new Error("Cannot open the database\n    at somewhere (file.ts:1:1)"),
      new TypeError(""),
      "a thrown string",
    ];
    for (const thrown of failures) {
      const io = recordingIo();
      assert.equal(
        await main(["events", "list"], io, { openStore: () => Promise.reject(thrown) }),
        1,
      );
      assert.equal(io.errLines().length, 1, io.err.join(""));
      assert.match(io.errLines()[0], /^error: \S/);
      assert.ok(hasNoStackTrace(io), io.err.join(""));
    }
  });

  await t.step("a broken stdout pipe ends the command quietly", async () => {
    const store = new MemoryEventStore();
    await store.append("s", [{ kind: "a" }, { kind: "b" }]);
    const io = recordingIo();
    io.stdout = () => {
      throw new Deno.errors.BrokenPipe("Broken pipe (os error 32)");
    };
    assert.equal(await main(["events", "export"], io, { openStore: opener(store) }), 0);
    assert.deepEqual(io.err, []);
  });

  await t.step("--log-level sends Toka's logs to stderr, silent without it", async () => {
    const logging = (store: EventStore) => () => {
      getLogger(["toka", "test"]).info("opening {where}", { where: "memory" });
      return Promise.resolve(unclosable(store));
    };
    const store = new MemoryEventStore();
    const quiet = recordingIo();
    assert.equal(await main(["events", "stats"], quiet, { openStore: logging(store) }), 0);
    assert.deepEqual(quiet.err, []);
    const loud = recordingIo();
    const args = ["--log-level", "info", "events", "stats"];
    assert.equal(await main(args, loud, { openStore: logging(store) }), 0);
    assert.match(loud.err.join(""), /INF.*toka·test.*opening "memory"/);
    const warningOnly = recordingIo();
    const warnArgs = ["--log-level", "warning", "events", "stats"];
    assert.equal(await main(warnArgs, warningOnly, { openStore: logging(store) }), 0);
    assert.deepEqual(warningOnly.err, []);
    // The configuration is undone after each run.
    const after = recordingIo();
    await main(["events", "stats"], after, { openStore: logging(store) });
    assert.deepEqual(after.err, []);
    await store.close();
  });
});
