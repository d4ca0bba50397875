/** A mistake in how the command line was written: exit code 2, not 1. */
export class UsageError extends Error {
  /**
   * Creates a usage error.
   *
   * @param message One line saying what is wrong.
   */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}
