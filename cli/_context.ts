// What every command's implementation receives, so commands stay testable in-process.
import type { Command } from "commander";
import type { EventStore } from "../runtime/event_store.ts";
import type { CliIo } from "./_io.ts";

/** The global options and services a command runs with. */
export interface CommandContext {
  /** Where output goes and where input and environment come from. */
  io: CliIo;
  /** True when `--json` asks for machine-readable output. */
  json: boolean;
  /** The `--db` location: a file path, `:memory:` or an `https://` URL. */
  dbLocation: string;
  /** Opens the event store at {@linkcode CommandContext.dbLocation}; the caller closes it. */
  openStore(): Promise<EventStore>;
}

/**
 * Runs a command's task with the context built from the global options; the
 * task's number becomes the exit code. Command groups registered by other
 * files (e.g. `registerAuthCommands(program, run)`) use it for their actions.
 */
export type RunCommand = (
  command: Command,
  task: (ctx: CommandContext) => Promise<number>,
) => Promise<void>;

/**
 * Opens the store, runs `task` with it and always closes it.
 *
 * @param ctx The command context.
 * @param task The work to do with the open store.
 * @returns What `task` returns.
 */
export async function withStore<T>(
  ctx: CommandContext,
  task: (store: EventStore) => Promise<T>,
): Promise<T> {
  const store = await ctx.openStore();
  try {
    return await task(store);
  } finally {
    await store.close();
  }
}
