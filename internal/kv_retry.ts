// SQLite-backed Deno KV answers "database is locked" when another process holds
// the write lock; the operation did not happen and is safe to repeat. Shared by
// the vault, the auth pool and the runtime's checkpoints and leases.
import { retry } from "./retry.ts";
import { errorMessage } from "./error_message.ts";

const MAX_ATTEMPTS = 200;

/** Whether a KV error only says the database was locked: nothing happened, try again. */
export function isLocked(error: unknown): boolean {
  const message = errorMessage(error);
  return /database (table )?is locked|database is busy|SQLITE_BUSY/i.test(message);
}

/** Runs `operation`, repeating it with jittered backoff while the database is locked. */
export function retryLocked<T>(operation: () => Promise<T>): Promise<T> {
  return retry(operation, {
    attempts: MAX_ATTEMPTS,
    delayMs: (attempt) => Math.min(50, attempt * 2) * (0.5 + Math.random()),
    retryIf: isLocked,
  });
}
