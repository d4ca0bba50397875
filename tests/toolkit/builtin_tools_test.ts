import assert from "node:assert/strict";
import { builtinTools, createNowTool, ToolRegistry } from "../../toolkit/mod.ts";

Deno.test("built-in tools", async (t) => {
  const tools = new ToolRegistry({ tools: builtinTools({ clock: () => 86_400_000 }) });

  await t.step("builtinTools has echo, hash and now", () => {
    assert.deepEqual(tools.list().map((info) => info.name), ["echo", "hash", "now"]);
    assert.deepEqual(tools.get("echo")?.annotations, {
      readOnlyHint: true,
      idempotentHint: true,
      openWorldHint: false,
    });
  });

  await t.step("echo returns its text", async () => {
    assert.deepEqual(await tools.call("echo", { text: "héllo ✓" }), { text: "héllo ✓" });
    assert.deepEqual(await tools.call("echo", { text: "" }), { text: "" });
    await assert.rejects(tools.call("echo", { txt: "x" }), { code: "tool_input" });
  });

  await t.step("hash returns the SHA-256 of the UTF-8 text", async () => {
    assert.deepEqual(await tools.call("hash", { text: "abc" }), {
      digest: "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    });
    assert.deepEqual(await tools.call("hash", { text: "é" }), {
      digest: "sha256:4a99557e4033c3539de2eb65472017cad5f9557f7a0625a09f1c3f6e2ba69c4c",
    });
    await assert.rejects(tools.call("hash", { text: 5 }), { code: "tool_input" });
  });

  await t.step("now reads the injected clock", async () => {
    assert.deepEqual(await tools.call("now", {}), {
      epochMs: 86_400_000,
      iso: "1970-01-02T00:00:00.000Z",
    });
    await assert.rejects(tools.call("now", { zone: "UTC" }), { code: "tool_input" });
    const real = await new ToolRegistry({ tools: [createNowTool()] }).call("now", {});
    assert.ok(Math.abs((real as { epochMs: number }).epochMs - Date.now()) < 60_000);
  });
});
