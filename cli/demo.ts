/**
 * `toka demo`: a small, real scenario on the vault named by `--db` (by
 * default `./.toka/toka.kv`). A producer emits tasks; a planner agent plans
 * each one; a worker agent calls the `echo` tool with its capability token
 * and completes it. The
 * runtime is stopped mid-run, restarted, and resumes from the agents'
 * checkpoints; the summary shows no task lost or done twice.
 *
 * @module
 */
import type { Command } from "commander";
import { createRuntime, type CreateRuntimeAuthOptions, type TokaRuntime } from "../mod.ts";
import { defineAgent, type EventRecord, type EventStore } from "../runtime/mod.ts";
import { type CommandContext, type RunCommand, shellQuote, withStore, writes } from "./_context.ts";

/** What the demo found at the end, also printed with `--json`. */
export interface DemoSummary {
  /** This run's id, in every task's payload. */
  run: string;
  /** Tasks the producer emitted. */
  tasks: number;
  /** Tasks completed before the stop. */
  beforeRestart: number;
  /** Distinct tasks planned and completed, in the log. */
  planned: number;
  completed: number;
  /** Completions beyond one per task (0 when all went well). */
  duplicates: number;
  /** Tasks never completed (0 when all went well). */
  lost: number;
  /**
   * Events this run added to the log: its tasks and every event they caused
   * (by correlation id), not what other processes appended meanwhile.
   */
  events: number;
}

/** Options of {@linkcode runDemo}. */
export interface DemoOptions {
  /** How many tasks the producer emits (6). */
  tasks?: number;
  /** Milliseconds the worker spends on a task (40), so the stop lands mid-run. */
  workMs?: number;
}

interface TaskPayload {
  run: string;
  task: number;
}

/**
 * Runs the demo and prints its progress and a summary.
 *
 * @param ctx The command context; its store is where the demo writes.
 * @param options The number of tasks and the worker's pace.
 * @returns 0 when every task was completed exactly once, else 1.
 */
export function runDemo(ctx: CommandContext, options: DemoOptions = {}): Promise<number> {
  const tasks = options.tasks ?? 6;
  const workMs = options.workMs ?? 40;
  const say = (line: string) => {
    if (!ctx.json) ctx.io.stdout(`${line}\n`);
  };
  return withStore(ctx, async (store) => {
    const run = crypto.randomUUID().slice(0, 8);
    // The auth settings of toka.json and TOKA_*, as every command has them.
    const auth: CreateRuntimeAuthOptions = {
      retiredTtlSecs: ctx.settings.retiredTtlSecs,
      masterKey: ctx.io.env(ctx.settings.masterKeyEnv) || null,
    };
    const firstHead = Number((await store.head())?.position ?? 0);
    say(`Toka demo on ${ctx.dbLocation} (run ${run})`);

    // Phase 1: produce, handle, stop mid-run.
    // The lease of toka.json's runtime.agentLeaseSecs, as toka run has it.
    const leaseSecs = ctx.settings.agentLeaseSecs;
    const first = await demoRuntime(auth, leaseSecs, store, firstHead, workMs, say);
    await first.runtime.start();
    say(`▶ runtime started: agents planner and worker (worker calls the echo tool)`);
    const waiting = first.runtime.agents().filter((a) => a.standby).map((a) => a.name);
    if (waiting.length > 0) {
      say(
        `  waiting for another process to release ${
          waiting.join(" and ")
        } (its lease ends within ${leaseSecs} s)`,
      );
    }
    for (let task = 1; task <= tasks; task++) {
      await first.runtime.emit({
        kind: "task.created",
        stream: "demo/producer",
        payload: { run, task },
        intent: "demo task",
      });
    }
    say(`  producer emitted ${tasks} tasks`);
    await first.completed(run, Math.ceil(tasks / 2));
    await first.runtime.stop();
    const beforeRestart = await completedTasks(store, run, firstHead).then((s) => s.size);
    say(`■ runtime stopped after ${beforeRestart} of ${tasks} tasks`);

    // Phase 2: a new runtime on the same vault resumes from the checkpoints.
    const second = await demoRuntime(auth, leaseSecs, store, firstHead, workMs, say);
    await second.runtime.start();
    say("▶ runtime restarted: agents resume after their checkpoints");
    await second.completed(run, tasks);
    await second.runtime.stop();
    say("■ runtime stopped");

    const summary = await summarize(store, run, firstHead, tasks, beforeRestart);
    if (ctx.json) ctx.io.stdout(`${JSON.stringify(summary)}\n`);
    else {
      say(
        `Summary: ${summary.tasks} tasks, ${summary.planned} planned, ${summary.completed} completed, ` +
          `${summary.duplicates} duplicates, ${summary.lost} lost; ${summary.events} events logged`,
      );
      // The program as the user typed it, with the same store, quoted for a shell.
      const command = (...words: string[]) =>
        [...ctx.invocation ?? ["toka", "--db", ctx.dbLocation], ...words].map(shellQuote).join(" ");
      say(`Inspect the log: ${command("events", "list")}`);
      say(`Inspect the agents: ${command("agent", "list")}`);
    }
    return summary.duplicates === 0 && summary.lost === 0 ? 0 : 1;
  });
}

async function demoRuntime(
  auth: CreateRuntimeAuthOptions,
  agentLeaseSecs: number,
  store: EventStore,
  since: number,
  workMs: number,
  say: (line: string) => void,
): Promise<{ runtime: TokaRuntime; completed(run: string, count: number): Promise<void> }> {
  // The whole stack: the worker's tool calls are checked against its capability token.
  // No drain on stop: the demo shows a stop mid-run and a resume.
  const runtime = await createRuntime({
    vault: store,
    retry: { attempts: 3 },
    stopTimeoutMs: 0,
    agentLeaseSecs,
    auth,
  });
  runtime.register(defineAgent({
    name: "planner",
    subscribe: ["task.created"],
    async handle(event, ctx) {
      const { run, task } = event.payload as TaskPayload;
      await ctx.emit({ kind: "task.planned", payload: { run, task, steps: ["echo"] } });
    },
  }));
  runtime.register(defineAgent({
    name: "worker",
    subscribe: ["task.planned"],
    permissions: ["tool:echo:invoke"],
    async handle(event, ctx) {
      const { run, task } = event.payload as TaskPayload;
      // Stopping aborts the wait: the task is not finished and comes back after the restart.
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(resolve, workMs);
        ctx.signal.addEventListener("abort", () => {
          clearTimeout(timer);
          reject(new Error("stopped"));
        }, { once: true });
      });
      const echoed = await ctx.tools.call("echo", { text: `task ${task}` }) as { text: string };
      await ctx.emit({ kind: "task.completed", payload: { run, task, echo: echoed.text } });
      say(`  worker completed task ${task} (echo "${echoed.text}")`);
    },
  }));
  const completed = async (run: string, count: number) => {
    let done = 0;
    const reached = Promise.withResolvers<void>();
    const sub = runtime.subscribe("task.completed", (event: EventRecord) => {
      if ((event.payload as TaskPayload).run === run && ++done >= count) reached.resolve();
    }, { after: position(since) });
    try {
      await reached.promise;
    } finally {
      await sub.close();
    }
  };
  return { runtime, completed };
}

async function completedTasks(store: EventStore, run: string, after: number): Promise<Set<number>> {
  const tasks = new Set<number>();
  for await (const event of store.read({ kinds: ["task.completed"], from: position(after + 1) })) {
    const payload = event.payload as TaskPayload;
    if (payload.run === run) tasks.add(payload.task);
  }
  return tasks;
}

async function summarize(
  store: EventStore,
  run: string,
  after: number,
  tasks: number,
  beforeRestart: number,
): Promise<DemoSummary> {
  const planned = new Set<number>();
  const completed = new Set<number>();
  // This run's tasks, and so the correlation id of every event they caused.
  const ours = new Set<string>();
  let completions = 0;
  let events = 0;
  for await (const event of store.read({ from: position(after + 1) })) {
    const payload = event.payload as Partial<TaskPayload> | null;
    if (event.kind === "task.created" && payload?.run === run) ours.add(event.id);
    if (ours.has(event.id) || ours.has(event.meta.correlationId ?? "")) events++;
    if (payload?.run !== run) continue;
    if (event.kind === "task.planned") planned.add(payload.task as number);
    if (event.kind === "task.completed") {
      completed.add(payload.task as number);
      completions++;
    }
  }
  return {
    run,
    tasks,
    beforeRestart,
    planned: planned.size,
    completed: completed.size,
    duplicates: completions - completed.size,
    lost: tasks - completed.size,
    events,
  };
}

function position(n: number): string {
  return String(n).padStart(16, "0");
}

/**
 * Adds `demo` to the program.
 *
 * @param program The `toka` program.
 * @param run Runs a command's task with its context.
 * @returns The `demo` command.
 */
export function registerDemoCommand(program: Command, run: RunCommand): Command {
  return writes(program.command("demo"))
    .description("run a small multi-agent demo: stop mid-run, restart, resume without loss")
    .action((_options: unknown, command: Command) => run(command, (ctx) => runDemo(ctx)));
}
