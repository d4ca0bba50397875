// A stdio plugin's output cannot freeze or exhaust the host: a line past the 16 MiB cap (in
// bytes, as they arrive) is refused at once and the process stopped; the next call starts a
// fresh one. The timing side (event-loop gaps) is in bench/plugin_output.ts.
import assert from "node:assert/strict";
import { loadPlugins, ToolExecutionError, ToolRegistry } from "../../toolkit/mod.ts";
import { gone } from "./_fakes.ts";

const child = new URL("_plugin_hostile_child.ts", import.meta.url).pathname;
const MiB = 1024 * 1024;

Deno.test("stdio plugin output", async (t) => {
  const registry = new ToolRegistry();
  await using _host = await loadPlugins(registry, [{
    name: "flood",
    transport: { type: "stdio", command: Deno.execPath(), args: ["run", "--quiet", child] },
    // Far more than the refusal needs: a call that ends by this timeout fails the step.
    timeoutMs: 60_000,
  }], { restartDelayMs: 10 });
  const call = (input: Record<string, unknown>) =>
    registry.call("flood.act", input) as Promise<{ pid: number }>;
  const first = await call({ do: "answer" });

  await t.step(
    "a line past 16 MiB (bytes, not characters) is refused; the process is stopped",
    async () => {
      // 8.5 Mi characters "é", 17 MiB: the plugin then waits with its pipe open.
      await assert.rejects(call({ do: "line", bytes: 17 * MiB }), (error: Error) => {
        assert.ok(error instanceof ToolExecutionError, `${error.name}: ${error.message}`);
        assert.equal(
          error.message,
          'Tool "flood.act" failed: the plugin process sent a line longer than 16 MiB, and was stopped',
        );
        return true;
      });
      assert.ok(await gone(first.pid));
    },
  );

  await t.step("the next call starts a fresh process", async () => {
    const next = await call({ do: "answer" });
    assert.notEqual(next.pid, first.pid);
  });

  await t.step("many megabytes of valid notifications, then the answer", async () => {
    const answer = await call({ do: "notify", bytes: 8_000_000 });
    assert.ok(answer.pid > 0);
  });
});
