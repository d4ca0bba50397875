// toka events fork and toka events diff, on vault files.
import assert from "node:assert/strict";
import { main } from "../../cli.ts";
import { openVault } from "../../vault/mod.ts";
import { recordingIo } from "./_fakes.ts";

async function run(...args: string[]) {
  const io = recordingIo();
  const code = await main(args, io);
  return { code, out: io.outLines(), err: io.errLines() };
}

/** Every key and versionstamp of a vault file. */
async function dump(path: string): Promise<string[]> {
  const kv = await Deno.openKv(path);
  try {
    const out: string[] = [];
    for await (const entry of kv.list({ prefix: [] })) {
      out.push(`${JSON.stringify(entry.key)}@${entry.versionstamp}`);
    }
    return out;
  } finally {
    kv.close();
  }
}

async function files(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) names.push(entry.name);
  return names.sort();
}

Deno.test("toka events fork and diff", async (t) => {
  const dir = await Deno.makeTempDir();
  const src = `${dir}/src.kv`;
  const fork = `${dir}/fork.kv`;
  try {
    const store = await openVault(src);
    await store.append("agent/planner", [{ kind: "task.created", payload: 1 }]);
    await store.append("agent/planner", [{ kind: "task.done", payload: 1 }]);
    await store.append("agent/worker", [{ kind: "tool.completed" }, { kind: "tool.completed" }]);
    await store.append("agent/planner", [{ kind: "task.created", payload: 2 }]);
    const third = (await Array.fromAsync(store.read()))[2];
    await store.close();
    const before = await dump(src);

    await t.step("fork copies the events up to the position and says what it left", async () => {
      const { code, out, err } = await run(
        "--db",
        src,
        "events",
        "fork",
        "--at",
        "3",
        "--into",
        fork,
      );
      assert.equal(code, 0, err.join("\n"));
      assert.deepEqual(out, [
        `Forked 3 events into "${fork}", head ${third.position}@${third.digest}`,
        "Copied 0 agent checkpoints (at most position 3) and 0 state changes; not copied: the " +
        "secret pool (tokens of the source are not valid on the fork), revocations, leases, " +
        'schedules and storage("vault") files',
      ]);
      assert.deepEqual(await run("--db", fork, "events", "head"), {
        code: 0,
        out: [`${third.position}@${third.digest}`],
        err: [],
      });
      assert.equal((await run("--db", fork, "events", "verify")).code, 0);
      assert.deepEqual(await dump(src), before, "the source is never written");
    });

    await t.step("diff names the last shared position and counts what follows", async () => {
      assert.deepEqual(await run("events", "diff", src, fork), {
        code: 1,
        out: [
          `The same events up to position ${third.position}, head ${third.position}@${third.digest}`,
          `${src}: 2 events after it: task.created 1, tool.completed 1`,
          `${fork}: nothing after it`,
        ],
        err: [],
      });
      assert.equal(
        (await run("--db", fork, "emit", "task.changed", "--stream", "agent/planner")).code,
        0,
      );
      const { code, out } = await run("--json", "events", "diff", src, fork);
      assert.equal(code, 1);
      assert.deepEqual(JSON.parse(out[0]), {
        same: false,
        common: { position: third.position, digest: third.digest },
        a: { events: 2, kinds: { "task.created": 1, "tool.completed": 1 } },
        b: { events: 1, kinds: { "task.changed": 1 } },
      });
      const same = await run("events", "diff", src, src);
      assert.equal(same.code, 0);
      assert.match(same.out[0], /^The same 5 events, head 0000000000000005@sha256:[0-9a-f]{64}$/);
    });

    await t.step("an interrupted fork exits 130 and leaves nothing behind", async () => {
      const stop = new AbortController();
      stop.abort();
      const io = recordingIo({ signal: stop.signal });
      const into = `${dir}/stopped.kv`;
      assert.equal(
        await main(["--db", src, "events", "fork", "--at", "5", "--into", into], io),
        130,
      );
      assert.deepEqual(io.errLines(), [
        `Interrupted: nothing was forked, and "${into}" was not left behind`,
      ]);
      assert.equal(await Deno.stat(into).then(() => true, () => false), false);
    });

    await t.step("refusals are one line, exit 1 and create nothing", async () => {
      await Deno.writeTextFile(`${dir}/toka.json`, "{}");
      const cases: [string[], RegExp][] = [
        [
          ["--at", "6", "--into", `${dir}/a.kv`],
          /^error: Cannot fork at "6": the log ends at position "5"$/,
        ],
        [
          ["--at", "0099", "--into", `${dir}/a.kv`],
          /^error: Cannot fork at "0099": the log ends at position "5"$/,
        ],
        [
          ["--at", "1", "--into", fork],
          /^error: Cannot fork into ".*fork.kv": it exists, and a fork never overwrites$/,
        ],
        [
          ["--at", "1", "--into", src],
          /^error: Cannot fork into ".*src.kv": it is the vault being forked$/,
        ],
        [
          ["--at", "1", "--into", `${dir}/../${dir.split("/").at(-1)}/src.kv`],
          /it is the vault being forked$/,
        ],
        [
          ["--at", "1", "--into", `${src}-shm`],
          /^error: Cannot fork into ".*src.kv-shm": it is one of Toka's own files$/,
        ],
        [["--at", "1", "--into", `${dir}/x.kv-wal`], /the name is that of an SQLite side file$/],
        [
          ["--at", "1", "--into", `${dir}/nowhere/x.kv`],
          /^error: Cannot fork into ".*": there is no folder/,
        ],
      ];
      for (const [args, message] of cases) {
        const { code, out, err } = await run("--db", src, "events", "fork", ...args);
        assert.equal(code, 1, args.join(" "));
        assert.deepEqual(out, []);
        assert.equal(err.length, 1, err.join("\n"));
        assert.match(err[0], message);
        assert.ok(!err.join("\n").includes("    at "));
      }
      const refused = await run(
        "--db",
        `${dir}/missing.kv`,
        "events",
        "fork",
        "--at",
        "1",
        "--into",
        `${dir}/b.kv`,
      );
      assert.equal(refused.code, 1);
      assert.match(refused.err[0], /^error: No vault at ".*missing.kv"$/);
      const diffMissing = await run("events", "diff", src, `${dir}/missing.kv`);
      assert.equal(diffMissing.code, 1);
      assert.match(diffMissing.err[0], /^error: No vault at ".*missing.kv"$/);
      assert.deepEqual(
        await files(dir),
        ["fork.kv", "src.kv", "toka.json"].concat(
          (await files(dir)).filter((f) => /-(wal|shm)$/.test(f)),
        ).sort(),
      );
      assert.deepEqual(await dump(src), before);
    });

    await t.step("a toka.json or the trust file not made yet is refused too", async () => {
      // A fork written there would be an SQLite file that every later toka command in that
      // folder reads as its config, or that toka trust reads as its record.
      const sub = `${dir}/sub`;
      await Deno.mkdir(sub);
      const trust = `${sub}/trusted.json`;
      for (const into of [`${sub}/toka.json`, trust, `${dir}/sub/../sub/trusted.json`]) {
        const io = recordingIo({ env: { TOKA_TRUST_FILE: trust } });
        const args = ["--db", src, "events", "fork", "--at", "1", "--into", into];
        assert.equal(await main(args, io), 1, into);
        assert.deepEqual(io.outLines(), []);
        assert.deepEqual(io.errLines(), [
          `error: Cannot fork into "${into}": it is one of Toka's own files`,
        ]);
        assert.deepEqual(await files(sub), [], into);
      }
      assert.deepEqual(await dump(src), before);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("toka events diff reports a vault with an unreadable page as damaged", async (t) => {
  const dir = await Deno.makeTempDir();
  const good = `${dir}/good.kv`;
  const bad = `${dir}/bad.kv`;
  try {
    const store = await openVault(good);
    for (let n = 1; n <= 8; n++) await store.append("s", [{ kind: "e", payload: n }]);
    await store.close();
    await Deno.copyFile(good, bad);
    {
      using kv = await Deno.openKv(bad);
      await kv.set(["vault", "ev", 1], new TextEncoder().encode("garbage"));
    }
    for (const [a, b] of [[good, bad], [bad, good], [bad, bad]]) {
      await t.step(
        `${a === good ? "good" : "bad"} against ${b === good ? "good" : "bad"}`,
        async () => {
          for (const json of [false, true]) {
            const { code, out, err } = await run(
              ...(json ? ["--json"] : []),
              "events",
              "diff",
              a,
              b,
            );
            assert.equal(code, 1);
            assert.deepEqual(out, []);
            assert.equal(err.length, 1, err.join("\n"));
            const line = json ? JSON.parse(err[0]).error.message : err[0];
            assert.match(
              line,
              new RegExp(`^(error: )?The vault ".*bad\\.kv" is damaged: page 1 is unreadable`),
            );
          }
        },
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
