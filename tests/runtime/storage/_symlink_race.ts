// The race shared by the storage("local") and fs tools tests: a worker swaps
// the folder `d/` and the file `f` under a root for links out of it, and back,
// while four loops read, write, delete (and list) through the code under test.
import { join } from "node:path";

const SWAPPER = new URL("./_symlink_swapper.ts", import.meta.url);
const RACE_MS = 3000;
const MAX_OPS = 400_000;
const MAX_ROUNDS = 10;

/** What the race does through the code under test. */
export interface RaceTarget {
  read(path: string): Promise<string | undefined>;
  write(path: string, content: string): Promise<unknown>;
  delete(path: string): Promise<unknown>;
  list?(path: string): Promise<unknown>;
  /** Whether an error is the refusal of a path with a link in it. */
  refusal(message: string): boolean;
}

/** What happened in the race. */
export interface RaceOutcome {
  swaps: number;
  ops: number;
  refused: number;
  /** Reads that returned the outside file's content. */
  leaks: string[];
  /** Every error message seen, once each. */
  messages: Set<string>;
  /** Outside files changed or deleted, and names made outside. */
  changed: string[];
  created: string[];
}

/**
 * Runs the race in rounds of 3 s until links were swapped in and refused (at
 * most 10 rounds: a loaded machine needs more), then reports what reached
 * `outside`.
 */
export async function symlinkRace(
  target: RaceTarget,
  root: string,
  outside: string,
): Promise<RaceOutcome> {
  await Deno.mkdir(join(root, "d"), { recursive: true });
  await Deno.writeTextFile(join(root, "d", "inside.txt"), "inside");
  await Deno.writeTextFile(join(root, "f"), "inside");
  await Deno.writeTextFile(join(outside, "inside.txt"), "SECRET");
  await Deno.writeTextFile(join(outside, "del.txt"), "SECRET");

  const worker = new Worker(SWAPPER, { type: "module" });
  let ops = 0;
  let refused = 0;
  let done = false;
  const leaks: string[] = [];
  const messages = new Set<string>();
  const steps = target.list ? 7 : 6;
  const loop = async (n: number) => {
    for (let i = 0; !done && ops < MAX_OPS; i++, ops++) {
      try {
        switch (i % steps) {
          case 0:
            if (await target.read("d/inside.txt") === "SECRET") leaks.push("read d/");
            break;
          case 1:
            if (await target.read("f") === "SECRET") leaks.push("read f");
            break;
          case 2:
            await target.write(`d/new-${n}-${i % 20}.txt`, "x");
            break;
          case 3:
            await target.write(`d/sub-${i % 3}/x.txt`, "x");
            break;
          case 4:
            await target.delete("d/del.txt");
            break;
          case 5:
            await target.write("d/del.txt", "x");
            break;
          case 6:
            await target.list!("d");
            break;
        }
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        if (target.refusal(message)) refused++;
        messages.add(message);
      }
      // Let the worker's replies through between operations.
      if (i % 50 === 49) await new Promise((resolve) => setTimeout(resolve, 0));
    }
  };
  const rounds = (async () => {
    let swaps = 0;
    for (let round = 0; round < MAX_ROUNDS; round++) {
      swaps = await new Promise<number>((resolve) => {
        worker.onmessage = (e) => resolve(e.data);
        worker.postMessage({ root, outside, ms: RACE_MS });
      });
      if (swaps > 10 && ops > 100 && refused > 0) break;
    }
    done = true;
    return swaps;
  })();
  const [swaps] = await Promise.all([rounds, ...[0, 1, 2, 3].map(loop)]);
  done = true;
  worker.terminate();

  const names = (await Array.fromAsync(Deno.readDir(outside), (e) => e.name)).sort();
  const changed = [];
  for (const name of ["del.txt", "inside.txt"]) {
    const now = await Deno.readTextFile(join(outside, name)).catch(() => "(deleted)");
    if (now !== "SECRET") changed.push(name);
  }
  return {
    swaps,
    ops,
    refused,
    leaks,
    messages,
    changed,
    created: names.filter((n) => n !== "del.txt" && n !== "inside.txt"),
  };
}
