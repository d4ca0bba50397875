import {
  KvCheckpointStore,
  KvLeaseStore,
  MemoryCheckpointStore,
  MemoryLeaseStore,
} from "../../../runtime/mod.ts";
import { runAgentStateContract } from "./agent_state_contract.ts";

Deno.test("agent state contract: Deno KV", async (t) => {
  await runAgentStateContract(t, async () => {
    const kv = await Deno.openKv(":memory:");
    return {
      checkpoints: new KvCheckpointStore(kv),
      leases: new KvLeaseStore(kv),
      cleanup: () => kv.close(),
    };
  });
});

Deno.test("agent state contract: in memory", async (t) => {
  await runAgentStateContract(t, () => {
    const leases = new MemoryLeaseStore();
    return Promise.resolve({
      checkpoints: new MemoryCheckpointStore(leases),
      leases,
      cleanup: () => {},
    });
  });
});
