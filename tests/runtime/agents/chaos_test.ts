// Kill anywhere: an agent's process is SIGKILLed at random moments while it
// handles tasks (two steps, a journaled tool call, a model.chat call, a state
// change and an emit each) and started again, until it finishes. What the log records happened
// exactly once; a side effect outside the log ran again only when a kill fell
// between its fn running and its record committing. A failure names the seed:
// TOKA_CHAOS_SEED=<seed> runs the same kill delays again.
import assert from "node:assert/strict";
import { join } from "node:path";
import { KvCheckpointStore } from "../../../runtime/mod.ts";
import { openVault } from "../../../vault/mod.ts";
import { all } from "../_helpers.ts";
import type { Tally } from "./_chaos_child.ts";
import { FakeModelServer, textCompletion } from "../../toolkit/fake_model_server.ts";

const CHILD = new URL("./_chaos_child.ts", import.meta.url).pathname;
const TASKS = 30;
const KILLS = 15;
const EFFECTS = ["first", "second", "tool", "model"];

/** A small seeded PRNG (mulberry32): the same seed, the same delays. */
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

Deno.test("an agent killed anywhere records each step, call, state change and emit once", async (t) => {
  const seed = Number(Deno.env.get("TOKA_CHAOS_SEED") ?? Math.floor(Math.random() * 2 ** 31));
  const next = random(seed);
  const why = (what: string) => `${what} (seed ${seed})`;
  const dir = await Deno.makeTempDir();
  const db = join(dir, "toka.kv");
  const effects = join(dir, "effects.txt");
  // The model requests, by the process that was running when each came.
  await using server = new FakeModelServer();
  const asked: string[] = [];
  let running = 0;
  server.responder = (request) => {
    const [message] = request.body.messages as { content: string }[];
    const n = message.content.split(" ")[1];
    asked.push(`model ${n} ${running}`);
    return { completion: textCompletion(`answer ${n}`) };
  };
  // Generations killed, and the one that finished.
  const killed = new Set<number>();
  let finished: number | undefined;
  try {
    await t.step("kill the process at random moments, then let it finish", async () => {
      for (let generation = 1; finished === undefined; generation++) {
        running = generation;
        const child = new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            "-A",
            CHILD,
            db,
            effects,
            String(generation),
            String(TASKS),
            server.baseUrl,
          ],
          env: { OPENAI_API_KEY: "sk-chaos" },
          stdout: "piped",
          stderr: "inherit",
        }).spawn();
        const output = child.stdout.pipeThrough(new TextDecoderStream());
        let text = "";
        let ended = false;
        const read = (async () => {
          for await (const chunk of output) text += chunk;
          ended = true;
        })();
        if (killed.size < KILLS) {
          // Mostly once it handles tasks, sometimes anywhere from its start
          // (loading, opening the vault, waiting for the lease, reading the
          // journal, emitting the tasks).
          if (next() < 0.75) {
            while (!text.includes("handling") && !ended) await sleep(1);
            await sleep(next() * 40);
          } else await sleep(next() * 800);
          if (!text.includes("done")) {
            try {
              child.kill("SIGKILL");
            } catch {
              // It ended just now.
            }
          }
        }
        const status = await child.status;
        await read;
        if (status.signal === "SIGKILL") killed.add(generation);
        else {
          assert.equal(status.code, 0, why(`generation ${generation} failed`));
          assert.ok(text.includes("done"), why(`generation ${generation} ended early`));
          finished = generation;
        }
      }
      assert.ok(killed.size >= 1, why("no kill landed"));
    });

    const store = await openVault(db);
    try {
      const tasks = await all(store, ["task.created"]);
      const taskOf = new Map(tasks.map((e) => [e.id, (e.payload as { n: number }).n]));
      assert.deepEqual(
        tasks.map((e) => (e.payload as { n: number }).n),
        Array.from({ length: TASKS }, (_, i) => i + 1),
        why("each task emitted once"),
      );

      await t.step("each step and tool call is recorded once", async () => {
        // Keys "<task> <index>": steps 0 and 1, the tool calls 2 and 3.
        const count = (records: typeof tasks) => {
          const seen = new Map<string, number>();
          for (const record of records) {
            const n = taskOf.get(record.meta.causationId!);
            assert.ok(n !== undefined, why(`${record.kind} ${record.id} has no task as cause`));
            const key = `${n} ${record.meta.step}`;
            seen.set(key, (seen.get(key) ?? 0) + 1);
          }
          return seen;
        };
        const keys = (index: number[]) =>
          new Map(tasks.flatMap((_, i) => index.map((s) => [`${i + 1} ${s}`, 1])));
        assert.deepEqual(count(await all(store, ["step.completed"])), keys([0, 1]), why("steps"));
        assert.deepEqual(
          count(await all(store, ["tool.completed"])),
          keys([2, 3]),
          why("tool calls"),
        );
        assert.deepEqual(await all(store, ["step.failed", "tool.failed"]), [], why("failures"));
        assert.deepEqual(await all(store, ["agent.failed"]), [], why("gave up"));
      });

      await t.step("each emit is recorded once, with the recorded results", async () => {
        const done = await all(store, ["task.done"]);
        assert.deepEqual(
          done.map((e) => e.payload).sort((x, y) =>
            (x as { n: number }).n - (y as { n: number }).n
          ),
          tasks.map((_, i) => {
            const n = i + 1;
            return {
              n,
              a: 2 * n,
              b: 2 * n + 1,
              charged: { charged: n },
              answer: `answer ${n}`,
            };
          }),
          why("one task.done per task"),
        );
        for (const event of done) {
          assert.equal(taskOf.get(event.meta.causationId!), (event.payload as { n: number }).n);
        }
      });

      await t.step("the state is the fold over the tasks, each change once", async () => {
        const checkpoints = new KvCheckpointStore(store.kv);
        const checkpoint = await checkpoints.load("worker");
        const [head] = await Array.fromAsync(store.read({ direction: "backward", limit: 1 }));
        assert.equal(checkpoint?.position, head.position, why("checkpoint at the head"));
        const state = (await checkpoints.stateAt("worker", checkpoint.position!))
          ?.state as unknown as Tally;
        const order = tasks.map((_, i) => i + 1);
        assert.deepEqual(state, {
          count: TASKS,
          sum: order.reduce((sum, n) => sum + 2 * n + 1, 0),
          seen: order,
        }, why("final state"));
        const changes = await all(store, ["agent.state"]);
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

      await t.step("a side effect ran again only after a kill inside its window", async () => {
        const runs = new Map<string, number[]>();
        const lines = (await Deno.readTextFile(effects)).trim().split("\n");
        for (const line of [...lines, ...asked]) {
          const [what, n, generation] = line.split(" ");
          const key = `${what} ${n}`;
          runs.set(key, [...(runs.get(key) ?? []), Number(generation)]);
        }
        // Every run of a fn but the last was lost: its process died before
        // its record committed. A process handles one task at a time and a
        // task's steps one after another, so each killed process lost at most
        // one run, and the one that finished none.
        const lost: number[] = [];
        for (const what of EFFECTS) {
          for (let n = 1; n <= TASKS; n++) {
            const generations = runs.get(`${what} ${n}`) ?? [];
            assert.ok(generations.length >= 1, why(`${what} ${n} never ran`));
            lost.push(...generations.slice(0, -1));
          }
        }
        for (const generation of lost) {
          assert.ok(killed.has(generation), why(`generation ${generation} lost a run unkilled`));
        }
        assert.equal(new Set(lost).size, lost.length, why(`a process lost two runs: ${lost}`));
        assert.ok(lost.length <= killed.size, why(`${lost.length} reruns, ${killed.size} kills`));
        console.log(
          `seed ${seed}: ${killed.size} kills, ${lost.length} side effects ran twice, ` +
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
