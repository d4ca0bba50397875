// The fs tools must not follow a symbolic link swapped in between a check and
// an open, rename or delete: the worker of the storage("local") race test
// swaps a folder and a file under the root for links out of it while the
// tools read, write and delete through them.
import assert from "node:assert/strict";
import { join } from "node:path";
import { symlinkRace } from "../runtime/storage/_symlink_race.ts";
import { createFsTools, ToolRegistry } from "../../toolkit/mod.ts";

Deno.test("fs tools never follow a link swapped in during a call", async () => {
  const dir = await Deno.realPath(await Deno.makeTempDir());
  try {
    const root = join(dir, "root");
    const outside = join(dir, "outside");
    await Deno.mkdir(outside);
    const tools = new ToolRegistry({ tools: createFsTools({ root }) });
    const { swaps, ops, refused, leaks, messages, changed, created } = await symlinkRace(
      {
        read: async (path) =>
          ((await tools.call("fs.read", { path })) as { content: string }).content,
        write: (path, content) => tools.call("fs.write", { path, content }),
        delete: (path) => tools.call("fs.delete", { path }),
        // Links are skipped, never entered; nothing to compare with outside here.
        list: (path) => tools.call("fs.list", { path }),
        refusal: (message) => message.includes("goes through a symbolic link"),
      },
      root,
      outside,
    );

    assert.ok(swaps > 10, `the worker swapped links in (${swaps} swaps)`);
    assert.ok(ops > 100, `the tools worked meanwhile (${ops} calls)`);
    assert.ok(refused > 0, "paths with a link in them were refused");
    for (const message of messages) {
      assert.ok(!message.includes(dir), message);
      assert.ok(!message.includes("\n"), message);
    }
    assert.deepEqual(leaks, [], "nothing read from outside");
    assert.deepEqual(
      { changed, created },
      { changed: [], created: [] },
      "nothing changed or made outside",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
