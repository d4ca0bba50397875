/**
 * The `fs.read`, `fs.write`, `fs.list` and `fs.delete` built-in tools: files
 * under one root, with the rules of `storage("local")`.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { resolve } from "node:path";
import { getLogger } from "@logtape/logtape";
import { TokaError } from "../runtime/errors.ts";
import {
  FsError,
  InTheWayError,
  OutsideRootError,
  SafeRoot,
  TooLargeError,
} from "../internal/safe_fs.ts";
import { checkProtectedPaths, ProtectedError } from "../internal/protected_paths.ts";
import {
  MAX_KEY_BYTES,
  MAX_SEGMENT_BYTES,
  shownKey,
  TEMP_PREFIX,
} from "../internal/storage_key.ts";
import { MAX_STORAGE_VALUE_BYTES } from "../runtime/storage/storage.ts";
import { defineTool, type Tool } from "./tool.ts";
import { intOption } from "../internal/int_option.ts";

const logger = getLogger(["toka", "toolkit"]);

/** Options of {@linkcode createFsTools}. */
export interface FsToolsOptions {
  /** The folder the tools work in; made on the first write. Links in its own path are followed. */
  root: string;
  /** The largest file `fs.read` returns, in bytes (1 MiB; at most 16 MiB). */
  maxReadBytes?: number;
  /** The largest content `fs.write` writes, in bytes (1 MiB; at most 16 MiB). */
  maxWriteBytes?: number;
  /** The most paths `fs.list` returns (1000); it says `truncated: true` past them. */
  maxListEntries?: number;
  /**
   * How paths are resolved: `"fd"` (relative to open folders; Linux with every permission) or
   * `"checked"` (full paths checked before and after each open); by what the process may use by
   * default, as `storage("local")`.
   */
  mode?: "fd" | "checked";
  /**
   * Files and folders the tools never reach, whatever the root: `createRuntime()` and the
   * CLI give the vault (with its `-wal`, `-shm` and `-journal` files), the vault's folder and
   * the config file. They are known by identity (device and inode), so a hard link, a case
   * variant or a swap between check and open is refused too; everything inside a protected
   * folder is refused, unless the root is that folder or inside it. `fs.list` omits them.
   */
  protectedPaths?: string[];
}

/** The input of `fs.read`. */
export interface FsReadInput {
  /** A relative path under the root, `/`-separated. */
  path: string;
  /** `"utf8"` (the default; the file must be UTF-8 text) or `"base64"`. */
  encoding?: "utf8" | "base64";
}

/** The output of `fs.read`. */
export interface FsReadOutput {
  /** The path read. */
  path: string;
  /** How `content` is encoded. */
  encoding: "utf8" | "base64";
  /** The file's content. */
  content: string;
  /** The file's size in bytes. */
  size: number;
}

/** The input of `fs.write`. */
export interface FsWriteInput {
  /** A relative path under the root, `/`-separated; missing folders are made. */
  path: string;
  /** The new content of the file. */
  content: string;
  /** How `content` is encoded: `"utf8"` (the default) or `"base64"`. */
  encoding?: "utf8" | "base64";
}

/** The output of `fs.write`. */
export interface FsWriteOutput {
  /** The path written. */
  path: string;
  /** The bytes written. */
  size: number;
}

/** The input of `fs.list`. */
export interface FsListInput {
  /** A folder under the root whose files (at any depth) are listed; the whole root by default. */
  path?: string;
}

/** The output of `fs.list`. */
export interface FsListOutput {
  /** The files' paths from the root, sorted. */
  paths: string[];
  /** True when there were more than `maxListEntries` files. */
  truncated: boolean;
}

/** The input of `fs.delete`. */
export interface FsDeleteInput {
  /** A relative path under the root of a file (folders are not deleted). */
  path: string;
}

/** The output of `fs.delete`. */
export interface FsDeleteOutput {
  /** The path given. */
  path: string;
  /** False when there was no file to delete. */
  deleted: boolean;
}

const MIB = 1024 * 1024;
const encoder = new TextEncoder();
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

// A relative path's segments; the rules of storage("local")'s keys, with messages about paths.
function segments(path: string): string[] {
  const bad = (why: string): never => {
    throw new TypeError(`Invalid path ${shownKey(path)}: ${why}`);
  };
  if (!path.isWellFormed()) bad("it has a lone surrogate");
  if (encoder.encode(path).length > MAX_KEY_BYTES) bad(`it has more than ${MAX_KEY_BYTES} bytes`);
  if (path.includes("\\") || path.includes("\0")) bad("no backslash or NUL allowed");
  const parts = path.split("/");
  if (parts.some((part) => part === "" || part === "." || part === "..")) {
    bad('use a relative path without empty, "." or ".." segments');
  }
  for (const part of parts) {
    if (encoder.encode(part).length > MAX_SEGMENT_BYTES) {
      bad(`a segment has more than ${MAX_SEGMENT_BYTES} bytes`);
    }
    if (part.startsWith(TEMP_PREFIX)) bad(`segments starting with "${TEMP_PREFIX}" are reserved`);
  }
  return parts;
}

// Runs one operation on a path, turning the safe root's errors into one-line messages
// that name the path as given, never the root.
async function onPath<T>(
  op: string,
  path: string,
  task: (parts: string[]) => Promise<T>,
): Promise<T> {
  const parts = segments(path);
  try {
    return await task(parts);
  } catch (error) {
    if (error instanceof ProtectedError) {
      throw new TokaError(
        "fs_protected",
        `Cannot ${op} ${shownKey(path)}: ${error.message}, which the fs tools never reach`,
      );
    }
    if (error instanceof OutsideRootError) {
      throw new TypeError(
        `Path ${shownKey(path)} goes through a symbolic link, which the fs tools never follow`,
      );
    }
    if (error instanceof InTheWayError) {
      throw new TokaError("fs_conflict", `Cannot ${op} ${shownKey(path)}: ${error.message}`);
    }
    if (error instanceof FsError) {
      throw new TokaError("fs_failed", `Cannot ${op} ${shownKey(path)}: ${error.message}`);
    }
    throw error;
  }
}

const PATH_SCHEMA = { type: "string", minLength: 1, maxLength: MAX_KEY_BYTES };
const ENCODING_SCHEMA = { type: "string", enum: ["utf8", "base64"] };

/**
 * Creates the four file tools, working under one root folder:
 *
 * - `fs.read` `{ path, encoding? }` → `{ path, encoding, content, size }`: a file as UTF-8
 *   text (the default; other bytes are refused) or base64; at most `maxReadBytes`.
 * - `fs.write` `{ path, content, encoding? }` → `{ path, size }`: replaces a file whole
 *   (readers see the old or the new bytes), making missing folders; at most `maxWriteBytes`.
 * - `fs.list` `{ path? }` → `{ paths, truncated }`: the files under a folder, at any depth.
 * - `fs.delete` `{ path }` → `{ path, deleted }`: deletes a file, never a folder.
 *
 * Paths are relative and `/`-separated, without empty, `.` or `..` segments, as keys of
 * `storage("local")`. No call follows a symbolic link below the root: a path through one is
 * refused, also when the link is swapped in during the call (on Linux with every permission;
 * elsewhere a link swapped in and out between two system calls can still redirect a write
 * or delete, and a warning is logged on first use). Each tool needs `tool:<name>:invoke`.
 * Errors are one line and name the path as given, never the root.
 *
 * @param options The root and the limits.
 * @returns `fs.delete`, `fs.list`, `fs.read` and `fs.write`, ready to register.
 * @throws {TypeError} When `root` is not a non-empty string.
 * @throws {RangeError} When a limit is not an integer in range.
 *
 * @example Write a file, then read it back
 * ```ts
 * import { createFsTools, ToolRegistry } from "@toka/runtime/toolkit";
 *
 * const root = await Deno.makeTempDir();
 * const tools = new ToolRegistry({ tools: createFsTools({ root }) });
 * await tools.call("fs.write", { path: "notes/today.txt", content: "Buy milk" });
 * console.log(await tools.call("fs.read", { path: "notes/today.txt" }));
 * // { path: "notes/today.txt", encoding: "utf8", content: "Buy milk", size: 8 }
 * console.log(await tools.call("fs.list", {})); // { paths: ["notes/today.txt"], truncated: false }
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export function createFsTools(options: FsToolsOptions): Tool[] {
  const { root: rootPath } = options ?? {};
  if (typeof rootPath !== "string" || rootPath === "") {
    throw new TypeError(`Invalid fs root ${JSON.stringify(rootPath)}: expected a path`);
  }
  const maxRead = intOption("maxReadBytes", options.maxReadBytes, MIB, 0, MAX_STORAGE_VALUE_BYTES);
  const maxWrite = intOption(
    "maxWriteBytes",
    options.maxWriteBytes,
    MIB,
    0,
    MAX_STORAGE_VALUE_BYTES,
  );
  const maxList = intOption("maxListEntries", options.maxListEntries, 1000, 0, 1_000_000);
  if (maxList === 0) throw new RangeError("Invalid maxListEntries 0: expected at least 1");
  // The same temporary names as storage("local"), so the two can share a root.
  const protectedPaths = checkProtectedPaths(options.protectedPaths);
  const root = new SafeRoot(resolve(rootPath), TEMP_PREFIX, options.mode, protectedPaths);
  let warned = false;
  const warnOnce = () => {
    if (warned || root.mode !== "checked") return;
    warned = true;
    logger.warn(
      "The fs tools cannot open files relative to a folder here (it needs Linux and -A): a process that swaps links in their root could redirect a write or delete outside it",
    );
  };

  const read = defineTool<FsReadInput, FsReadOutput>({
    name: "fs.read",
    description:
      `Reads a file under the tools' root, as UTF-8 text or base64 (at most ${maxRead} bytes)`,
    version: "1.0.0",
    inputSchema: {
      type: "object",
      properties: { path: PATH_SCHEMA, encoding: ENCODING_SCHEMA },
      required: ["path"],
      additionalProperties: false,
    },
    outputSchema: {
      type: "object",
      properties: {
        path: { type: "string" },
        encoding: ENCODING_SCHEMA,
        content: { type: "string" },
        size: { type: "integer", minimum: 0 },
      },
      required: ["path", "encoding", "content", "size"],
    },
    annotations: {
      readOnlyHint: true,
      destructiveHint: false,
      idempotentHint: true,
      openWorldHint: false,
    },
    execute: ({ path, encoding = "utf8" }) => {
      warnOnce();
      return onPath("read", path, async (parts) => {
        let bytes: Uint8Array | undefined;
        try {
          bytes = await root.readFile(parts, maxRead);
        } catch (error) {
          if (!(error instanceof TooLargeError)) throw error;
          throw new TokaError(
            "fs_too_large",
            `File ${shownKey(path)} has ${error.size} bytes, more than the ${maxRead} allowed`,
          );
        }
        if (bytes === undefined) {
          throw new TokaError("fs_not_found", `No file at ${shownKey(path)}`);
        }
        let content: string;
        if (encoding === "base64") content = Buffer.from(bytes).toString("base64");
        else {
          try {
            content = utf8.decode(bytes);
          } catch {
            throw new TokaError(
              "fs_not_text",
              `File ${shownKey(path)} is not UTF-8 text: read it with encoding "base64"`,
            );
          }
        }
        return { path, encoding, content, size: bytes.length };
      });
    },
  });

  const write = defineTool<FsWriteInput, FsWriteOutput>({
    name: "fs.write",
    description:
      `Writes a file under the tools' root from UTF-8 text or base64 (at most ${maxWrite} bytes)`,
    version: "1.0.0",
    inputSchema: {
      type: "object",
      properties: {
        path: PATH_SCHEMA,
        // Base64 is the longer form; the byte limit is checked once decoded.
        content: { type: "string", maxLength: Math.ceil(maxWrite / 3) * 4 },
        encoding: ENCODING_SCHEMA,
      },
      required: ["path", "content"],
      additionalProperties: false,
    },
    outputSchema: {
      type: "object",
      properties: { path: { type: "string" }, size: { type: "integer", minimum: 0 } },
      required: ["path", "size"],
    },
    annotations: {
      readOnlyHint: false,
      destructiveHint: true,
      idempotentHint: true,
      openWorldHint: false,
    },
    execute: ({ path, content, encoding = "utf8" }) => {
      warnOnce();
      segments(path);
      let bytes: Uint8Array;
      if (encoding === "base64") {
        if (!BASE64.test(content)) {
          throw new TypeError(`Content for ${shownKey(path)} is not valid base64`);
        }
        bytes = new Uint8Array(Buffer.from(content, "base64"));
      } else {
        if (!content.isWellFormed()) {
          throw new TypeError(`Content for ${shownKey(path)} has a lone surrogate`);
        }
        bytes = encoder.encode(content);
      }
      if (bytes.length > maxWrite) {
        throw new RangeError(
          `Content for ${
            shownKey(path)
          } has ${bytes.length} bytes, more than the ${maxWrite} allowed`,
        );
      }
      return onPath("write", path, async (parts) => {
        await root.writeFile(parts, bytes);
        return { path, size: bytes.length };
      });
    },
  });

  const list = defineTool<FsListInput, FsListOutput>({
    name: "fs.list",
    description: `Lists the files under a folder of the tools' root (at most ${maxList})`,
    version: "1.0.0",
    inputSchema: {
      type: "object",
      properties: { path: PATH_SCHEMA },
      additionalProperties: false,
    },
    outputSchema: {
      type: "object",
      properties: {
        paths: { type: "array", items: { type: "string" } },
        truncated: { type: "boolean" },
      },
      required: ["paths", "truncated"],
    },
    annotations: {
      readOnlyHint: true,
      destructiveHint: false,
      idempotentHint: true,
      openWorldHint: false,
    },
    execute: async ({ path }) => {
      warnOnce();
      const under = path === undefined ? [] : segments(path);
      let found: string[][];
      try {
        found = await root.list((name) => name.startsWith(TEMP_PREFIX), under);
      } catch (error) {
        if (error instanceof FsError) {
          throw new TokaError("fs_failed", `Cannot list files: ${error.message}`);
        }
        if (error instanceof ProtectedError) {
          throw new TokaError(
            "fs_protected",
            `Cannot list ${shownKey(path!)}: ${error.message}, which the fs tools never reach`,
          );
        }
        throw error;
      }
      const paths = found.map((p) => p.join("/")).sort();
      return { paths: paths.slice(0, maxList), truncated: paths.length > maxList };
    },
  });

  const remove = defineTool<FsDeleteInput, FsDeleteOutput>({
    name: "fs.delete",
    description: "Deletes a file under the tools' root (never a folder)",
    version: "1.0.0",
    inputSchema: {
      type: "object",
      properties: { path: PATH_SCHEMA },
      required: ["path"],
      additionalProperties: false,
    },
    outputSchema: {
      type: "object",
      properties: { path: { type: "string" }, deleted: { type: "boolean" } },
      required: ["path", "deleted"],
    },
    annotations: {
      readOnlyHint: false,
      destructiveHint: true,
      idempotentHint: true,
      openWorldHint: false,
    },
    execute: ({ path }) => {
      warnOnce();
      return onPath(
        "delete",
        path,
        async (parts) => ({ path, deleted: await root.removeFile(parts) }),
      );
    },
  });

  return [remove, list, read, write] as Tool[];
}
