// The side-by-side figure of bench/vault_ratios.ts and bench/node_vault.ts (Deno and Node
// alike: no Deno API here). Baseline and candidate alternate, round by round, so that a
// change in machine load touches both; each figure is the median of its rounds.

/** A rate as people read it: 12,345. */
export const fmt = (n: number): string => Math.round(n).toLocaleString("en-US");

/** The median (the upper one of an even count). */
export const median = (values: number[]): number =>
  [...values].sort((a, b) => a - b)[values.length >> 1];

/** Runs both `rounds` times, alternating, and prints their medians and the ratio. */
export async function compare(
  name: string,
  target: number,
  baseline: () => Promise<number>,
  measured: () => Promise<number>,
  rounds: number,
): Promise<void> {
  const base: number[] = [];
  const ours: number[] = [];
  for (let round = 0; round < rounds; round++) {
    base.push(await baseline());
    ours.push(await measured());
  }
  const ratio = median(ours) / median(base);
  console.log(
    `${name}: ${fmt(median(ours))}/s vs baseline ${fmt(median(base))}/s = ${ratio.toFixed(2)}x ` +
      `(target ${target.toFixed(2)}x; ${rounds} rounds, medians)`,
  );
}
