// Files under a root directory, reached without ever following a symbolic
// link below the root: storage("local") uses it, and so will the fs.* tools.
//
// Deno has no openat() or O_NOFOLLOW of its own, but node:fs gives real file
// descriptors and the O_NOFOLLOW and O_DIRECTORY flags, and on Linux the path
// "/proc/self/fd/<dir>/<name>" resolves <name> inside the directory that the
// descriptor <dir> holds open, whatever has been renamed or swapped since.
// So each operation opens the root once, then walks down one segment at a
// time, opening each folder with O_NOFOLLOW | O_DIRECTORY relative to the
// descriptor of its parent, and opens, creates, renames or unlinks the last
// segment relative to the descriptor of its folder ("fd" mode).
//
// Guarantee in "fd" mode: no read, write, create, rename or delete happens
// outside the root, whatever is swapped concurrently; a symbolic link at any
// segment makes the operation refuse. Hard links are not links in this
// sense: a file hard-linked into the root is inside it.
//
// Deno lets a program use /proc/self only with every permission (-A). Without
// it, or on another OS, "checked" mode opens full paths with O_NOFOLLOW (the
// last segment is never followed) and, before reading a byte, writing or
// renaming, checks that the path has no link in it (realPath, before and
// after an lstat) and names the very file or folder that was opened (same
// device and inode); temporary files and new folders are made in the root
// itself and moved into place. That refuses any link that stays in place, but
// not one swapped in and out between two system calls: a read, or a rename
// or unlink (by path), can then still reach outside the root (the race test
// prints how often: rarely, but not never). "checked" mode is safe only when
// nothing else writes in the root; storage("local") logs a warning in it.
import { constants, type Stats, statSync } from "node:fs";
import {
  type FileHandle,
  lstat,
  mkdir,
  open,
  readdir,
  realpath,
  rename,
  rmdir,
  unlink,
} from "node:fs/promises";
import { join } from "node:path";
import process from "node:process";
import { allPermissionsGranted } from "./platform.ts";
import { NONE, ProtectedError, ProtectedPaths, type Protection } from "./protected_paths.ts";

const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_DIRECTORY, O_NONBLOCK } = constants;

/** A segment of the path is a symbolic link, or leads out of the root. */
export class OutsideRootError extends TypeError {
  constructor() {
    super("it leads through a symbolic link, out of the root or not");
    this.name = "OutsideRootError";
  }
}

/** A segment that must be a folder is a file, or the last one is a folder. */
export class InTheWayError extends TypeError {
  constructor(what: string) {
    super(what);
    this.name = "InTheWayError";
  }
}

/** A file is larger than the caller's limit; nothing was read past it. */
export class TooLargeError extends RangeError {
  readonly size: number;
  constructor(size: number) {
    super(`it has ${size} bytes`);
    this.name = "TooLargeError";
    this.size = size;
  }
}

/** How paths are resolved: see the notes at the top of this file. */
export type SafeFsMode = "fd" | "checked";

const code = (error: unknown): string | undefined =>
  (error as { code?: unknown })?.code as string | undefined;

/**
 * An OS error, without the path node:fs puts in its message: the root's
 * absolute path must not reach a user.
 */
export class FsError extends Error {
  readonly code: string;
  constructor(error: unknown) {
    const c = code(error) ?? "EIO";
    super(`the file system refused it (${c})`);
    this.name = "FsError";
    this.code = c;
  }
}

let detected: SafeFsMode | undefined;

/** "fd" on Linux with every permission granted (Deno's rule for /proc/self), else "checked". */
function defaultMode(): SafeFsMode {
  if (detected !== undefined) return detected;
  detected = "checked";
  if (process.platform === "linux" && allPermissionsGranted()) {
    try {
      if (statSync("/proc/self/fd").isDirectory()) detected = "fd";
    } catch {
      // No /proc: stay "checked".
    }
  }
  return detected;
}

// An open folder: its descriptor, and the path that reaches it for "checked" mode.
interface Dir {
  handle: FileHandle;
  path: string;
}

/** Files under one root; every path is a list of plain segments (no "", "." or ".."). */
export class SafeRoot {
  readonly #root: string;
  readonly #mode: SafeFsMode;
  readonly #tempPrefix: string;
  readonly #protected: ProtectedPaths;
  // The root's real path, in "checked" mode, once opened.
  #realRoot = "";

  /**
   * @param root The root folder; links in its own path are followed (the host chose it).
   * @param tempPrefix How temporary names start; callers keep such names out of their paths.
   * @param mode How to resolve paths; {@linkcode defaultMode} by default.
   * @param protectedPaths Files and folders never reached (see protected_paths.ts).
   */
  constructor(
    root: string,
    tempPrefix: string,
    mode: SafeFsMode = defaultMode(),
    protectedPaths: readonly string[] = [],
  ) {
    this.#root = root;
    this.#tempPrefix = tempPrefix;
    this.#mode = mode;
    this.#protected = new ProtectedPaths(protectedPaths);
  }

  #protection(): Promise<Protection> {
    return this.#protected.resolve(this.#root);
  }

  #tempName(): string {
    return `${this.#tempPrefix}${crypto.randomUUID()}`;
  }

  get mode(): SafeFsMode {
    return this.#mode;
  }

  // The path by which `name` inside the open folder `dir` is reached.
  #at(dir: Dir, name: string): string {
    return this.#mode === "fd" ? `/proc/self/fd/${dir.handle.fd}/${name}` : join(dir.path, name);
  }

  async #openRoot(create: boolean): Promise<Dir | undefined> {
    if (create) await guard(() => mkdir(this.#root, { recursive: true }));
    try {
      const path = this.#mode === "checked" ? await realpath(this.#root) : this.#root;
      this.#realRoot = path;
      return { handle: await open(path, O_RDONLY | O_DIRECTORY), path };
    } catch (error) {
      if (code(error) === "ENOENT") return undefined;
      throw new FsError(error);
    }
  }

  // In "checked" mode: the path has no link in it and names the open file.
  async #check(path: string, handle: FileHandle): Promise<void> {
    if (this.#mode === "fd") return;
    let named: Stats;
    try {
      // No link on the path before and after the lstat: a link swapped in for
      // the lstat alone must come and go between two system calls.
      if ((await realpath(path)) !== path) throw new OutsideRootError();
      named = await lstat(path);
      if ((await realpath(path)) !== path) throw new OutsideRootError();
    } catch {
      throw new OutsideRootError();
    }
    const opened = await handle.stat();
    if (named.dev !== opened.dev || named.ino !== opened.ino) throw new OutsideRootError();
  }

  // Opens `name` in `dir` with O_NOFOLLOW; a link there is refused.
  async #openIn(dir: Dir, name: string, flags: number, mode?: number): Promise<FileHandle> {
    const path = this.#at(dir, name);
    let handle: FileHandle;
    try {
      handle = await open(path, flags | O_NOFOLLOW, mode);
    } catch (error) {
      const c = code(error);
      if (c === "ELOOP" || c === "ENOTDIR" || c === "EMLINK") {
        const info = await lstat(path).catch(() => undefined);
        if (info === undefined || info.isSymbolicLink()) throw new OutsideRootError();
        throw new InTheWayError("a file is where a folder is needed");
      }
      throw error;
    }
    try {
      await this.#check(this.#mode === "fd" ? "" : path, handle);
    } catch (error) {
      await handle.close();
      throw error;
    }
    return handle;
  }

  // Opens the folder holding the last segment; undefined when some folder is missing and `create`
  // is false. A protected folder on the way is refused once opened, by what was opened.
  async #walk(
    folders: readonly string[],
    create: boolean,
    guard: Protection = NONE,
  ): Promise<Dir | undefined> {
    let dir = await this.#openRoot(create);
    for (const name of folders) {
      if (dir === undefined) return undefined;
      const parent: Dir = dir;
      try {
        await refuseSlot(guard, parent, name);
        dir = await this.#openFolder(parent, name, create);
        if (dir !== undefined && !guard.empty && guard.has(await identity(dir.handle))) {
          await dir.handle.close();
          throw new ProtectedError();
        }
      } finally {
        await parent.handle.close();
      }
    }
    return dir;
  }

  // Refuses the last segment when its place, or what is there now, is protected.
  async #refuseTarget(guard: Protection, dir: Dir, name: string): Promise<void> {
    if (guard.empty) return;
    await refuseSlot(guard, dir, name);
    const there = await lstat(this.#at(dir, name), { bigint: true }).catch((error) => {
      if (code(error) === "ENOENT") return undefined;
      throw error;
    });
    if (there !== undefined && guard.has(there)) throw new ProtectedError();
  }

  async #openFolder(dir: Dir, name: string, create: boolean): Promise<Dir | undefined> {
    for (let tries = 0;; tries++) {
      try {
        const handle = await this.#openIn(dir, name, O_RDONLY | O_DIRECTORY);
        return { handle, path: join(dir.path, name) };
      } catch (error) {
        if (code(error) !== "ENOENT") throw error;
        if (!create) return undefined;
        if (tries > 3) throw new FsError(error);
        await this.#mkdir(dir, name);
      }
    }
  }

  async #mkdir(dir: Dir, name: string): Promise<void> {
    if (this.#mode === "fd") {
      await mkdir(this.#at(dir, name)).catch((e) => {
        if (code(e) !== "EEXIST") throw e;
      });
      return;
    }
    // "checked": made in the root itself, whose path has no link to swap, then
    // moved into place; a link swapped in for the rename alone can misplace it.
    const temp = join(this.#realRoot, this.#tempName());
    await mkdir(temp);
    try {
      await rename(temp, this.#at(dir, name));
    } catch (error) {
      await rmdir(temp).catch(() => {});
      if (code(error) !== "EEXIST" && code(error) !== "ENOTEMPTY") throw error;
    }
  }

  /**
   * Reads a file.
   *
   * @param maxBytes The largest size read; a larger file is refused before it is read.
   * @returns Its bytes, or undefined when it or a folder on the way is missing, or it is not a file.
   * @throws {OutsideRootError} When a segment is a symbolic link.
   * @throws {TooLargeError} When the file has more than `maxBytes` bytes.
   */
  readFile(path: readonly string[], maxBytes = Infinity): Promise<Uint8Array | undefined> {
    return guard(async () => {
      const protection = await this.#protection();
      const dir = await this.#walk(path.slice(0, -1), false, protection).catch(notFolder);
      if (dir === undefined) return undefined;
      try {
        // O_NONBLOCK: a FIFO planted in the root must not hang the open.
        const handle = await this.#openIn(dir, path.at(-1)!, O_RDONLY | O_NONBLOCK)
          .catch((error) => {
            if (code(error) === "ENOENT") return undefined;
            throw error;
          });
        if (handle === undefined) return undefined;
        try {
          // What was opened, not what a name pointed at before.
          if (!protection.empty && protection.has(await identity(handle))) {
            throw new ProtectedError();
          }
          const stats = await handle.stat();
          if (!stats.isFile()) return undefined;
          if (stats.size > maxBytes) throw new TooLargeError(stats.size);
          if (maxBytes === Infinity) return new Uint8Array(await handle.readFile());
          // The file may grow after the stat: read at most one byte past the limit.
          const buffer = new Uint8Array(Math.min(stats.size, maxBytes) + 1);
          return await readAtMost(handle, buffer, maxBytes);
        } finally {
          await handle.close();
        }
      } finally {
        await dir.handle.close();
      }
    });
  }

  /**
   * Writes a file through a temporary file in the same folder, renamed over it,
   * so readers see the old or the new bytes; makes the folders on the way.
   *
   * @throws {OutsideRootError} When a segment is a symbolic link.
   * @throws {InTheWayError} When a file is where a folder is needed, or the last segment is a folder.
   */
  writeFile(path: readonly string[], bytes: Uint8Array): Promise<void> {
    return guard(async () => {
      // A protected folder exists, so the walk makes none before refusing it.
      const protection = await this.#protection();
      const dir = (await this.#walk(path.slice(0, -1), true, protection))!;
      try {
        await this.#refuseTarget(protection, dir, path.at(-1)!);
        // "checked" mode writes the temporary file in the root, as #mkdir does.
        const name = this.#tempName();
        const home = this.#mode === "fd" ? dir : { handle: dir.handle, path: this.#realRoot };
        const temp = this.#at(home, name);
        const handle = await this.#openIn(home, name, O_WRONLY | O_CREAT | O_EXCL, 0o666);
        try {
          let stats: Stats;
          try {
            await handle.writeFile(bytes);
            stats = await handle.stat();
          } finally {
            await handle.close();
          }
          const target = this.#at(dir, path.at(-1)!);
          // "checked": the folder is still the one opened, reached without a link.
          if (this.#mode === "checked") await this.#check(dir.path, dir.handle);
          try {
            await rename(temp, target);
          } catch (error) {
            if (code(error) === "EISDIR" || code(error) === "ENOTEMPTY") {
              throw new InTheWayError("a folder is where the file would go");
            }
            throw error;
          }
          if (this.#mode === "checked") {
            // The renamed file must be the one written, still inside the root.
            const named = await lstat(target).catch(() => undefined);
            if (
              named === undefined || named.ino !== stats.ino ||
              (await realpath(target).catch(() => "")) !== target
            ) throw new OutsideRootError();
          }
        } catch (error) {
          await unlink(temp).catch(() => {});
          throw error;
        }
      } finally {
        await dir.handle.close();
      }
    });
  }

  /**
   * Deletes a file (not a folder).
   *
   * @returns Whether there was a file to delete.
   * @throws {OutsideRootError} When a segment is a symbolic link.
   */
  removeFile(path: readonly string[]): Promise<boolean> {
    return guard(async () => {
      const protection = await this.#protection();
      const dir = await this.#walk(path.slice(0, -1), false, protection).catch(notFolder);
      if (dir === undefined) return false;
      try {
        await this.#refuseTarget(protection, dir, path.at(-1)!);
        const target = this.#at(dir, path.at(-1)!);
        const info = await lstat(target).catch((error) => {
          if (code(error) === "ENOENT") return undefined;
          throw error;
        });
        if (info?.isSymbolicLink()) throw new OutsideRootError();
        if (info === undefined || !info.isFile()) return false;
        if (this.#mode === "checked") {
          // Delete only what the check saw: the file, at a path without links.
          const handle = await this.#openIn(dir, path.at(-1)!, O_RDONLY | O_NONBLOCK);
          await handle.close();
        }
        try {
          // unlink() never follows the last segment: a link swapped in is removed, not its target.
          await unlink(target);
          return true;
        } catch (error) {
          if (code(error) === "ENOENT" || code(error) === "EISDIR") return false;
          throw error;
        }
      } finally {
        await dir.handle.close();
      }
    });
  }

  /**
   * Lists the files under a folder of the root (the root by default), as segment lists from
   * the root; links, protected files and folders, and names that `skip` refuses are not
   * entered or listed.
   *
   * @throws {ProtectedError} When `under` is or lies in a protected folder.
   */
  list(skip: (name: string) => boolean, under: readonly string[] = []): Promise<string[][]> {
    return guard(async () => {
      const protection = await this.#protection();
      const root = await this.#walk(under, false, protection).catch(notFolder);
      if (root === undefined) return [];
      const out: string[][] = [];
      const hidden = async (dir: Dir, name: string): Promise<boolean> => {
        if (protection.empty) return false;
        if (protection.slot(await identity(dir.handle), name)) return true;
        const there = await lstat(this.#at(dir, name), { bigint: true }).catch(() => undefined);
        return there === undefined || protection.has(there);
      };
      const walk = async (dir: Dir, base: string[]): Promise<void> => {
        const entries = await readdir(
          this.#mode === "fd" ? `/proc/self/fd/${dir.handle.fd}` : dir.path,
          {
            withFileTypes: true,
          },
        );
        for (const entry of entries) {
          if (entry.isSymbolicLink() || skip(entry.name)) continue;
          if (await hidden(dir, entry.name)) continue;
          if (entry.isFile()) out.push([...base, entry.name]);
          else if (entry.isDirectory()) {
            const handle = await this.#openIn(dir, entry.name, O_RDONLY | O_DIRECTORY).catch(
              () => undefined, // Gone, or swapped for a link, since readdir: skip it.
            );
            if (handle === undefined) continue;
            try {
              // Checked again on what was opened: a folder swapped in after the lstat.
              if (!protection.empty && protection.has(await identity(handle))) continue;
              await walk({ handle, path: join(dir.path, entry.name) }, [...base, entry.name]);
            } finally {
              await handle.close();
            }
          }
        }
      };
      try {
        await walk(root, [...under]);
      } finally {
        await root.handle.close();
      }
      return out;
    });
  }
}

// Reads into `buffer` (of at most maxBytes + 1 bytes, grown as needed) until the end or past maxBytes.
async function readAtMost(
  handle: FileHandle,
  buffer: Uint8Array,
  maxBytes: number,
): Promise<Uint8Array> {
  let length = 0;
  for (;;) {
    if (length === buffer.length) {
      if (length > maxBytes) throw new TooLargeError(length);
      const grown = new Uint8Array(Math.min(buffer.length * 2, maxBytes + 1));
      grown.set(buffer);
      buffer = grown;
    }
    const { bytesRead } = await handle.read(buffer, length, buffer.length - length);
    if (bytesRead === 0) return buffer.subarray(0, length);
    length += bytesRead;
  }
}

// The identity of an open file or folder.
async function identity(handle: FileHandle): Promise<{ dev: bigint; ino: bigint }> {
  return await handle.stat({ bigint: true });
}

// Refuses `name` in `dir` when it is the place of a protected file, made or not yet.
async function refuseSlot(guard: Protection, dir: Dir, name: string): Promise<void> {
  if (!guard.empty && guard.slot(await identity(dir.handle), name)) throw new ProtectedError();
}

// A file where a folder should be, on a read or delete: nothing is there.
function notFolder(error: unknown): undefined {
  if (error instanceof InTheWayError) return undefined;
  throw error;
}

// Our own errors pass; an OS error loses its message, which names paths.
async function guard<T>(task: () => Promise<T>): Promise<T> {
  try {
    return await task();
  } catch (error) {
    if (error instanceof OutsideRootError || error instanceof InTheWayError) throw error;
    if (error instanceof ProtectedError) throw error;
    if (error instanceof TooLargeError) throw error;
    if (error instanceof FsError) throw error;
    throw new FsError(error);
  }
}
