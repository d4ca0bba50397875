// `--log-level`: LogTape stays silent unless the user asks for logs.
import { configure, getTextFormatter, type LogLevel, reset } from "@logtape/logtape";
import type { CliIo } from "./_io.ts";

/**
 * Sends Toka's log records at or above `level` to the io's standard error.
 *
 * @param io Where log lines go.
 * @param level The lowest level shown.
 * @returns Undoes the configuration.
 */
export async function configureLogging(io: CliIo, level: LogLevel): Promise<() => Promise<void>> {
  const format = getTextFormatter();
  await configure({
    reset: true,
    sinks: { stderr: (record) => io.stderr(format(record)) },
    loggers: [
      { category: ["toka"], lowestLevel: level, sinks: ["stderr"] },
      // LogTape's own notices would otherwise be printed too.
      { category: ["logtape", "meta"], lowestLevel: "error", sinks: [] },
    ],
  });
  return reset;
}
