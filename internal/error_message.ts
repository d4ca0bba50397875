// The one-line text of anything thrown, for log lines and events.

/**
 * The message of an `Error`, or the text of anything else thrown.
 *
 * @param error What was thrown.
 * @returns Its message.
 */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
