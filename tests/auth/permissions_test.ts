import assert from "node:assert/strict";
import { assertPermission, isValidPermission, permits } from "../../auth/mod.ts";
import { permitsPrefix } from "../../internal/permissions.ts";

Deno.test("permissions", async (t) => {
  await t.step("valid and invalid syntax", () => {
    for (
      const p of [
        "*",
        "tool:echo:invoke",
        "events:read:*",
        "tool:*:invoke",
        "events:read",
        "tool:fs.*:invoke",
        "tool:weather.v2.*:invoke",
        "events:read:task.*",
      ]
    ) {
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
        "tool:fs.*.x:invoke",
        "tool:fs.**:invoke",
        "tool:.*:invoke",
        "tool:*fs:invoke",
        "tool:fs*:invoke",
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

  await t.step("a family wildcard (fs.*) grants every name under that prefix", () => {
    // Issue 19 item 8: the README speaks of "an agent granted fs.*".
    for (const w of ["tool:fs.read:invoke", "tool:fs.write:invoke", "tool:fs.a.b:invoke"]) {
      assert.equal(permits(["tool:fs.*:invoke"], w), true, w);
    }
    for (
      const w of [
        "tool:fs:invoke",
        "tool:fsx.read:invoke",
        "tool:fs.read:describe",
        "tool:http.fetch:invoke",
        "tool:xfs.read:invoke",
      ]
    ) assert.equal(permits(["tool:fs.*:invoke"], w), false, w);
    assert.equal(permits(["events:read:task.*"], "events:read:task.created"), true);
    assert.equal(permits(["events:read:task.*"], "events:read:tasks.created"), false);
  });

  await t.step("a family narrows to a member or a sub-family, never the reverse", () => {
    assert.equal(permits(["tool:fs.*:invoke"], "tool:fs.*:invoke"), true);
    assert.equal(permits(["tool:fs.*:invoke"], "tool:fs.read:invoke"), true);
    assert.equal(permits(["tool:a.*:invoke"], "tool:a.b.*:invoke"), true);
    assert.equal(permits(["tool:*:invoke"], "tool:fs.*:invoke"), true);
    assert.equal(permits(["tool:fs.read:invoke"], "tool:fs.*:invoke"), false);
    assert.equal(permits(["tool:a.b.*:invoke"], "tool:a.*:invoke"), false);
    assert.equal(permits(["tool:fs.*:invoke"], "tool:*:invoke"), false);
    assert.equal(permits(["tool:fs.*:invoke"], "tool:fsx.*:invoke"), false);
    assert.equal(permits(["tool:fs.*:invoke"], "*"), false);
  });

  await t.step("families in permitsPrefix's resource and action too", () => {
    assert.equal(permitsPrefix(["storage:vault.*:shared"], "storage:vault.x:shared/r"), true);
    assert.equal(permitsPrefix(["storage:vault.*:shared"], "storage:local:shared/r"), false);
  });

  await t.step("wildcard requests need a wildcard grant (attenuation rule)", () => {
    assert.equal(permits(["tool:*:invoke"], "tool:*:invoke"), true);
    assert.equal(permits(["tool:echo:invoke"], "tool:*:invoke"), false);
    assert.equal(permits(["tool:*:*"], "*"), false);
    assert.equal(permits(["*"], "*"), true);
  });
});
