// Toka's own files (the vault with its SQLite siblings, the vault's folder, the config) that the
// fs tools and storage("local") never reach, whatever their root (issue 17). They are known by
// identity (device and inode), stat'ed anew for each operation (a -wal file comes and goes, a
// vault may be made after the tools), and compared with what an operation really opened: a hard
// link, a case variant or a swap between check and open finds the same inode.
import { realpath, stat } from "node:fs/promises";
import { basename, dirname, resolve, sep } from "node:path";

/** A path names one of Toka's own files or lies in the vault's folder. */
export class ProtectedError extends TypeError {
  constructor() {
    super("it is one of Toka's own files (the vault, its folder or the config)");
    this.name = "ProtectedError";
  }
}

/** A file's identity, from bigint stats so that no inode number is rounded. */
export interface Identity {
  dev: bigint;
  ino: bigint;
}

/** The identities to refuse in one operation. */
export interface Protection {
  /** True when nothing is protected. */
  readonly empty: boolean;
  /** Whether a file or folder is protected (itself, not by its folder). */
  has(stats: Identity): boolean;
  /** Whether `name` in this folder is the place of a protected file, made or not yet. */
  slot(folder: Identity, name: string): boolean;
}

/** Nothing protected. */
export const NONE: Protection = { empty: true, has: () => false, slot: () => false };

const id = (s: Identity) => `${s.dev}:${s.ino}`;

// Case-folded, so that a case variant of a file not yet made (a -wal) is refused where case folds.
const slotKey = (folder: Identity, name: string) => `${id(folder)}/${name.toLowerCase()}`;

/**
 * The files SQLite keeps for a vault at `location`, and its folder: nothing for `:memory:`
 * or a URL.
 */
export function vaultFiles(location: string): string[] {
  if (location === ":memory:" || /^[a-z][a-z0-9+.-]*:\/\//i.test(location)) return [];
  const path = resolve(location);
  return [path, `${path}-wal`, `${path}-shm`, `${path}-journal`, dirname(path)];
}

/** Checks a `protectedPaths` option: an array of non-empty strings. */
export function checkProtectedPaths(value: unknown): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || value.some((p) => typeof p !== "string" || p === "")) {
    throw new TypeError("Invalid protectedPaths: expected an array of paths");
  }
  return value.map((p) => resolve(p));
}

/** Paths to protect, resolved to identities relative to one root at each operation. */
export class ProtectedPaths {
  readonly #paths: string[];

  /** @param paths Absolute paths: files (existing or not) and folders. */
  constructor(paths: readonly string[]) {
    this.#paths = [...new Set(paths.map((p) => resolve(p)))];
  }

  /**
   * The identities to refuse under `root` now. A protected folder that is the root or holds
   * it protects nothing but its protected files: the host chose that root.
   */
  async resolve(root: string): Promise<Protection> {
    if (this.#paths.length === 0) return NONE;
    const realRoot = await realpath(root).catch(() => resolve(root));
    const files = new Set<string>();
    const slots = new Set<string>();
    await Promise.all(this.#paths.map(async (path) => {
      const [self, folder] = await Promise.all([
        stat(path, { bigint: true }).catch(() => undefined),
        stat(dirname(path), { bigint: true }).catch(() => undefined),
      ]);
      if (folder !== undefined && dirname(path) !== path) {
        slots.add(slotKey(folder, basename(path)));
      }
      if (self === undefined) return;
      if (self.isDirectory() && await holds(path, realRoot)) return;
      files.add(id(self));
    }));
    return {
      empty: false,
      has: (stats) => files.has(id(stats)),
      slot: (folder, name) => slots.has(slotKey(folder, name)),
    };
  }
}

// Whether `folder` is `root` or one of its parents.
async function holds(folder: string, realRoot: string): Promise<boolean> {
  const real = await realpath(folder).catch(() => undefined);
  if (real === undefined) return false;
  return realRoot === real || realRoot.startsWith(real.endsWith(sep) ? real : real + sep);
}
