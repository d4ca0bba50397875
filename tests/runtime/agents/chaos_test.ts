// Kill anywhere: an agent's process is SIGKILLed, or SIGSTOPped and woken
// beside the process that took over, at random moments while it handles tasks
// (two steps, a journaled tool call, a model.chat call, a state change and an
// emit each; every third task's first attempt in each process then fails and
// is retried) and started again, until it finishes. What the log records
// happened exactly once; a side effect outside the log ran again only in a
// process interrupted between its fn running and its record committing. A
// failure names the seed: TOKA_CHAOS_SEED=<seed> runs the same moments again.
import assert from "node:assert/strict";
import { join } from "node:path";
import { type EventRecord, KvCheckpointStore, readFailedEvents } from "../../../runtime/mod.ts";
import { openVault } from "../../../vault/mod.ts";
import { all } from "../_helpers.ts";
import type { Tally } from "./_chaos_child.ts";
import { FakeModelServer, textCompletion } from "../../toolkit/fake_model_server.ts";

const CHILD = new URL("./_chaos_child.ts", import.meta.url).pathname;
const TASKS = 30;
/** Kills and pauses, in all. */
const INTERRUPTIONS = 15;
/** How often an interruption is a pause (the next process overlaps the woken one). */
const PAUSES = 0.25;

/** A small seeded PRNG (mulberry32): the same seed, the same moments. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A running child and what it printed. */
class Child {
  readonly generation: number;
  readonly process: Deno.ChildProcess;
  text = "";
  ended = false;
  readonly #read: Promise<void>;

  constructor(generation: number, db: string, effects: string, baseUrl: string) {
    this.generation = generation;
    const process = this.process = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", CHILD, db, effects, String(generation), baseUrl],
      // The key names the process to the fake model server.
      env: { OPENAI_API_KEY: `sk-gen-${generation}` },
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    this.#read = (async () => {
      for await (const chunk of process.stdout.pipeThrough(new TextDecoderStream())) {
        this.text += chunk;
      }
      this.ended = true;
    })();
  }

  get done(): boolean {
    return this.text.includes("done");
  }

  /** Sends `signal`; false when the process had ended already. */
  signal(signal: Deno.Signal): boolean {
    if (this.ended) return false;
    try {
      this.process.kill(signal);
      return true;
    } catch {
      return false; // It ended just now.
    }
  }

  async status(): Promise<Deno.CommandStatus> {
    const status = await this.process.status;
    await this.#read;
    return status;
  }
}

Deno.test("an agent killed or paused anywhere records each step, call, state change and emit once", async (t) => {
  const seed = Number(Deno.env.get("TOKA_CHAOS_SEED") ?? Math.floor(Math.random() * 2 ** 31));
  const next = random(seed);
  const why = (what: string) => `${what} (seed ${seed})`;
  const dir = await Deno.makeTempDir();
  const db = join(dir, "toka.kv");
  const effects = join(dir, "effects.txt");
  // Each model request as "model <task> <generation>"; the answer names the generation.
  await using server = new FakeModelServer();
  const asked: string[] = [];
  server.responder = (request) => {
    const [message] = request.body.messages as { content: string }[];
    const n = message.content.split(" ")[1];
    const generation = request.authorization?.replace("Bearer sk-gen-", "");
    asked.push(`model ${n} ${generation}`);
    return { completion: textCompletion(`answer ${n} from ${generation}`) };
  };
  // Per generation, the kills and pauses that landed; and the one that finished.
  const interrupted = new Map<number, number>();
  const interrupt = (child: Child) =>
    interrupted.set(child.generation, (interrupted.get(child.generation) ?? 0) + 1);
  let landed = 0;
  let pauses = 0;
  let blocked = 0;
  let finished: number | undefined;
  try {
    const vault = await openVault(db);
    for (let n = 1; n <= TASKS; n++) {
      await vault.append("tasks", [{ kind: "task.created", payload: { n } }]);
    }
    await vault.close();

    await t.step("interrupt the process at random moments, then let it finish", async () => {
      let paused: Child | undefined;
      for (let generation = 1; finished === undefined; generation++) {
        const child = new Child(generation, db, effects, server.baseUrl);
        if (paused !== undefined || landed < INTERRUPTIONS) {
          // Mostly once it handles tasks, sometimes anywhere from its start
          // (loading, opening the vault, waiting for the lease, reading the
          // journal).
          if (next() < 0.75) {
            // A process stopped inside a commit holds the SQLite file's write
            // lock, so its successor cannot take over until it is woken.
            const deadline = Date.now() + 1500;
            while (!child.text.includes("handling") && !child.ended) {
              if (paused !== undefined && Date.now() > deadline) {
                blocked++;
                break;
              }
              await sleep(1);
            }
            await sleep(next() * 40);
          } else await sleep(next() * 800);
          if (paused !== undefined) {
            // The paused holder wakes beside the one that took over: its late
            // records are refused by the lease guard. Then it dies.
            paused.signal("SIGCONT");
            await sleep(next() * 150);
            paused.signal("SIGKILL");
            const status = await paused.status();
            if (status.signal === "SIGKILL") interrupt(paused);
            else assert.equal(status.code, 0, why(`generation ${paused.generation} failed`));
            paused = undefined;
          }
          if (landed < INTERRUPTIONS && !child.done) {
            if (next() < PAUSES && child.signal("SIGSTOP")) {
              interrupt(child);
              landed++;
              pauses++;
              paused = child;
              continue;
            }
            child.signal("SIGKILL");
          }
        }
        const status = await child.status();
        if (status.signal === "SIGKILL") {
          interrupt(child);
          landed++;
        } else {
          assert.equal(status.code, 0, why(`generation ${generation} failed`));
          assert.ok(child.done, why(`generation ${generation} ended early`));
          finished = generation;
        }
      }
    });

    const store = await openVault(db);
    try {
      const tasks = await all(store, ["task.created"]);
      const taskOf = new Map(tasks.map((e) => [e.id, (e.payload as { n: number }).n]));
      // Each step's and tool call's record, by "<what> <task>": the worker's
      // steps and calls, and the pair's two steps made at once.
      const recorded = new Map<string, EventRecord[]>();
      const what = ["first", "second", "tool", "model"];
      const pair = ["left", "right"];
      const flaky = ["seen"];
      const stepsOf: Record<string, string[]> = {
        "agent/worker": what,
        "agent/pair": pair,
        "agent/flaky": flaky,
      };

      await t.step("each step and tool call is recorded once", async () => {
        for (const record of await all(store, ["step.completed", "tool.completed"])) {
          const n = taskOf.get(record.meta.causationId!);
          assert.ok(n !== undefined, why(`${record.kind} ${record.id} has no task as cause`));
          const key = `${stepsOf[record.meta.actor!][Number(record.meta.step)]} ${n}`;
          recorded.set(key, [...(recorded.get(key) ?? []), record]);
        }
        const once = [...recorded].filter(([, records]) => records.length === 1).map(([k]) => k);
        const expected = tasks.flatMap((_, i) =>
          [...what, ...pair, ...flaky].map((w) => `${w} ${i + 1}`)
        );
        assert.deepEqual(once.sort(), expected.sort(), why("one record per step and call"));
        assert.equal(recorded.size, expected.length, why("records of no step"));
        // Only the steps made to throw once per process failed.
        const stepFailures = (await all(store, ["step.failed", "tool.failed"])).map((e) => [
          e.kind,
          (e.payload as { error: string }).error,
        ]);
        const thrown = stepFailures.filter(([kind, error]) =>
          kind === "step.failed" && /^Step of task (5|10|15|20|25|30) failed once$/.test(error)
        );
        assert.deepEqual(stepFailures, thrown, why("failures"));
        assert.ok(thrown.length >= TASKS / 5, why(`${thrown.length} steps failed`));
        // Only "flaky" gave up, and a retry handled each event it gave up on, once.
        const failed = await all(store, ["agent.failed"]);
        assert.deepEqual(failed.filter((e) => e.stream !== "agent/flaky"), [], why("gave up"));
        assert.deepEqual(await readFailedEvents(store), [], why("left failed"));
        const ids = (events: EventRecord[]) =>
          events.map((e) => (e.payload as { eventId: string }).eventId).sort();
        const recovered = await all(store, ["agent.recovered"]);
        assert.deepEqual(ids(recovered), [...new Set(ids(failed))], why("recovered once each"));
      });

      // What the handler got from a step or call: the recorded result.
      const result = (key: string) => {
        const payload = recorded.get(key)![0].payload as { result?: unknown; output?: unknown };
        return payload.result ?? payload.output;
      };

      await t.step("each emit is recorded once, with the recorded results", async () => {
        const done = await all(store, ["task.done"]);
        const byTask = (event: EventRecord) => (event.payload as { n: number }).n;
        assert.deepEqual(done.map(byTask).sort((x, y) => x - y), tasks.map((_, i) => i + 1));
        for (const event of done) {
          const n = byTask(event);
          assert.equal(taskOf.get(event.meta.causationId!), n, why(`task.done ${n}'s cause`));
          const model = result(`model ${n}`) as { message: { content: string } };
          assert.deepEqual(event.payload, {
            n,
            a: result(`first ${n}`),
            b: result(`second ${n}`),
            charged: result(`tool ${n}`),
            answer: model.message.content,
          }, why(`task.done ${n}`));
          assert.equal((result(`second ${n}`) as { value: number }).value, 2 * n + 1);
          assert.equal((result(`tool ${n}`) as { charged: number }).charged, n);
        }
        const flakes = await all(store, ["flaky.done"]);
        assert.deepEqual(flakes.map(byTask).sort((x, y) => x - y), tasks.map((_, i) => i + 1));
        for (const event of flakes) {
          const n = byTask(event);
          assert.equal(taskOf.get(event.meta.causationId!), n, why(`flaky.done ${n}'s cause`));
          assert.deepEqual(event.payload, { n, seen: result(`seen ${n}`) }, why(`flaky.done ${n}`));
        }
        const pairs = await all(store, ["pair.done"]);
        assert.deepEqual(pairs.map(byTask).sort((x, y) => x - y), tasks.map((_, i) => i + 1));
        for (const event of pairs) {
          const n = byTask(event);
          assert.equal(taskOf.get(event.meta.causationId!), n, why(`pair.done ${n}'s cause`));
          const payload = { n, left: result(`left ${n}`), right: result(`right ${n}`) };
          assert.deepEqual(event.payload, payload, why(`pair.done ${n}`));
          assert.equal((payload.left as { value: number }).value, n, why(`left ${n}`));
        }
      });

      await t.step("the state is the fold over the tasks, each change once", async () => {
        const checkpoints = new KvCheckpointStore(store.kv);
        const checkpoint = await checkpoints.load("worker");
        const [head] = await Array.fromAsync(store.read({ direction: "backward", limit: 1 }));
        assert.equal(checkpoint?.position, head.position, why("checkpoint at the head"));
        for (const agent of ["pair", "flaky"]) {
          const other = await checkpoints.load(agent);
          assert.equal(other?.position, head.position, why(`${agent}'s checkpoint at the head`));
        }
        // "flaky" counted each task once, retried or not, each change once.
        assert.deepEqual((await checkpoints.stateAt("flaky", head.position))?.state, {
          count: TASKS,
        });
        const flakes = (await all(store, ["agent.state"])).filter((e) =>
          e.stream === "agent/flaky"
        );
        assert.deepEqual(
          flakes.map((e) => (e.payload as { state: { count: number } }).state.count),
          tasks.map((_, i) => i + 1),
          why("each of flaky's changes once"),
        );
        const state = (await checkpoints.stateAt("worker", checkpoint.position!))
          ?.state as unknown as Tally;
        const order = tasks.map((_, i) => i + 1);
        assert.deepEqual(state, {
          count: TASKS,
          sum: order.reduce((sum, n) => sum + 2 * n + 1, 0),
          seen: order,
        }, why("final state"));
        const changes = (await all(store, ["agent.state"]))
          .filter((e) => e.stream === "agent/worker");
        assert.deepEqual(
          changes.map((e) => (e.payload as { state: Tally }).state.count),
          order,
          why("each change once"),
        );
      });

      await t.step("the log verifies", async () => {
        const report = await store.verify();
        assert.ok(report.ok, why(JSON.stringify(report.problems)));
      });

      await t.step("a side effect ran again only in a process interrupted inside it", async () => {
        const runs = new Map<string, number[]>();
        const lines = (await Deno.readTextFile(effects)).trim().split("\n");
        for (const line of [...lines, ...asked]) {
          const [what, n, generation] = line.split(" ");
          const key = `${what} ${n}`;
          runs.set(key, [...(runs.get(key) ?? []), Number(generation)]);
        }
        // The recorded run is the one whose process the result names; every
        // other run was lost: its process was killed or paused before its
        // record committed (a paused one's record is refused once another
        // took over). An agent handles one task at a time, the worker and
        // "flaky" their steps one after another and the pair two at once, so
        // per interruption a process loses at most one run of the worker's,
        // one of flaky's and two of the pair's, and the one that finished none.
        const lost = new Map<string, number>(); // "<agent> <generation>"
        for (const [key] of recorded) {
          const generations = runs.get(key) ?? [];
          const recordedBy = key.startsWith("model")
            ? Number(
              /from (\d+)$/.exec(
                (result(key) as { message: { content: string } })
                  .message.content,
              )![1],
            )
            : (result(key) as { by: number }).by;
          const at = generations.indexOf(recordedBy);
          assert.ok(at >= 0, why(`${key}: recorded by ${recordedBy}, ran in ${generations}`));
          generations.splice(at, 1);
          const agent = Object.keys(stepsOf).find((a) => stepsOf[a].includes(key.split(" ")[0]));
          for (const generation of generations) {
            const by = `${agent} ${generation}`;
            lost.set(by, (lost.get(by) ?? 0) + 1);
          }
        }
        assert.equal(runs.size, recorded.size, why("runs of no step"));
        for (const [by, count] of lost) {
          const [agent, generation] = by.split(" ");
          const times = interrupted.get(Number(generation)) ?? 0;
          const most = (agent === "agent/pair" ? 2 : 1) * times;
          assert.ok(
            count <= most,
            why(
              `generation ${generation} lost ${count} runs of ${agent}, interrupted ${times} times`,
            ),
          );
        }
        const reruns = [...lost.values()].reduce((sum, count) => sum + count, 0);
        console.log(
          `seed ${seed}: ${landed} interruptions (${pauses} pauses woken beside the next ` +
            `holder, ${blocked} of which blocked it), ${reruns} side effects ran again, ` +
            `generation ${finished} finished`,
        );
      });
    } finally {
      await store.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
