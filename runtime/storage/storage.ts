/**
 * The storage adapter interface shared by `storage("local")` and
 * `storage("vault")`.
 *
 * @module
 */

/**
 * The most bytes a storage value may have (16 MiB), in every adapter: a value
 * is held in memory whole, and a bigger one belongs in a file or a blob store.
 *
 * @example
 * ```ts
 * import { MAX_STORAGE_VALUE_BYTES } from "@toka/runtime/runtime";
 *
 * console.log(MAX_STORAGE_VALUE_BYTES); // 16777216
 * ```
 */
export const MAX_STORAGE_VALUE_BYTES: number = 16 * 1024 * 1024;

/**
 * A key-value store of byte values. Keys are relative, slash-separated paths
 * such as `"reports/2024/summary.txt"`: no empty, `.` or `..` segment, no
 * leading slash, no backslash or NUL, no segment starting with `.tmp-`
 * (reserved for temporary files), at most 255 UTF-8 bytes per segment and
 * 1,500 in all.
 */
export interface StorageAdapter {
  /** The scheme it was opened with: `"local"` or `"vault"`. */
  readonly scheme: string;
  /**
   * Stores a value, replacing any previous one; readers see the old or the new value, never a mix.
   *
   * @throws {TypeError} When the key is invalid or leads out of the storage root.
   */
  put(key: string, value: Uint8Array | string): Promise<void>;
  /**
   * Returns the stored bytes, or `undefined`.
   *
   * @throws {TypeError} When the key is invalid or leads out of the storage root.
   */
  get(key: string): Promise<Uint8Array | undefined>;
  /**
   * Deletes a value; returns whether there was one.
   *
   * @throws {TypeError} When the key is invalid or leads out of the storage root.
   */
  delete(key: string): Promise<boolean>;
  /** Lists the keys that start with `prefix` (all when omitted), sorted. */
  list(prefix?: string): Promise<string[]>;
}

/** Options of `ctx.storage(scheme, options)`. */
export interface AgentStorageOptions {
  /**
   * A shared prefix (a folder, such as `"shared/reports"` or
   * `"agents/other"`) instead of the agent's own namespace. With auth
   * attached, the agent's token must hold `storage:<scheme>:<prefix>` or a
   * permission for a folder above it (or a `*` wildcard).
   */
  prefix?: string;
}
