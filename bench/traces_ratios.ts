/**
 * What tracing (issue 23) costs emit → agent handling, as ratios measured in one run.
 *
 *   deno run -A bench/traces_ratios.ts [--rounds R] [--baseline REV] [--protocol P]
 *
 * One sample: `runtime.emit()` × 1,000 without awaiting, then the wait until one agent has
 * handled all of them. Each comparison runs on two stacks: `createRuntime()` on a Deno KV
 * file (what `toka run` uses), and `Runtime.create()` without a vault (the in-memory
 * store: the fastest path, where tracing's share is the largest).
 *
 * 1. Tracing off (no provider registered) against the code without tracing: a copy of the
 *    library under .toka/ whose internal/tracing.ts is bench/_untraced.ts (every hook a
 *    pass-through: no provider check, plain loggers), or with `--baseline REV` the library
 *    at REV (`git archive`), imported beside this checkout's. Target ≥ 0.95×.
 * 2. In a child process started with OTEL_DENO=true, exporting to a local receiver in a
 *    third process (bench/_otlp_sink.ts) over OTEL_EXPORTER_OTLP_PROTOCOL P (`http/protobuf`,
 *    Deno's default and what the README's two variables give; or `http/json`): tracing on (Deno's provider
 *    registered) against tracing off (the same provider taken out of the API's global
 *    slot), alternating in one process. Target ≥ 0.5×.
 *
 * Rounds alternate (the order flips each round) and the medians are compared; a ratio is
 * baseline time ÷ candidate time, so below 1 the candidate costs.
 */
import { parseArgs } from "node:util";
import { trace } from "@opentelemetry/api";
import { BATCH, interleaved, median, range } from "./_interleaved.ts";
import * as current from "../mod.ts";

type RuntimeModule = typeof current;
type Stack = "kv" | "memory";
const STACKS: Stack[] = ["kv", "memory"];

const { values } = parseArgs({
  args: Deno.args,
  options: {
    rounds: { type: "string", default: "9" },
    baseline: { type: "string" },
    part: { type: "string", default: "off" },
    protocol: { type: "string", default: "http/protobuf" },
  },
});
const rounds = Number(values.rounds);
// Batches per timing: a batch on the KV file takes a good part of a second.
const SAMPLES: Record<Stack, number> = { kv: 2, memory: 5 };
const root = new URL("../", import.meta.url).pathname;

interface Workload {
  run(): Promise<void>;
  stop(): Promise<void>;
}

// A runtime whose one agent counts what it handles; run() emits a batch and waits for it.
async function workload(mod: RuntimeModule, stack: Stack): Promise<Workload> {
  const dir = await Deno.makeTempDir();
  const runtime = stack === "memory"
    ? await mod.Runtime.create()
    : await mod.createRuntime({ db: `${dir}/bench.kv` });
  let handled = 0;
  let target = 0;
  let wake = () => {};
  runtime.register(mod.defineAgent({
    name: "counter",
    subscribe: ["job.*"],
    handle() {
      if (++handled === target) wake();
    },
  }));
  await runtime.start();
  const input = { kind: "job.created", payload: { n: 1 } };
  return {
    async run() {
      target = handled + BATCH;
      const done = new Promise<void>((resolve) => wake = resolve);
      for (let i = 0; i < BATCH; i++) void runtime.emit(input);
      await done;
    },
    async stop() {
      // createRuntime's runtime closes the vault it opened too.
      await (stack === "kv" ? (runtime as current.TokaRuntime).close() : runtime.stop());
      await Deno.remove(dir, { recursive: true });
    },
  };
}

function report(label: string, base: string, result: Awaited<ReturnType<typeof interleaved>>) {
  const ratio = median(result.ratios);
  console.log(`${label}`);
  console.log(`  ${base.padEnd(28)} ${median(result.baselineNs).toFixed(0)} ns/event`);
  console.log(`  ${"candidate".padEnd(28)} ${median(result.candidateNs).toFixed(0)} ns/event`);
  console.log(
    `  ratio ${ratio.toFixed(3)}× (median of ${rounds}; range ${range(result.ratios, 3)})`,
  );
  return ratio;
}

const FOLDERS = ["mod.ts", "runtime", "internal", "vault", "toolkit", "auth"];

// The library without tracing, imported beside this checkout's: a copy of its folders with
// internal/tracing.ts replaced by bench/_untraced.ts (every hook a pass-through), or the
// folders at `rev` (git archive).
async function baselineModule(rev: string | undefined): Promise<[RuntimeModule, string]> {
  const dir = `${root}.toka/bench-baseline-${rev ?? "untraced"}`;
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  await Deno.mkdir(dir, { recursive: true });
  if (rev === undefined) {
    const copy = await new Deno.Command("cp", { args: ["-r", ...FOLDERS, dir], cwd: root })
      .output();
    if (!copy.success) throw new Error("Cannot copy the library for the baseline");
    await Deno.copyFile(`${root}bench/_untraced.ts`, `${dir}/internal/tracing.ts`);
    return [
      await import(`file://${dir}/mod.ts`),
      "this checkout with tracing hooks as pass-throughs",
    ];
  }
  const archive = new Deno.Command("git", {
    args: ["-C", root, "archive", rev, ...FOLDERS],
    stdout: "piped",
  }).spawn();
  const untar = new Deno.Command("tar", { args: ["-x", "-C", dir], stdin: "piped" }).spawn();
  await archive.stdout.pipeTo(untar.stdin);
  if (!(await archive.status).success || !(await untar.status).success) {
    throw new Error(`Cannot extract revision "${rev}" with git archive`);
  }
  return [await import(`file://${dir}/mod.ts`), `revision ${rev}`];
}

async function partOff(): Promise<void> {
  const [without, label] = await baselineModule(values.baseline);
  console.log(`without tracing: ${label}`);
  for (const [n, stack] of STACKS.entries()) {
    const baseline = await workload(without, stack);
    const candidate = await workload(current, stack);
    const result = await interleaved(baseline.run, candidate.run, rounds, SAMPLES[stack]);
    await baseline.stop();
    await candidate.stop();
    const ratio = report(
      `1${
        "ab"[n]
      }. ${stack} stack: tracing off vs the code without tracing, ${result.events} events`,
      "without tracing",
      result,
    );
    console.log(`  target ≥ 0.95×: ${ratio >= 0.95 ? "met" : "NOT MET"}`);
  }
}

async function partOn(): Promise<void> {
  // Deno registers its provider in the API's global slot, under a version of its own that
  // the API's setGlobalTracerProvider() refuses to replace: turn it off and on in the slot.
  const slot = (globalThis as Record<symbol, { trace?: unknown }>)[
    Symbol.for("opentelemetry.js.api.1")
  ];
  const registered = slot?.trace;
  if (registered === undefined) throw new Error("No tracer provider: run with OTEL_DENO=true");
  const off = () => delete slot.trace;
  const on = () => slot.trace = registered;
  const probe = trace.getTracer("probe").startSpan("probe");
  if (!probe.isRecording()) throw new Error("Deno's tracer provider does not record");
  probe.end();
  for (const [n, stack] of STACKS.entries()) {
    const work = await workload(current, stack);
    const result = await interleaved(
      () => (off(), work.run()),
      () => (on(), work.run()),
      rounds,
      SAMPLES[stack],
    );
    on();
    await work.stop();
    const ratio = report(
      `2${
        "ab"[n]
      }. ${stack} stack: tracing on (OTEL_DENO=true, ${values.protocol} to a local receiver) vs off, ${result.events} events`,
      "tracing off",
      result,
    );
    console.log(`  target ≥ 0.5×: ${ratio >= 0.5 ? "met" : "NOT MET"}`);
  }
}

if (values.part === "on") {
  await partOn();
} else {
  await partOff();
  // Part 2 needs Deno's OpenTelemetry, which is set up at start: a child with OTEL_DENO.
  const sink = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", `${root}bench/_otlp_sink.ts`],
    stdin: "piped",
    stdout: "piped",
  }).spawn();
  const lines = sink.stdout.pipeThrough(new TextDecoderStream()).values();
  const port = (await lines.next()).value!.trim();
  const child = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      import.meta.filename!,
      ...["--part", "on", "--rounds", String(rounds), "--protocol", values.protocol],
    ],
    env: {
      OTEL_DENO: "true",
      OTEL_EXPORTER_OTLP_PROTOCOL: values.protocol,
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`,
      OTEL_SERVICE_NAME: "toka-bench",
    },
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  await sink.stdin.close();
  const spans = (await lines.next()).value?.trim();
  await sink.status;
  console.log(`  the receiver got ${spans}`);
  if (!child.success) Deno.exit(1);
}
