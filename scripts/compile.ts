// `deno task compile [OUTPUT]`: builds the standalone `toka` (dist/toka by default) with
// `deno compile`, then runs it once.
//
// `deno compile` needs the `denort` runtime, which it downloads from dl.deno.land
// unless DENORT_BIN names one or a copy sits in Deno's cache. Where neither
// is possible the script says so and succeeds, so offline builds do not fail.
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import denoJson from "../deno.json" with { type: "json" };

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const DEFAULT_OUTPUT = `dist/toka${Deno.build.os === "windows" ? ".exe" : ""}`;

/** What `deno task compile` prints when no `denort` can be found. */
export const NO_DENORT_MESSAGE =
  "deno compile needs the denort runtime; set DENORT_BIN=/path/to/denort (no download possible here)";

/**
 * Where `deno compile` will take the `denort` runtime from, if anywhere:
 * `DENORT_BIN`, or the archive Deno caches after a download.
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
    await Deno.stat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

async function compile(target: string): Promise<number> {
  const output = resolve(ROOT, target);
  if (await findDenort() === undefined) {
    console.log(NO_DENORT_MESSAGE);
    return 0;
  }
  const build = await new Deno.Command(Deno.execPath(), {
    args: ["compile", "-A", "--unstable-kv", "--output", output, "cli.ts"],
    cwd: ROOT,
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (!build.success) {
    console.error(`error: deno compile failed with exit code ${build.code}`);
    return 1;
  }
  const smoke = await new Deno.Command(output, { args: ["--version"] }).output();
  const version = new TextDecoder().decode(smoke.stdout).trim();
  if (!smoke.success || version !== `toka ${denoJson.version}`) {
    console.error(`error: ${target} --version printed ${JSON.stringify(version)}`);
    return 1;
  }
  console.log(`Built ${target} (${version})`);
  return 0;
}

if (import.meta.main) Deno.exit(await compile(Deno.args[0] ?? DEFAULT_OUTPUT));
