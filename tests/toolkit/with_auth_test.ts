import assert from "node:assert/strict";
import { KvTokenAuthority } from "../../auth/mod.ts";
import { CapabilityDeniedError, echoTool, hashTool, ToolRegistry } from "../../toolkit/mod.ts";

Deno.test("ToolRegistry with the real KvTokenAuthority", async (t) => {
  using kv = await Deno.openKv(":memory:");
  const authority = await KvTokenAuthority.open(kv, { vault: "test" });
  const tools = new ToolRegistry({ authority, tools: [echoTool, hashTool] });

  await t.step("a wildcard grant allows every tool", async () => {
    const token = await authority.issue({ sub: "agent/all", permissions: ["tool:*:invoke"] });
    assert.deepEqual(await tools.call("echo", { text: "a" }, { token }), { text: "a" });
    assert.ok(await tools.call("hash", { text: "a" }, { token }));
  });

  await t.step("a narrow grant allows only its tool", async () => {
    const token = await authority.issue({ sub: "agent/echo", permissions: ["tool:echo:invoke"] });
    assert.deepEqual(await tools.call("echo", { text: "b" }, { token }), { text: "b" });
    await assert.rejects(tools.call("hash", { text: "b" }, { token }), CapabilityDeniedError);
  });

  await t.step("the longest tool name can be called with its default permission", async () => {
    const name = "t".repeat(52);
    const info = tools.register({ ...echoTool, name, permissions: undefined });
    assert.deepEqual(info.permissions, [`tool:${name}:invoke`]);
    const token = await authority.issue({ sub: "agent/long", permissions: info.permissions });
    assert.deepEqual(await tools.call(name, { text: "d" }, { token }), { text: "d" });
  });

  await t.step("a missing or tampered token is refused", async () => {
    const token = await authority.issue({ sub: "agent/x", permissions: ["tool:*:invoke"] });
    const [header, claims] = token.split(".");
    const forged = `${header}.${claims}.${"A".repeat(43)}`;
    await assert.rejects(tools.call("echo", { text: "c" }), { code: "capability_denied" });
    await assert.rejects(tools.call("echo", { text: "c" }, { token: forged }), {
      code: "invalid_token",
    });
  });
});
