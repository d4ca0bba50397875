// Issue 10 "Error messages": no error line shows a token or a raw control character.
import assert from "node:assert/strict";
import { main } from "../../cli.ts";
import { KvTokenAuthority } from "../../auth/mod.ts";
import { MemoryEventStore } from "../../vault/mod.ts";
import type { EventStore } from "../../runtime/log/event_store.ts";
import { hasNoStackTrace, recordingIo } from "./_fakes.ts";

const memory = () => Promise.resolve<EventStore>(new MemoryEventStore());

Deno.test("CLI errors never show a token nor a raw control character", async (t) => {
  using kv = await Deno.openKv(":memory:");
  const auth = await KvTokenAuthority.open(kv);
  const token = await auth.issue({ sub: "agent/a", permissions: ["*"] });
  const [header, payload] = token.split(".");

  const run = async (args: string[]) => {
    const io = recordingIo();
    const code = await main(args, io, { openStore: memory });
    return { code, io, text: io.err.join("") };
  };

  await t.step("a token typed where a command or value was expected is redacted", async () => {
    const cases: [string[], RegExp][] = [
      [[token], /^error: Unknown command "<token>": run "toka --help" to list them$/],
      [["events", token], /^error: Unknown command "<token>"/],
      [[`${header}.${payload}`], /^error: Unknown command "<token>"/],
      [[header], /^error: Unknown command "<token>"/],
      [["auth", "issue", "--sub", "a", "--perm", token], /argument '<token>' is invalid/],
      [["events", "list", `--${token}`], /^error: unknown option '<token>'/],
    ];
    for (const [args, expected] of cases) {
      const { code, io, text } = await run(args);
      assert.equal(code, 2, args.join(" "));
      assert.equal(io.errLines().length, 1);
      assert.match(io.errLines()[0], expected);
      for (const part of [token, header, payload]) assert.ok(!text.includes(part), args[0]);
      assert.ok(hasNoStackTrace(io));
    }
  });

  await t.step("ordinary dotted words are left alone", async () => {
    const { io } = await run(["task.created.v2"]);
    assert.match(io.errLines()[0], /^error: Unknown command "task\.created\.v2"/);
  });

  await t.step("control characters from the command line are escaped", async () => {
    for (const args of [["a\u001b[31mb"], ["events", "list", "--x\u0007y"], ["x\ny"]]) {
      const { io, text } = await run(args);
      assert.equal(io.errLines().length, 1, JSON.stringify(args));
      assert.ok(![...text.trimEnd()].some((c) => c < " " || c === "\x7f"), JSON.stringify(text));
    }
    const { io } = await run(["a\u001b[31mb"]);
    assert.match(io.errLines()[0], /^error: Unknown command "a\\u001b\[31mb"/);
  });
});
