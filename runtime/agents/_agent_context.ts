// The `ctx` a handler gets: a frozen view of its runner.
import type { Logger } from "@logtape/logtape";
import type { EventRecord } from "../log/event_store.ts";
import type { EmitInput } from "../bus/subscription.ts";
import type { ToolRegistry } from "../tool_registry.ts";
import type { AgentStorageOptions, StorageAdapter } from "../storage/storage.ts";
import type { AgentContext, AgentState } from "./agent.ts";

export interface ContextParts {
  name: string;
  logger: Logger;
  tools: ToolRegistry;
  storage: (scheme: string, options?: AgentStorageOptions) => StorageAdapter | undefined;
  /** The agent's current token. */
  token: () => string;
  /** The handlers' current signal. */
  signal: () => AbortSignal;
  call: (name: string, input: unknown, signal: AbortSignal) => Promise<unknown>;
  emit: (input: EmitInput) => Promise<EventRecord>;
  state: AgentState;
  step: <T>(name: string, fn: () => T | Promise<T>) => Promise<T>;
}

export function agentContext(parts: ContextParts): AgentContext {
  const { token, signal, tools } = parts;
  return Object.freeze({
    name: parts.name,
    get token() {
      return token();
    },
    get signal() {
      return signal();
    },
    logger: parts.logger,
    tools: Object.freeze({
      call: (name: string, input: unknown, options?: { signal?: AbortSignal }) =>
        parts.call(name, input, options?.signal ?? signal()),
      list: () => tools.list(),
    }),
    emit: parts.emit,
    state: parts.state,
    step: parts.step,
    storage: parts.storage,
  });
}
