/**
 * `call("fs.read")` as a ratio to a plain `Deno.readTextFile`, measured in one process.
 *
 *   deno run -A bench/fs_tools_ratios.ts [--rounds R]
 *
 * One sample reads 100 files of 4 KiB, two folders deep ("a/b/k<i>"):
 * - baseline: `Deno.readTextFile` of each path;
 * - tool: `ToolRegistry.call("fs.read", { path })` with the default (allow-all)
 *   authority and no event recorder: input validation, the link-safe walk
 *   ("fd" mode with -A on Linux), UTF-8 decoding and output validation.
 * The two alternate round by round (the order rotates) and the median of the
 * per-round ratios (tool time / baseline time) is printed.
 */
import { join } from "node:path";
import { createFsTools, ToolRegistry } from "../toolkit/mod.ts";

const args = Deno.args;
const rounds = Number(args[args.indexOf("--rounds") + 1] || 15);
const N = 100;

const root = await Deno.makeTempDir();
await Deno.mkdir(join(root, "a", "b"), { recursive: true });
for (let i = 0; i < N; i++) {
  await Deno.writeTextFile(join(root, "a", "b", `k${i}`), "x".repeat(4096));
}
const tools = new ToolRegistry({ tools: createFsTools({ root }) });

async function plain(): Promise<void> {
  for (let i = 0; i < N; i++) await Deno.readTextFile(join(root, "a", "b", `k${i}`));
}

async function viaTool(): Promise<void> {
  for (let i = 0; i < N; i++) await tools.call("fs.read", { path: `a/b/k${i}` });
}

async function time(task: () => Promise<void>): Promise<number> {
  const started = performance.now();
  await task();
  return performance.now() - started;
}

try {
  await plain();
  await viaTool(); // warm up
  const ratios: number[] = [];
  let plainMs = 0;
  let toolMs = 0;
  for (let round = 0; round < rounds; round++) {
    let a: number, b: number;
    if (round % 2 === 0) {
      a = await time(plain);
      b = await time(viaTool);
    } else {
      b = await time(viaTool);
      a = await time(plain);
    }
    plainMs += a;
    toolMs += b;
    ratios.push(b / a);
  }
  ratios.sort((x, y) => x - y);
  const median = ratios[Math.floor(ratios.length / 2)];
  console.log(
    `fs.read via the registry vs Deno.readTextFile, ${N} files of 4 KiB, ${rounds} rounds: ` +
      `median ratio ${median.toFixed(2)}x (tool ${(toolMs / rounds / N * 1000).toFixed(0)} µs, ` +
      `plain ${(plainMs / rounds / N * 1000).toFixed(0)} µs per read)`,
  );
} finally {
  await Deno.remove(root, { recursive: true });
}
