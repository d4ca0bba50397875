// Start-up loads only what a command needs: cli.ts imports no command module, and an
// `events` command loads no runtime, toolkit or auth code beyond what the vault itself uses.
// Proved on Deno's own module graph (`deno info --json`), following the imports that run
// at load time (code, not type-only, and not dynamic).
import assert from "node:assert/strict";
import { Command } from "commander";
import { COMMAND_GROUPS, invokedGroup } from "../../cli/_commands.ts";
import { DEFAULT_DB } from "../../cli.ts";
import { DEFAULT_VAULT_PATH } from "../../vault/mod.ts";

const ROOT = new URL("../../", import.meta.url);

interface InfoModule {
  specifier: string;
  dependencies?: { code?: { specifier?: string }; isDynamic?: boolean }[];
}

async function moduleGraph(entry: string): Promise<Map<string, InfoModule>> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", entry],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(output.success, new TextDecoder().decode(output.stderr));
  const info = JSON.parse(new TextDecoder().decode(output.stdout));
  return new Map((info.modules as InfoModule[]).map((m) => [m.specifier, m]));
}

/** The local files loaded when these modules load, as paths relative to the root. */
function loaded(graph: Map<string, InfoModule>, entries: string[]): Set<string> {
  const seen = new Set<string>();
  const todo = entries.map((path) => new URL(path, ROOT).href);
  while (todo.length > 0) {
    const specifier = todo.pop()!;
    if (seen.has(specifier)) continue;
    seen.add(specifier);
    for (const dep of graph.get(specifier)?.dependencies ?? []) {
      if (!dep.isDynamic && dep.code?.specifier !== undefined) todo.push(dep.code.specifier);
    }
  }
  return new Set(
    [...seen].filter((s) => s.startsWith(ROOT.href)).map((s) => s.slice(ROOT.href.length)),
  );
}

Deno.test("lazy command loading", async (t) => {
  const graph = await moduleGraph("cli.ts");

  await t.step("cli.ts itself loads no command module and no vault code", () => {
    const files = loaded(graph, ["cli.ts"]);
    for (const group of COMMAND_GROUPS) {
      assert.ok(!files.has(`cli/${group.name}.ts`), `cli.ts loads cli/${group.name}.ts`);
    }
    assert.deepEqual([...files].filter((f) => f.startsWith("vault/")), []);
    assert.ok(files.has("cli/_commands.ts"));
    assert.equal(DEFAULT_DB, DEFAULT_VAULT_PATH);
  });

  await t.step("events commands load no runtime, toolkit or auth code", () => {
    const files = loaded(graph, ["cli.ts", "cli/events.ts", "vault/open_vault.ts"]);
    const vault = loaded(graph, ["vault/mod.ts"]);
    const foreign = [...files].filter((f) =>
      f === "mod.ts" || f.startsWith("auth/") || f.startsWith("toolkit/") ||
      (f.startsWith("runtime/") && !vault.has(f))
    );
    assert.deepEqual(foreign, []);
    assert.ok(files.has("vault/kv_store.ts"));
  });

  await t.step("the check sees what a command module loads", () => {
    const files = loaded(graph, ["cli/auth.ts"]);
    assert.ok([...files].some((f) => f.startsWith("auth/")));
    assert.ok(loaded(graph, ["cli/demo.ts"]).has("runtime/runtime.ts"));
  });

  await t.step("each command's summary is what its module registers", async () => {
    for (const group of COMMAND_GROUPS) {
      const program = new Command("toka");
      (await group.load())(program, () => Promise.resolve());
      const command = program.commands.find((c) => c.name() === group.name);
      assert.equal(command?.description(), group.summary, group.name);
    }
  });

  await t.step("the invoked command is found past global options and their values", () => {
    const program = new Command("toka").option("--db <location>").option("--json");
    const cases: [string[], string | undefined][] = [
      [[], undefined],
      [["--json"], undefined],
      [["events", "list"], "events"],
      [["--db", "auth", "events", "stats"], "events"],
      [["--db=x.kv", "--json", "auth", "status"], "auth"],
      [["help", "events"], "events"],
      [["--json", "help"], undefined],
      [["--", "demo"], "demo"],
    ];
    for (const [args, expected] of cases) {
      assert.equal(invokedGroup(program, args), expected, args.join(" "));
    }
  });
});
