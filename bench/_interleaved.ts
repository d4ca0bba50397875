// Interleaved rounds for ratio benchmarks on a noisy machine: a baseline and a
// candidate alternate round by round, flipping their order each round, and
// the medians are compared.

/** Events per batch and batches per timing. */
export const BATCH = 1000;
const SAMPLES = 100;

/** Nanoseconds per event over `samples` batches of BATCH events. */
async function time(run: () => Promise<void>, samples: number): Promise<number> {
  const started = performance.now();
  for (let i = 0; i < samples; i++) await run();
  return (performance.now() - started) * 1e6 / (samples * BATCH);
}

/** The median of some values. */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[sorted.length >> 1];
}

/** Per-round figures: ns/event for each side and baseline ÷ candidate time. */
export interface Rounds {
  events: number;
  baselineNs: number[];
  candidateNs: number[];
  ratios: number[];
}

/**
 * Warms both up (5 timings each), then runs `rounds` interleaved rounds. A
 * ratio above 1 means the candidate is faster than the baseline. Each timing
 * runs `samples` batches (100; fewer for work that takes milliseconds a batch).
 */
export async function interleaved(
  baseline: () => Promise<void>,
  candidate: () => Promise<void>,
  rounds: number,
  samples: number = SAMPLES,
): Promise<Rounds> {
  for (let i = 0; i < 5; i++) await time(baseline, samples), await time(candidate, samples);
  const result: Rounds = { events: samples * BATCH, baselineNs: [], candidateNs: [], ratios: [] };
  for (let round = 0; round < rounds; round++) {
    let b: number, c: number;
    if (round % 2 === 0) b = await time(baseline, samples), c = await time(candidate, samples);
    else c = await time(candidate, samples), b = await time(baseline, samples);
    result.baselineNs.push(b);
    result.candidateNs.push(c);
    result.ratios.push(b / c);
  }
  return result;
}

/** "min–max" of values, with `digits` decimals. */
export function range(values: number[], digits: number): string {
  return `${Math.min(...values).toFixed(digits)}–${Math.max(...values).toFixed(digits)}`;
}
