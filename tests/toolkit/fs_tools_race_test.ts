// The fs tools must not follow a symbolic link swapped in between a check and
// an open, rename or delete: the worker of the storage("local") race test
// swaps a folder and a file under the root for links out of it while the
// tools read, write and delete through them.
import assert from "node:assert/strict";
import { join } from "node:path";
import { createFsTools, ToolRegistry } from "../../toolkit/mod.ts";

const SWAPPER = new URL("../runtime/_symlink_swapper.ts", import.meta.url);
const RACE_MS = 3000;
const MAX_OPS = 400_000;
const MAX_ROUNDS = 10;

Deno.test("fs tools never follow a link swapped in during a call", async () => {
  const dir = await Deno.realPath(await Deno.makeTempDir());
  try {
    const root = join(dir, "root");
    const outside = join(dir, "outside");
    await Deno.mkdir(join(root, "d"), { recursive: true });
    await Deno.mkdir(outside);
    await Deno.writeTextFile(join(root, "d", "inside.txt"), "inside");
    await Deno.writeTextFile(join(root, "f"), "inside");
    await Deno.writeTextFile(join(outside, "inside.txt"), "SECRET");
    await Deno.writeTextFile(join(outside, "del.txt"), "SECRET");
    const tools = new ToolRegistry({ tools: createFsTools({ root }) });

    const worker = new Worker(SWAPPER, { type: "module" });
    let done = false;
    let ops = 0;
    let refused = 0;
    const leaks: string[] = [];
    const messages = new Set<string>();
    const read = async (path: string) =>
      ((await tools.call("fs.read", { path })) as { content: string }).content;
    const loop = async (n: number) => {
      for (let i = 0; !done && ops < MAX_OPS; i++, ops++) {
        try {
          switch (i % 7) {
            case 0:
              if (await read("d/inside.txt") === "SECRET") leaks.push("read d/");
              break;
            case 1:
              if (await read("f") === "SECRET") leaks.push("read f");
              break;
            case 2:
              await tools.call("fs.write", { path: `d/new-${n}-${i % 20}.txt`, content: "x" });
              break;
            case 3:
              await tools.call("fs.write", { path: `d/sub-${i % 3}/x.txt`, content: "x" });
              break;
            case 4:
              await tools.call("fs.delete", { path: "d/del.txt" });
              break;
            case 5:
              await tools.call("fs.write", { path: "d/del.txt", content: "x" });
              break;
            case 6:
              // Links are skipped, never entered; nothing to compare with outside here.
              await tools.call("fs.list", { path: "d" });
              break;
          }
        } catch (error) {
          const message = error instanceof Error ? error.message : String(error);
          if (message.includes("goes through a symbolic link")) refused++;
          messages.add(message);
        }
        // Let the worker's replies through between calls.
        if (i % 50 === 49) await new Promise((resolve) => setTimeout(resolve, 0));
      }
    };
    // Rounds of RACE_MS until the race has really happened (links swapped in,
    // calls refused), at most MAX_ROUNDS: a loaded machine needs more.
    const rounds = (async () => {
      let swaps = 0;
      for (let round = 0; round < MAX_ROUNDS; round++) {
        swaps = await new Promise<number>((resolve) => {
          worker.onmessage = (e) => resolve(e.data);
          worker.postMessage({ root, outside, ms: RACE_MS });
        });
        if (swaps > 10 && ops > 100 && refused > 0) break;
      }
      done = true;
      return swaps;
    })();
    const [swaps] = await Promise.all([rounds, ...[0, 1, 2, 3].map(loop)]);
    done = true;
    worker.terminate();

    assert.ok(swaps > 10, `the worker swapped links in (${swaps} swaps)`);
    assert.ok(ops > 100, `the tools worked meanwhile (${ops} calls)`);
    assert.ok(refused > 0, "paths with a link in them were refused");
    for (const message of messages) {
      assert.ok(!message.includes(dir), message);
      assert.ok(!message.includes("\n"), message);
    }
    assert.deepEqual(leaks, [], "nothing read from outside");
    const names = (await Array.fromAsync(Deno.readDir(outside), (e) => e.name)).sort();
    assert.deepEqual(names, ["del.txt", "inside.txt"], "nothing made outside");
    for (const name of names) {
      assert.equal(await Deno.readTextFile(join(outside, name)), "SECRET", `${name} unchanged`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
