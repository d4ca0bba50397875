/**
 * The runtime: hosts agents in one process around an event bus, with an
 * optional vault, toolkit and auth.
 *
 * @module
 */

import { getLogger } from "@logtape/logtape";
import type { EventRecord, EventStore, JsonValue } from "./log/event_store.ts";
import { formatPosition, parsePosition } from "./log/event_rules.ts";
import { EventBus } from "./bus/event_bus.ts";
import type {
  BusSubscribeOptions,
  EmitInput,
  EventHandler,
  EventStream,
  Subscription,
} from "./bus/subscription.ts";
import { NoopToolRegistry, type ToolRegistry } from "./tool_registry.ts";
import { AllowAllAuthority, type TokenAuthority } from "./token_authority.ts";
import type { StorageAdapter } from "./storage/storage.ts";
import { type Agent, defineAgent, isAgentName } from "./agents/agent.ts";
import { AgentRunner, type RetryPolicy } from "./agents/_agent_runner.ts";
import { LeaseBook } from "./agents/_lease.ts";
import { CheckpointBook } from "./agents/_checkpoint.ts";
import type { AgentStatePorts, AgentStateSource } from "./agents/agent_state.ts";
import { stateOf } from "./agents/_state_keeper.ts";
import { MemoryCheckpointStore } from "./agents/memory_agent_state.ts";
import { MemoryEventStore } from "./log/memory_event_store.ts";
import { LocalStorage } from "./storage/_local_storage.ts";
import { checkProtectedPaths } from "../internal/protected_paths.ts";
import { checkConfig } from "./_check_config.ts";
import type { RuntimeConfig, RuntimeHooks } from "./runtime_config.ts";
import type { AgentStatus } from "./agents/agent_status.ts";
import { agentStorage } from "./storage/_scoped_storage.ts";
import { errorMessage } from "../internal/error_message.ts";
import { retryRequests } from "./agents/failed_events.ts";

const logger = getLogger(["toka", "runtime"]);

/**
 * Hosts agents around an {@linkcode EventBus}. Every feature is optional:
 * without a vault the log is a `MemoryEventStore`, without a toolkit `tools`
 * is a no-op registry, without auth every call is allowed (the runtime logs
 * each of these once).
 *
 * Delivery guarantee: each agent is a consumer of the log (the vault, or the
 * in-memory store) and its checkpoint (`["runtime", "checkpoint", name]` in
 * the vault's KV with a Deno KV vault) is written after each event it
 * finishes. After `stop()` it resumes exactly
 * after the last finished event. After a crash or SIGKILL, events handled
 * since the last written checkpoint are delivered again (at-least-once for
 * the handler), but what the agent emits is idempotent per handled event,
 * so the log holds each of its effects once.
 *
 * @example
 * ```ts
 * import { defineAgent, Runtime } from "@toka/runtime/runtime";
 *
 * const runtime = await Runtime.create();
 * runtime.register(defineAgent({
 *   name: "worker",
 *   subscribe: ["task.*"],
 *   async handle(event, ctx) {
 *     await ctx.emit({ kind: "work.done", payload: event.payload });
 *   },
 * }));
 * await runtime.start();
 * await runtime.emit({ kind: "task.created", payload: { id: 1 } });
 * await runtime.stop();
 * console.log(runtime.agents()[0].handled); // 1
 * ```
 */
export class Runtime {
  /** The tool registry agents call. */
  readonly tools: ToolRegistry;
  /** The event bus. */
  readonly bus: EventBus;
  #store: EventStore;
  #auth: TokenAuthority;
  #authAttached: boolean;
  #maxAgents: number;
  #checkpoints: CheckpointBook;
  #leases: LeaseBook | undefined;
  #runners = new Map<string, AgentRunner>();
  #storages: Map<string, StorageAdapter>;
  #retry: RetryPolicy;
  #hooks: RuntimeHooks;
  #clock: () => number;
  #monotonic: () => number;
  #stopTimeoutMs: number;
  #running = false;
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(config: RuntimeConfig) {
    const clock = config.clock ?? Date.now;
    this.#clock = clock;
    this.#monotonic = config.monotonicClock ?? (() => performance.now());
    // Agents always consume a store: without a vault, one in memory.
    this.#store = config.vault ?? new MemoryEventStore({ clock });
    this.tools = config.tools ?? new NoopToolRegistry();
    this.#auth = config.auth ?? new AllowAllAuthority(clock);
    this.#authAttached = config.auth !== undefined;
    this.#maxAgents = config.maxAgents ?? 100;
    // Made now but touches no file before its first use.
    this.#storages = new Map(Object.entries({
      local: new LocalStorage(
        config.storageRoot ?? "./.toka/storage",
        undefined,
        checkProtectedPaths(config.protectedPaths),
      ),
      ...config.storage,
    }));
    this.bus = new EventBus({
      store: this.#store,
      bufferSize: config.eventBufferSize,
      clock,
      maxCausalDepth: config.maxCausalDepth,
    });
    // Ports, never the vault's KV: a durable vault offers its own, so that it
    // is never paired with checkpoints lost with the process.
    const offered = config.checkpoints === undefined && config.leases === undefined
      ? agentStateOf(config.vault)
      : undefined;
    const checkpoints = config.checkpoints ?? offered?.checkpoints ?? new MemoryCheckpointStore();
    this.#checkpoints = new CheckpointBook(checkpoints, clock);
    const leases = config.leases ?? offered?.leases;
    if (leases !== undefined) {
      this.#leases = new LeaseBook(
        leases,
        clock,
        (config.agentLeaseSecs ?? 10) * 1000,
        this.#monotonic,
      );
    }
    this.#stopTimeoutMs = config.stopTimeoutMs ?? 10_000;
    this.#hooks = { ...config.hooks };
    this.#retry = {
      attempts: config.retry?.attempts ?? 3,
      backoffMs: config.retry?.backoffMs ?? ((n) => Math.min(5000, 100 * 2 ** (n - 1))),
    };
  }

  /**
   * Creates a runtime. It starts stopped: register agents, then `start()`.
   *
   * @param config The vault, tools, auth and limits; all optional.
   * @returns The runtime.
   * @throws {TypeError} When a field has the wrong type, or only one of
   *   `checkpoints` and `leases` is given with a vault that keeps its own.
   * @throws {RangeError} When a number is out of range.
   *
   * @example
   * ```ts
   * import { Runtime } from "@toka/runtime/runtime";
   *
   * const runtime = await Runtime.create({ maxAgents: 10 });
   * console.log(runtime.isRunning); // false
   * ```
   */
  static create(config: RuntimeConfig = {}): Promise<Runtime> {
    try {
      checkConfig(config);
      const runtime = new Runtime(config);
      if (config.vault === undefined) {
        logger.info("No vault attached: events are kept in memory only");
      }
      if (config.tools === undefined) {
        logger.info("No toolkit attached: tools.call() finds no tool");
      }
      if (config.auth === undefined) {
        logger.warn("No auth attached: every call is allowed");
      }
      return Promise.resolve(runtime);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** True between `start()` and `stop()`. */
  get isRunning(): boolean {
    return this.#running;
  }

  /**
   * Starts every registered agent; does nothing when already running.
   *
   * @returns When every agent has loaded its checkpoint and run `init`, or stands by
   *   because another process runs it (see `agentLeaseSecs`).
   *
   * @example
   * ```ts
   * import { Runtime } from "@toka/runtime/runtime";
   *
   * const runtime = await Runtime.create();
   * await runtime.start();
   * await runtime.start(); // no-op
   * await runtime.stop();
   * ```
   */
  start(): Promise<void> {
    return this.#serial(async () => {
      if (this.#running) return;
      this.#running = true;
      await Promise.all([...this.#runners.values()].map((r) => this.#startRunner(r)));
      await this.#hooks.afterStart?.();
      logger.info("Runtime started with {count} agent(s)", { count: this.#runners.size });
    });
  }

  /**
   * Stops every agent after draining it: the events appended before `stop()`
   * that it subscribes to are handled and the one in hand finishes, up to
   * `stopTimeoutMs` (10 s), after which its `ctx.signal` aborts and what is
   * left is handled at the next start. Then waits for bus subscribers to go
   * idle and writes the checkpoints. Does nothing when stopped.
   *
   * @returns When nothing is left running.
   *
   * @example
   * ```ts
   * import { Runtime } from "@toka/runtime/runtime";
   *
   * const runtime = await Runtime.create();
   * await runtime.start();
   * await runtime.stop();
   * console.log(runtime.isRunning); // false
   * ```
   */
  stop(): Promise<void> {
    return this.#serial(async () => {
      if (!this.#running) return;
      await this.#hooks.beforeStop?.();
      this.#running = false;
      await Promise.all([...this.#runners.values()].map((r) => r.stop()));
      await this.bus.idle();
      await this.#checkpoints.flush();
      logger.info("Runtime stopped");
    });
  }

  /**
   * Stops the runtime, as {@linkcode Runtime.stop}, then runs the `onClose`
   * hook (see {@linkcode RuntimeHooks}), which releases what it was given to own.
   *
   * @returns When nothing is left running and the hook has run.
   *
   * @example
   * ```ts
   * import { Runtime } from "@toka/runtime/runtime";
   *
   * const runtime = await Runtime.create({ hooks: { onClose: () => console.log("closed") } });
   * await runtime.start();
   * await runtime.close(); // closed
   * ```
   */
  async close(): Promise<void> {
    await this.stop();
    await this.#hooks.onClose?.();
  }

  /**
   * Closes the runtime, as {@linkcode Runtime.close}, at the end of an
   * `await using` block.
   *
   * @returns When nothing is left running.
   *
   * @example
   * ```ts
   * import { Runtime } from "@toka/runtime/runtime";
   *
   * {
   *   await using runtime = await Runtime.create();
   *   await runtime.start();
   * } // stopped here
   * ```
   */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /**
   * Registers an agent; it starts now when the runtime is running.
   *
   * @param agent An agent, as made by {@linkcode defineAgent}.
   * @throws {TypeError} When the definition is invalid or the name is taken.
   * @throws {RangeError} When `maxAgents` agents are already registered.
   *
   * @example
   * ```ts
   * import { defineAgent, Runtime } from "@toka/runtime/runtime";
   *
   * const runtime = await Runtime.create();
   * runtime.register(defineAgent({ name: "noop", subscribe: ["*"], handle() {} }));
   * console.log(runtime.agents().map((a) => a.name)); // ["noop"]
   * ```
   */
  register(agent: Agent): void {
    const defined = defineAgent(agent);
    if (this.#runners.has(defined.name)) {
      throw new TypeError(`Agent "${defined.name}" is already registered`);
    }
    if (this.#runners.size >= this.#maxAgents) {
      throw new RangeError(
        `Cannot register agent "${defined.name}": the runtime already has ${this.#maxAgents} agents (maxAgents)`,
      );
    }
    const runner = new AgentRunner(defined, {
      bus: this.bus,
      store: this.#store,
      tools: this.tools,
      auth: this.#auth,
      checkpoints: this.#checkpoints,
      leases: this.#leases,
      storage: (token) => agentStorage(defined.name, (s) => this.storage(s), this.#auth, token),
      retry: this.#retry,
      clock: this.#clock,
      monotonic: this.#monotonic,
      stopTimeoutMs: this.#stopTimeoutMs,
    });
    this.#runners.set(defined.name, runner);
    if (this.#running) {
      void this.#serial(() => this.#running ? this.#startRunner(runner) : undefined);
    }
  }

  /**
   * Stops and removes an agent. Its checkpoint stays, so registering it again resumes it.
   *
   * @param name The agent's name.
   * @returns Whether an agent had this name.
   *
   * @example
   * ```ts
   * import { defineAgent, Runtime } from "@toka/runtime/runtime";
   *
   * const runtime = await Runtime.create();
   * runtime.register(defineAgent({ name: "noop", subscribe: ["*"], handle() {} }));
   * console.log(await runtime.unregister("noop")); // true
   * ```
   */
  unregister(name: string): Promise<boolean> {
    const runner = this.#runners.get(name);
    if (runner === undefined) return Promise.resolve(false);
    this.#runners.delete(name);
    return this.#serial(async () => {
      await runner.stop();
      await this.#checkpoints.flush();
      return true;
    });
  }

  /**
   * Lists the registered agents with their position and counts.
   *
   * @returns One status per agent, in registration order.
   *
   * @example
   * ```ts
   * import { Runtime } from "@toka/runtime/runtime";
   *
   * const runtime = await Runtime.create();
   * console.log(runtime.agents()); // []
   * ```
   */
  agents(): AgentStatus[] {
    return [...this.#runners.values()].map((r) => ({
      name: r.agent.name,
      subscribe: r.agent.subscribe,
      running: r.running,
      position: r.position,
      failures: r.failures,
      handled: r.handled,
      standby: r.standby,
    }));
  }

  /**
   * The state an agent had (`ctx.state`) once it had handled every event up
   * to `position` (the head of the log by default), as recorded in the log:
   * one KV read on a Deno KV vault, however long its history. The agent need
   * not be registered.
   *
   * @param agent The agent's name.
   * @param position A global position (up to 16 digits).
   * @returns The state, or `undefined` when it had set none by then.
   * @throws {TypeError} When the name or the position is invalid.
   *
   * @example
   * ```ts
   * import { Runtime } from "@toka/runtime/runtime";
   *
   * const runtime = await Runtime.create();
   * console.log(await runtime.stateAt("counter", "42")); // undefined
   * ```
   */
  async stateAt(agent: string, position?: string): Promise<JsonValue | undefined> {
    if (!isAgentName(agent)) {
      throw new TypeError(
        `Invalid agent name ${JSON.stringify(agent)}: use 1 to 64 letters, digits, _ or -`,
      );
    }
    const at = position === undefined ? undefined : formatPosition(parsePosition(position));
    const change = await this.#checkpoints.stateAt(agent, at);
    return change === undefined ? undefined : await stateOf(this.#store, change);
  }

  /**
   * Emits an event through the bus (appended to the vault first, if any).
   *
   * @param input The kind, payload and optionally stream (`"runtime"`), parents, intent, meta.
   * @returns The stored event.
   * @throws {TypeError} When the event is invalid.
   * @throws {VersionConflictError} When `expectedVersion` does not match.
   *
   * @example
   * ```ts
   * import { Runtime } from "@toka/runtime/runtime";
   *
   * const runtime = await Runtime.create();
   * const event = await runtime.emit({ kind: "task.created", payload: { id: 1 } });
   * console.log(event.stream); // runtime
   * ```
   */
  emit(input: EmitInput): Promise<EventRecord> {
    return this.bus.emit(input);
  }

  /**
   * Asks an agent to handle again an event it gave up on (see
   * `readFailedEvents`): appends an `agent.retry_requested` to its stream
   * `agent/<name>`. The agent handles it in order with the rest of the log, in
   * this process or whichever runs it, or at its next start when none does: it
   * delivers the event again (what earlier attempts emitted is not appended
   * twice) and appends `agent.recovered` when the handler finishes, or a new
   * `agent.failed` when it gives up again.
   *
   * @param agent The agent's name: registered here, or one that failed in this log.
   * @param eventId The id of the event it gave up on.
   * @returns The stored request.
   * @throws {TypeError} When the name or id is malformed.
   * @throws {RetryRefusedError} When the agent or event is unknown, the agent has
   *   not given up on the event, or a retry of it is already requested.
   *
   * @example
   * ```ts
   * import { defineAgent, Runtime } from "@toka/runtime/runtime";
   *
   * let broken = true;
   * const runtime = await Runtime.create({ retry: { attempts: 1 } });
   * runtime.register(defineAgent({
   *   name: "worker",
   *   subscribe: ["task.*"],
   *   handle() {
   *     if (broken) throw new Error("not yet");
   *   },
   * }));
   * await runtime.start();
   * const task = await runtime.emit({ kind: "task.created" });
   * while (runtime.agents()[0].failures === 0) await new Promise((r) => setTimeout(r, 5));
   * broken = false;
   * await runtime.retry("worker", task.id);
   * await runtime.stop(); // drains: the retry is handled
   * ```
   */
  async retry(agent: string, eventId: string): Promise<EventRecord> {
    const [request] = await retryRequests(this.#store, agent, eventId, this.#runners.has(agent));
    return await this.bus.emit(request);
  }

  /**
   * Subscribes a handler to the bus.
   *
   * @param patterns Kind patterns, e.g. `"task.*"`.
   * @param handler Called for each matching event, one at a time.
   * @param options Replay position and abort signal.
   * @returns The subscription.
   * @throws {TypeError} When a pattern is invalid.
   *
   * @example
   * ```ts
   * import { Runtime } from "@toka/runtime/runtime";
   *
   * const runtime = await Runtime.create();
   * const sub = runtime.subscribe("task.*", (event) => console.log(event.kind));
   * await runtime.emit({ kind: "task.created" });
   * await sub.idle(); // task.created
   * await sub.close();
   * ```
   */
  subscribe(
    patterns: string | readonly string[],
    handler: EventHandler,
    options?: BusSubscribeOptions,
  ): Subscription;
  /**
   * Subscribes an async iterator to the bus.
   *
   * @param patterns Kind patterns, e.g. `"task.*"`.
   * @param options Replay position and abort signal.
   * @returns The subscription, to iterate with `for await`.
   * @throws {TypeError} When a pattern is invalid.
   */
  subscribe(patterns: string | readonly string[], options?: BusSubscribeOptions): EventStream;
  subscribe(
    patterns: string | readonly string[],
    handlerOrOptions?: EventHandler | BusSubscribeOptions,
    options?: BusSubscribeOptions,
  ): Subscription | EventStream {
    return typeof handlerOrOptions === "function"
      ? this.bus.subscribe(patterns, handlerOrOptions, options)
      : this.bus.subscribe(patterns, handlerOrOptions);
  }

  /**
   * Returns a storage adapter, whole: `"local"` (files under `storageRoot`
   * unless another is given), `"vault"` (when one is given in `storage`) or
   * another scheme given there. Agents get their own namespace of it instead
   * (`agents/<name>/`, see `AgentContext.storage`).
   *
   * @param scheme `"local"`, `"vault"` or a scheme given in `storage`.
   * @returns The adapter, or `undefined` for a scheme without one.
   *
   * @example
   * ```ts
   * import { Runtime } from "@toka/runtime/runtime";
   *
   * const runtime = await Runtime.create();
   * console.log(runtime.storage("s3")); // undefined
   * ```
   */
  storage(scheme: string): StorageAdapter | undefined {
    return this.#storages.get(scheme);
  }

  /**
   * Rotates the auth secrets and issues fresh tokens to running agents.
   *
   * @returns The key id of the new active secret.
   * @throws {TypeError} When no auth is attached, or it cannot rotate.
   *
   * @example
   * ```ts
   * import { Runtime } from "@toka/runtime/runtime";
   *
   * const runtime = await Runtime.create();
   * await runtime.rotateSecrets().catch((e) => console.log(e.message)); // Cannot rotate secrets: ...
   * ```
   */
  async rotateSecrets(): Promise<{ kid: string }> {
    const auth = this.#auth;
    if (!this.#authAttached) {
      throw new TypeError("Cannot rotate secrets: no auth is attached to the runtime");
    }
    if (auth.rotate === undefined) {
      throw new TypeError("Cannot rotate secrets: the attached auth has no rotate()");
    }
    const { kid } = await auth.rotate();
    const running = [...this.#runners.values()].filter((r) => r.running);
    await Promise.all(running.map((r) => r.renewToken()));
    logger.info("Auth secrets rotated: new key id {kid}, {count} agent tokens renewed", {
      kid,
      count: running.length,
    });
    return { kid };
  }

  async #startRunner(runner: AgentRunner): Promise<void> {
    try {
      await runner.start();
    } catch (error) {
      // One agent that cannot start must not keep the others from running.
      logger.error("Agent {name} could not start: {message}", {
        name: runner.agent.name,
        message: errorMessage(error),
      });
    }
  }

  #serial<T>(task: () => T | Promise<T>): Promise<T> {
    const next = this.#queue.then(task);
    this.#queue = next.catch(() => {});
    return next;
  }
}

// The agent state a store offers beside its log (a Deno KV vault does), if any.
function agentStateOf(store: EventStore | undefined): AgentStatePorts | undefined {
  const source = store as Partial<AgentStateSource> | undefined;
  return typeof source?.agentState === "function" ? source.agentState() : undefined;
}
