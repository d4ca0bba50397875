// Refused input changes nothing, and one rule for exit codes: every bad argument value is 2,
// every refusal or failure 1; with --json, errors are JSON on stderr. In-process on KV files.
import assert from "node:assert/strict";
import { openVault } from "../../vault/mod.ts";
import { exists, runToka as toka } from "./_fakes.ts";

/** Every key and versionstamp of a KV file, to show that a command wrote nothing. */
async function kvState(path: string): Promise<string[]> {
  using kv = await Deno.openKv(path);
  const state: string[] = [];
  for await (const entry of kv.list({ prefix: [] })) {
    state.push(`${JSON.stringify(entry.key)}@${entry.versionstamp}`);
  }
  return state;
}

/** Deletes the stream index, as a process killed before it indexed leaves it: one to catch up on. */
async function lagIndex(path: string): Promise<void> {
  using kv = await Deno.openKv(path);
  for await (const entry of kv.list({ prefix: ["vault", "si"] })) await kv.delete(entry.key);
  await kv.delete(["vault", "ix"]);
}

/** The leaf commands, read from the help of the program and of each group. */
async function leafCommands(group: string[] = []): Promise<string[]> {
  const help = await toka([...group, "--help"]);
  const text = help.io.out.join("");
  const section = (text.split(/^Commands:$/m)[1] ?? "").split("\n\n")[0];
  const names = [...section.matchAll(/^ {2}(\S+)/gm)].map((m) => m[1])
    .filter((name) => name !== "help");
  if (names.length === 0) return [group.join(" ")];
  const leaves: string[] = [];
  for (const name of names) leaves.push(...await leafCommands([...group, name]));
  return leaves;
}

Deno.test("refused input changes nothing", async (t) => {
  const dir = await Deno.makeTempDir();
  const db = `${dir}/h.kv`;
  try {
    await t.step("import of garbage creates no vault", async () => {
      const { code, io } = await toka(["--db", db, "events", "import"], { stdin: "garbage\n" });
      assert.equal(code, 1);
      assert.match(io.errLines()[0], /^error: Invalid JSON on line 1: /);
      assert.equal(await exists(db), false);
    });

    await t.step("import of a bad line N stores nothing, new vault or not", async () => {
      const source = await openVault(":memory:");
      await source.append("s", [{ kind: "a" }, { kind: "b" }]);
      const lines = (await Array.fromAsync(source.read())).map((e) => JSON.stringify(e));
      await source.close();
      const stdin = `${lines[0]}\n${lines[1]}\n{"id": oops\n`;
      const fresh = await toka(["--db", db, "events", "import"], { stdin });
      assert.equal(fresh.code, 1);
      assert.match(
        fresh.io.errLines()[0],
        /^error: Invalid JSON on line 3: .*nothing was imported/,
      );
      assert.equal(await exists(db), false);

      const vault = await openVault(db);
      await vault.append("other", [{ kind: "x" }]);
      await vault.close();
      const before = await kvState(db);
      const notRecord = await toka(["--db", db, "events", "import"], {
        stdin: `${lines[0]}\n42\n`,
      });
      assert.equal(notRecord.code, 1);
      assert.deepEqual(notRecord.io.errLines(), [
        "error: Invalid record on line 2: not an object; nothing was imported",
      ]);
      assert.deepEqual(await kvState(db), before);

      // Refused after the vault is open: a record whose digest does not match, on a lagging index.
      await lagIndex(db);
      const lagging = await kvState(db);
      const altered = { ...JSON.parse(lines[0]), payload: "altered" };
      const mismatch = await toka(["--db", db, "events", "import"], {
        stdin: `${JSON.stringify(altered)}\n`,
      });
      assert.equal(mismatch.code, 1);
      assert.match(mismatch.io.errLines()[0], /digest/);
      assert.deepEqual(await kvState(db), lagging);
      await Deno.remove(db);
    });

    await t.step("a refused agent retry writes nothing, stream index included", async () => {
      const path = `${dir}/retry.kv`;
      const vault = await openVault(path);
      const [task, other] = (await vault.append("tasks", [{ kind: "task.a" }, { kind: "task.b" }]))
        .events;
      await vault.append("agent/flaky", [{
        kind: "agent.failed",
        payload: { agent: "flaky", eventId: task.id, kind: "task.a", attempts: 1, error: "x" },
        parents: [task.id],
      }]);
      await vault.close();
      await lagIndex(path);
      const before = await kvState(path);
      const cases: [string[], RegExp][] = [
        [["ghost", "--all"], /no agent of that name has run or failed here$/],
        [["flaky", "--event", "01ARZ3NDEKTSV4RRFFQ69G5FAV"], /: no such event$/],
        [["flaky", "--event", other.id], /the agent has not given up on it/],
      ];
      for (const [args, message] of cases) {
        const { code, io } = await toka(["--db", path, "agent", "retry", ...args]);
        assert.equal(code, 1, args.join(" "));
        assert.match(io.errLines()[0], message);
        assert.deepEqual(await kvState(path), before, args.join(" "));
      }
      await Deno.remove(path);
    });

    await t.step(
      "auth revoke of a blank id or a past --exp is a usage error, no vault",
      async () => {
        const cases: [string[], RegExp][] = [
          [
            ["auth", "revoke", ""],
            /^error: command-argument value '' is invalid for argument 'jti'/,
          ],
          [["auth", "revoke", "abc", "--exp", "1"], /argument '1' is invalid.*in the future/],
          [["auth", "revoke", "abc", "--exp", String(Math.floor(Date.now() / 1000) - 5)], /future/],
        ];
        for (const [args, message] of cases) {
          const { code, io } = await toka(["--db", db, ...args]);
          assert.equal(code, 2, args.join(" "));
          assert.deepEqual(io.out, []);
          assert.equal(io.errLines().length, 1);
          assert.match(io.errLines()[0], message);
          assert.equal(await exists(db), false, args.join(" "));
        }
      },
    );

    await t.step("a malformed TOKA_MASTER_KEY creates no vault", async () => {
      const env = { TOKA_MASTER_KEY: "not-a-key" };
      for (
        const args of [
          ["auth", "issue", "--sub", "a", "--perm", "a:b"],
          ["auth", "rotate-secret"],
          ["auth", "revoke", "0".repeat(32)],
        ]
      ) {
        const { code, io } = await toka(["--db", db, ...args], { env });
        assert.equal(code, 1, args.join(" "));
        assert.match(io.errLines()[0], /^error: Invalid master key: expected base64url/);
        assert.equal(await exists(db), false, args.join(" "));
      }
    });

    await t.step("refused init, run and emit create nothing", async () => {
      const project = `${dir}/project`;
      await Deno.mkdir(project);
      await Deno.writeTextFile(`${project}/toka.json`, "{}");
      const init = await toka(["init", project]);
      assert.equal(init.code, 1);
      assert.deepEqual(init.io.errLines(), [
        `error: "${project}/toka.json" already exists: nothing was changed (--force overwrites it)`,
      ]);
      assert.deepEqual([...Deno.readDirSync(project)].map((e) => e.name), ["toka.json"]);
      assert.equal(await Deno.readTextFile(`${project}/toka.json`), "{}");
      await Deno.writeTextFile(`${dir}/nothing.ts`, "export const x = 1;\n");
      const run = await toka(["--db", db, "run", `${dir}/nothing.ts`]);
      assert.equal(run.code, 1);
      assert.match(run.io.errLines()[0], /exports no agent/);
      const emit = await toka(["--db", db, "emit", "a.b", "--payload-file", `${dir}/none.json`]);
      assert.equal(emit.code, 1);
      assert.equal(await exists(db), false);
    });

    await t.step("reading auth commands on a mistyped --db create nothing", async () => {
      for (const args of [["auth", "status"], ["auth", "verify", "a.b.c"]]) {
        const { code, io } = await toka(["--db", db, ...args]);
        assert.equal(code, 1, args.join(" "));
        assert.deepEqual(io.errLines(), [`error: No vault at "${db}"`]);
        assert.equal(await exists(db), false, args.join(" "));
      }
    });

    await t.step(
      "auth status, verify and attenuate on a vault without a pool write nothing",
      async () => {
        const vault = await openVault(db);
        await vault.append("s", [{ kind: "a" }]);
        await vault.close();
        const before = await kvState(db);
        const status = await toka(["--db", db, "auth", "status"]);
        assert.equal(status.code, 0);
        assert.match(status.io.out.join(""), /^No secret pool in this vault yet/);
        const json = await toka(["--db", db, "--json", "auth", "status"]);
        assert.deepEqual(JSON.parse(json.io.out.join("")), { pool: null });
        for (const args of [["auth", "verify", "a.b.c"], ["auth", "attenuate", "a.b.c"]]) {
          const { code, io } = await toka(["--db", db, ...args]);
          assert.equal(code, 1, args.join(" "));
          assert.match(
            io.errLines()[0],
            /^error: No secret pool in vault .* no token is valid here/,
          );
        }
        assert.deepEqual(await kvState(db), before);
        await Deno.remove(db);
      },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("one rule for exit codes: bad values 2, refusals and failures 1", async (t) => {
  const dir = await Deno.makeTempDir();
  const db = `${dir}/v.kv`;
  const missing = `${dir}/missing.kv`;
  try {
    // A vault with a pool and a token, for the refusals.
    const issued = await toka(["--db", db, "auth", "issue", "--sub", "p", "--perm", "tool:echo:*"]);
    assert.equal(issued.code, 0);
    const token = issued.io.out.join("").trim();

    // Every leaf command with a bad value; each runs on a path where no vault is, which
    // must still not exist afterwards.
    const bad: Record<string, string[][]> = {
      "events list": [
        ["--stream", "bad stream!"],
        ["--kind", "bad kind"],
        ["--from", "x1"],
        ["--limit", "-1"],
      ],
      "events tail": [["--stream", "bad stream!"], ["-n", "1.5"], ["--kind", "a..b"]],
      "events show": [["not-an-id"], [""], ["0".repeat(25)]],
      "events tree": [["not-an-id"], [""], ["0".repeat(25)]],
      "events stats": [["extra"]],
      "events verify": [["--bogus"], ["--expect-head", "12"], ["--expect-head", "x@sha256:00"]],
      "events head": [["extra"]],
      "events export": [["extra"]],
      "events import": [["--bogus"]],
      "events fork": [
        ["--at", "x", "--into", `${dir}/f.kv`],
        ["--at", "0", "--into", `${dir}/f.kv`],
        ["--into", `${dir}/f.kv`],
        ["--at", "1"],
        ["--at", "1", "--into", ""],
      ],
      "events diff": [[], [db], ["", db], [db, db, db]],
      "agent list": [["extra"]],
      "agent state": [[], ["bad name!"], ["x", "--at", "abc"], ["x", "--at", "-1"], ["x", "y"]],
      "agent history": [[], ["bad name!"], ["x", "y"], ["x", "--at", "1"]],
      "agent failed": [["bad name!"], ["x", "y"]],
      "agent retry": [[], ["bad name!"], ["x", "--event", "not-an-id"], ["x", "--bogus"]],
      "auth rotate-secret": [["extra"]],
      "auth issue": [
        ["--sub", " ", "--perm", "a:b"],
        ["--sub", "a", "--perm", "nocolon"],
        ["--sub", "a", "--perm", "a:b", "--ttl", "0"],
        ["--sub", "a", ...Array.from({ length: 101 }, (_, i) => ["--perm", `t:${i}`]).flat()],
      ],
      "auth attenuate": [["tok", "--perm", "nocolon"], ["tok", "--ttl", "86401"]],
      "auth verify": [[]],
      "auth status": [["extra"]],
      "auth wrap-secrets": [["extra"]],
      "auth revoke": [[""], ["x".repeat(257)], ["j", "--exp", "soon"], ["j", "--exp", "1"], [
        "j",
        "--exp",
        String(Math.ceil(Date.now() / 1000) + 3 * 86_400),
      ]],
      "demo": [["extra"]],
      "tool list": [["extra"]],
      "tool describe": [[], ["Bad Name!"], ["x".repeat(53)]],
      "tool run": [
        ["Bad Name!"],
        ["echo", "--input", "{not json"],
        ["echo", "--input", "{}", "--input-file", `${dir}/input.json`],
        ["echo", "--input-file", `${dir}/no-such-input.json`],
        ["echo", "--token", ""],
      ],
      "mcp serve": [["extra"]],
      "init": [["--bogus"], [""], ["a", "b"], ["--db", "http://127.0.0.1:4512", `${dir}/p`]],
      "trust": [["--bogus"], ["a", "b"], [`${dir}/no-such-toka.json`]],
      "run": [["--bogus"]],
      "ui": [["--port", "x"], ["--port", "70000"], ["extra"]],
      "emit": [[], ["bad kind"], ["a.b", "--payload", "{"], ["a.b", "x"], [
        "a.b",
        "--payload",
        "1",
        "--payload-file",
        "f.json",
      ]],
    };

    // Arguments that are fine, for the global bad values (an empty --db or TOKA_DB).
    const fine: Record<string, string[]> = {
      "events show": ["0".repeat(26)],
      "events tree": ["0".repeat(26)],
      "events fork": ["--at", "1", "--into", `${dir}/f.kv`],
      "events diff": [db, db],
      "agent state": ["x"],
      "agent history": ["x"],
      "agent retry": ["x", "--all"],
      "auth issue": ["--sub", "a", "--perm", "a:b"],
      "auth attenuate": ["tok"],
      "auth verify": ["tok"],
      "auth revoke": ["0".repeat(32)],
      "tool describe": ["echo"],
      "tool run": ["echo", "--input", "{}"],
      "emit": ["a.b"],
    };

    await t.step("the walk covers every command", async () => {
      assert.deepEqual(Object.keys(bad).sort(), (await leafCommands()).sort());
    });

    await t.step("every command with a bad value exits 2 and creates nothing", async () => {
      for (const [command, cases] of Object.entries(bad)) {
        const words = command.split(" ");
        const good = [...words, ...fine[command] ?? []];
        const all = [
          ...cases.map((args) => [...words, ...args]),
          ["--db", "", ...good],
          [...good, "--log-level", "loud"],
        ];
        for (const args of all) {
          const { code, io } = await toka(["--db", missing, ...args]);
          const what = JSON.stringify(args);
          assert.equal(code, 2, `${what}: ${io.err.join("")}`);
          assert.deepEqual(io.out, [], what);
          assert.equal(io.errLines().length, 1, `${what}: ${io.err.join("")}`);
          assert.match(io.errLines()[0], /^error: \S/, what);
          assert.equal(await exists(missing), false, what);
        }
        const empty = await toka(good, { env: { TOKA_DB: "" } });
        assert.equal(empty.code, 2, command);
        assert.deepEqual(empty.io.errLines(), [
          "error: TOKA_DB is set but empty: unset it or name a vault",
        ]);
      }
    });

    await t.step("refusals and failures exit 1", async () => {
      const cases: [string[], RegExp][] = [
        [["auth", "attenuate", token, "--perm", "tool:hash:invoke"], /is not granted/],
        [["auth", "attenuate", token, "--ttl", "86400"], /would outlive the parent/],
        [["auth", "attenuate", "garbage"], /^error: Invalid token/],
        [["auth", "verify", "garbage"], /^error: Invalid token/],
        [["events", "show", "0".repeat(26)], /^error: No event with id "0{26}"$/],
        [["tool", "describe", "nope"], /^error: No tool named "nope" is registered$/],
        [["tool", "run", "echo", "--token", token, "--input", "{}"], /^error: Invalid input/],
        [["tool", "run", "hash", "--token", token, "--input", "{}"], /is not granted to "p"$/],
        [["tool", "run", "echo", "--token", "garbage"], /^error: Invalid token/],
        [["tool", "run", "echo", "--input", "{}"], /^error: Missing token/],
        [["mcp", "serve"], /^error: Missing token: set TOKA_TOKEN/],
      ];
      for (const [args, message] of cases) {
        const { code, io } = await toka(["--db", db, ...args]);
        assert.equal(code, 1, `${args.join(" ")}: ${io.err.join("")}`);
        assert.equal(io.errLines().length, 1);
        assert.match(io.errLines()[0], message);
      }
      const missingVault = await toka(["--db", missing, "events", "stats"]);
      assert.equal(missingVault.code, 1);
    });

    await t.step("with --json, errors are JSON on stderr", async () => {
      const usage = await toka(["--db", db, "--json", "events", "list", "--limit", "abc"]);
      assert.equal(usage.code, 2);
      assert.deepEqual(usage.io.out, []);
      assert.equal(usage.io.errLines().length, 1);
      const usageError = JSON.parse(usage.io.errLines()[0]);
      assert.equal(usageError.error.code, "usage");
      assert.match(usageError.error.message, /^option '--limit <n>' argument 'abc' is invalid/);

      const unknown = await toka(["--json", "bogus"]);
      assert.equal(unknown.code, 2);
      assert.equal(JSON.parse(unknown.io.errLines()[0]).error.code, "usage");

      const failure = await toka(["--db", db, "--json", "events", "show", "0".repeat(26)]);
      assert.equal(failure.code, 1);
      assert.deepEqual(JSON.parse(failure.io.errLines()[0]), {
        error: { code: "event_not_found", message: `No event with id "${"0".repeat(26)}"` },
      });

      const denied = await toka([
        "--db",
        db,
        "--json",
        "auth",
        "attenuate",
        token,
        "--perm",
        "tool:hash:invoke",
      ]);
      assert.equal(denied.code, 1);
      assert.equal(JSON.parse(denied.io.errLines()[0]).error.code, "capability_denied");

      const noVault = await toka(["--db", missing, "--json", "events", "stats"]);
      assert.equal(noVault.code, 1);
      assert.deepEqual(JSON.parse(noVault.io.errLines()[0]), {
        error: { code: "error", message: `No vault at "${missing}"` },
      });
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
