// The scenario end to end, in processes: toka run on a vault, fork it
// at a position, toka run changed agents on the fork (which redo what follows
// the fork point), and toka events diff the two.
import assert from "node:assert/strict";
import { main } from "../../cli.ts";
import { recordingIo } from "./_fakes.ts";
import { eventsIn, TokaProcess, until } from "./_process.ts";

const AGENTS = `import { defineAgent } from ${
  JSON.stringify(new URL("../../runtime/mod.ts", import.meta.url).href)
};
const weight = Number(Deno.env.get("WEIGHT") ?? "1");
export const tally = defineAgent({
  name: "tally",
  subscribe: ["vote.*"],
  handle(event, ctx) {
    const votes = ctx.state.get<Record<string, number>>() ?? {};
    const choice = String(event.payload);
    ctx.state.set({ ...votes, [choice]: (votes[choice] ?? 0) + weight });
  },
});
`;

async function cli(...args: string[]): Promise<{ code: number; out: string[] }> {
  const io = recordingIo();
  const code = await main(args, io);
  return { code, out: io.outLines() };
}

async function runUntil(db: string, agents: string, events: number, weight: string) {
  const run = new TokaProcess(["--db", db, "run", agents], { env: { WEIGHT: weight } });
  try {
    await until(async () => (await eventsIn(db)).length >= events, `${events} events in ${db}`);
    run.kill("SIGINT");
    assert.equal((await run.exit()).code, 0, run.err);
  } finally {
    await run.close();
  }
}

Deno.test("toka run on a fork redoes what follows the fork point with changed agents", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const agents = `${dir}/agents.ts`;
    await Deno.writeTextFile(agents, AGENTS);
    const original = `${dir}/original.kv`;
    const fork = `${dir}/fork.kv`;
    for (const vote of ['"tea"', '"coffee"']) {
      assert.equal((await cli("--db", original, "emit", "vote.cast", "--payload", vote)).code, 0);
    }
    await runUntil(original, agents, 4, "1");
    assert.equal(
      (await cli("--db", original, "events", "fork", "--at", "2", "--into", fork)).code,
      0,
    );
    await runUntil(fork, agents, 4, "2");
    const state = async (db: string) =>
      JSON.parse((await cli("--db", db, "--json", "agent", "state", "tally")).out[0]).state;
    assert.deepEqual(await state(original), { coffee: 1, tea: 1 });
    assert.deepEqual(await state(fork), { coffee: 2, tea: 2 });
    const diff = await cli("events", "diff", original, fork);
    assert.equal(diff.code, 1);
    assert.deepEqual(diff.out.slice(1), [
      `${original}: 2 events after it: agent.state 2`,
      `${fork}: 2 events after it: agent.state 2`,
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
