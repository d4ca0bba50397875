/**
 * `model.chat` called by an agent while handling events, on a KV vault file (each call's
 * `tool.invoked` and `tool.completed` appended, the reply journaled), as a ratio to a bare
 * `fetch` of the same request to the same local fake OpenAI-compatible server, in one process.
 *
 *   deno run -A bench/model_chat_ratios.ts [--rounds R] [--callers 1|2|5|10|25|50]
 *     [--latency-ms N] [--requests N]
 *
 * One batch is 1,000 requests (`--requests`, a multiple of 20 × callers) from `callers`
 * concurrent callers (10), each waiting for each reply as a tool-calling loop does:
 * - baseline: `fetch(POST /v1/chat/completions)` with the body and `Authorization` header
 *   model.chat sends, then the JSON of the reply;
 * - candidate: 50 events for `callers` agents (one agent per caller, each handling its events
 *   one at a time), whose handler calls `ctx.tools.call("model.chat")` 20 times (the openai
 *   client, the capability check, input and output validation, the recording appends), and
 *   the batch ends when the last handler returns.
 * `BENCH_DB=:memory:` puts the vault in memory instead of a temp file. `--latency-ms N` makes
 * the fake server answer N ms after each request arrives, as a model takes its time (0: at
 * once, so the target compares the journal's durable appends with a loopback round trip; use
 * fewer `--requests` with a latency, e.g. 100 at 50 ms and one caller: a batch is then 5 s). With `--callers 1` each
 * call waits for its own commits (about 1 to 2.5 ms each on these machines), which a local
 * fetch (0.3 ms) cannot hide; concurrent callers share commits.
 * Baseline and candidate alternate round by round (the order flips each round) and the
 * medians are compared. Target (issue 20): ≥ 0.5×.
 */
import { parseArgs } from "node:util";
import { createRuntime, defineAgent } from "../mod.ts";
import { BATCH, interleaved, median, range } from "./_interleaved.ts";
import { FakeModelServer } from "../tests/toolkit/fake_model_server.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    rounds: { type: "string" },
    callers: { type: "string" },
    "latency-ms": { type: "string" },
    requests: { type: "string" },
  },
});
const CALLS_PER_EVENT = 20;
const rounds = Number(values.rounds ?? 5);
const callers = Number(values.callers ?? 10);
const latencyMs = Number(values["latency-ms"] ?? 0);
const requests = Number(values.requests ?? BATCH);
if (!(rounds >= 1)) throw new TypeError("--rounds expects N ≥ 1");
if (![1, 2, 5, 10, 25, 50].includes(callers)) {
  throw new TypeError("--callers expects 1, 2, 5, 10, 25 or 50");
}
if (!(Number.isInteger(latencyMs) && latencyMs >= 0)) {
  throw new TypeError("--latency-ms expects whole milliseconds ≥ 0");
}
if (!(requests > 0 && requests % (CALLS_PER_EVENT * callers) === 0)) {
  throw new TypeError(`--requests expects a positive multiple of ${CALLS_PER_EVENT * callers}`);
}

const KEY = "sk-bench-not-a-real-key";
const server = new FakeModelServer({ latencyMs });
const dir = await Deno.makeTempDir();
const messages = [{ role: "user", content: "Say hello in one word." }];
const runtime = await createRuntime({
  db: Deno.env.get("BENCH_DB") ?? `${dir}/bench.kv`,
  model: { baseUrl: server.baseUrl, model: "fake-model", env: () => KEY },
});
const waiting = new Map<number, () => void>();
let answered = 0;
// One agent per caller: each handles its events one at a time, as an agent's mailbox does.
for (let agent = 0; agent < callers; agent++) {
  runtime.register(defineAgent({
    name: `asker-${agent}`,
    subscribe: [`bench.asked.${agent}`],
    permissions: ["tool:model.chat:invoke"],
    async handle(event, ctx) {
      for (let i = 0; i < CALLS_PER_EVENT; i++) {
        const reply = await ctx.tools.call("model.chat", { messages }) as {
          message: { content: string };
        };
        if (reply.message.content === "ok") answered++;
      }
      waiting.get(event.payload as number)?.();
    },
  }));
}
await runtime.start();

const bare = async () => {
  await Promise.all(Array.from({ length: callers }, async () => {
    for (let i = 0; i < requests / callers; i++) {
      const response = await fetch(`${server.baseUrl}/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${KEY}` },
        body: JSON.stringify({ model: "fake-model", messages }),
      });
      const reply = await response.json();
      if (reply.choices[0].message.content === "ok") answered++;
    }
  }));
};

let next = 0;
const viaAgent = async () => {
  const done: Promise<void>[] = [];
  for (let i = 0; i < requests / CALLS_PER_EVENT; i++) {
    const id = next++;
    const finished = Promise.withResolvers<void>();
    waiting.set(id, finished.resolve);
    done.push(finished.promise);
    await runtime.emit({ kind: `bench.asked.${i % callers}`, payload: id });
  }
  await Promise.all(done);
  waiting.clear();
};

try {
  console.log(
    `rounds: ${rounds} × ${requests} requests each way, ${callers} concurrent callers; ` +
      `${CALLS_PER_EVENT} model.chat calls per handled event; server latency ${latencyMs} ms; ` +
      `vault ${Deno.env.get("BENCH_DB") ?? "file"}`,
  );
  const before = server.count;
  const result = await interleaved(bare, viaAgent, rounds, 1, requests);
  const perSecond = (ns: number) => Math.round(1e9 / ns).toLocaleString("en");
  console.log(
    `model.chat in a handler   ${median(result.ratios).toFixed(2)}× (range ${
      range(result.ratios, 2)
    }): ${perSecond(median(result.candidateNs))} calls/s vs ${
      perSecond(median(result.baselineNs))
    } bare fetches/s`,
  );
  const sent = server.count - before;
  if (answered !== sent) throw new Error(`${sent} requests but ${answered} replies`);
  const tools = runtime.tools.list().map((t) => t.name);
  if (!tools.includes("model.chat")) throw new Error("model.chat is not registered");
} finally {
  await runtime.close();
  await server.close();
  await Deno.remove(dir, { recursive: true });
}
