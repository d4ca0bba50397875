// The one module of the library that touches the `Deno` global. Everything
// else reaches the host through it or through `node:` built-ins, which Deno
// supports too, so the same code runs on Deno and on Node 20+ (where Deno KV
// is the `@deno/kv` package). Checked by tests/node/no_deno_global_test.ts.
import process from "node:process";
import { spawn as nodeSpawn } from "node:child_process";
import { Readable, Writable } from "node:stream";

// deno-lint-ignore no-explicit-any
const deno: typeof Deno | undefined = (globalThis as any).Deno;

/** A Deno KV database: `Deno.Kv` under Deno, `@deno/kv`'s `Kv` (the same API) under Node. */
export type Kv = Deno.Kv;
/** A key of a {@linkcode Kv}. */
export type KvKey = Deno.KvKey;
/** An entry read from a {@linkcode Kv}. */
export type KvEntry<T> = Deno.KvEntry<T>;
/** The iterator `Kv.list` returns. */
export type KvListIterator<T> = Deno.KvListIterator<T>;
/** An atomic operation of a {@linkcode Kv}. */
export type AtomicOperation = Deno.AtomicOperation;
/** A versionstamp check in an atomic operation. */
export type AtomicCheck = Deno.AtomicCheck;

/** Whether the host is Deno (otherwise Node, with Deno KV from `@deno/kv`). */
export function isDeno(): boolean {
  return deno !== undefined;
}

/**
 * Opens Deno KV: `Deno.openKv` under Deno, `@deno/kv`'s `openKv` under Node,
 * loaded only then, so Deno never loads the native module. The location is a
 * file path, `:memory:`, or an http(s) URL of a KV Connect server, reached
 * with the access token in `DENO_KV_ACCESS_TOKEN`, as `Deno.openKv` does.
 */
export async function openKv(location: string): Promise<Kv> {
  if (deno !== undefined) {
    // Deno KV is unstable in Deno 2.9: without it turned on, say what Deno says.
    if (typeof deno.openKv !== "function") throw new TypeError("Deno.openKv is not a function");
    return await deno.openKv(location);
  }
  const [{ openKv }, codec] = await Promise.all([importDenoKv(), v8Codec()]);
  let options: Record<string, unknown> = codec;
  if (/^https?:\/\//i.test(location)) {
    const accessToken = process.env.DENO_KV_ACCESS_TOKEN;
    if (accessToken === undefined || accessToken === "") {
      throw new TypeError("Missing access token: set DENO_KV_ACCESS_TOKEN");
    }
    options = { ...codec, accessToken };
  }
  return plainBytes(await openKv(location, options) as unknown as Kv);
}

// The specifier is a variable so that no tool follows it from Deno: neither
// `deno bundle` nor `deno compile` may pull the native module in. So the
// package does not declare @deno/kv: a Node project installs it beside.
const DENO_KV = "@deno/kv";

interface DenoKvModule {
  openKv(path: string, options: Record<string, unknown>): Promise<unknown>;
}

async function importDenoKv(): Promise<DenoKvModule> {
  try {
    return await import(DENO_KV);
  } catch (error) {
    throw new TypeError(
      'Deno KV on Node.js needs the npm package @deno/kv: run "npm install @deno/kv"',
      { cause: error },
    );
  }
}

// @deno/kv returns a Uint8Array value as a Node Buffer that shares memory
// with the whole response (and whose slice() does not copy): hand out a plain
// Uint8Array copy, as Deno does.
function plainBytes(kv: Kv): Kv {
  const fix = <T>(entry: { value: T }) => {
    const value = entry.value;
    if (value instanceof Uint8Array && value.constructor !== Uint8Array) {
      entry.value = new Uint8Array(value) as T;
    }
    return entry;
  };
  const get = kv.get.bind(kv);
  const getMany = kv.getMany.bind(kv);
  const list = kv.list.bind(kv);
  Object.assign(kv, {
    get: async (...args: Parameters<Kv["get"]>) => fix(await get(...args)),
    getMany: async (...args: Parameters<Kv["getMany"]>) => (await getMany(...args)).map(fix),
    list: (...args: Parameters<Kv["list"]>) => {
      const iterator = list(...args);
      const next = iterator.next.bind(iterator);
      iterator.next = async () => {
        const result = await next();
        if (!result.done) fix(result.value);
        return result;
      };
      // @deno/kv's iterator hands for-await its inner generator: make it use `next` above.
      iterator[Symbol.asyncIterator] = () => iterator;
      return iterator;
    },
  });
  return kv;
}

// Deno KV stores values in V8's serialization format, and @deno/kv uses Node's
// v8.serialize, which differs from Deno in two ways that break a shared file:
// it writes typed arrays as Node "host objects", which Deno cannot read, and
// Node 20's V8 reads at most format version 15 while Deno 2.9 writes 16. So
// values are written with the plain v8.Serializer (typed arrays in V8's own
// form, version 15, which Deno reads), and a version-16 value that this V8
// refuses is read as version 15: for every kind of value Toka stores (strings,
// numbers, bigints, booleans, null, plain objects, arrays, Uint8Array, Date)
// the bytes of the two versions are the same (checked by tests/node/).
async function v8Codec(): Promise<{
  encodeV8: (value: unknown) => Uint8Array;
  decodeV8: (bytes: Uint8Array) => unknown;
}> {
  const v8 = await import("node:v8");
  const read = (bytes: Uint8Array) => {
    const deserializer = new v8.Deserializer(bytes);
    deserializer.readHeader();
    return deserializer.readValue();
  };
  return {
    encodeV8(value) {
      const serializer = new v8.Serializer();
      serializer.writeHeader();
      serializer.writeValue(value);
      return serializer.releaseBuffer();
    },
    decodeV8(bytes) {
      try {
        return read(bytes);
      } catch (error) {
        if (bytes[0] !== 0xff || bytes[1] !== 16) throw error;
        const older = bytes.slice();
        older[1] = 15;
        return read(older);
      }
    },
  };
}

/**
 * An environment variable, or undefined when unset. Under Deno without
 * `--allow-env` for it, throws what Deno throws (see {@linkcode isNotCapable}).
 */
export function getEnv(name: string): string | undefined {
  return deno !== undefined ? deno.env.get(name) : process.env[name];
}

/** Whether an error is Deno's refusal for a permission not granted (never under Node). */
export function isNotCapable(error: unknown): boolean {
  return deno !== undefined && error instanceof deno.errors.NotCapable;
}

/** A permission refusal with a better message: Deno's own error class under Deno. */
export function notCapable(message: string, cause: unknown): Error {
  return deno !== undefined
    ? new deno.errors.NotCapable(message, { cause })
    : new Error(message, { cause });
}

/**
 * Whether every permission is granted: under Deno, as with `-A` (Deno lets a
 * program use /proc/self only then); under Node, which has no such checks
 * unless its experimental permission model is on, true unless that is on.
 */
export function allPermissionsGranted(): boolean {
  if (deno === undefined) {
    return (process as { permission?: unknown }).permission === undefined;
  }
  const names = ["read", "write", "net", "env", "run", "ffi", "sys", "import"] as const;
  return names.every((name) => {
    try {
      return deno.permissions.querySync({ name }).state === "granted";
    } catch {
      return name === "import"; // Older Deno has no "import" permission.
    }
  });
}

/** A child process with piped standard streams, started in a process group of its own. */
export interface PipedChild {
  /** The child's process id, which is also its process group's id. */
  readonly pid: number;
  /** The child's standard input. */
  readonly stdin: WritableStream<Uint8Array>;
  /** The child's standard output. */
  readonly stdout: ReadableStream<Uint8Array>;
  /** The child's standard error. */
  readonly stderr: ReadableStream<Uint8Array>;
  /** Settles when the child itself has exited (processes it started may still hold its pipes). */
  readonly status: Promise<{ success: boolean; code: number; signal: string | null }>;
  /**
   * Sends a signal to the child and every process of its group, so that what a wrapper (`sh -c`,
   * `npx`, `uv run`) started goes too; never throws (a group already gone has nothing to end).
   */
  kill(signal?: "SIGTERM" | "SIGKILL"): void;
}

/**
 * Starts `command` with piped standard streams and exactly the environment
 * given, in a new session and process group (on Windows, which has none, only
 * the child is signalled): `Deno.Command` under Deno, `node:child_process`
 * under Node, both with `detached`. A missing command throws under Deno
 * ({@linkcode isNotFound}); under Node it is a child that exits at once with
 * code 127.
 */
export function spawnPiped(
  command: string,
  options: { args?: string[]; cwd?: string; env: Record<string, string> },
): PipedChild {
  const { args = [], cwd, env } = options;
  if (deno !== undefined) {
    const child = new deno.Command(command, {
      args,
      cwd,
      env,
      clearEnv: true,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      detached: true,
    }).spawn();
    return {
      pid: child.pid,
      stdin: child.stdin,
      stdout: child.stdout,
      stderr: child.stderr,
      status: child.status,
      kill: (signal = "SIGTERM") => killGroup(child.pid, signal, () => child.kill(signal)),
    };
  }
  const child = nodeSpawn(command, args, {
    cwd,
    env,
    stdio: ["pipe", "pipe", "pipe"],
    detached: true,
  });
  // "exit", not "close": "close" waits for the pipes, which a grandchild may hold open forever.
  const status = new Promise<{ success: boolean; code: number; signal: string | null }>(
    (resolve) => {
      child.once("error", () => resolve({ success: false, code: 127, signal: null }));
      child.once("exit", (code, signal) => {
        resolve({ success: code === 0, code: code ?? 128, signal: signal ?? null });
      });
    },
  );
  return {
    pid: child.pid ?? 0,
    stdin: Writable.toWeb(child.stdin) as WritableStream<Uint8Array>,
    stdout: Readable.toWeb(child.stdout) as ReadableStream<Uint8Array>,
    stderr: Readable.toWeb(child.stderr) as ReadableStream<Uint8Array>,
    status,
    kill: (signal = "SIGTERM") => killGroup(child.pid ?? 0, signal, () => void child.kill(signal)),
  };
}

// Signals process group `pid` (the child leads it); falls back to the child alone where groups
// do not exist (Windows) and ignores a group or child that is already gone.
function killGroup(pid: number, signal: "SIGTERM" | "SIGKILL", child: () => void): void {
  try {
    if (pid > 0 && process.platform !== "win32") return void process.kill(-pid, signal);
  } catch {
    // No such group any more, or none: try the child itself.
  }
  try {
    child();
  } catch {
    // Already exited.
  }
}

/** Whether an error says a file or command was not found. */
export function isNotFound(error: unknown): boolean {
  return deno !== undefined
    ? error instanceof deno.errors.NotFound
    : (error as { code?: unknown } | null)?.code === "ENOENT";
}
