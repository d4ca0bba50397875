// The README's `toka ui` section and docs/ui.md: what `toka ui` prints, the JSON API's shapes as
// the curl examples list them, and `toka events tree`'s example output.
import assert from "node:assert/strict";
import { join } from "node:path";
import { section } from "./_readme.ts";
import { main } from "../../cli.ts";
import { MemoryEventStore, openVault } from "../../vault/mod.ts";
import { KvCheckpointStore } from "../../runtime/mod.ts";
import { vaultKv } from "../../vault/kv_store.ts";
import { opener, recordingIo, unclosable } from "../cli/_fakes.ts";
import { seedRun } from "../cli/_ui_fixture.ts";

const block = (heading: string, language: string, n = 0) =>
  [...section(heading).matchAll(new RegExp("```" + language + "\\n([\\s\\S]*?)```", "g"))][n][1];

Deno.test("docs: toka ui", async (t) => {
  const dir = await Deno.makeTempDir();
  const db = join(dir, "toka.kv");
  const vault = await openVault(db);
  const run = await seedRun(vault);
  await new KvCheckpointStore(vaultKv(vault)!).save("worker", {
    position: run.done.position,
    failures: 0,
    updatedAt: run.done.timestamp,
    subscribe: ["task.created"],
  });
  await vault.close();
  const stop = new AbortController();
  const io = recordingIo({ signal: stop.signal });
  const serving = main(["--db", db, "ui"], io);
  try {
    await io.waitForLines(3);
    const url = io.outLines()[1].trim();

    await t.step("the README's and docs/ui.md's toka ui prints what their comments say", () => {
      for (
        const heading of [
          "## See it in a browser: `toka ui`",
          "# `toka ui`: the vault in a browser",
        ]
      ) {
        const comments = block(heading, "sh").split("\n")
          .filter((line) => line.includes("#"))
          .slice(0, heading.startsWith("##") ? 2 : 3)
          .map((line) => line.replace(/^.*?# /, ""));
        const expected = comments.map((line) =>
          new RegExp(
            `^${
              line.replace(/[.*+?^${}()|[\]\\]/g, "\\$&").replace("\\./\\.toka/toka\\.kv", ".+")
                .replace("<port>", "\\d+").replace("<token>", "[A-Za-z0-9_-]{43}")
            }$`,
          )
        );
        io.outLines().slice(0, expected.length).forEach((line, i) =>
          assert.match(line, expected[i])
        );
      }
      assert.equal(io.outLines()[0], `Serving ${db} (read-only) at`);
    });

    await t.step("the README's screenshot is there", async () => {
      assert.match(section("## See it in a browser: `toka ui`"), /!\[[^\]]+\]\(docs\/ui\.png\)/);
      const png = await Deno.readFile(new URL("../../docs/ui.png", import.meta.url));
      assert.equal(new TextDecoder().decode(png.subarray(1, 4)), "PNG");
    });

    await t.step("each curl example returns the keys its comment lists", async () => {
      const lines = block("## The JSON API", "sh").trim().split("\n");
      assert.equal(lines.length, 7);
      for (const line of lines) {
        const [, path, comment] = line.match(/^curl -s "\$\{URL\}(\S+)" +# (.*)$/)!;
        const response = await fetch(url + path.replace("<id>", run.created.id));
        assert.equal(response.status, 200, path);
        const body = await response.json();
        const keys = comment.match(/\w+/g)!;
        const value = comment.startsWith("[") ? body[0] : body;
        assert.deepEqual(Object.keys(value).sort(), [...keys].sort(), path);
      }
    });
  } finally {
    stop.abort();
    assert.equal(await serving, 0);
    await Deno.remove(dir, { recursive: true });
  }

  await t.step("the events tree example is what it prints", async () => {
    let now = Date.parse("2026-12-06T12:00:00.000Z");
    const store = new MemoryEventStore({ clock: () => now += 10 });
    const seeded = await seedRun(store);
    const out = recordingIo();
    const code = await main(["events", "tree", "1"], out, { openStore: opener(unclosable(store)) });
    assert.equal(code, 0);
    let text = out.out.join("");
    [seeded.created, seeded.invoked, seeded.completed, seeded.done].forEach((event, i) => {
      text = text.replace(event.id, `01JEXAMPLE00000000000000A${i + 1}`);
    });
    text = text.replaceAll(/"callId":"[^"]+"/g, '"callId":"…"');
    const example = block("## In the terminal", "text");
    assert.equal(`$ toka events tree 1\n${text}`, example);
  });
});
