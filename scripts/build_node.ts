// `deno run -A scripts/build_node.ts`: builds the package for Node into
// .node-build/, the nearest local equivalent of what JSR serves to npm clients
// (`npx jsr add @toka/runtime`): every module transpiled on its own to ES
// module JavaScript, `.ts` imports rewritten to `.js`, import-map and `npm:`
// specifiers rewritten to plain package names, a package.json whose
// `exports` mirror deno.json's and whose `dependencies` are the npm packages
// the code imports (with `@deno/kv`), then `npm install` there.
//
// Besides the published modules it builds tests/node/ (but not its Deno-side
// `*_test.ts` files) and bench/node_*.ts, and whatever they import. They import
// the package by its name (`@toka/runtime/vault`), as a Node user does; Node
// resolves that to the folder itself (a package may import itself by name).
//
// `npm install` runs only when the dependencies changed, so a rebuild takes
// a second or two.
import ts from "npm:typescript@5.9.3";
import { mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { dirname, join, normalize, relative } from "node:path";
import { fileURLToPath } from "node:url";

/** Where the build goes, relative to the repository root (ignored by git and by `deno publish`). */
export const OUT_DIR = ".node-build";

/** What {@linkcode buildNode} did. */
export interface BuildResult {
  /** The absolute path of the built package. */
  outDir: string;
  /** How many modules were transpiled. */
  modules: number;
  /** The npm dependencies written to package.json. */
  dependencies: Record<string, string>;
  /** Whether `npm install` ran (false when the dependencies had not changed). */
  installed: boolean;
}

interface DenoJson {
  name: string;
  version: string;
  exports: Record<string, string>;
  imports: Record<string, string>;
}

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const STAMP = ".install-stamp.json";

/**
 * Builds the Node package into {@linkcode OUT_DIR} and installs its npm dependencies.
 *
 * @param root The repository root; this script's parent folder by default.
 * @returns What was built.
 * @throws {Error} When a module cannot be read or `npm install` fails, with npm's output.
 */
export async function buildNode(root: string = ROOT): Promise<BuildResult> {
  const config = JSON.parse(await readFile(join(root, "deno.json"), "utf8")) as DenoJson;
  const outDir = join(root, OUT_DIR);
  const entries = [
    ...Object.values(config.exports),
    ...(await listTs(root, "tests/node")).filter((f) => !f.endsWith("_test.ts")),
    ...(await listTs(root, "bench")).filter((f) => /^bench\/node_[^/]*\.ts$/.test(f)),
  ].map((f) => normalize(f));

  const dependencies: Record<string, string> = {
    "@deno/kv": npmTarget(config.imports["@deno/kv"]).version,
  };
  const outputs = new Map<string, string>();
  const queue = [...entries];
  const seen = new Set(queue);
  while (queue.length > 0) {
    const file = queue.shift()!;
    const source = await readFile(join(root, file), "utf8");
    if (file.endsWith(".json")) {
      outputs.set(file, source);
      continue;
    }
    const rename = new Map<string, string>();
    for (const { fileName: spec } of ts.preProcessFile(source, true, true).importedFiles) {
      if (spec.startsWith(".")) {
        const target = normalize(join(dirname(file), spec));
        if (!seen.has(target)) {
          seen.add(target);
          queue.push(target);
        }
        continue;
      }
      const mapped = config.imports[spec] ?? (spec.startsWith("npm:") ? spec : undefined);
      if (mapped === undefined) continue; // node:*, or the package's own name
      const { name, version, path } = npmTarget(mapped);
      dependencies[name] = version;
      if (name + path !== spec) rename.set(spec, name + path);
    }
    outputs.set(file.replace(/\.ts$/, ".js"), transpile(file, source, rename));
  }

  // Start from an empty folder (but keep node_modules) so a deleted module leaves nothing behind.
  await mkdir(outDir, { recursive: true });
  for (const name of await readdir(outDir)) {
    if (name !== "node_modules" && name !== STAMP && name !== "package-lock.json") {
      await rm(join(outDir, name), { recursive: true });
    }
  }
  for (const [file, text] of outputs) {
    await mkdir(dirname(join(outDir, file)), { recursive: true });
    await writeFile(join(outDir, file), text);
  }
  const exports = Object.fromEntries(
    Object.entries(config.exports).map((
      [key, file],
    ) => [key, "./" + normalize(file).replace(/\.ts$/, ".js")]),
  );
  const pkg = {
    name: config.name,
    version: config.version,
    type: "module",
    private: true,
    exports,
    dependencies: sortKeys(dependencies),
    engines: { node: ">=20" },
  };
  await writeFile(join(outDir, "package.json"), JSON.stringify(pkg, null, 2) + "\n");

  const stamp = JSON.stringify(pkg.dependencies);
  const previous = await readFile(join(outDir, STAMP), "utf8").catch(() => "");
  const haveModules = await readdir(join(outDir, "node_modules")).then(() => true, () => false);
  let installed = false;
  if (previous !== stamp || !haveModules) {
    const npm = await new Deno.Command("npm", {
      // --engine-strict: a dependency that wants a newer Node than the package's own
      // engines fails the build here, instead of a warning (EBADENGINE) for users.
      args: [
        "install",
        "--engine-strict",
        "--no-audit",
        "--no-fund",
        "--prefer-offline",
        "--loglevel=error",
      ],
      cwd: outDir,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output().catch((error) => {
      throw new Error(`Cannot run npm to install the Node build's dependencies: ${error.message}`);
    });
    if (!npm.success) {
      const text = new TextDecoder().decode(npm.stderr) + new TextDecoder().decode(npm.stdout);
      throw new Error(`npm install failed in ${OUT_DIR}:\n${text}`);
    }
    await writeFile(join(outDir, STAMP), stamp);
    installed = true;
  }
  return { outDir, modules: outputs.size, dependencies: pkg.dependencies, installed };
}

/** `npm:name@version/path` as its parts. */
function npmTarget(specifier: string): { name: string; version: string; path: string } {
  const match = /^npm:(@[^/@]+\/[^/@]+|[^/@]+)@([^/]+)(\/.*)?$/.exec(specifier ?? "");
  if (match === null) {
    throw new Error(`Cannot build for Node: "${specifier}" is not an npm: specifier`);
  }
  return { name: match[1], version: match[2], path: match[3] ?? "" };
}

function transpile(file: string, source: string, rename: Map<string, string>): string {
  const { outputText, diagnostics } = ts.transpileModule(source, {
    fileName: file,
    reportDiagnostics: true,
    compilerOptions: {
      module: ts.ModuleKind.ESNext,
      target: ts.ScriptTarget.ES2022, // Node 20; `using` is lowered
      rewriteRelativeImportExtensions: true,
      isolatedModules: true,
      sourceMap: false,
    },
  });
  if (diagnostics !== undefined && diagnostics.length > 0) {
    const first = ts.flattenDiagnosticMessageText(diagnostics[0].messageText, "\n");
    throw new Error(`Cannot transpile ${file}: ${first}`);
  }
  let text = outputText;
  for (const [from, to] of rename) {
    text = text.replaceAll(`"${from}"`, `"${to}"`).replaceAll(`'${from}'`, `'${to}'`);
  }
  return text;
}

async function listTs(root: string, folder: string): Promise<string[]> {
  const names = await readdir(join(root, folder)).catch(() => [] as string[]);
  return names.filter((n) => n.endsWith(".ts")).map((n) => relative(root, join(root, folder, n)));
}

function sortKeys(record: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => a.localeCompare(b)));
}

if (import.meta.main) {
  const result = await buildNode();
  console.log(
    `Built ${result.modules} modules into ${OUT_DIR}/` +
      (result.installed ? " and installed its npm dependencies" : ""),
  );
}
