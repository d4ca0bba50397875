// A stdio plugin started through a wrapper (`sh -c`, `npx`, `uv run`): the wrapper's children
// hold the pipes. A timeout, a close or the wrapper's exit must end them too, and the host must
// never wait for a pipe they keep open.
import assert from "node:assert/strict";
import {
  loadPlugins,
  type PluginSpec,
  ToolExecutionError,
  ToolRegistry,
  ToolTimeoutError,
} from "../../toolkit/mod.ts";
import { manualTimer } from "./_fakes.ts";

const child = new URL("_plugin_hostile_child.ts", import.meta.url).pathname;

// `sh` runs the plugin as its child (not exec: a command follows) and waits for it.
function wrapped(script: string, timeoutMs: number): PluginSpec {
  return {
    name: "wrapped",
    transport: { type: "stdio", command: "sh", args: ["-c", script, Deno.execPath(), child] },
    timeoutMs,
  };
}
const RUN = '"$0" run --quiet "$1"';

// Whether a process still runs (Linux). A zombie runs nothing and holds no pipe: once its parent
// is gone, it is reaped by whoever adopts it, which in a container may be never.
function running(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

// Waits (load-proof: up to 20 s) for a process to stop running.
async function stopped(pid: number): Promise<boolean> {
  for (const started = performance.now(); performance.now() - started < 20_000;) {
    if (!running(pid)) return true;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return false;
}

// Whether `promise` settles within 20 s (load-proof), without leaving a timer behind.
async function settles(promise: Promise<unknown>): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<false>((resolve) => timer = setTimeout(() => resolve(false), 20_000));
  try {
    return await Promise.race([promise.then(() => true, () => true), late]);
  } finally {
    clearTimeout(timer);
  }
}

type Answer = { pid: number };

Deno.test("a stdio plugin behind sh -c", async (t) => {
  // Timeouts fire when the test says: no waiting, and no other call times out under load.
  const timer = manualTimer();
  const registry = new ToolRegistry({ startTimer: timer.start });
  const host = await loadPlugins(registry, [wrapped(`${RUN}; echo done >&2`, 3000)], {
    restartDelayMs: 10,
  });
  const call = (what: string) => registry.call("wrapped.act", { do: what }) as Promise<Answer>;
  try {
    const first = await call("answer");

    await t.step("a call that times out ends the wrapper's child too", async () => {
      const hanging = call("hang");
      await timer.started();
      timer.fire();
      await assert.rejects(hanging, ToolTimeoutError);
      assert.ok(await stopped(first.pid), `the plugin ${first.pid} still runs`);
    });

    await t.step("the next call starts a fresh one", async () => {
      const next = await call("answer");
      assert.notEqual(next.pid, first.pid);
    });

    await t.step("close returns and ends the wrapper's child", async () => {
      const last = await call("answer");
      assert.ok(await settles(host.close()), "close() did not return");
      assert.ok(await stopped(last.pid), `the plugin ${last.pid} still runs`);
      assert.deepEqual(registry.list(), []);
    });
  } finally {
    await host.close();
  }
});

Deno.test("a wrapper that exits while its background child holds the pipes", async () => {
  // `sleep` keeps stdout open after sh and the plugin have exited.
  const registry = new ToolRegistry();
  await using _host = await loadPlugins(registry, [wrapped(`sleep 600 & ${RUN}`, 60_000)]);
  await assert.rejects(registry.call("wrapped.act", { do: "exit" }), (error: Error) => {
    assert.ok(error instanceof ToolExecutionError, `${error.name}: ${error.message}`);
    assert.equal(error.message, 'Tool "wrapped.act" failed: the plugin process exited with code 3');
    return true;
  });
});

Deno.test("an mcp plugin behind sh -c with a background child: timeout and close", async () => {
  // `sleep` holds the pipes after the server exits on the end of its stdin.
  const mcpChild = new URL("_mcp_child.ts", import.meta.url).pathname;
  const timer = manualTimer();
  const registry = new ToolRegistry({ startTimer: timer.start });
  const host = await loadPlugins(registry, [{
    name: "wrapped",
    transport: {
      type: "mcp",
      command: "sh",
      args: ["-c", `sleep 600 & ${RUN}`, Deno.execPath(), mcpChild],
    },
    timeoutMs: 3000,
  }], { restartDelayMs: 10 });
  const call = (what: string) => registry.call("wrapped.act", { do: what }) as Promise<Answer>;
  try {
    const first = await call("answer");
    const hanging = call("hang");
    await timer.started();
    timer.fire();
    await assert.rejects(hanging, ToolTimeoutError);
    assert.ok(await stopped(first.pid), `the server ${first.pid} still runs`);
    const last = await call("answer");
    assert.ok(await settles(host.close()), "close() did not return");
    assert.ok(await stopped(last.pid), `the server ${last.pid} still runs`);
  } finally {
    await host.close();
  }
});
