// storage("local"): files under a root directory, reached without following
// any symbolic link (see internal/safe_fs.ts for the exact guarantee).
import { resolve } from "node:path";
import type { StorageAdapter } from "./storage.ts";
import { assertStorageKey, shownKey, TEMP_PREFIX, toBytes } from "./_storage_key.ts";
import {
  FsError,
  InTheWayError,
  OutsideRootError,
  type SafeFsMode,
  SafeRoot,
} from "../../internal/safe_fs.ts";
import { TokaError } from "../errors.ts";
import { ProtectedError } from "../../internal/protected_paths.ts";
import { getLogger } from "@logtape/logtape";

const logger = getLogger(["toka", "storage"]);

export class LocalStorage implements StorageAdapter {
  readonly scheme: string = "local";
  #root: SafeRoot;
  #warned = false;

  // No key segment starts with TEMP_PREFIX, so a temporary file never shadows a key.
  // protectedPaths: checked by the caller (absolute paths never reached; see protected_paths.ts).
  constructor(root: string, mode?: SafeFsMode, protectedPaths: readonly string[] = []) {
    this.#root = new SafeRoot(resolve(root), TEMP_PREFIX, mode, protectedPaths);
  }

  // Said on first use, not when a runtime is made that may never store a file.
  #warnOnce(): void {
    if (this.#warned || this.#root.mode !== "checked") return;
    this.#warned = true;
    logger.warn(
      'storage("local") cannot open files relative to a folder here (it needs Linux and -A): a process that swaps links in the storage root could redirect a put or delete outside it',
    );
  }

  async #run<T>(op: string, key: string, task: (path: string[]) => Promise<T>): Promise<T> {
    assertStorageKey(key);
    this.#warnOnce();
    try {
      return await task(key.split("/"));
    } catch (error) {
      // One line, with the key escaped and no path of the root.
      if (error instanceof ProtectedError) {
        throw new TokaError(
          "storage_protected",
          `Cannot ${op} storage key ${
            shownKey(key)
          }: ${error.message}, which storage("local") never reaches`,
        );
      }
      if (error instanceof OutsideRootError) {
        throw new TypeError(
          `Invalid storage key ${
            shownKey(key)
          }: it goes through a symbolic link, which storage("local") never follows`,
        );
      }
      if (error instanceof InTheWayError) {
        throw new TokaError(
          "storage_conflict",
          `Cannot ${op} storage key ${shownKey(key)}: ${error.message}`,
        );
      }
      if (error instanceof FsError) {
        throw new TokaError(
          "storage_failed",
          `Cannot ${op} storage key ${shownKey(key)}: ${error.message}`,
        );
      }
      throw error;
    }
  }

  async put(key: string, value: Uint8Array | string): Promise<void> {
    const bytes = toBytes(value);
    await this.#run(
      "put",
      key,
      (path) => this.#root.writeFile(path, bytes),
    );
  }

  get(key: string): Promise<Uint8Array | undefined> {
    return this.#run("get", key, (path) => this.#root.readFile(path));
  }

  delete(key: string): Promise<boolean> {
    return this.#run("delete", key, (path) => this.#root.removeFile(path));
  }

  async list(prefix = ""): Promise<string[]> {
    let paths: string[][];
    this.#warnOnce();
    try {
      paths = await this.#root.list((name) => name.startsWith(TEMP_PREFIX));
    } catch (error) {
      if (error instanceof FsError) {
        throw new TokaError("storage_failed", `Cannot list storage: ${error.message}`);
      }
      throw error;
    }
    return paths.map((p) => p.join("/")).filter((key) => key.startsWith(prefix)).sort();
  }
}
