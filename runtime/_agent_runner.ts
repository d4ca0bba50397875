// Runs one agent: an ordered consumer of the log (or of the bus, without a
// vault) with retries, checkpoints and idempotent emits.
import { getLogger } from "@logtape/logtape";
import type { EventRecord, EventStore } from "./event_store.ts";
import type { EmitInput, EventBus, Subscription } from "./event_bus.ts";
import type { ToolRegistry } from "./tool_registry.ts";
import type { TokenAuthority } from "./token_authority.ts";
import type { StorageAdapter } from "./storage.ts";
import type { Agent, AgentContext } from "./agent.ts";
import type { CheckpointBook } from "./_checkpoint.ts";
import { formatPosition } from "./_ids.ts";

export interface RetryPolicy {
  attempts: number;
  backoffMs: (attempt: number) => number;
}

export interface RunnerDeps {
  bus: EventBus;
  store: EventStore | undefined;
  tools: ToolRegistry;
  auth: TokenAuthority;
  checkpoints: CheckpointBook;
  storage: (scheme: string) => StorageAdapter | undefined;
  retry: RetryPolicy;
}

const message = (error: unknown): string => error instanceof Error ? error.message : String(error);

export class AgentRunner {
  readonly agent: Agent;
  running = false;
  position: string | null = null;
  failures = 0;
  handled = 0;
  #deps: RunnerDeps;
  #actor: string;
  #logger;
  #controller = new AbortController();
  #token = "";
  #loop: Promise<void> | undefined;
  #subscription: Subscription | undefined;
  #current: { event: EventRecord; index: number } | undefined;
  // What the agent emitted while handling each unfinished event, by emit index.
  #emitted = new Map<string, EventRecord[]>();
  #ctx: AgentContext;

  constructor(agent: Agent, deps: RunnerDeps) {
    this.agent = agent;
    this.#deps = deps;
    this.#actor = `agent/${agent.name}`;
    this.#logger = getLogger(["toka", "agent", agent.name]);
    this.#ctx = this.#context();
  }

  #context(): AgentContext {
    const { tools, storage } = this.#deps;
    const token = () => this.#token;
    const signal = () => this.#controller.signal;
    return Object.freeze({
      name: this.agent.name,
      get token() {
        return token();
      },
      get signal() {
        return signal();
      },
      logger: this.#logger,
      tools: Object.freeze({
        call: (name: string, input: unknown, options?: { signal?: AbortSignal }) =>
          tools.call(name, input, {
            token: token(),
            signal: options?.signal ?? signal(),
          }),
        list: () => tools.list(),
      }),
      emit: (input: EmitInput) => this.#emit(input),
      storage,
    });
  }

  async start(): Promise<void> {
    if (this.running) return;
    const { store, checkpoints, bus } = this.#deps;
    this.#controller = new AbortController();
    const checkpoint = await checkpoints.load(this.agent.name);
    this.position = checkpoint?.position ?? null;
    this.failures = checkpoint?.failures ?? 0;
    // Record the agent (and its patterns, which `toka agent list` counts lag
    // by) before it handles anything, and again when its patterns changed.
    if (!samePatterns(checkpoint?.subscribe, this.agent.subscribe)) {
      checkpoints.save(this.agent.name, this.position, this.failures, this.agent.subscribe);
    }
    await this.renewToken();
    if (store !== undefined) await this.#scanEmitted(store);
    try {
      await this.agent.init?.(this.#ctx);
    } catch (error) {
      this.#logger.error("Agent {name} failed to initialise: {message}", {
        name: this.agent.name,
        message: message(error),
      });
      await this.#emit({
        kind: "agent.failed",
        payload: { agent: this.agent.name, phase: "init", error: message(error) },
      }).catch(() => {});
      return;
    }
    this.running = true;
    if (store !== undefined) this.#loop = this.#consume(store);
    else {
      this.#subscription = bus.subscribe(this.agent.subscribe, (event) => this.#handle(event));
    }
  }

  async renewToken(): Promise<void> {
    this.#token = await this.#deps.auth.issue({
      sub: this.#actor,
      permissions: [...(this.agent.permissions ?? [])],
    });
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    if (this.#subscription !== undefined) {
      // Without a vault nothing could replay the mailbox, so finish it first.
      await this.#subscription.idle();
      this.#controller.abort();
      await this.#subscription.close();
      this.#subscription = undefined;
    } else {
      this.#controller.abort();
      await this.#loop;
      this.#loop = undefined;
    }
    try {
      await this.agent.stop?.(this.#ctx);
    } catch (error) {
      this.#logger.error("Agent {name} failed to stop cleanly: {message}", {
        name: this.agent.name,
        message: message(error),
      });
    }
  }

  // Emits of a previous run that died before its checkpoint, so that a
  // redelivered event does not emit them twice.
  async #scanEmitted(store: EventStore): Promise<void> {
    this.#emitted.clear();
    const from = this.position === null ? undefined : formatPosition(Number(this.position) + 1);
    for await (const event of store.read({ from })) {
      const cause = event.meta.causationId;
      if (event.meta.actor !== this.#actor || cause === undefined) continue;
      let list = this.#emitted.get(cause);
      if (list === undefined) this.#emitted.set(cause, list = []);
      list.push(event);
    }
  }

  async #consume(store: EventStore): Promise<void> {
    const signal = this.#controller.signal;
    try {
      for await (
        const event of store.subscribe({
          after: this.position ?? undefined,
          kinds: [...this.agent.subscribe],
          signal,
        })
      ) {
        await this.#handle(event);
        if (signal.aborted) break;
      }
    } catch (error) {
      if (!signal.aborted) {
        this.#logger.error("Agent {name} stopped reading the log: {message}", {
          name: this.agent.name,
          message: message(error),
        });
      }
    }
  }

  async #handle(event: EventRecord): Promise<void> {
    const { attempts, backoffMs } = this.#deps.retry;
    const signal = this.#controller.signal;
    for (let attempt = 1;; attempt++) {
      this.#current = { event, index: 0 };
      try {
        await this.agent.handle(event, this.#ctx);
        break;
      } catch (error) {
        // Stopping: the event is not finished and is delivered again next start.
        if (signal.aborted) return;
        if (attempt >= attempts) {
          this.failures++;
          this.#logger.error(
            "Agent {name} gave up on event {id} after {attempts} attempts: {message}",
            {
              name: this.agent.name,
              id: event.id,
              attempts,
              message: message(error),
            },
          );
          await this.#emit({
            kind: "agent.failed",
            payload: {
              agent: this.agent.name,
              eventId: event.id,
              kind: event.kind,
              attempts,
              error: message(error),
            },
          }).catch((e) =>
            this.#logger.error("Could not record agent.failed: {message}", { message: message(e) })
          );
          break;
        }
        this.#logger.warn("Agent {name} failed on event {id} (attempt {attempt}): {message}", {
          name: this.agent.name,
          id: event.id,
          attempt,
          message: message(error),
        });
        if (!(await sleep(backoffMs(attempt), signal))) return;
      } finally {
        this.#current = undefined;
      }
    }
    this.#emitted.delete(event.id);
    this.position = event.position;
    this.handled++;
    this.#deps.checkpoints.save(
      this.agent.name,
      event.position,
      this.failures,
      this.agent.subscribe,
    );
  }

  async #emit(input: EmitInput): Promise<EventRecord> {
    if (input === null || typeof input !== "object") {
      throw new TypeError(`Invalid event ${JSON.stringify(input)}: expected an object with a kind`);
    }
    const full = {
      ...input,
      stream: input.stream ?? this.#actor,
      meta: { ...input.meta, actor: this.#actor },
    };
    const current = this.#current;
    if (current === undefined) return this.#deps.bus.emit(full);
    const index = current.index++;
    const id = current.event.id;
    const prior = this.#emitted.get(id)?.[index];
    if (prior !== undefined && prior.kind === input.kind) return prior;
    const record = await this.#deps.bus.emit(full, current.event);
    let list = this.#emitted.get(id);
    if (list === undefined) this.#emitted.set(id, list = []);
    list[index] = record;
    return record;
  }
}

function samePatterns(
  stored: readonly string[] | undefined,
  current: readonly string[],
): boolean {
  return stored !== undefined && stored.length === current.length &&
    stored.every((pattern, i) => pattern === current[i]);
}

function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve(!signal.aborted);
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}
