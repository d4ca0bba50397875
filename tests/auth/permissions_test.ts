import assert from "node:assert/strict";
import { assertPermission, isValidPermission, permits } from "../../auth/mod.ts";

Deno.test("permissions", async (t) => {
  await t.step("valid and invalid syntax", () => {
    for (const p of ["*", "tool:echo:invoke", "events:read:*", "tool:*:invoke", "events:read"]) {
      assert.equal(isValidPermission(p), true, p);
    }
    for (
      const p of [
        "",
        "tool",
        "tool:",
        ":read",
        "a:b:c:d",
        "tool:ec*:invoke",
        "tool:echo invoke",
        "x".repeat(30) + ":" + "y".repeat(34),
        42,
        null,
      ]
    ) {
      assert.equal(isValidPermission(p), false, String(p));
    }
    assert.throws(() => assertPermission("tool"), {
      name: "TypeError",
      message:
        `Invalid permission "tool": expected "resource:action[:target]" of at most 64 characters`,
    });
  });

  await t.step("exact and wildcard grants", () => {
    assert.equal(permits(["tool:echo:invoke"], "tool:echo:invoke"), true);
    assert.equal(permits(["tool:*:invoke"], "tool:echo:invoke"), true);
    assert.equal(permits(["events:read:*"], "events:read:task.created"), true);
    assert.equal(permits(["*"], "anything:at:all"), true);
    assert.equal(permits(["tool:*:invoke"], "tool:echo:describe"), false);
    assert.equal(permits(["events:read:*"], "events:read"), false, "a wildcard is one segment");
    assert.equal(permits(["events:read"], "events:read:x"), false);
    assert.equal(permits([], "tool:echo:invoke"), false);
  });

  await t.step("wildcard requests need a wildcard grant (attenuation rule)", () => {
    assert.equal(permits(["tool:*:invoke"], "tool:*:invoke"), true);
    assert.equal(permits(["tool:echo:invoke"], "tool:*:invoke"), false);
    assert.equal(permits(["tool:*:*"], "*"), false);
    assert.equal(permits(["*"], "*"), true);
  });
});
