import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  CapabilityDeniedError,
  defineTool,
  echoTool,
  type Tool,
  type ToolContext,
  type ToolEvent,
  ToolExecutionError,
  ToolInputError,
  ToolNotFoundError,
  ToolOutputError,
  ToolRegistry,
  ToolTimeoutError,
} from "../../toolkit/mod.ts";
import { type EventRecord, TokaError } from "../../runtime/mod.ts";
import { FakeAuthority } from "./_fakes.ts";

function tool(overrides: Partial<Tool> = {}): Tool {
  return {
    name: "probe",
    description: "A test tool",
    version: "1.0.0",
    inputSchema: { type: "object" },
    execute: () => "done",
    ...overrides,
  };
}

// A tool that waits until its signal aborts, then rejects with the reason.
function waiting(name: string, seen: ToolContext[], timeoutMs = 30_000, onStart = () => {}): Tool {
  return tool({
    name,
    timeoutMs,
    execute: (_input, ctx) => {
      seen.push(ctx);
      onStart();
      return new Promise((_resolve, reject) => {
        ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason), { once: true });
      });
    },
  });
}

Deno.test("ToolRegistry: register, get, list, unregister", async (t) => {
  await t.step("lists tools sorted by name, without execute", () => {
    const tools = new ToolRegistry();
    tools.register(tool({ name: "zeta" }));
    tools.register(tool({ name: "alpha", annotations: { readOnlyHint: true } }));
    tools.register(echoTool);
    const list = tools.list();
    assert.deepEqual(list.map((info) => info.name), ["alpha", "echo", "zeta"]);
    for (const info of list) assert.equal("execute" in info, false);
    assert.deepEqual(list[0], {
      name: "alpha",
      description: "A test tool",
      version: "1.0.0",
      inputSchema: { type: "object" },
      annotations: { readOnlyHint: true },
      permissions: ["tool:alpha:invoke"],
      timeoutMs: 30_000,
    });
  });

  await t.step("get returns a copy or undefined", () => {
    const tools = new ToolRegistry({ tools: [echoTool] });
    const info = tools.get("echo")!;
    info.permissions.push("*");
    info.inputSchema.type = "string";
    assert.deepEqual(tools.get("echo")!.permissions, ["tool:echo:invoke"]);
    assert.equal(tools.get("echo")!.inputSchema.type, "object");
    assert.equal(tools.get("nope"), undefined);
  });

  await t.step("a duplicate name is a TypeError and keeps the first tool", async () => {
    const tools = new ToolRegistry({ tools: [tool({ execute: () => "first" })] });
    assert.throws(() => tools.register(tool({ execute: () => "second" })), {
      name: "TypeError",
      message: 'A tool named "probe" is already registered',
    });
    assert.equal(await tools.call("probe", {}), "first");
    assert.throws(() => new ToolRegistry({ tools: [echoTool, echoTool] }), TypeError);
  });

  await t.step("an invalid definition is rejected at register", () => {
    assert.throws(() => new ToolRegistry().register(tool({ name: "Bad" })), TypeError);
  });

  await t.step("unregister removes a tool", async () => {
    const tools = new ToolRegistry({ tools: [echoTool] });
    assert.equal(tools.unregister("echo"), true);
    assert.equal(tools.unregister("echo"), false);
    assert.deepEqual(tools.list(), []);
    await assert.rejects(tools.call("echo", { text: "x" }), ToolNotFoundError);
  });
});

Deno.test("ToolRegistry.call", async (t) => {
  await t.step("an unknown tool is ToolNotFoundError and records nothing", async () => {
    const events: ToolEvent[] = [];
    const tools = new ToolRegistry({ record: (event) => events.push(event) });
    await assert.rejects(tools.call("missing", {}), {
      name: "ToolNotFoundError",
      code: "tool_not_found",
      message: 'No tool named "missing" is registered',
    });
    assert.deepEqual(events, []);
  });

  await t.step("names and input keys are quoted with escapes in messages", async () => {
    const tools = new ToolRegistry({
      tools: [tool({ inputSchema: { type: "object", additionalProperties: false } })],
    });
    await assert.rejects(tools.call("a\nb\u001b", {}), {
      message: 'No tool named "a\\nb\\u001b" is registered',
    });
    await assert.rejects(tools.call("probe", { "x\ny": 1 }), {
      name: "ToolInputError",
      message: 'Invalid input for tool "probe": / must NOT have additional properties "x\\ny"',
    });
  });

  await t.step("bad input is a one-line ToolInputError and the tool does not run", async () => {
    let runs = 0;
    const counted = defineTool({
      ...echoTool,
      execute: (input: { text: string }) => {
        runs++;
        return { text: input.text };
      },
    });
    const tools = new ToolRegistry({ tools: [counted] });
    const cases: [unknown, string][] = [
      [{ text: 1 }, "/text must be string"],
      [{}, "/ must have required property 'text'"],
      [{ text: "a", extra: true }, '/ must NOT have additional properties "extra"'],
      ["text", "/ must be object"],
      [null, "/ must be object"],
      [undefined, "/ must be object"],
      [["a"], "/ must be object"],
    ];
    for (const [input, problem] of cases) {
      await assert.rejects(
        tools.call("echo", input),
        (error: unknown) => {
          assert.ok(error instanceof ToolInputError);
          assert.equal(error.code, "tool_input");
          assert.equal(error.problem, problem);
          assert.equal(error.message, `Invalid input for tool "echo": ${problem}`);
          assert.ok(!error.message.includes("\n"));
          return true;
        },
      );
    }
    assert.equal(runs, 0);
  });

  await t.step("output not matching the output schema is ToolOutputError", async () => {
    const tools = new ToolRegistry({
      tools: [tool({ outputSchema: { type: "object", required: ["ok"] }, execute: () => ({}) })],
    });
    await assert.rejects(tools.call("probe", {}), (error: unknown) => {
      assert.ok(error instanceof ToolOutputError);
      assert.equal(error.code, "tool_output");
      assert.equal(
        error.message,
        `Invalid output from tool "probe": / must have required property 'ok'`,
      );
      return true;
    });
  });

  await t.step("a throwing tool is ToolExecutionError with the cause", async () => {
    const boom = new Error("Disk full");
    const tools = new ToolRegistry({
      tools: [
        tool({
          name: "sync",
          execute: () => {
            throw boom;
          },
        }),
        tool({ name: "async", execute: () => Promise.reject(boom) }),
        tool({
          name: "odd",
          execute: () => {
            throw "just a string";
          },
        }),
      ],
    });
    for (const name of ["sync", "async"]) {
      await assert.rejects(tools.call(name, {}), (error: unknown) => {
        assert.ok(error instanceof ToolExecutionError);
        assert.equal(error.code, "tool_failed");
        assert.equal(error.message, `Tool "${name}" failed: Disk full`);
        assert.equal(error.cause, boom);
        return true;
      });
    }
    await assert.rejects(tools.call("odd", {}), {
      code: "tool_failed",
      message: 'Tool "odd" failed: just a string',
    });
  });

  await t.step("a tool gets the caller's claims, a call id and a live signal", async () => {
    const seen: ToolContext[] = [];
    const tools = new ToolRegistry({
      authority: new FakeAuthority({ t1: { sub: "agent/a", permissions: ["tool:probe:invoke"] } }),
      tools: [tool({
        execute: (_input, ctx) => {
          seen.push(ctx);
          return "ok";
        },
      })],
    });
    assert.equal(await tools.call("probe", {}, { token: "t1" }), "ok");
    assert.equal(seen[0].claims.sub, "agent/a");
    assert.match(seen[0].callId, /^[0-9a-f-]{36}$/);
    assert.equal(seen[0].signal.aborted, false);
  });
});

Deno.test("ToolRegistry.call: capabilities", async (t) => {
  const authority = new FakeAuthority({
    reader: { sub: "agent/reader", permissions: ["tool:echo:invoke"] },
    both: { sub: "agent/both", permissions: ["tool:echo:invoke", "fs:write:*"] },
  });
  let runs = 0;
  const writer = tool({
    name: "writer",
    permissions: ["tool:echo:invoke", "fs:write:*"],
    execute: () => ++runs,
  });

  await t.step("a token granting the permission may call", async () => {
    const tools = new ToolRegistry({ authority, tools: [echoTool] });
    assert.deepEqual(await tools.call("echo", { text: "hi" }, { token: "reader" }), { text: "hi" });
  });

  await t.step("every required permission is checked", async () => {
    const events: ToolEvent[] = [];
    const tools = new ToolRegistry({ authority, tools: [writer], record: (e) => events.push(e) });
    await assert.rejects(tools.call("writer", {}, { token: "reader" }), (error: unknown) => {
      assert.ok(error instanceof CapabilityDeniedError);
      assert.equal(error.code, "capability_denied");
      assert.equal(error.permission, "fs:write:*");
      assert.equal(error.message, 'Permission "fs:write:*" is not granted to "agent/reader"');
      return true;
    });
    assert.equal(runs, 0);
    assert.deepEqual(events.map((e) => e.kind), ["tool.denied"]);
    assert.equal(events[0].payload.error?.code, "capability_denied");
    assert.ok(!JSON.stringify(events).includes('reader"'), "no token in events");
    assert.equal(await tools.call("writer", {}, { token: "both" }), 1);
  });

  await t.step("no token or an unknown token is denied before input is checked", async () => {
    const tools = new ToolRegistry({ authority, tools: [echoTool] });
    await assert.rejects(tools.call("echo", { text: 1 }), CapabilityDeniedError);
    await assert.rejects(tools.call("echo", { text: 1 }, { token: "forged" }), {
      code: "token_invalid",
    });
  });
});

// An input that records every operation done on it: canonicalising, hashing and
// schema validation all have to look at its keys or values.
function recordingInput(items: number): { input: Record<string, unknown>; touched: string[] } {
  const target: Record<string, unknown> = { items: new Array(items).fill(0) };
  const touched: string[] = [];
  const record = (trap: string) => (...args: unknown[]) => {
    touched.push(trap);
    return (Reflect as unknown as Record<string, (...a: unknown[]) => unknown>)[trap](...args);
  };
  const traps = ["get", "has", "ownKeys", "getOwnPropertyDescriptor", "getPrototypeOf"];
  const handler = Object.fromEntries(traps.map((trap) => [trap, record(trap)]));
  return { input: new Proxy(target, handler), touched };
}

Deno.test("ToolRegistry.call: authorises before any work", async (t) => {
  const authority = new FakeAuthority({
    reader: { sub: "agent/reader", permissions: ["tool:echo:invoke"] },
  });
  let runs = 0;
  const probe = tool({ execute: () => ++runs });

  await t.step("a denied call with a 1M-item input never reads the input", async () => {
    const { input, touched } = recordingInput(1_000_000);
    const events: ToolEvent[] = [];
    const tools = new ToolRegistry({ authority, tools: [probe], record: (e) => events.push(e) });
    for (const token of [undefined, "reader", "forged"]) {
      await assert.rejects(tools.call("probe", input, { token }), TokaError);
    }
    assert.deepEqual(touched, [], "no canonicalising, hashing or validation of the input");
    assert.equal(runs, 0);
    assert.deepEqual(events.map((e) => e.kind), ["tool.denied", "tool.denied", "tool.denied"]);
    assert.deepEqual(events.map((e) => e.payload.error?.code), [
      "capability_denied",
      "capability_denied",
      "token_invalid",
    ]);
    for (const event of events) {
      assert.equal(event.payload.inputDigest, undefined);
      assert.ok(JSON.stringify(event).length < 512, "a small event");
    }
  });

  await t.step("50 unauthenticated calls append one event each", async () => {
    const events: ToolEvent[] = [];
    const tools = new ToolRegistry({ authority, tools: [probe], record: (e) => events.push(e) });
    for (let i = 0; i < 50; i++) {
      await assert.rejects(tools.call("probe", { a: i }), CapabilityDeniedError);
    }
    assert.equal(events.length, 50);
    assert.ok(events.every((e) => e.kind === "tool.denied"));
  });

  await t.step("an allowed call still records invoked with the digest", async () => {
    const events: ToolEvent[] = [];
    const tools = new ToolRegistry({
      authority: new FakeAuthority({ all: { sub: "a", permissions: ["tool:probe:invoke"] } }),
      tools: [probe],
      record: (e) => events.push(e),
    });
    await tools.call("probe", { a: 1 }, { token: "all" });
    assert.deepEqual(events.map((e) => e.kind), ["tool.invoked", "tool.completed"]);
    assert.match(events[0].payload.inputDigest ?? "", /^sha256:[0-9a-f]{64}$/);
  });
});

Deno.test("ToolRegistry.call: timeout and abort", async (t) => {
  await t.step("a slow tool times out and its signal aborts", async () => {
    const seen: ToolContext[] = [];
    const tools = new ToolRegistry({ tools: [waiting("slow", seen, 20)] });
    await assert.rejects(tools.call("slow", {}), (error: unknown) => {
      assert.ok(error instanceof ToolTimeoutError);
      assert.equal(error.code, "tool_timeout");
      assert.equal(error.message, 'Tool "slow" timed out after 20 ms');
      return true;
    });
    assert.equal(seen[0].signal.aborted, true);
    assert.ok(seen[0].signal.reason instanceof ToolTimeoutError);
  });

  await t.step("a tool that ignores its signal still times out", async () => {
    const tools = new ToolRegistry({
      tools: [tool({ name: "stuck", timeoutMs: 20, execute: () => new Promise(() => {}) })],
    });
    await assert.rejects(tools.call("stuck", {}), ToolTimeoutError);
  });

  await t.step("timeouts run on the injected timer; a finished call cancels its own", async () => {
    const timers: { fire: () => void; ms: number; cancelled: boolean }[] = [];
    const tools = new ToolRegistry({
      startTimer: (fire, ms) => {
        const timer = { fire, ms, cancelled: false };
        timers.push(timer);
        return () => void (timer.cancelled = true);
      },
      tools: [
        tool({ name: "stuck", timeoutMs: 60_000, execute: () => new Promise(() => {}) }),
        tool({ name: "quick", timeoutMs: 50, execute: () => "done" }),
      ],
    });
    assert.equal(await tools.call("quick", {}), "done");
    assert.deepEqual(timers.map(({ ms, cancelled }) => [ms, cancelled]), [[50, true]]);
    const call = tools.call("stuck", {});
    while (timers.length < 2) await new Promise((resolve) => setTimeout(resolve, 0));
    assert.equal(timers[1].ms, 60_000);
    timers[1].fire(); // a minute later, by this timer
    await assert.rejects(call, {
      name: "ToolTimeoutError",
      message: 'Tool "stuck" timed out after 60000 ms',
    });
  });

  await t.step("the caller's abort rejects with its reason and aborts the tool", async () => {
    const seen: ToolContext[] = [];
    const started = Promise.withResolvers<void>();
    const tools = new ToolRegistry({ tools: [waiting("wait", seen, 30_000, started.resolve)] });
    const controller = new AbortController();
    const reason = new Error("Caller gave up");
    const call = tools.call("wait", {}, { signal: controller.signal });
    await started.promise;
    controller.abort(reason);
    await assert.rejects(call, (error: unknown) => error === reason);
    assert.equal(seen[0].signal.reason, reason);
  });

  await t.step("aborting after the call finished does not reach the tool", async () => {
    const seen: ToolContext[] = [];
    const tools = new ToolRegistry({
      tools: [tool({ execute: (_input, ctx) => (seen.push(ctx), "ok") })],
    });
    const controller = new AbortController();
    assert.equal(await tools.call("probe", {}, { signal: controller.signal }), "ok");
    controller.abort();
    assert.equal(seen[0].signal.aborted, false);
  });

  await t.step("an already aborted signal does not run the tool", async () => {
    let runs = 0;
    const tools = new ToolRegistry({ tools: [tool({ execute: () => ++runs })] });
    const events: ToolEvent[] = [];
    const recorded = new ToolRegistry({
      tools: [tool({ execute: () => ++runs })],
      record: (e) => events.push(e),
    });
    await assert.rejects(tools.call("probe", {}, { signal: AbortSignal.abort() }), {
      name: "AbortError",
    });
    await assert.rejects(recorded.call("probe", {}, { signal: AbortSignal.abort() }));
    assert.equal(runs, 0);
    assert.equal(events[1].payload.error?.code, "AbortError");
  });
});

Deno.test("ToolRegistry.call: events", async (t) => {
  await t.step("every event of a call is recorded with the caller's cause", async () => {
    const seen: [string, unknown][] = [];
    const tools = new ToolRegistry({
      record: (event, cause) => void seen.push([event.kind, cause?.id]),
      tools: [
        tool({ execute: () => "ok" }),
        tool({
          name: "broken",
          execute: () => {
            throw new Error("no");
          },
        }),
      ],
    });
    const cause = { id: "01CAUSE" } as EventRecord;
    await tools.call("probe", {}, { cause });
    await assert.rejects(tools.call("broken", {}, { cause }));
    await tools.call("probe", {});
    assert.deepEqual(seen, [
      ["tool.invoked", "01CAUSE"],
      ["tool.completed", "01CAUSE"],
      ["tool.invoked", "01CAUSE"],
      ["tool.failed", "01CAUSE"],
      ["tool.invoked", undefined],
      ["tool.completed", undefined],
    ]);
  });

  await t.step("a call records invoked then completed, with a digest but no input", async () => {
    let now = 1_000;
    const events: ToolEvent[] = [];
    const tools = new ToolRegistry({
      clock: () => now,
      record: (event) => events.push(event),
      tools: [tool({ execute: () => (now += 7, "ok") })],
    });
    await tools.call("probe", { password: "hunter2", a: 1 }, { token: "tok-secret" });
    assert.deepEqual(events.map((e) => e.kind), ["tool.invoked", "tool.completed"]);
    const [invoked, completed] = events;
    const expected = createHash("sha256").update('{"a":1,"password":"hunter2"}').digest("hex");
    assert.deepEqual(invoked.payload, {
      tool: "probe",
      callId: invoked.payload.callId,
      inputDigest: `sha256:${expected}`,
    });
    assert.deepEqual(completed.payload, {
      tool: "probe",
      callId: invoked.payload.callId,
      durationMs: 7,
    });
    const text = JSON.stringify(events);
    assert.ok(!text.includes("hunter2") && !text.includes("tok-secret"));
  });

  await t.step("a failure records invoked then failed with the error", async () => {
    const events: ToolEvent[] = [];
    const tools = new ToolRegistry({
      clock: () => 5,
      record: (event) => events.push(event),
      tools: [tool({
        execute: () => {
          throw new Error("Nope");
        },
      })],
    });
    await assert.rejects(tools.call("probe", {}), ToolExecutionError);
    await assert.rejects(tools.call("probe", "bad"), ToolInputError);
    assert.deepEqual(events.map((e) => e.kind), [
      "tool.invoked",
      "tool.failed",
      "tool.invoked",
      "tool.failed",
    ]);
    assert.deepEqual(events[1].payload, {
      tool: "probe",
      callId: events[0].payload.callId,
      durationMs: 0,
      error: { code: "tool_failed", message: 'Tool "probe" failed: Nope' },
    });
    assert.equal(events[3].payload.error?.code, "tool_input");
    assert.notEqual(events[0].payload.callId, events[2].payload.callId);
  });

  await t.step("an input that cannot be serialised has no digest", async () => {
    const events: ToolEvent[] = [];
    const tools = new ToolRegistry({ record: (e) => events.push(e), tools: [tool()] });
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    assert.equal(await tools.call("probe", circular), "done");
    assert.equal("inputDigest" in events[0].payload, false);
  });

  await t.step("when recording fails the tool does not run and the call fails", async () => {
    let runs = 0;
    const tools = new ToolRegistry({
      record: () => Promise.reject(new Error("Store offline")),
      tools: [tool({ execute: () => ++runs })],
    });
    await assert.rejects(tools.call("probe", {}), { message: "Store offline" });
    assert.equal(runs, 0);
  });
});
