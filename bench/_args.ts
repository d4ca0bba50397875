// Options of bench/vault_ratios.ts, parsed by node:util (each flag reads its own value).
import { parseArgs } from "node:util";

/** What bench/vault_ratios.ts measures. */
export interface BenchOptions {
  /** Events in the replay comparison. */
  replay: number;
  /** Rounds of each comparison; figures are medians. */
  rounds: number;
}

/**
 * Reads `--replay N` and `--rounds R`.
 *
 * @param args The command-line arguments.
 * @returns The options, with defaults 200,000 and 5.
 * @throws {TypeError} When a flag is unknown or a value is not a whole number ≥ 1.
 */
export function benchOptions(args: string[]): BenchOptions {
  const { values } = parseArgs({
    args,
    options: { replay: { type: "string" }, rounds: { type: "string" } },
  });
  const count = (name: string, value: string | undefined, fallback: number) => {
    if (value === undefined) return fallback;
    const n = Number(value);
    if (!/^\d+$/.test(value) || n < 1 || !Number.isSafeInteger(n)) {
      throw new TypeError(`--${name} expects a whole number ≥ 1, got ${JSON.stringify(value)}`);
    }
    return n;
  };
  return {
    replay: count("replay", values.replay, 200_000),
    rounds: count("rounds", values.rounds, 5),
  };
}
