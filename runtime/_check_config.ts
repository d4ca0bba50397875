// Validation of a RuntimeConfig, so that Runtime.create() rejects bad options
// with one clear error before anything is wired.

import { intOption } from "../internal/int_option.ts";
import type { RuntimeConfig } from "./runtime_config.ts";

export function checkConfig(config: RuntimeConfig): void {
  if (config === null || typeof config !== "object") {
    throw new TypeError(`Invalid runtime config ${JSON.stringify(config)}: expected an object`);
  }
  const wholeAtLeast = (field: string, value: unknown, min: number) =>
    intOption(field, value, min, min, Number.MAX_SAFE_INTEGER, {
      message: (v) => `Invalid ${field} ${JSON.stringify(v)}: expected a whole number ≥ ${min}`,
    });
  wholeAtLeast("maxAgents", config.maxAgents, 1);
  wholeAtLeast("eventBufferSize", config.eventBufferSize, 1);
  wholeAtLeast("stopTimeoutMs", config.stopTimeoutMs, 0);
  intOption("maxCausalDepth", config.maxCausalDepth, 100, 1, 1_000_000);
  intOption("agentLeaseSecs", config.agentLeaseSecs, 1, 0.1, 3600, {
    fractions: true,
    message: (v) =>
      `Invalid agentLeaseSecs ${JSON.stringify(v)}: expected a number of seconds from 0.1 to 3600`,
  });
  if (config.retry !== undefined) {
    const { attempts, backoffMs } = config.retry;
    wholeAtLeast("retry.attempts", attempts, 1);
    if (backoffMs !== undefined && typeof backoffMs !== "function") {
      throw new TypeError("Invalid retry.backoffMs: expected a function");
    }
  }
  const vault = config.vault;
  if (
    vault !== undefined &&
    (vault === null || typeof vault.append !== "function" || typeof vault.subscribe !== "function")
  ) {
    throw new TypeError("Invalid vault: expected an EventStore");
  }
  if (config.tools !== undefined && typeof config.tools?.call !== "function") {
    throw new TypeError("Invalid tools: expected a ToolRegistry");
  }
  if (config.auth !== undefined && typeof config.auth?.issue !== "function") {
    throw new TypeError("Invalid auth: expected a TokenAuthority");
  }
  if (config.checkpoints !== undefined && typeof config.checkpoints?.save !== "function") {
    throw new TypeError("Invalid checkpoints: expected a CheckpointStore");
  }
  if (config.leases !== undefined && typeof config.leases?.swap !== "function") {
    throw new TypeError("Invalid leases: expected a LeaseStore");
  }
  // One of the pair with a vault that keeps its own: the vault's checkpoints
  // would be fenced by leases nobody writes, or the reverse.
  if (
    (config.checkpoints === undefined) !== (config.leases === undefined) &&
    typeof (config.vault as { agentState?: unknown } | undefined)?.agentState === "function"
  ) {
    throw new TypeError(
      "Invalid config: pass checkpoints and leases together, or neither to keep agents' state in the vault",
    );
  }
  if (config.hooks !== undefined) {
    const hooks = config.hooks;
    if (hooks === null || typeof hooks !== "object") {
      throw new TypeError("Invalid hooks: expected an object of functions");
    }
    for (const name of ["afterStart", "beforeStop", "onClose"] as const) {
      if (hooks[name] !== undefined && typeof hooks[name] !== "function") {
        throw new TypeError(`Invalid hooks.${name}: expected a function`);
      }
    }
  }
  if (config.clock !== undefined && typeof config.clock !== "function") {
    throw new TypeError("Invalid clock: expected a function returning milliseconds");
  }
  if (config.monotonicClock !== undefined && typeof config.monotonicClock !== "function") {
    throw new TypeError("Invalid monotonicClock: expected a function returning milliseconds");
  }
  if (
    config.storageRoot !== undefined &&
    (typeof config.storageRoot !== "string" || config.storageRoot === "")
  ) {
    throw new TypeError(
      `Invalid storageRoot ${JSON.stringify(config.storageRoot)}: expected a path`,
    );
  }
  if (config.storage !== undefined) {
    if (config.storage === null || typeof config.storage !== "object") {
      throw new TypeError("Invalid storage: expected an object of storage adapters by scheme");
    }
    for (const [scheme, adapter] of Object.entries(config.storage)) {
      const methods = ["put", "get", "delete", "list"] as const;
      if (
        adapter === null || typeof adapter !== "object" ||
        methods.some((m) => typeof adapter[m] !== "function")
      ) {
        throw new TypeError(
          `Invalid storage ${JSON.stringify(scheme)}: expected a StorageAdapter`,
        );
      }
    }
  }
}
