// `toka run` loads a module with the import map of the project it lives in (its nearest
// deno.json), as `deno check` there does. Deno fixes a process's import map when it starts,
// so `toka run` starts itself again with a map that adds each project's imports, scoped to
// that project's folder, to Toka's own.
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import denoJson from "../deno.json" with { type: "json" };
import { TokaError } from "../runtime/errors.ts";

/** Set in the restarted `toka run`: it uses the map it was given and starts nothing. */
export const RESTARTED_ENV = "TOKA_RUN_RESTARTED";

/** An import map, as `deno run --import-map` reads it. */
export interface ImportMap {
  /** Toka's own imports, for every module. */
  imports: Record<string, string>;
  /** Each project's imports, for the modules in its folder. */
  scopes: Record<string, Record<string, string>>;
}

const ROOT = new URL("../", import.meta.url);
const OWN_CONFIG = new URL("deno.json", ROOT).href;

/**
 * The import map that resolves `modules` as their projects do, or `undefined` when no
 * project maps anything (then Toka's own map serves).
 *
 * @param modules The modules' URLs.
 * @returns The map, or `undefined`.
 * @throws {TokaError} (`module_unusable`) When a project's deno.json cannot be read or parsed.
 */
export async function projectImportMap(modules: string[]): Promise<ImportMap | undefined> {
  const scopes: Record<string, Record<string, string>> = {};
  for (const module of modules) {
    if (!module.startsWith("file:")) continue;
    const config = await nearestConfig(dirname(fileURLToPath(module)));
    if (config === undefined || pathToFileURL(config).href === OWN_CONFIG) continue;
    let parsed: { imports?: Record<string, string> };
    try {
      parsed = JSON.parse(await Deno.readTextFile(config));
    } catch (error) {
      // A deno.jsonc with comments is not read (no JSONC parser here): Toka's own map serves.
      if (config.endsWith(".jsonc")) continue;
      throw new TokaError(
        "module_unusable",
        `Cannot read "${config}": ${(error as Error).message.split("\n")[0]}`,
      );
    }
    const imports = parsed.imports ?? {};
    if (Object.keys(imports).length === 0) continue;
    const base = pathToFileURL(config);
    const scope: Record<string, string> = {};
    for (const [key, value] of Object.entries(imports)) {
      scope[key] = /^\.{0,2}\//.test(value) ? new URL(value, base).href : value;
    }
    // The agents run on the host's Toka, whatever version the project names for its editor.
    Object.assign(scope, selfImports());
    scopes[new URL("./", base).href] = scope;
  }
  if (Object.keys(scopes).length === 0) return undefined;
  return { imports: { ...denoJson.imports, ...selfImports() }, scopes };
}

// `@toka/runtime` and its subpaths: Deno resolves a package's own name from its config, which
// the restarted process does not load.
function selfImports(): Record<string, string> {
  const map: Record<string, string> = {};
  for (const [path, file] of Object.entries(denoJson.exports)) {
    map[`${denoJson.name}${path.slice(1)}`] = new URL(file, ROOT).href;
  }
  return map;
}

async function nearestConfig(dir: string): Promise<string | undefined> {
  for (;;) {
    for (const name of ["deno.json", "deno.jsonc"]) {
      const path = join(dir, name);
      try {
        if ((await Deno.stat(path)).isFile) return path;
      } catch (error) {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      }
    }
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

/**
 * Whether this process can start `toka` again with another import map: it is the
 * checkout's or an installed `cli.ts` (not a compiled binary, nor a test calling `main`),
 * allowed to run subprocesses, and not already restarted.
 *
 * @param env Reads an environment variable.
 * @returns Whether {@linkcode runRestarted} may be used.
 */
export function canRestart(env: (name: string) => string | undefined): boolean {
  return !Deno.build.standalone && env(RESTARTED_ENV) === undefined &&
    Deno.mainModule === new URL("cli.ts", ROOT).href &&
    Deno.permissions.querySync({ name: "run" }).state === "granted";
}

/**
 * Runs this `toka` command again in a subprocess with `map`, and waits for it. The child
 * has its own process group: the first interrupt or SIGTERM is passed on once (it stops
 * gracefully), and when this process exits (a second one), the child gets another.
 *
 * @param map The import map.
 * @param signal Aborted by the first interrupt.
 * @returns The child's exit code.
 */
export async function runRestarted(map: ImportMap, signal?: AbortSignal): Promise<number> {
  // A data: URL, not a temporary file: a second signal exits this process at once, and would
  // leave the file behind.
  const mapUrl = `data:application/json,${encodeURIComponent(JSON.stringify(map))}`;
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--unstable-kv",
      "--quiet",
      "--no-config",
      "--no-lock",
      "--import-map",
      mapUrl,
      Deno.mainModule,
      ...Deno.args,
    ],
    env: { [RESTARTED_ENV]: "1" },
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
    detached: true,
  }).spawn();
  const stop = () => {
    try {
      child.kill("SIGTERM");
    } catch {
      // Already gone.
    }
  };
  if (signal?.aborted) stop();
  signal?.addEventListener("abort", stop, { once: true });
  globalThis.addEventListener("unload", stop);
  try {
    return (await child.status).code;
  } finally {
    signal?.removeEventListener("abort", stop);
    globalThis.removeEventListener("unload", stop);
  }
}
