import assert from "node:assert/strict";
import { NoopToolRegistry, ToolNotFoundError } from "../../toolkit/mod.ts";

Deno.test("NoopToolRegistry has the registry surface with no tools", async (t) => {
  const tools = new NoopToolRegistry();

  await t.step("get and list find nothing", () => {
    assert.equal(tools.get("echo"), undefined);
    assert.deepEqual(tools.list(), []);
  });

  await t.step("call rejects with ToolNotFoundError", async () => {
    await assert.rejects(tools.call("echo", { text: "hi" }, { token: "t" }), (error: unknown) => {
      assert.ok(error instanceof ToolNotFoundError);
      assert.equal(error.code, "tool_not_found");
      assert.equal(error.tool, "echo");
      return true;
    });
  });
});
