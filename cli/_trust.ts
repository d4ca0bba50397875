// Which discovered toka.json files the user trusts. The record lives outside every project
// ($TOKA_TRUST_FILE, else $XDG_CONFIG_HOME/toka/trusted.json, else ~/.config/toka/trusted.json),
// so a cloned repository cannot ship its own; it maps each file's real path to the sha256 of
// the bytes the user trusted, so an edited file is untrusted again.
import { createHash } from "node:crypto";
import { dirname, join } from "node:path";
import { TokaError } from "../runtime/errors.ts";

/** The environment variable naming the file that records trusted configs. */
export const TRUST_FILE_ENV = "TOKA_TRUST_FILE";

interface TrustRecord {
  version: 1;
  /** Real path of a config file → "sha256:<hex>" of the bytes trusted. */
  trusted: Record<string, string>;
}

/**
 * Where trusted configs are recorded: `TOKA_TRUST_FILE`, else `trusted.json` under
 * `$XDG_CONFIG_HOME/toka`, `%APPDATA%\toka` on Windows, or `~/.config/toka`.
 *
 * @param env Environment lookup.
 * @returns The file's path, or undefined when no variable says where home is.
 */
export function trustFilePath(env: (name: string) => string | undefined): string | undefined {
  const named = env(TRUST_FILE_ENV);
  if (named) return named;
  const xdg = env("XDG_CONFIG_HOME");
  if (xdg) return join(xdg, "toka", "trusted.json");
  const appData = Deno.build.os === "windows" ? env("APPDATA") : undefined;
  if (appData) return join(appData, "toka", "trusted.json");
  const home = env("HOME");
  return home ? join(home, ".config", "toka", "trusted.json") : undefined;
}

/**
 * The digest a config file is trusted by.
 *
 * @param bytes The file's bytes, as read once for both parsing and digesting.
 * @returns `sha256:<hex>`.
 */
export function configDigest(bytes: Uint8Array): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

/**
 * Whether the user trusted this exact file: its real path with this digest.
 * An unreadable record trusts nothing (`toka trust` then says why).
 *
 * @param env Environment lookup.
 * @param realPath The config file's real path.
 * @param digest Its {@linkcode configDigest}.
 * @returns True when recorded with this digest.
 */
export async function isTrusted(
  env: (name: string) => string | undefined,
  realPath: string,
  digest: string,
): Promise<boolean> {
  const path = trustFilePath(env);
  if (path === undefined) return false;
  const record = await readRecord(path).catch(() => undefined);
  return record?.trusted[realPath] === digest;
}

/**
 * Records a config file as trusted with its digest, replacing an older digest of
 * the same path. The record's folder is made private (0700) and the file written
 * whole (0600) and renamed into place.
 *
 * @param env Environment lookup.
 * @param realPath The config file's real path.
 * @param digest Its {@linkcode configDigest}.
 * @returns The record's path.
 * @throws {TokaError} `no_trust_file` when no variable says where to record it;
 * `trust_unreadable` when the record exists but cannot be read (left as it was).
 */
export async function recordTrust(
  env: (name: string) => string | undefined,
  realPath: string,
  digest: string,
): Promise<string> {
  const path = trustFilePath(env);
  if (path === undefined) {
    throw new TokaError(
      "no_trust_file",
      `Nowhere to record trusted configs: set ${TRUST_FILE_ENV}, XDG_CONFIG_HOME or HOME`,
    );
  }
  let record: TrustRecord;
  try {
    record = await readRecord(path);
  } catch (error) {
    throw new TokaError(
      "trust_unreadable",
      `Cannot read the trusted configs in "${path}": ${
        (error as Error).message.split("\n")[0]
      } (fix or remove the file)`,
    );
  }
  record.trusted[realPath] = digest;
  await Deno.mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const temp = `${path}.${crypto.randomUUID()}.tmp`;
  try {
    await Deno.writeTextFile(temp, `${JSON.stringify(record, null, 2)}\n`, {
      createNew: true,
      mode: 0o600,
    });
    await Deno.rename(temp, path);
  } catch (error) {
    await Deno.remove(temp).catch(() => {});
    throw error;
  }
  return path;
}

async function readRecord(path: string): Promise<TrustRecord> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return { version: 1, trusted: {} };
    throw error;
  }
  const value = JSON.parse(text) as Partial<TrustRecord> | null;
  const trusted = value?.trusted;
  if (
    value?.version !== 1 || typeof trusted !== "object" || trusted === null ||
    Object.values(trusted).some((digest) => typeof digest !== "string")
  ) {
    throw new Error('expected { "version": 1, "trusted": { "<path>": "sha256:<hex>" } }');
  }
  return { version: 1, trusted: { ...trusted } };
}
