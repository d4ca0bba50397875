// A process for the failover test: runs the "worker" agent on a shared vault
// file until killed, printing "running" or "standby" once started, and
// "handled <n>" for each task it finishes.
import { defineAgent, Runtime } from "../../../runtime/mod.ts";
import { openVault } from "../../../vault/mod.ts";
import { kvPorts } from "../_helpers.ts";

const [db] = Deno.args;
const store = await openVault(db);
const runtime = await Runtime.create({ vault: store, ...kvPorts(store.kv), agentLeaseSecs: 1 });
runtime.register(defineAgent({
  name: "worker",
  subscribe: ["task.created"],
  async handle(event) {
    await new Promise((resolve) => setTimeout(resolve, 5));
    console.log(`handled ${(event.payload as { n: number }).n}`);
  },
}));
await runtime.start();
console.log(runtime.agents()[0].standby ? "standby" : "running");
await new Promise(() => {}); // Runs until killed.
