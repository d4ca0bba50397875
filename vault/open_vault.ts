import { copyFile, mkdir, mkdtemp, open, rm, stat, unlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import process from "node:process";
import { getLogger } from "@logtape/logtape";
import { KvEventStore, type KvEventStoreOptions } from "./kv_store.ts";
import { getEnv, isDeno, type Kv, openKv } from "../internal/platform.ts";
import { assertCommitChecks } from "./_kv_state.ts";
import { TokaError } from "../runtime/errors.ts";

/** Options of {@linkcode openVault}. */
export interface OpenVaultOptions extends Omit<KvEventStoreOptions, "closeKv"> {
  /**
   * Create a local vault file (and its folder) that does not exist yet; true
   * by default. With false, a missing file is an error, as for read-only tools.
   */
  create?: boolean;
  /**
   * Open only to read; false by default. A missing file is then an error, an
   * empty one is not a vault, and a file this process may not write (a 0444
   * file in a 0555 folder) is read from a private snapshot copy taken at open,
   * removed on close: Deno KV cannot open a file read-only. Later appends by
   * other processes are not seen through such a snapshot. The store writes
   * nothing: appends are refused and closing it leaves the stream index as it was.
   */
  readOnly?: boolean;
  /**
   * Check a local file with SQLite's `quick_check` before Deno KV opens it;
   * true by default. It costs about 3 ms per MB of vault (bench/open_probe.ts);
   * without it, a damaged file can make Deno panic in a background thread.
   */
  check?: boolean;
  /**
   * Where the one-line warning about an existing vault file that other accounts may read
   * goes (said once per file and process); a logtape warning (category `["toka", "vault"]`)
   * by default.
   */
  warn?: (line: string) => void;
}

/**
 * The default location of the embedded store, relative to the working directory.
 *
 * @example
 * ```ts
 * import { DEFAULT_VAULT_PATH } from "@toka/runtime/vault";
 *
 * console.log(DEFAULT_VAULT_PATH); // "./.toka/toka.kv"
 * ```
 */
export const DEFAULT_VAULT_PATH: string = "./.toka/toka.kv";

// The one rule for the location, shared by openVault() and the CLI: the given
// location, else TOKA_DB, else the default; an empty one is an error either way.
export function resolveVaultLocation(
  location: string | undefined,
  env: (name: string) => string | undefined = envGet,
): string {
  if (location === undefined) {
    const fromEnv = env("TOKA_DB");
    if (fromEnv === "") throw new TypeError("TOKA_DB is set but empty: unset it or name a vault");
    location = fromEnv ?? DEFAULT_VAULT_PATH;
  }
  if (typeof location !== "string" || location.trim() === "") {
    throw new TypeError("Cannot open the vault: the location is empty");
  }
  return location;
}

const SNAPSHOTS = new WeakSet<object>();

/** Whether a store was opened on a snapshot copy (a vault this process may not write). */
export function isSnapshot(store: object): boolean {
  return SNAPSHOTS.has(store);
}

// SQLite's words for a file that is not a database, or a damaged one.
const NOT_A_DATABASE = /file is not a database/i;
const MALFORMED = /malformed|corrupt/i;

/**
 * The one-line error for a vault file that is damaged, used for what SQLite
 * reports at open (the probe) and later while reading.
 */
export function damagedVaultError(location: string, reason: string): TokaError {
  return new TokaError(
    "vault_damaged",
    `The vault file "${location}" is damaged (${reason}): restore it from a backup ` +
      `(a copy of the file or an "events export"), then run "toka events verify"`,
  );
}

/**
 * The damaged-vault error for an SQLite error met while reading, else undefined.
 */
export function asDamagedVault(location: string, error: unknown): TokaError | undefined {
  if (error instanceof TokaError || !(error instanceof Error)) return undefined;
  const reason = error.message.split("\n")[0];
  return MALFORMED.test(reason) || NOT_A_DATABASE.test(reason)
    ? damagedVaultError(location, reason)
    : undefined;
}

/**
 * Opens the Deno KV event store at a location, creating a local file's folder
 * when needed. The location is a file path, `:memory:` for a throwaway store,
 * or an `https://` URL of a remote Deno KV (Deno Deploy KV or a self-hosted
 * `denokv`) reached over KV Connect with the token in `DENO_KV_ACCESS_TOKEN`.
 * Without a location, `TOKA_DB` is used, then {@linkcode DEFAULT_VAULT_PATH};
 * a `TOKA_DB` set but empty is an error.
 *
 * A local file is checked before Deno KV opens it (SQLite's `quick_check`,
 * about 3 ms per MB; see {@linkcode OpenVaultOptions.check}): a damaged file
 * would otherwise make Deno panic in a background thread, which no caller can
 * catch.
 *
 * @param location Where the store lives.
 * @param options Clock and random source for the store, whether to create a
 * missing file, and whether to open it only to read.
 * @returns The store; `close()` also closes the database.
 * @throws {TypeError} When the location is empty (also an empty `TOKA_DB`), has
 * another URL scheme, is missing (with `create: false` or `readOnly`) or cannot
 * be opened, with the reason in one line.
 * @throws {TokaError} `"not_a_vault"` when the file is not a Deno KV database
 * (an empty file opened read-only, or another kind of file), `"vault_damaged"`
 * when SQLite finds it damaged. The file is left as it was.
 *
 * @example
 * ```ts
 * import { openVault } from "@toka/runtime/vault";
 *
 * const vault = await openVault(":memory:");
 * await vault.append("demo", [{ kind: "demo.started" }]);
 * console.log((await vault.stats()).events); // 1
 * await vault.close();
 * ```
 */
export async function openVault(
  location?: string,
  options: OpenVaultOptions = {},
): Promise<KvEventStore> {
  const { create = true, readOnly = false, check = true, warn, ...storeOptions } = options;
  assertCommitChecks(storeOptions.commitChecks);
  const target = resolveVaultLocation(location);
  const remote = /^https?:\/\//i.test(target);
  if (!remote && /^[a-z][a-z0-9+.-]*:\/\//i.test(target)) {
    throw new TypeError(
      `Cannot open the vault at "${target}": use a file path, :memory: or an http(s) URL`,
    );
  }
  const local = !remote && target !== ":memory:";
  let path = target;
  let snapshot: string | undefined;
  let size: number | undefined;
  if (local) {
    size = await fileSize(target);
    if (size === undefined && (!create || readOnly)) throw new TypeError(`No vault at "${target}"`);
    if (size === 0 && readOnly) {
      throw new TokaError("not_a_vault", `"${target}" is not a vault: the file is empty`);
    }
    if (size !== undefined && size > 0 && (check || readOnly)) {
      const verdict = await probe(target, target, check, !readOnly);
      if (verdict === "unwritable" && readOnly) {
        snapshot = await mkdtemp(join(tmpdir(), "toka-snapshot-"));
        try {
          path = await copyVault(target, snapshot);
          if (await probe(path, target, check, false) === "unwritable") {
            throw new TypeError(`Cannot open the vault at "${target}": its copy is not writable`);
          }
        } catch (error) {
          await rm(snapshot, { recursive: true });
          throw error;
        }
      }
    }
  }
  let kv: Kv;
  let made = false;
  try {
    if (local && snapshot === undefined) {
      const folder = target.replace(/[\\/][^\\/]*$/, "");
      // The vault holds the secret pool: the folders made for it and the file are its owner's
      // only. SQLite gives its -wal and -shm files the database file's mode, so the file is
      // made here, empty (a new database to SQLite), before Deno KV opens it.
      if (folder !== target && folder !== "") await mkdir(folder, { recursive: true, mode: 0o700 });
      if (size === undefined) made = await createPrivate(target);
    }
    kv = await openKv(path);
  } catch (error) {
    // A refused open leaves no file behind.
    if (made) await unlink(target).catch(() => {});
    if (snapshot !== undefined) await rm(snapshot, { recursive: true });
    const reason = (error instanceof Error ? error.message : String(error)).split("\n")[0];
    throw new TypeError(`Cannot open the vault at "${target}": ${reason}`);
  }
  let store: KvEventStore;
  try {
    // Deno's local KV takes 100 checks a commit; a remote one, and @deno/kv's on Node, 10.
    const commitChecks = remote || !isDeno() ? undefined : 100;
    store = await KvEventStore.open(kv, {
      commitChecks,
      ...storeOptions,
      closeKv: true,
      readOnly,
    });
  } catch (error) {
    kv.close();
    if (snapshot !== undefined) await rm(snapshot, { recursive: true });
    throw asDamagedVault(target, error) ?? error;
  }
  // Said once it is known to be a vault.
  if (local && size !== undefined) await warnIfShared(target, warn);
  if (snapshot !== undefined) {
    SNAPSHOTS.add(store);
    const folder = snapshot;
    const close = store.close.bind(store);
    store.close = async () => {
      try {
        await close();
      } finally {
        await rm(folder, { recursive: true }).catch(() => {});
      }
    };
  }
  return store;
}

/**
 * Checks a local SQLite file before Deno KV opens it, with a read-only
 * connection (with `check`, SQLite's quick_check too): "ok", "unwritable" when
 * SQLite cannot even read it without writing (a WAL database in a folder this
 * process may not write), or throws the not-a-vault or damaged error naming
 * `shown`. With `mayCreate`, a database with no table at all is "ok": another
 * process has written its header and is about to create Deno KV's tables.
 */
async function probe(
  path: string,
  shown: string,
  check: boolean,
  mayCreate: boolean,
): Promise<"ok" | "unwritable"> {
  // Node before 22.5 has no node:sqlite: there @deno/kv reports what it finds.
  const sqlite = await import("node:sqlite").catch(() => undefined);
  if (sqlite === undefined) return "ok";
  const { DatabaseSync } = sqlite;
  let db: InstanceType<typeof DatabaseSync> | undefined;
  try {
    db = new DatabaseSync(path, { readOnly: true });
    const problems = db.prepare(check ? "PRAGMA quick_check" : "SELECT 'ok'").all()
      .map((row) => String(Object.values(row)[0]))
      .filter((line) => line !== "ok");
    if (problems.length > 0) {
      const first = problems[0].split("\n").filter((l) => !l.startsWith("***")).join(" ");
      throw damagedVaultError(shown, first.trim() || "SQLite's quick_check failed");
    }
    const kv = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'kv'").get();
    const tables = db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE type = 'table'").get();
    if (kv === undefined && !(mayCreate && Number(tables?.n) === 0)) {
      throw new TokaError("not_a_vault", `"${shown}" is not a vault: it holds no Deno KV data`);
    }
    return "ok";
  } catch (error) {
    if (error instanceof TokaError) throw error;
    const reason = (error instanceof Error ? error.message : String(error)).split("\n")[0];
    if (NOT_A_DATABASE.test(reason)) {
      throw new TokaError("not_a_vault", `"${shown}" is not a vault: ${reason}`);
    }
    if (MALFORMED.test(reason)) throw damagedVaultError(shown, reason);
    if (/readonly|read-only|unable to open/i.test(reason)) return "unwritable";
    throw new TypeError(`Cannot open the vault at "${shown}": ${reason}`);
  } finally {
    db?.close();
  }
}

// The file and its write-ahead log: SQLite replays the log into the copy at open.
async function copyVault(path: string, folder: string): Promise<string> {
  const copy = `${folder}/vault.kv`;
  await copyFile(path, copy);
  try {
    await copyFile(`${path}-wal`, `${copy}-wal`);
  } catch (error) {
    if (!isNotFound(error)) throw error;
  }
  return copy;
}

// Makes an empty file readable by its owner only, unless one is there; true when made.
async function createPrivate(path: string): Promise<boolean> {
  try {
    await (await open(path, "wx", 0o600)).close();
    return true;
  } catch (error) {
    if ((error as { code?: unknown }).code === "EEXIST") return false;
    throw error;
  }
}

const warned = new Set<string>();

// Once per file and process: an existing vault file that other accounts may read.
async function warnIfShared(path: string, warn: ((line: string) => void) | undefined) {
  if (process.platform === "win32") return; // No POSIX modes to judge.
  const mode = (await stat(path)).mode & 0o777;
  const full = resolve(path);
  if ((mode & 0o077) === 0 || warned.has(full)) return;
  warned.add(full);
  const line = `The vault at "${path}" is open to other accounts (mode ${
    mode.toString(8).padStart(4, "0")
  }): its secret pool mints tokens; run chmod 600 on it and its -wal and -shm files`;
  if (warn === undefined) getLogger(["toka", "vault"]).warn(line);
  else warn(line);
}

async function fileSize(path: string): Promise<number | undefined> {
  try {
    const info = await stat(path);
    if (info.isDirectory()) {
      throw new TypeError(`Cannot open the vault at "${path}": it is a folder`);
    }
    return info.size;
  } catch (error) {
    if (isNotFound(error)) return undefined;
    throw error;
  }
}

function envGet(name: string): string | undefined {
  try {
    return getEnv(name);
  } catch {
    // Without --allow-env the default applies.
    return undefined;
  }
}

function isNotFound(error: unknown): boolean {
  return (error as { code?: unknown } | undefined)?.code === "ENOENT";
}
