// `toka mcp serve --token-file`: a token kept in a file that a cron job (or `toka auth issue >
// PATH`) refreshes, re-read when its mtime or size changes, so a client's static configuration
// outlives any one token (at most 24 h) and revocation stays per call.
import { TokaError } from "../runtime/errors.ts";
import { UsageError } from "./_usage_error.ts";

/** The variable naming the token file when `--token-file` is absent. */
export const TOKEN_FILE_ENV = "TOKA_TOKEN_FILE";

/** Returns the file's token, re-reading the file first when it changed since the last read. */
export type TokenFileReader = () => Promise<string>;

/**
 * Reads the token in `path` now (a missing path or a folder is a usage error,
 * an unreadable or empty file a domain error, each naming the file, never the
 * token) and returns a reader that re-reads it when its mtime or size
 * changes: one stat per call.
 *
 * @param path The token file.
 * @param warn Gets one line when the file is open to other accounts.
 * @returns The reader; its first result is the token read now.
 * @throws {UsageError} When there is no file at `path`, or it is a folder.
 * @throws {TokaError} When the file cannot be read or holds no token.
 */
export async function openTokenFile(
  path: string,
  warn: (line: string) => void,
): Promise<TokenFileReader> {
  let stamp = "";
  let token = "";
  const read = async (): Promise<string> => {
    const info = await Deno.stat(path).catch((error) => {
      throw refusal(path, error);
    });
    if (info.isDirectory) throw new UsageError(`The token file "${path}" is a folder`);
    const now = `${info.mtime?.getTime()}:${info.size}:${info.ino}`;
    if (now === stamp) return token;
    const text = await Deno.readTextFile(path).catch((error) => {
      throw refusal(path, error);
    });
    const read = text.trim();
    if (read === "") throw new TokaError("missing_token", `The token file "${path}" is empty`);
    const mode = (info.mode ?? 0) & 0o777;
    // Warned at each change, not each call: a refresh that recreated the file may open it up.
    if (Deno.build.os !== "windows" && (mode & 0o077) !== 0) {
      warn(
        `The token file "${path}" is open to other accounts (mode ${
          mode.toString(8).padStart(4, "0")
        }): run chmod 600 on it`,
      );
    }
    [stamp, token] = [now, read];
    return token;
  };
  await read();
  return read;
}

function refusal(path: string, error: unknown): Error {
  if (error instanceof Deno.errors.NotFound) return new UsageError(`No token file at "${path}"`);
  const reason = error instanceof Deno.errors.PermissionDenied
    ? "permission denied"
    : error instanceof Error
    ? error.message.replace(/\s*\n\s*/g, " ")
    : String(error);
  return new TokaError("unreadable_token_file", `Cannot read the token file "${path}": ${reason}`);
}
