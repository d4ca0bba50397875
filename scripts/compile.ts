// `deno task compile [OUTPUT]`: builds the standalone `toka` (dist/toka by default).
//
// `deno compile` needs the `denort` runtime of this Deno version. A plain `deno compile` is
// tried first: it uses Deno's cached copy or downloads one from dl.deno.land. If that fails
// and DENORT_BIN names a denort binary, it is tried with that. Each build goes to a staging
// file that must answer `--version` with this Toka's version before it replaces OUTPUT, so
// OUTPUT is never left holding something that is not a working Toka; a stale one that does
// not answer so is removed. Exit 0 only when OUTPUT is a working Toka built now.
import { dirname, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { stripVTControlCharacters } from "node:util";
import denoJson from "../deno.json" with { type: "json" };

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const DEFAULT_OUTPUT = `dist/toka${Deno.build.os === "windows" ? ".exe" : ""}`;
const VERSION = `toka ${denoJson.version}`;
// A binary that hangs on --version is not Toka either.
const SMOKE_TIMEOUT_MS = 60_000;

/** One way of running `deno compile`. */
interface Attempt {
  /** How the report names it. */
  name: string;
  /** DENORT_BIN for this attempt; absent for the plain one, which must not see it. */
  denortBin?: string;
}

/** What one attempt came to: undefined when it built a working Toka, else why not. */
type Outcome = string | undefined;

/**
 * Where `deno compile` would take `denort` from without a download: `DENORT_BIN`,
 * or the copy Deno caches after one.
 *
 * @returns The path, or `undefined` when there is none.
 */
export async function findDenort(): Promise<string | undefined> {
  const bin = Deno.env.get("DENORT_BIN");
  if (bin) return bin;
  const info = await new Deno.Command(Deno.execPath(), { args: ["info", "--json"] }).output();
  if (!info.success) return undefined;
  const { denoDir } = JSON.parse(new TextDecoder().decode(info.stdout)) as { denoDir: string };
  const cached = `${denoDir}/dl/release/v${Deno.version.deno}/denort-${Deno.build.target}.zip`;
  return await exists(cached) ? cached : undefined;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/** What `output --version` prints, or why it printed nothing useful. */
async function versionOf(output: string): Promise<{ ok: boolean; said: string }> {
  try {
    const child = new Deno.Command(output, {
      args: ["--version"],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(SMOKE_TIMEOUT_MS),
    }).spawn();
    const result = await child.output();
    const said = new TextDecoder().decode(result.stdout).trim();
    return { ok: result.success && said === VERSION, said };
  } catch (error) {
    return { ok: false, said: `<${(error as Error).message}>` };
  }
}

// The most telling line of deno compile's error: the deepest "Caused by" reason.
function reasonOf(stderr: string, code: number): string {
  const lines = stripVTControlCharacters(stderr).split("\n").map((line) => line.trim());
  const causes = lines.filter((line) => /^\d+: /.test(line)).map((line) =>
    line.replace(/^\d+: /, "")
  );
  const error = lines.find((line) => line.startsWith("error: "))?.slice(7);
  const longest = causes.sort((a, b) => b.length - a.length)[0];
  return longest ?? error ?? `deno compile exited with code ${code}`;
}

async function attempt(staging: string, how: Attempt): Promise<Outcome> {
  const env = Deno.env.toObject();
  delete env.DENORT_BIN;
  if (how.denortBin !== undefined) env.DENORT_BIN = how.denortBin;
  const build = await new Deno.Command(Deno.execPath(), {
    args: ["compile", "-A", "--unstable-kv", "--output", staging, "cli.ts"],
    cwd: ROOT,
    env: { ...env, NO_COLOR: "1" },
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!build.success) {
    await Deno.remove(staging).catch(() => {});
    return `failed: ${reasonOf(new TextDecoder().decode(build.stderr), build.code)}`;
  }
  const smoke = await versionOf(staging);
  if (smoke.ok) return undefined;
  await Deno.remove(staging).catch(() => {});
  return `built a binary that is not Toka: --version printed ${
    JSON.stringify(smoke.said)
  }, not "${VERSION}"`;
}

/**
 * Builds `target` (relative to the package root), trying a plain `deno compile`, then
 * `DENORT_BIN`; reports each failed attempt and why on stderr.
 *
 * @param target Where the binary goes.
 * @returns 0 when `target` is a working Toka built now, else 1.
 */
export async function compile(target: string): Promise<number> {
  const output = resolve(ROOT, target);
  const shown = relative(Deno.cwd(), output) || output;
  const folder = dirname(output);
  const madeFolder = !await exists(folder);
  await Deno.mkdir(folder, { recursive: true });
  const staging = `${output}.partial-${Deno.pid}`;
  const denortBin = Deno.env.get("DENORT_BIN") || undefined;
  const attempts: Attempt[] = [{ name: "plain deno compile (downloads denort unless cached)" }];
  if (denortBin !== undefined) {
    attempts.push({ name: `deno compile with DENORT_BIN=${denortBin}`, denortBin });
  }
  const failures: string[] = [];
  for (const how of attempts) {
    const outcome = await attempt(staging, how);
    if (outcome === undefined) {
      await Deno.rename(staging, output);
      console.log(`Built ${shown} (${VERSION}) with ${how.name}`);
      return 0;
    }
    failures.push(`${how.name} ${outcome}`);
  }
  if (denortBin === undefined) {
    failures.push(
      `DENORT_BIN is not set: point it at a denort binary of Deno ${Deno.version.deno} to build without a download`,
    );
  }
  for (const failure of failures) console.error(`error: ${failure}`);
  if (await exists(output)) {
    const old = await versionOf(output);
    if (old.ok) {
      console.error(
        `error: ${shown} was not rebuilt; the working ${VERSION} already there was kept`,
      );
    } else {
      await Deno.remove(output);
      console.error(
        `error: ${shown} was not built; the one there was not a working Toka and was removed`,
      );
    }
  } else {
    console.error(`error: ${shown} was not built`);
  }
  // Leave no empty dist/ behind either.
  if (madeFolder) await Deno.remove(folder).catch(() => {});
  return 1;
}

if (import.meta.main) Deno.exit(await compile(Deno.args[0] ?? DEFAULT_OUTPUT));
