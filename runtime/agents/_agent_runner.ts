// Runs one agent: an ordered consumer of the log (the vault, or the in-memory
// store without one) with retries, checkpoints and its lease; what the handler
// does through its context (emits, tool calls) is in _handling.ts.
import { getLogger } from "@logtape/logtape";
import type { EventRecord, EventStore } from "../log/event_store.ts";
import type { EventBus } from "../bus/event_bus.ts";
import type { EmitInput } from "../bus/subscription.ts";
import type { ToolRegistry } from "../tool_registry.ts";
import type { TokenAuthority } from "../token_authority.ts";
import type { AgentStorageOptions, StorageAdapter } from "../storage/storage.ts";
import type { Agent, AgentContext } from "./agent.ts";
import { type CheckpointBook, idleHead, samePatterns } from "./_checkpoint.ts";
import type { LeaseBook } from "./_lease.ts";
import { LeaseHolder } from "./_lease_holder.ts";
import { HandlingCalls } from "./_handling.ts";
import { StateKeeper } from "./_state_keeper.ts";
import { agentContext } from "./_agent_context.ts";
import { formatPosition } from "../../internal/ids.ts";
import { delay } from "../../internal/retry.ts";
import { TokenKeeper } from "./_token_keeper.ts";
import { errorMessage } from "../../internal/error_message.ts";
import { CausalDepthError, TokaError } from "../errors.ts";
import { AGENT_FAILED, AGENT_RECOVERED, dueRetry, RETRY_REQUESTED } from "./failed_events.ts";
import { compileKindFilter, type KindFilter } from "../log/kind_pattern.ts";
import { traceHandling, withTraceIds } from "../../internal/tracing.ts";

type Outcome = "passed" | "stalled" | "stopped";

export interface RetryPolicy {
  attempts: number;
  backoffMs: (attempt: number) => number;
}

export interface RunnerDeps {
  /** Appends the agent's emits (and fans them out to plain subscribers). */
  bus: EventBus;
  /** The log the agent consumes: the bus's store. */
  store: EventStore;
  tools: ToolRegistry;
  auth: TokenAuthority;
  checkpoints: CheckpointBook;
  leases: LeaseBook | undefined;
  /** Makes the agent's ctx.storage, given how to read its current token. */
  storage: (
    token: () => string,
  ) => (scheme: string, options?: AgentStorageOptions) => StorageAdapter | undefined;
  retry: RetryPolicy;
  clock: () => number;
  /** Milliseconds from a monotonic clock: leases are judged by it, never by the wall clock. */
  monotonic: () => number;
  /** How long stop() lets handlers drain before their signal aborts. */
  stopTimeoutMs: number;
}

/** How often a running agent's checkpoint is moved past events it does not subscribe to. */
const ADVANCE_INTERVAL_MS = 1_000;

export class AgentRunner {
  readonly agent: Agent;
  running = false;
  position: string | null = null;
  failures = 0;
  handled = 0;
  #deps: RunnerDeps;
  #logger;
  // Aborts the handlers (ctx.signal): at stop, once drained or past the deadline.
  #controller = new AbortController();
  // Ends the live feed from the log; stop() then drains up to the head by reading.
  #feed = new AbortController();
  #tokens: TokenKeeper;
  #loop: Promise<void> | undefined;
  #advancer: ReturnType<typeof setInterval> | undefined;
  // The lease, if the runtime has leases, and the wait for another process to give it up.
  #lease: LeaseHolder | undefined;
  #waiting: Promise<void> | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  #advancing: Promise<void> | undefined;
  // The event in hand and the context calls (emits, tool calls) made for it.
  #calls: HandlingCalls;
  #state: StateKeeper;
  #ctx: AgentContext;
  // What it reads from the log: its own kinds, and retry requests.
  #kinds: string[];
  #subscribes: KindFilter;

  constructor(agent: Agent, deps: RunnerDeps) {
    this.agent = agent;
    this.#deps = deps;
    this.#kinds = [...agent.subscribe, RETRY_REQUESTED];
    this.#subscribes = compileKindFilter(agent.subscribe);
    this.#logger = withTraceIds(getLogger(["toka", "agent", agent.name]));
    this.#lease = deps.leases === undefined ? undefined : new LeaseHolder(
      deps.leases,
      agent.name,
      deps.monotonic,
      this.#logger,
      () => this.#lostLease(),
    );
    this.#tokens = new TokenKeeper(
      deps.auth,
      agent.name,
      agent.permissions ?? [],
      deps.clock,
      this.#logger,
    );
    this.#calls = new HandlingCalls({
      name: agent.name,
      bus: deps.bus,
      tools: deps.tools,
      tokens: this.#tokens,
      lease: this.#lease,
      logger: this.#logger,
      leaseFresh: () => this.#leaseFresh(),
      confirmLease: () => this.#confirmLease(),
    });
    const failures = () => this.failures;
    this.#state = new StateKeeper(agent, deps.checkpoints, this.#calls, this.#logger, failures);
    // The token is still valid for the renewal margin while a due renewal runs.
    const token = () => this.#tokens.current;
    this.#ctx = agentContext({
      name: agent.name,
      logger: this.#logger,
      tools: deps.tools,
      storage: deps.storage(token),
      token,
      signal: () => this.#controller.signal,
      call: (name, input, signal) => this.#calls.call(name, input, signal),
      emit: (input) => this.#calls.emit(input),
      state: this.#state,
      step: (name, fn) => this.#calls.step(name, fn),
    });
  }

  /** True while another process holds this agent's lease. */
  get standby(): boolean {
    return this.#waiting !== undefined;
  }

  start(): Promise<void> {
    return this.#serial(() => this.#start());
  }

  async #start(): Promise<void> {
    if (this.running || this.#waiting !== undefined) return;
    this.#controller = new AbortController();
    const lease = this.#lease;
    if (lease !== undefined && !(await lease.take())) {
      this.#logger.warn(
        "Agent {name} runs in another process (or one that ended less than {secs} s ago); this one takes over when that lease ends",
        { name: this.agent.name, secs: lease.ttlMs / 1000 },
      );
      this.#waiting = this.#waitForLease(lease, this.#controller.signal);
      return;
    }
    await this.#beginHolding();
  }

  async #waitForLease(lease: LeaseHolder, signal: AbortSignal): Promise<void> {
    try {
      // Stopped meanwhile: stop() gives a lease taken back.
      if (!(await lease.waitFor(signal))) return;
      this.#logger.info("Agent {name} takes over", { name: this.agent.name });
      await this.#beginHolding();
    } catch (error) {
      this.#logger.error("Agent {name} could not take over: {message}", {
        name: this.agent.name,
        message: errorMessage(error),
      });
    } finally {
      this.#waiting = undefined;
    }
  }

  // Another process took the lease over (this one was paused past its end):
  // stop handling here, and stand by to take over again.
  #lostLease(): void {
    void this.#serial(async () => {
      if (!this.running) return;
      this.#logger.warn("Agent {name} lost its lease to another process; it stands by", {
        name: this.agent.name,
      });
      await this.#stop(false);
      await this.#start();
    }).catch((error) =>
      this.#logger.error("Agent {name} could not stand by: {message}", {
        name: this.agent.name,
        message: errorMessage(error),
      })
    );
  }

  // Begins, and gives the lease back when that fails: an agent that is not
  // running must not keep another process from running it.
  async #beginHolding(): Promise<void> {
    try {
      await this.#begin();
    } catch (error) {
      await this.#releaseLease();
      throw error;
    }
  }

  async #releaseLease(): Promise<void> {
    // The next holder must find the checkpoint this one reached.
    await this.#lease?.release(() => this.#deps.checkpoints.flush());
  }

  #serial(task: () => Promise<void>): Promise<void> {
    const next = this.#queue.then(task);
    this.#queue = next.catch(() => {});
    return next;
  }

  // Starts consuming: the agent holds its lease, if there is one.
  async #begin(): Promise<void> {
    const { store, checkpoints } = this.#deps;
    const checkpoint = await checkpoints.load(this.agent.name);
    this.position = checkpoint?.position ?? null;
    this.failures = checkpoint?.failures ?? 0;
    // Record the agent (and its patterns, which `toka agent list` counts lag
    // by) before it handles anything, and again when its patterns changed.
    if (!samePatterns(checkpoint?.subscribe, this.agent.subscribe)) this.#save(this.position);
    await this.renewToken();
    await this.#calls.scan(store, this.position);
    await this.#state.load(store, this.position);
    try {
      await this.agent.init?.(this.#ctx);
    } catch (error) {
      this.#logger.error("Agent {name} failed to initialise: {message}", {
        name: this.agent.name,
        message: errorMessage(error),
      });
      await this.#calls.emit({
        kind: "agent.failed",
        payload: { agent: this.agent.name, phase: "init", error: errorMessage(error) },
      }).catch(() => {});
      return;
    }
    this.running = true;
    this.#logger.info("Agent {name} started after position {position}", {
      name: this.agent.name,
      position: this.position ?? "none",
    });
    this.#feed = new AbortController();
    this.#loop = this.#consume(store);
    this.#advancer = setInterval(() => {
      this.#advancing ??= this.#advance(store).finally(() => this.#advancing = undefined);
    }, ADVANCE_INTERVAL_MS);
  }

  /** Issues a fresh token to the agent, e.g. after a rotation. */
  renewToken(): Promise<void> {
    return this.#tokens.renew();
  }

  /**
   * Stops after draining: events the agent subscribes to that were in the log
   * when stop began are handled, up to `stopTimeoutMs`;
   * then its signal aborts and what is left waits for the next start.
   */
  stop(): Promise<void> {
    return this.#serial(() => this.#stop(true));
  }

  async #stop(drain: boolean): Promise<void> {
    if (this.#waiting !== undefined) {
      this.#controller.abort();
      await this.#waiting;
    }
    if (this.running) await this.#end(drain);
    await this.#releaseLease();
  }

  async #end(drain: boolean): Promise<void> {
    this.running = false;
    const store = this.#deps.store;
    const ms = this.#deps.stopTimeoutMs;
    const controller = this.#controller;
    if (!drain || ms === 0) controller.abort();
    const deadline = controller.signal.aborted ? undefined : setTimeout(() => {
      this.#logger.warn(
        "Agent {name} did not drain within {ms} ms: its handler is aborted and the rest is handled at the next start",
        { name: this.agent.name, ms },
      );
      controller.abort();
    }, ms);
    try {
      // The head when stop began: what was appended before it is handled.
      const head = controller.signal.aborted
        ? null
        : await store.head().then((h) => h?.position ?? null, () => null);
      this.#feed.abort();
      clearInterval(this.#advancer);
      await this.#loop;
      await this.#advancing;
      this.#loop = undefined;
      if (head !== null) {
        this.#logger.debug("Agent {name} drains up to position {head}", {
          name: this.agent.name,
          head,
        });
        await this.#drain(store, head);
      }
      controller.abort();
      await this.#advance(store);
    } finally {
      clearTimeout(deadline);
      controller.abort();
    }
    try {
      await this.agent.stop?.(this.#ctx);
    } catch (error) {
      this.#logger.error("Agent {name} failed to stop cleanly: {message}", {
        name: this.agent.name,
        message: errorMessage(error),
      });
    }
    // A renewal started by reading ctx.token must not outlive the agent.
    await this.#tokens.settle();
    this.#logger.info("Agent {name} stopped at position {position}, {handled} events handled", {
      name: this.agent.name,
      position: this.position ?? "none",
      handled: this.handled,
    });
  }

  // Handles, by reading the log, the events after the checkpoint up to `head`.
  async #drain(store: EventStore, head: string): Promise<void> {
    const signal = this.#controller.signal;
    if (signal.aborted || (this.position !== null && this.position >= head)) return;
    const from = this.position === null ? undefined : formatPosition(Number(this.position) + 1);
    for await (const event of store.read({ from, kinds: this.#kinds })) {
      if (event.position > head || signal.aborted) break;
      if ((await this.#deliver(event)) !== "passed") break;
    }
  }

  // Moves the checkpoint to the head of the log when no event the agent
  // subscribes to lies between the two: the checkpoint otherwise moves only
  // on handled events, and a restart would rescan everything after it.
  async #advance(store: EventStore): Promise<void> {
    const from = this.position;
    try {
      const head = await idleHead(store, from, this.#kinds);
      // Handling an event meanwhile moved the checkpoint already.
      if (head === undefined || this.position !== from) return;
      this.position = head;
      this.#save(head);
    } catch (error) {
      this.#logger.warn("Could not move agent {name}'s checkpoint: {message}", {
        name: this.agent.name,
        message: errorMessage(error),
      });
    }
  }

  async #consume(store: EventStore): Promise<void> {
    const signal = this.#feed.signal;
    const handlers = this.#controller.signal;
    // Times in a row an event's outcome could not be recorded, or the log not
    // read (a full disk, say): the event stays unpassed and is read again.
    let stalls = 0;
    while (!signal.aborted && !handlers.aborted) {
      let stalled = false;
      try {
        for await (
          const event of store.subscribe({
            after: this.position ?? undefined,
            kinds: this.#kinds,
            signal,
          })
        ) {
          const outcome = await this.#deliver(event);
          if (signal.aborted || handlers.aborted || outcome === "stopped") return;
          if (outcome === "stalled") {
            stalled = true;
            break;
          }
          stalls = 0;
        }
        // The store ended the subscription (it was closed).
        if (!stalled || signal.aborted || handlers.aborted) return;
        this.#logger.warn("Agent {name} could not record the outcome of an event", {
          name: this.agent.name,
        });
      } catch (error) {
        if (signal.aborted || handlers.aborted) return;
        this.#logger.error("Agent {name} could not read the log: {message}", {
          name: this.agent.name,
          message: errorMessage(error),
        });
      }
      const ms = this.#deps.retry.backoffMs(++stalls);
      this.#logger.info("Agent {name} reads the log again in {ms} ms", {
        name: this.agent.name,
        ms,
      });
      if (!(await delay(ms, signal))) return;
    }
  }

  // A retry request for this agent has the event it names handled again first;
  // a request is handed to the handler only when the agent subscribes to its kind.
  async #deliver(event: EventRecord): Promise<Outcome> {
    if (this.#state.isOwn(event)) {
      this.#pass(event, false); // Its own state change: handling it could loop.
      return "passed";
    }
    if (event.kind !== RETRY_REQUESTED) return await this.#handle(event);
    const failed = await dueRetry(this.#deps.store, event, this.agent.name);
    if (failed !== null) {
      const outcome = await this.#retry(event, failed);
      if (outcome !== "passed") return outcome;
    }
    if (this.#subscribes(event.kind)) return await this.#handle(event);
    this.#pass(event, false);
    return "passed";
  }

  // Handles the event again. What earlier attempts recorded for it is read
  // back first, so that it is not appended twice.
  async #retry(request: EventRecord, event: EventRecord): Promise<Outcome> {
    const { store } = this.#deps;
    this.#logger.info("Agent {name} retries event {id}", { name: this.agent.name, id: event.id });
    await this.#calls.scan(store, formatPosition(Number(event.position) - 1));
    const outcome = await this.#attempt(event, request);
    // Back to what is recorded after the checkpoint only.
    await this.#calls.scan(store, this.position);
    if (outcome !== "done") return outcome === "failed" ? "passed" : outcome;
    try {
      await this.#recordRetry(request, {
        kind: AGENT_RECOVERED,
        payload: this.#state.recovered(event),
      });
    } catch (error) {
      this.#logger.error("Could not record agent.recovered for event {id}: {message}", {
        id: event.id,
        message: errorMessage(error),
      });
      return this.#controller.signal.aborted ? "stopped" : "stalled";
    }
    return (await this.#state.commit(request, event)) ?? "passed";
  }

  // A retry's outcome is caused by its request (and names the event): the
  // event's own journal holds its first failure, which must not stand for this one.
  async #recordRetry(request: EventRecord, input: EmitInput): Promise<void> {
    this.#calls.begin(request);
    try {
      const eventId = (input.payload as { eventId: string }).eventId;
      await this.#calls.emit({ ...input, parents: [request.id, eventId] });
    } finally {
      this.#calls.end();
    }
  }

  // Handles one event. It is passed (the checkpoint moves past it) only once
  // its outcome is in the log: the handler finished (its emits appended), or
  // `agent.failed` is recorded. "stalled": neither could be appended, so the
  // event must be tried again; "stopped": stopping, or the lease was lost.
  async #handle(event: EventRecord): Promise<Outcome> {
    // Given up on before a crash: agent.failed is its outcome, and a retry's to change.
    let outcome = this.#calls.gaveUp(event.id) ? "failed" : await this.#attempt(event);
    if (outcome === "done") outcome = (await this.#state.commit(event, event)) ?? outcome;
    if (outcome === "stalled" || outcome === "stopped") return outcome;
    this.#pass(event, true);
    return "passed";
  }

  // Runs the handler on the event, retried with backoff: "done" when it
  // finished, "failed" when the agent gave up and recorded `agent.failed`
  // (caused by the retry request, when it is a retry).
  async #attempt(
    event: EventRecord,
    request?: EventRecord,
  ): Promise<"done" | "failed" | "stalled" | "stopped"> {
    // After a pause longer than the lease (a suspended machine, say), another
    // process may run this agent now: make sure before handling more. Only
    // then: this is the path of every event.
    if (!this.#leaseFresh()) {
      // Unconfirmed (the vault did not answer) is handled anyway: emits are fenced.
      if (!(await this.#confirmLease().catch(() => true))) return "stopped";
    }
    const { attempts, backoffMs } = this.#deps.retry;
    const signal = this.#controller.signal;
    let outcome: "done" | "failed" = "done";
    for (let attempt = 1;; attempt++) {
      const calls = this.#calls.begin(event);
      this.#state.begin();
      try {
        await traceHandling(
          event,
          this.agent.name,
          () => calls.run(() => this.agent.handle(event, this.#ctx)),
        );
        break;
      } catch (error) {
        this.#state.drop(); // A failed attempt's state is never recorded.
        // Stopping: the event is not finished and is delivered again next start.
        if (signal.aborted) return "stopped";
        // Past the causal depth limit every attempt fails alike: no retries.
        if (attempt >= attempts || error instanceof CausalDepthError) {
          this.#logger.error(
            "Agent {name} gave up on event {id} after {attempts} attempts: {message}",
            {
              name: this.agent.name,
              id: event.id,
              attempts: attempt,
              message: errorMessage(error),
            },
          );
          const failure = {
            kind: AGENT_FAILED,
            payload: {
              agent: this.agent.name,
              eventId: event.id,
              kind: event.kind,
              attempts: attempt,
              ...(error instanceof TokaError && { code: error.code }),
              error: errorMessage(error),
            },
          };
          try {
            if (request === undefined) await this.#calls.emit(failure);
            else await this.#recordRetry(request, failure);
          } catch (e) {
            this.#logger.error("Could not record agent.failed for event {id}: {message}", {
              id: event.id,
              message: errorMessage(e),
            });
            // A failure past the limit cannot be recorded: passed, or it would stall forever.
            if (!(e instanceof CausalDepthError)) return signal.aborted ? "stopped" : "stalled";
          }
          this.failures++;
          outcome = "failed";
          break;
        }
        this.#logger.warn("Agent {name} failed on event {id} (attempt {attempt}): {message}", {
          name: this.agent.name,
          id: event.id,
          attempt,
          message: errorMessage(error),
        });
        if (!(await delay(backoffMs(attempt), signal))) return "stopped";
      } finally {
        this.#calls.end();
        this.#state.end();
      }
    }
    this.#calls.forget(event.id);
    return outcome;
  }

  // Moves the checkpoint past the event; `handled` counts it when the handler saw it.
  #pass(event: EventRecord, handled: boolean): void {
    this.position = event.position;
    if (handled) this.handled++;
    this.#logger.trace("Agent {name} {verb} event {id} ({kind})", () => ({
      name: this.agent.name,
      verb: handled ? "handled" : "passed",
      id: event.id,
      kind: event.kind,
    }));
    this.#save(event.position);
  }

  // Records where the agent is, written soon after (fenced by its lease).
  #save(position: string | null): void {
    const { checkpoints } = this.#deps;
    checkpoints.save(
      this.agent.name,
      position,
      this.failures,
      this.agent.subscribe,
      this.#lease?.owner,
    );
  }

  // True when no lease is needed, or it was confirmed less than half a lease
  // ago: another process can take it only a whole lease after that.
  #leaseFresh(): boolean {
    return this.#lease === undefined || this.#lease.owner === "" || this.#lease.fresh;
  }

  // Renews the lease; when another process took it, stops handling here at
  // once (the handler's signal aborts) and returns false. Throws when the
  // store could not say: the caller may try again.
  async #confirmLease(): Promise<boolean> {
    if (await (this.#lease as LeaseHolder).confirm()) return true;
    this.#controller.abort();
    this.#feed.abort();
    return false;
  }
}
