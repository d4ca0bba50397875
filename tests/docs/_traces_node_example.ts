// docs/traces.md's Node.js example, run by `node` against the Node build with the SDK
// packages its `npm install` line names (so it needs the npm registry or npm's cache): the
// spans it registers a provider for reach an OTLP/HTTP JSON receiver run here, one trace from
// the emit to the handling and the agent's own emit. A step of tests/node/node_test.ts, after
// its one build of .node-build/: two tests building it at once under --parallel raced (one
// rewrote the folder while the other's node children ran from it).
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { example } from "./_readme.ts";
import { KIND, OtlpReceiver, type ReceivedSpan } from "../cli/_otlp_receiver.ts";
import { until } from "../cli/_process.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const BUILT = join(ROOT, ".node-build");
const NODE = Deno.env.get("NODE") ?? "node";
const HEADING = "## With Node.js: register a provider";

function only(spans: ReceivedSpan[], name: string): ReceivedSpan {
  const found = spans.filter((span) => span.name === name);
  assert.equal(found.length, 1, `${found.length} spans named "${name}"`);
  return found[0];
}

async function run(command: string, args: string[], cwd: string, env?: Record<string, string>) {
  const output = await new Deno.Command(command, {
    args,
    cwd,
    env,
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return { code: output.code, out: decode(output.stdout), err: decode(output.stderr) };
}

/** Runs the example against the package already built in .node-build/ and checks its trace. */
export async function checkTracesNodeExample(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "toka-traces-node-"));
  const receiver = new OtlpReceiver();
  try {
    // The page's own install line, then the package built from this checkout beside it.
    const install = example(HEADING, "sh").replaceAll("\\\n", " ").trim().split(/\s+/);
    assert.deepEqual(install.slice(0, 2), ["npm", "install"]);
    const installed = await run("npm", [...install.slice(1), "--no-audit", "--no-fund"], dir);
    assert.equal(installed.code, 0, installed.err);
    await mkdir(join(dir, "node_modules/@toka"), { recursive: true });
    await symlink(BUILT, join(dir, "node_modules/@toka/runtime"));
    await Deno.writeTextFile(join(dir, "example.mjs"), example(HEADING, "js"));

    const result = await run(NODE, ["example.mjs"], dir, {
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
    });
    assert.equal(result.code, 0, result.err);
    assert.equal(result.out, "true\n");
    const names = ["emit job.created", "handle job.created", "emit job.done"];
    await until(
      () => names.every((name) => receiver.spans.some((span) => span.name === name)),
      () => `the spans ${names}; received ${JSON.stringify(receiver.spans.map((s) => s.name))}`,
    );
    const emit = only(receiver.spans, "emit job.created");
    const handle = only(receiver.spans, "handle job.created");
    const done = only(receiver.spans, "emit job.done");
    assert.equal(emit.kind, KIND.producer);
    assert.equal(handle.parentSpanId, emit.spanId);
    assert.equal(done.parentSpanId, handle.spanId);
    assert.equal(done.traceId, emit.traceId);
  } finally {
    await receiver.close();
    await rm(dir, { recursive: true, force: true });
  }
}
