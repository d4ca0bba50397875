// storage("local"): files under a root directory, with no way out of it.
import { dirname, join, relative, resolve, sep } from "node:path";
import type { StorageAdapter } from "./storage.ts";
import { assertStorageKey, TEMP_PREFIX, toBytes } from "./_storage_key.ts";

export class LocalStorage implements StorageAdapter {
  readonly scheme: string = "local";
  #root: string;

  constructor(root: string) {
    this.#root = resolve(root);
  }

  async #realRoot(create: boolean): Promise<string | undefined> {
    if (create) await Deno.mkdir(this.#root, { recursive: true });
    try {
      return await Deno.realPath(this.#root);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return undefined;
      throw error;
    }
  }

  // Resolves a key to a path and checks that the deepest existing part of it
  // really lies inside the root, so a symbolic link cannot lead out.
  async #path(key: string, create: boolean): Promise<string | undefined> {
    assertStorageKey(key);
    const root = await this.#realRoot(create);
    if (root === undefined) return undefined;
    const path = join(root, ...key.split("/"));
    for (let probe = path;; probe = dirname(probe)) {
      let real: string;
      try {
        real = await Deno.realPath(probe);
      } catch (error) {
        if (error instanceof Deno.errors.NotFound && probe !== root) continue;
        throw error;
      }
      const rel = relative(root, real);
      if (rel === ".." || rel.startsWith(`..${sep}`) || resolve(root, rel) !== real) {
        throw new TypeError(
          `Invalid storage key ${JSON.stringify(key)}: it leads out of the storage root`,
        );
      }
      return path;
    }
  }

  async put(key: string, value: Uint8Array | string): Promise<void> {
    const bytes = toBytes(value);
    const path = (await this.#path(key, true)) as string;
    await Deno.mkdir(dirname(path), { recursive: true });
    await this.#path(key, true);
    // Write then rename, so readers never see half a value; rename also
    // replaces a dangling link instead of writing through it. No key segment
    // starts with TEMP_PREFIX, so a temporary file never shadows a key.
    const temp = join(dirname(path), `${TEMP_PREFIX}${crypto.randomUUID()}`);
    try {
      await Deno.writeFile(temp, bytes);
      await Deno.rename(temp, path);
    } catch (error) {
      await Deno.remove(temp).catch(() => {});
      throw error;
    }
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    const path = await this.#path(key, false);
    if (path === undefined) return undefined;
    try {
      return await Deno.readFile(path);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.IsADirectory) {
        return undefined;
      }
      throw error;
    }
  }

  async delete(key: string): Promise<boolean> {
    const path = await this.#path(key, false);
    if (path === undefined) return false;
    try {
      const info = await Deno.lstat(path);
      if (!info.isFile) return false;
      await Deno.remove(path);
      return true;
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return false;
      throw error;
    }
  }

  async list(prefix = ""): Promise<string[]> {
    const root = await this.#realRoot(false);
    if (root === undefined) return [];
    const keys: string[] = [];
    const walk = async (dir: string, base: string): Promise<void> => {
      for await (const entry of Deno.readDir(dir)) {
        // Links are not followed: they could lead out of the root.
        if (entry.isSymlink || entry.name.startsWith(TEMP_PREFIX)) continue;
        const key = base === "" ? entry.name : `${base}/${entry.name}`;
        if (entry.isDirectory) await walk(join(dir, entry.name), key);
        else if (entry.isFile && key.startsWith(prefix)) keys.push(key);
      }
    };
    await walk(root, "");
    return keys.sort();
  }
}
