/**
 * The storage adapters Toka ships: in Deno KV, in files and in memory. Pass
 * them to `Runtime.create({ storage })`; `createRuntime()` wires the KV one on
 * the vault's database and the file one on `storageRoot`.
 *
 * @module
 */

import type { Kv } from "../../internal/platform.ts";
import type { StorageAdapter } from "./storage.ts";
import { KvStorage } from "./_kv_storage.ts";
import { LocalStorage } from "./_local_storage.ts";
import { MemoryStorage } from "./_memory_storage.ts";
import { checkProtectedPaths } from "../../internal/protected_paths.ts";

/** Options of {@linkcode createKvStorage}. */
export interface KvStorageOptions {
  /** Milliseconds since the epoch, to tell when an unfinished put is abandoned; `Date.now` by default. */
  clock?: () => number;
}

/**
 * Creates storage in Deno KV (scheme `"vault"`): values under
 * `["storage", ...]` in 60 KiB chunks, each put published by one commit. The
 * chunks of a put or delete killed part-way are swept by a later put or
 * delete (those of an unfinished put once it is 10 minutes old, looked for
 * at most once a minute per adapter). A locked database is retried.
 *
 * @param kv The database; the caller keeps it open while the storage is used, and closes it.
 * @param options The clock.
 * @returns The adapter.
 * @throws {TypeError} When `kv` is not a Deno KV database.
 *
 * @example
 * ```ts
 * import { createKvStorage } from "@toka/runtime/runtime";
 *
 * const kv = await Deno.openKv(":memory:");
 * const storage = createKvStorage(kv);
 * await storage.put("notes/today.txt", "hello");
 * console.log(await storage.list("notes/")); // ["notes/today.txt"]
 * kv.close();
 * ```
 */
export function createKvStorage(kv: Kv, options: KvStorageOptions = {}): StorageAdapter {
  if (kv === null || typeof kv !== "object" || typeof kv.atomic !== "function") {
    throw new TypeError("Invalid kv: expected a Deno KV database");
  }
  if (options.clock !== undefined && typeof options.clock !== "function") {
    throw new TypeError("Invalid clock: expected a function returning milliseconds");
  }
  return new KvStorage(kv, options.clock);
}

/** Options of {@linkcode createLocalStorage}. */
export interface LocalStorageOptions {
  /**
   * Files and folders never reached, whatever the root (the vault with its `-wal`, `-shm`
   * and `-journal` files, its folder, the config): known by identity (device and inode), so
   * a hard link or a case variant is refused too; everything inside a protected folder is
   * refused unless the root is that folder or inside it; `list()` omits them.
   */
  protectedPaths?: string[];
}

/**
 * Creates storage in files under a root folder (scheme `"local"`), made on
 * the first put. Keys are paths below the root; no symbolic link below the
 * root is ever followed (see the README for the exact guarantee).
 *
 * @param root The root folder.
 * @param options The paths never reached.
 * @returns The adapter.
 * @throws {TypeError} When `root` is not a non-empty string or `protectedPaths` not a list of
 *   paths.
 *
 * @example
 * ```ts
 * import { createLocalStorage } from "@toka/runtime/runtime";
 *
 * const root = await Deno.makeTempDir();
 * const storage = createLocalStorage(root);
 * await storage.put("a/b.txt", "hello");
 * console.log(new TextDecoder().decode(await storage.get("a/b.txt"))); // hello
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export function createLocalStorage(
  root: string,
  options: LocalStorageOptions = {},
): StorageAdapter {
  if (typeof root !== "string" || root === "") {
    throw new TypeError("Invalid storage root: expected a path");
  }
  return new LocalStorage(root, undefined, checkProtectedPaths(options?.protectedPaths));
}

/**
 * Creates storage in memory, gone with the process.
 *
 * @param scheme The scheme it reports (`"memory"`).
 * @returns The adapter.
 *
 * @example
 * ```ts
 * import { createMemoryStorage } from "@toka/runtime/runtime";
 *
 * const storage = createMemoryStorage();
 * await storage.put("k", new Uint8Array([1, 2]));
 * console.log(await storage.get("k")); // Uint8Array(2) [ 1, 2 ]
 * ```
 */
export function createMemoryStorage(scheme = "memory"): StorageAdapter {
  if (typeof scheme !== "string" || scheme === "") {
    throw new TypeError("Invalid scheme: expected a non-empty string");
  }
  return new MemoryStorage(scheme);
}
