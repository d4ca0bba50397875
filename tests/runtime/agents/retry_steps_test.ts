// A retry serves the steps that earlier attempts finished from the journal
// (issue 20 §4): the step's work runs once in total.
import assert from "node:assert/strict";
import { defineAgent, readFailedEvents, Runtime } from "../../../runtime/mod.ts";
import { openVault } from "../../../vault/mod.ts";
import { all, kvPorts, until } from "../_helpers.ts";

Deno.test("a retry serves finished steps from the journal", async () => {
  const vault = await openVault(":memory:");
  const runtime = await Runtime.create({
    vault,
    ...kvPorts(vault.kv),
    retry: { attempts: 2, backoffMs: () => 1 },
  });
  let charges = 0;
  let broken = true;
  runtime.register(defineAgent({
    name: "billing",
    subscribe: ["order.placed"],
    async handle(event, ctx) {
      const receipt = await ctx.step("charge", () => ({ receipt: `r${++charges}` }));
      if (broken) throw new Error("the mailer is down");
      await ctx.emit({ kind: "order.billed", payload: { ...receipt, order: event.payload } });
    },
  }));
  try {
    await runtime.start();
    const order = await runtime.emit({ kind: "order.placed", payload: 1 });
    await until(() => runtime.agents()[0].failures === 1);
    assert.equal(charges, 1, "the second attempt got the step's result back");
    broken = false;
    await runtime.retry("billing", order.id);
    for (let i = 0; i < 2500; i++) {
      if ((await all(vault, ["agent.recovered"])).length === 1) break;
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    const [billed] = await all(vault, ["order.billed"]);
    assert.deepEqual(billed.payload, { receipt: "r1", order: 1 });
    assert.equal(charges, 1, "the retry got the step's result back");
    assert.equal((await all(vault, ["step.completed"])).length, 1);
    assert.deepEqual(await readFailedEvents(vault), []);
  } finally {
    await runtime.close();
    await vault.close();
  }
});
