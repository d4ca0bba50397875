// Interleaved rounds for ratio benchmarks on a noisy machine: a baseline and a
// candidate alternate round by round, flipping their order each round, and
// the medians are compared.

/** Events per batch and batches per timing. */
export const BATCH = 1000;
const SAMPLES = 100;

/** Nanoseconds per event over `samples` batches of `batch` events. */
async function time(run: () => Promise<void>, samples: number, batch: number): Promise<number> {
  const started = performance.now();
  for (let i = 0; i < samples; i++) await run();
  return (performance.now() - started) * 1e6 / (samples * batch);
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
 * runs `samples` batches (100; fewer for work that takes milliseconds a batch)
 * of `batch` events each (BATCH, unless the runs do fewer).
 */
export async function interleaved(
  baseline: () => Promise<void>,
  candidate: () => Promise<void>,
  rounds: number,
  samples: number = SAMPLES,
  batch: number = BATCH,
): Promise<Rounds> {
  const b = () => time(baseline, samples, batch);
  const c = () => time(candidate, samples, batch);
  for (let i = 0; i < 5; i++) await b(), await c();
  const result: Rounds = { events: samples * batch, baselineNs: [], candidateNs: [], ratios: [] };
  for (let round = 0; round < rounds; round++) {
    let bNs: number, cNs: number;
    if (round % 2 === 0) bNs = await b(), cNs = await c();
    else cNs = await c(), bNs = await b();
    result.baselineNs.push(bNs);
    result.candidateNs.push(cNs);
    result.ratios.push(bNs / cNs);
  }
  return result;
}

/** "min–max" of values, with `digits` decimals. */
export function range(values: number[], digits: number): string {
  return `${Math.min(...values).toFixed(digits)}–${Math.max(...values).toFixed(digits)}`;
}
