// The public API as `deno doc --json` sees it, against the committed list in
// exported_names.json: a removal or rename is then a deliberate edit of that list (issue 25).
import assert from "node:assert/strict";

const ROOT = new URL("../", import.meta.url);

/** The names `deno doc --json` reports for one entry point, sorted. */
async function exportedNames(entry: string): Promise<string[]> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["doc", "--json", entry],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  const doc = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    nodes: Record<string, { symbols?: { name: string }[] }>;
  };
  const names = Object.values(doc.nodes).flatMap((n) => (n.symbols ?? []).map((s) => s.name));
  return [...new Set(names)].sort();
}

Deno.test("exported names", async (t) => {
  const config = JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT))) as {
    exports: Record<string, string>;
  };
  const expected = JSON.parse(
    await Deno.readTextFile(new URL("./exported_names.json", import.meta.url)),
  ) as Record<string, string[]>;
  await t.step("every entry point has a committed list", () => {
    assert.deepEqual(Object.keys(config.exports).sort(), Object.keys(expected).sort());
  });
  for (const [entry, path] of Object.entries(config.exports)) {
    await t.step(`${entry} exports exactly the committed names`, async () => {
      assert.deepEqual(await exportedNames(path), [...expected[entry]].sort());
    });
  }
});
