// Reading a toka.json: finding it, parsing it and checking it against the shipped schema, and
// digesting the very bytes checked (its trust is keyed by them).
import type { ErrorObject, ValidateFunction } from "ajv";
import { dirname, join, resolve } from "node:path";
import schema from "../toka.schema.json" with { type: "json" };
import denoJson from "../deno.json" with { type: "json" };
import { UsageError } from "./_usage_error.ts";
import { configDigest } from "./_trust.ts";

/** The file name looked for in the working directory and its parents. */
export const CONFIG_FILE = "toka.json";

/** Where editors find the schema of `toka.json`: the copy published with this version. */
export const SCHEMA_URL = `https://jsr.io/@toka/runtime/${denoJson.version}/toka.schema.json`;

/** A `toka.json` as read: once, so that what is checked is what is digested. */
export interface ConfigFile {
  /** Its absolute path, as named or found. */
  path: string;
  /** Its real path (links resolved): the key of its trust. */
  realPath: string;
  /** The sha256 of its bytes ({@linkcode configDigest}). */
  digest: string;
  /** Its parsed, schema-checked content. */
  value: Record<string, unknown>;
  /** True when named by `--config` or `TOKA_CONFIG`, false when found. */
  named: boolean;
}

/**
 * The first `toka.json` in a folder or its parents, as git finds `.git`.
 *
 * @param cwd The folder to start from.
 * @returns Its absolute path, or undefined when there is none up to the root.
 */
export async function findConfig(cwd: string): Promise<string | undefined> {
  for (let dir = resolve(cwd);; dir = dirname(dir)) {
    const path = join(dir, CONFIG_FILE);
    try {
      await Deno.lstat(path);
      return path;
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) return path; // Reading it says why.
    }
    if (dirname(dir) === dir) return undefined;
  }
}

/**
 * Reads, parses and checks a `toka.json` against the schema, and digests the
 * very bytes parsed.
 *
 * @param path The file's absolute path.
 * @param named True when the user named it (`--config`, `TOKA_CONFIG`, `toka trust <file>`).
 * @returns The file.
 * @throws {UsageError} When it cannot be read, is not JSON or breaks the schema.
 */
export async function readConfigFile(path: string, named: boolean): Promise<ConfigFile> {
  let bytes: Uint8Array;
  let realPath: string;
  try {
    bytes = await Deno.readFile(path);
    realPath = await Deno.realPath(path);
  } catch (error) {
    throw new UsageError(`Cannot read config "${path}": ${(error as Error).message}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder().decode(bytes));
  } catch (error) {
    throw new UsageError(`Invalid JSON in config "${path}": ${(error as Error).message}`);
  }
  await checkConfig(value, path);
  const digest = configDigest(bytes);
  return { path, realPath, digest, value: value as Record<string, unknown>, named };
}

// Compiled on first use: commands run without a toka.json never load ajv.
let validate: ValidateFunction | undefined;

/**
 * Checks a parsed `toka.json` against the shipped schema.
 *
 * @param value The parsed file.
 * @param path The file, named in the error.
 * @returns When the value is valid.
 * @throws {UsageError} Naming the first invalid field and the file.
 */
export async function checkConfig(value: unknown, path: string): Promise<void> {
  if (validate === undefined) {
    const { Ajv } = await import("ajv");
    validate = new Ajv({ logger: false, allErrors: false }).compile(schema);
  }
  if (validate(value)) return;
  throw new UsageError(describe(validate.errors![0], path));
}

function describe(error: ErrorObject, path: string): string {
  const segments = error.instancePath.split("/").slice(1).map((s) =>
    s.replaceAll("~1", "/").replaceAll("~0", "~")
  );
  const field = (parts: string[]) =>
    parts.reduce(
      (name, part) => /^\d+$/.test(part) ? `${name}[${part}]` : name ? `${name}.${part}` : part,
      "",
    );
  const where = `in config "${path}"`;
  const name = (error as ErrorObject & { propertyName?: string }).propertyName;
  if (name !== undefined) {
    return `Invalid name ${JSON.stringify(name)} in field "${
      field(segments)
    }" ${where}: ${error.message}`;
  }
  switch (error.keyword) {
    case "additionalProperties": {
      const extra = (error.params as { additionalProperty: string }).additionalProperty;
      return `Unknown field "${field([...segments, extra])}" ${where}`;
    }
    case "required": {
      const missing = (error.params as { missingProperty: string }).missingProperty;
      return `Missing field "${field([...segments, missing])}" ${where}`;
    }
    case "enum":
      return `Invalid field "${field(segments)}" ${where}: must be one of ${
        (error.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v))
          .join(", ")
      }`;
    default:
      return segments.length === 0
        ? `Invalid config "${path}": ${error.message}`
        : `Invalid field "${field(segments)}" ${where}: ${error.message}`;
  }
}
