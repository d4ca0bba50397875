// A process for the pause test: runs the "worker" agent on a shared vault
// file with a 1 s lease. Its handler blocks the event loop (a real pause: no
// timer, no renewal runs) until the file `<db>.go` exists, then emits
// task.done. Prints "running", "handling <n>", then "emitted <n>" or
// "refused <n> <error name>: <message>".
import { defineAgent, Runtime } from "../../../runtime/mod.ts";
import { openVault } from "../../../vault/mod.ts";
import { kvPorts } from "../_helpers.ts";

const [db] = Deno.args;
const store = await openVault(db);
const runtime = await Runtime.create({
  vault: store,
  ...kvPorts(store.kv),
  agentLeaseSecs: 1,
  retry: { attempts: 1 },
});
const nap = new Int32Array(new SharedArrayBuffer(4));
runtime.register(defineAgent({
  name: "worker",
  subscribe: ["task.created"],
  async handle(event, ctx) {
    const n = (event.payload as { n: number }).n;
    console.log(`handling ${n}`);
    for (;;) {
      try {
        Deno.statSync(`${db}.go`);
        break;
      } catch {
        Atomics.wait(nap, 0, 0, 20); // Sleeps without yielding to the event loop.
      }
    }
    try {
      await ctx.emit({ kind: "task.done", payload: { n } });
      console.log(`emitted ${n}`);
    } catch (error) {
      console.log(`refused ${n} ${(error as Error).name}: ${(error as Error).message}`);
      throw error;
    }
  },
}));
await runtime.start();
console.log(runtime.agents()[0].standby ? "standby" : "running");
await new Promise(() => {}); // Runs until killed.
