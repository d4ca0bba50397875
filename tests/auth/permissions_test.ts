import assert from "node:assert/strict";
import { assertPermission, isValidPermission, permits } from "../../auth/mod.ts";
import { permitsPrefix } from "../../internal/permissions.ts";

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

  await t.step("a folder target also grants the folders below it (permitsPrefix)", () => {
    const wanted = "storage:vault:shared/reports";
    for (
      const g of [
        "*",
        "storage:vault:shared",
        "storage:vault:shared/reports",
        "storage:*:shared",
        "*:vault:shared",
        "storage:vault:*",
      ]
    ) assert.equal(permitsPrefix([g], wanted), true, g);
    for (
      const g of [
        "storage:vault:sharedx",
        "storage:vault:shared/reports/x",
        "storage:local:shared",
        "tool:vault:shared",
        "storage:vault",
        "storage:vault:shar",
      ]
    ) assert.equal(permitsPrefix([g], wanted), false, g);
    assert.equal(permitsPrefix([], wanted), false);
    // Only the target is a folder: no other segment matches by prefix.
    assert.equal(permitsPrefix(["storage:va:shared"], "storage:va/x:shared"), false);
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
