// Which folder may import which (DESIGN.md §2, issue 9): features meet only
// through runtime/'s public files, shared helpers live in internal/, and no file
// reaches into another folder's `_private.ts`.
import assert from "node:assert/strict";

const ROOT = new URL("../", import.meta.url);
const FEATURES = ["vault", "auth", "toolkit"];

/** Every relative import and re-export specifier in `source`, comments removed. */
export function importsOf(source: string): string[] {
  const code = source
    .replace(/\/\*[\s\S]*?\*\//g, "")
    .replace(/^\s*\/\/.*$/gm, "");
  const found: string[] = [];
  const patterns = [
    /\b(?:import|export)\s+(?:type\s+)?[^;"']*?\sfrom\s*["']([^"']+)["']/g,
    /\bimport\s*["']([^"']+)["']/g,
    /\bimport\s*\(\s*["']([^"']+)["']\s*\)/g,
  ];
  for (const re of patterns) {
    for (const m of code.matchAll(re)) found.push(m[1]);
  }
  return found.filter((s) => s.startsWith("."));
}

/** The top folder ("" for a root file) and the file name of a path relative to the root. */
function place(path: string): { folder: string; name: string } {
  const parts = path.split("/");
  return parts.length === 1
    ? { folder: "", name: parts[0] }
    : { folder: parts[0], name: parts[parts.length - 1] };
}

/** The reason an import from `from` to `to` (root-relative paths) breaks the layering, if it does. */
export function violation(from: string, to: string): string | undefined {
  const a = place(from);
  const b = place(to);
  // cli.ts and cli/ are one program.
  const group = (p: { folder: string; name: string }) =>
    p.folder === "" && p.name === "cli.ts" ? "cli" : p.folder;
  const ga = group(a);
  const gb = group(b);
  if (ga === gb) return undefined;
  if (b.name.startsWith("_")) return `imports another folder's private file`;
  if (ga === "runtime" && gb !== "internal") return "runtime/ imports only runtime/ and internal/";
  if (ga === "internal") return "internal/ imports nothing outside internal/";
  if (FEATURES.includes(ga) && gb !== "runtime" && gb !== "internal") {
    return `${ga}/ imports only runtime/ and internal/`;
  }
  return undefined;
}

async function* tsFiles(dir: URL, prefix: string): AsyncGenerator<string> {
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isFile && entry.name.endsWith(".ts")) yield prefix + entry.name;
  }
}

Deno.test("layering", async (t) => {
  await t.step("the import parser sees imports, re-exports and nothing in comments", () => {
    const source = [
      `import { a } from "./a.ts";`,
      `import type { B } from "../runtime/b.ts";`,
      `export { c } from "../internal/c.ts";`,
      `import {\n  d,\n  e,\n} from "../vault/_d.ts";`,
      `import "./side.ts";`,
      `// import { x } from "../auth/_x.ts";`,
      `/** import { y } from "../auth/_y.ts"; */`,
      `import canonicalize from "canonicalize";`,
    ].join("\n");
    assert.deepEqual(importsOf(source).sort(), [
      "../internal/c.ts",
      "../runtime/b.ts",
      "../vault/_d.ts",
      "./a.ts",
      "./side.ts",
    ]);
  });

  await t.step("the rules refuse what they should", () => {
    assert.equal(violation("vault/a.ts", "runtime/event_store.ts"), undefined);
    assert.equal(violation("vault/a.ts", "internal/ids.ts"), undefined);
    assert.ok(violation("vault/a.ts", "runtime/_ids.ts"));
    assert.ok(violation("toolkit/tool.ts", "auth/permissions.ts"));
    assert.ok(violation("runtime/a.ts", "vault/mod.ts"));
    assert.ok(violation("internal/a.ts", "runtime/errors.ts"));
    assert.ok(violation("cli/auth.ts", "auth/_jws.ts"));
    assert.ok(violation("cli.ts", "auth/_redact.ts"));
    assert.equal(violation("cli.ts", "cli/_io.ts"), undefined);
    assert.equal(violation("cli/demo.ts", "mod.ts"), undefined);
    assert.ok(violation("mod.ts", "vault/_event.ts"));
  });

  await t.step("every library and CLI file keeps them", async () => {
    const files: string[] = ["mod.ts", "cli.ts"];
    for (const folder of ["runtime", "vault", "auth", "toolkit", "internal", "cli"]) {
      try {
        for await (const f of tsFiles(new URL(`${folder}/`, ROOT), `${folder}/`)) files.push(f);
      } catch (error) {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      }
    }
    assert.ok(files.length > 40, `expected the library's files, found ${files.length}`);
    const broken: string[] = [];
    for (const file of files) {
      const source = await Deno.readTextFile(new URL(file, ROOT));
      for (const spec of importsOf(source)) {
        const target = new URL(spec, new URL(file, ROOT)).href.slice(ROOT.href.length);
        const why = violation(file, target);
        if (why) broken.push(`${file} -> ${target}: ${why}`);
      }
    }
    assert.deepEqual(broken, []);
  });
});
