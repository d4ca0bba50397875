import { KvEventStore, type KvEventStoreOptions } from "./kv_store.ts";

/** Options of {@linkcode openVault}. */
export interface OpenVaultOptions extends Omit<KvEventStoreOptions, "closeKv"> {
  /**
   * Create a local vault file (and its folder) that does not exist yet; true
   * by default. With false, a missing file is an error, as for read-only tools.
   */
  create?: boolean;
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

/**
 * Opens the Deno KV event store at a location, creating a local file's folder
 * when needed. The location is a file path, `:memory:` for a throwaway store,
 * or an `https://` URL of a remote Deno KV (Deno Deploy KV or a self-hosted
 * `denokv`) reached over KV Connect with the token in `DENO_KV_ACCESS_TOKEN`.
 * Without a location, `TOKA_DB` is used, then {@linkcode DEFAULT_VAULT_PATH}.
 *
 * @param location Where the store lives.
 * @param options Clock and random source for the store, and whether to create a missing file.
 * @returns The store; `close()` also closes the database.
 * @throws {TypeError} When the location is empty, has another URL scheme, is missing
 * (with `create: false`) or cannot be opened, with the reason in one line.
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
  const { create = true, ...storeOptions } = options;
  const target = location ?? envLocation() ?? DEFAULT_VAULT_PATH;
  if (typeof target !== "string" || target.trim() === "") {
    throw new TypeError("Cannot open the vault: the location is empty");
  }
  const remote = /^https?:\/\//i.test(target);
  if (!remote && /^[a-z][a-z0-9+.-]*:\/\//i.test(target)) {
    throw new TypeError(
      `Cannot open the vault at "${target}": use a file path, :memory: or an http(s) URL`,
    );
  }
  if (!create && !remote && target !== ":memory:" && !await exists(target)) {
    throw new TypeError(`No vault at "${target}"`);
  }
  let kv: Deno.Kv;
  try {
    if (!remote && target !== ":memory:") {
      const folder = target.replace(/[\\/][^\\/]*$/, "");
      if (folder !== target && folder !== "") await Deno.mkdir(folder, { recursive: true });
    }
    kv = await Deno.openKv(target);
  } catch (error) {
    const reason = (error instanceof Error ? error.message : String(error)).split("\n")[0];
    throw new TypeError(`Cannot open the vault at "${target}": ${reason}`);
  }
  try {
    return await KvEventStore.open(kv, { ...storeOptions, closeKv: true });
  } catch (error) {
    kv.close();
    throw error;
  }
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

function envLocation(): string | undefined {
  try {
    return Deno.env.get("TOKA_DB") || undefined;
  } catch {
    // Without --allow-env the default applies.
    return undefined;
  }
}
