// Issue 13: no library code touches the `Deno` global outside the platform
// module (internal/platform.ts), so the package runs on Node; and Deno never
// loads @deno/kv, which only Node imports there.
import assert from "node:assert/strict";
import { readdir, readFile } from "node:fs/promises";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const PLATFORM = "internal/platform.ts";
// What deno.json publishes: the CLI, tests, benchmarks and scripts are Deno-only.
const LIBRARY = ["mod.ts", "auth", "internal", "runtime", "toolkit", "vault"];

/** Source without comments, string and template contents kept apart from code. */
export function codeOf(source: string): string {
  // Comments go; strings stay (a string holding "Deno." is code that might reach it).
  return source.replace(
    /("(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'|`(?:\\.|[^`\\])*`)|\/\*[\s\S]*?\*\/|\/\/[^\n]*/g,
    (match, string: string | undefined) =>
      string !== undefined ? match : match.replace(/[^\n]/g, " "),
  );
}

/** Each line that names the `Deno` global, as "file:line: text". */
export function denoReferences(file: string, source: string): string[] {
  const lines = codeOf(source).split("\n");
  const found: string[] = [];
  lines.forEach((line, i) => {
    if (/(?<![\w$.])Deno\s*[.[]|globalThis\s*(?:\.\s*Deno|\[\s*["']Deno)/.test(line)) {
      found.push(`${file}:${i + 1}: ${line.trim()}`);
    }
  });
  return found;
}

async function libraryFiles(): Promise<string[]> {
  const files: string[] = [];
  for (const entry of LIBRARY) {
    if (entry.endsWith(".ts")) {
      files.push(entry);
      continue;
    }
    const names = await readdir(join(ROOT, entry), { recursive: true });
    for (const name of names) {
      if (name.endsWith(".ts")) files.push(relative(ROOT, join(ROOT, entry, name)));
    }
  }
  return files.sort();
}

Deno.test("no library code names the Deno global outside internal/platform.ts", async (t) => {
  await t.step("the scanner sees code and ignores comments", () => {
    const source = [
      "// Deno.env in a comment",
      "/** @example Deno.openKv() */",
      "const kv: Deno.Kv = x;",
      "const url = 'https://x/y'; Deno.exit(1);",
      "globalThis.Deno?.env;",
      "const s = `a ${b} c`; const noDeno = notDeno.x; myDeno.y;",
    ].join("\n");
    assert.deepEqual(denoReferences("f.ts", source), [
      "f.ts:3: const kv: Deno.Kv = x;",
      "f.ts:4: const url = 'https://x/y'; Deno.exit(1);",
      "f.ts:5: globalThis.Deno?.env;",
    ]);
  });

  await t.step("none in the library", async () => {
    const found: string[] = [];
    const files = await libraryFiles();
    assert.ok(files.includes(PLATFORM) && files.includes("vault/open_vault.ts"));
    for (const file of files) {
      if (file === PLATFORM) continue;
      found.push(...denoReferences(file, await readFile(join(ROOT, file), "utf8")));
    }
    assert.deepEqual(found, [], `use ${PLATFORM} or a node: built-in instead`);
  });

  await t.step("none of the newer built-ins Node 20 lacks", async () => {
    const found: string[] = [];
    for (const file of await libraryFiles()) {
      const lines = codeOf(await readFile(join(ROOT, file), "utf8")).split("\n");
      lines.forEach((line, i) => {
        if (
          /Promise\s*\.\s*withResolvers|Array\s*\.\s*fromAsync|\.(?:from|to)Base64\b/.test(line)
        ) {
          found.push(`${file}:${i + 1}: ${line.trim()}`);
        }
      });
    }
    assert.deepEqual(found, [], "Node 20 has none of them: see internal/deferred.ts");
  });

  await t.step("the platform module itself names it", async () => {
    const source = await readFile(join(ROOT, PLATFORM), "utf8");
    assert.ok(denoReferences(PLATFORM, source).length > 0);
  });
});

Deno.test("Deno's module graph of the package holds no @deno/kv code", async () => {
  // The platform module imports it by a variable, under Node only, so that neither
  // `deno bundle` nor `deno compile` pulls its native module in.
  for (const entry of ["mod.ts", "cli.ts"]) {
    const info = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json", entry],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.ok(info.success, new TextDecoder().decode(info.stderr));
    const graph = JSON.parse(new TextDecoder().decode(info.stdout)) as {
      modules: { specifier: string; dependencies?: { code?: { specifier?: string } }[] }[];
    };
    assert.ok(graph.modules.some((m) => m.specifier.endsWith("/internal/platform.ts")));
    const code = graph.modules.flatMap((m) => m.dependencies ?? [])
      .filter((d) => d.code?.specifier?.includes("@deno/kv"));
    assert.deepEqual(code, [], entry);
    const modules = graph.modules.filter((m) => m.specifier.includes("@deno/kv"));
    assert.deepEqual(modules, [], entry);
  }
});
