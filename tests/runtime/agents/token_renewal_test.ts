import assert from "node:assert/strict";
import {
  type AgentContext,
  AllowAllAuthority,
  defineAgent,
  type IssueRequest,
  Runtime,
  TokaError,
  type TokenAuthority,
  type TokenClaims,
  type ToolCallOptions,
  type ToolInfo,
  type ToolRegistry,
} from "../../../runtime/mod.ts";
import { KvTokenAuthority } from "../../../auth/mod.ts";
import { echoTool, type ToolEvent, ToolRegistry as Tools } from "../../../toolkit/mod.ts";
import { until } from "../_helpers.ts";

const HOUR = 3_600_000;

// A runtime whose one agent calls echo on "task.call" and reads its token on "task.peek".
async function harness(
  auth: TokenAuthority,
  tools: ToolRegistry,
  clock: () => number,
) {
  const runtime = await Runtime.create({ auth, tools, clock, retry: { attempts: 1 } });
  const errors: string[] = [];
  const tokens: string[] = [];
  let context: AgentContext | undefined;
  runtime.register(defineAgent({
    name: "caller",
    subscribe: ["task.*"],
    permissions: ["tool:echo:invoke"],
    async handle(event, ctx) {
      context = ctx;
      if (event.kind === "task.call") {
        try {
          assert.deepEqual(await ctx.tools.call("echo", { text: "hi" }), { text: "hi" });
        } catch (error) {
          errors.push(error instanceof Error ? `${error.name}: ${error.message}` : String(error));
        }
      }
      tokens.push(ctx.token);
    },
  }));
  await runtime.start();
  const send = async (kind: string) => {
    const before = runtime.agents()[0].handled;
    await runtime.emit({ kind });
    await until(() => runtime.agents()[0].handled > before);
  };
  return { runtime, errors, tokens, send, ctx: () => context! };
}

/**
 * The harness on a KV token authority and the toolkit's registry (recording its events), all on
 * one fake clock that the test moves with `time.now`; disposing stops the runtime and closes KV.
 */
async function kvHarness() {
  const time = { now: Date.parse("2030-01-01T00:00:00Z") };
  const clock = () => time.now;
  const kv = await Deno.openKv(":memory:");
  const auth = await KvTokenAuthority.open(kv, { clock });
  const recorded: ToolEvent[] = [];
  const tools = new Tools({
    authority: auth,
    clock,
    tools: [echoTool],
    record: (event) => void recorded.push(event),
  });
  const running = await harness(auth, tools, clock);
  return {
    ...running,
    time,
    clock,
    kv,
    auth,
    recorded,
    async [Symbol.asyncDispose]() {
      await running.runtime.stop();
      kv.close();
    },
  };
}

Deno.test("Agent tokens are renewed", async (t) => {
  await using h = await kvHarness();
  const { time, clock, kv, auth, recorded, errors, tokens, send, ctx } = h;
  const failed = () => recorded.filter((e) => e.kind === "tool.denied");
  await t.step("a call within the token's life uses the first token", async () => {
    await send("task.call");
    assert.deepEqual(errors, []);
    assert.equal((await auth.verify(tokens[0])).sub, "agent/caller");
  });

  await t.step("past the default TTL the call succeeds with a fresh token", async () => {
    time.now += HOUR + 1000;
    await send("task.call");
    assert.deepEqual(errors, []);
    assert.notEqual(tokens[1], tokens[0]);
    const claims = await auth.verify(tokens[1]);
    assert.ok(claims.exp * 1000 > time.now + HOUR - 2000, "the new token lives a full TTL");
    assert.deepEqual(failed(), [], "renewed before the call, not after a refusal");
  });

  await t.step("a token is renewed before it expires, also when only read", async () => {
    time.now += HOUR - 30_000; // 30 s left: within the margin
    await send("task.peek");
    await until(() => ctx().token !== tokens[1]);
    const fresh = ctx().token;
    assert.ok((await auth.verify(fresh)).exp * 1000 > time.now + HOUR - 2000);
    await send("task.call");
    assert.deepEqual(errors, []);
    assert.equal(tokens.at(-1), fresh, "a fresh token is not renewed again");
    assert.deepEqual(failed(), []);
  });

  await t.step("after another process rotates, calls go on past retiredTtlSecs", async () => {
    const other = await KvTokenAuthority.open(kv, { clock });
    const before = ctx().token;
    await other.rotate();
    time.now += 301_000;
    await assert.rejects(auth.verify(before), /signing secret was retired too long ago/);
    await send("task.call");
    assert.deepEqual(errors, []);
    const after = tokens.at(-1)!;
    assert.notEqual(after, before);
    assert.ok((await other.verify(after)).sub === "agent/caller");
    // The refused attempt is on record; the tool ran once, on the retry.
    assert.deepEqual(failed().map((e) => e.payload.error?.message), [
      "Invalid token: its signing secret was retired too long ago",
    ]);
    // An agent's call is journaled: its tool.completed is in the runtime's log.
    const log = await Array.fromAsync(h.runtime.bus.store!.read());
    assert.equal(log.filter((e) => e.kind === "tool.completed").length, 4);
    for (const e of [...recorded, ...log]) assert.ok(!JSON.stringify(e).includes(after));
  });
});

Deno.test("A refused tool call is retried once, only for a stale token", async (t) => {
  const now = Date.parse("2030-01-01T00:00:00Z");
  const refusal = (code: string, reason?: string) =>
    Object.assign(new TokaError(code, `Refused (${reason ?? code})`), { reason });
  let issued = 0;
  const auth = new (class extends AllowAllAuthority {
    override readonly enforcing = true;
    override issue(_request: IssueRequest): Promise<string> {
      return Promise.resolve(`token-${++issued}`);
    }
    override verify(_token: string): Promise<TokenClaims> {
      return Promise.reject(new TokaError("malformed", "Claims cannot be read"));
    }
  })(() => now);
  let failures: TokaError[] = [];
  const calls: (string | undefined)[] = [];
  const tools: ToolRegistry = {
    get: () => undefined,
    list: (): ToolInfo[] => [],
    call(_name: string, input: unknown, options?: ToolCallOptions) {
      calls.push(options?.token);
      const failure = failures.shift();
      return failure === undefined ? Promise.resolve(input) : Promise.reject(failure);
    },
  };
  const { runtime, errors, send } = await harness(auth, tools, () => now);
  try {
    for (
      const [code, reason] of [
        ["invalid_token", "unknown_kid"],
        ["token_expired"],
        ["invalid_token", "issued_in_future"],
      ]
    ) {
      await t.step(`${reason ?? code}: renewed and called again`, async () => {
        calls.length = 0;
        failures = [refusal(code, reason)];
        await send("task.call");
        assert.deepEqual(errors, []);
        assert.equal(calls.length, 2);
        assert.notEqual(calls[1], calls[0]);
        assert.equal(calls[1], `token-${issued}`);
      });
    }

    await t.step("a second refusal is not retried again", async () => {
      calls.length = 0;
      failures = [refusal("invalid_token", "key_expired"), refusal("invalid_token", "key_expired")];
      await send("task.call");
      assert.deepEqual(errors, ["TokaError: Refused (key_expired)"]);
      assert.equal(calls.length, 2);
    });

    for (
      const [code, reason] of [["token_revoked"], ["invalid_token", "bad_signature"], [
        "capability_denied",
      ]]
    ) {
      await t.step(`${reason ?? code}: not retried`, async () => {
        calls.length = 0;
        errors.length = 0;
        const before = issued;
        failures = [refusal(code, reason)];
        await send("task.call");
        assert.deepEqual(errors, [`TokaError: Refused (${reason ?? code})`]);
        assert.equal(calls.length, 1);
        assert.equal(issued, before, "no token is issued");
      });
    }
  } finally {
    await runtime.stop();
  }
});

Deno.test("A backward wall-clock step loses no tool call", async (t) => {
  await using h = await kvHarness();
  const { time, auth, recorded, errors, tokens, send } = h;
  const denied = () => recorded.filter((e) => e.kind === "tool.denied").length;
  await send("task.call");
  const first = tokens[0];

  await t.step("stepped back 30 s: the token still verifies (iat leeway)", async () => {
    time.now -= 30_000;
    await send("task.call");
    assert.deepEqual(errors, []);
    assert.equal(tokens.at(-1), first, "no renewal needed");
    assert.equal(denied(), 0);
  });

  await t.step("stepped back an hour: the token issued 'in the future' is renewed", async () => {
    time.now -= HOUR;
    for (let i = 0; i < 5; i++) await send("task.call");
    assert.deepEqual(errors, []);
    assert.notEqual(tokens.at(-1), first);
    assert.equal((await auth.verify(tokens.at(-1)!)).sub, "agent/caller");
    assert.equal(denied(), 0, "renewed before the call: the clock is before the token's iat");
  });
});
