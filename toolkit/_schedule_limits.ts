// The limits of a Scheduler's options, checked apart so a caller can refuse bad ones before
// opening anything (Scheduler.checkOptions).
import { intOption } from "../internal/int_option.ts";
import type { SchedulerOptions } from "./schedule_tools.ts";

const DAY = 86_400_000;
// With their defaults; throws on a bad one.
export function schedulerLimits(options: Omit<SchedulerOptions, "emit">) {
  const limits = {
    pollMs: intOption("pollIntervalMs", options.pollIntervalMs, 1000, 10, 60_000),
    maxDelayMs: intOption("maxDelayMs", options.maxDelayMs, 365 * DAY, 1, 3653 * DAY),
    maxPending: intOption("maxPending", options.maxPending, 1000, 1, 100_000),
    maxPerSubject: intOption("maxPendingPerSubject", options.maxPendingPerSubject, 100, 1, 100_000),
    maxPayloadBytes: intOption("maxPayloadBytes", options.maxPayloadBytes, 16_384, 1, 32_768),
    claimMs: intOption("claimTimeoutMs", options.claimTimeoutMs, 10_000, 0, 3_600_000),
  };
  if (options.kv !== undefined && options.vault === undefined) {
    throw new TypeError("Invalid schedule options: kv needs the vault it belongs to");
  }
  return limits;
}
