// SQLite-backed Deno KV answers "database is locked" when another process holds
// the write lock; the operation did not happen and is safe to repeat. Shared by
// the vault, the auth pool and the runtime's checkpoints and leases.

const MAX_ATTEMPTS = 200;

/** Whether a KV error only says the database was locked: nothing happened, try again. */
export function isLocked(error: unknown): boolean {
  const message = error instanceof Error ? error.message : String(error);
  return /database (table )?is locked|database is busy|SQLITE_BUSY/i.test(message);
}

/** Runs `operation`, repeating it with jittered backoff while the database is locked. */
export async function retryLocked<T>(operation: () => Promise<T>): Promise<T> {
  for (let attempt = 1;; attempt++) {
    try {
      return await operation();
    } catch (error) {
      if (!isLocked(error) || attempt >= MAX_ATTEMPTS) throw error;
      const delay = Math.min(50, attempt * 2) * (0.5 + Math.random());
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}
