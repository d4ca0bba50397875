// Under Node (built by scripts/build_node.ts): the vault contract suite on
// @deno/kv, through openVault as a Node user calls it.
import { test } from "node:test";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openVault } from "@toka/runtime/vault";
import { runContract } from "../vault/contract.ts";
import { asDenoContext } from "./_node_test_context.ts";

test("contract: openVault(:memory:) on Node", async (t) => {
  await runContract(
    asDenoContext(t),
    async (clock) => ({ store: await openVault(":memory:", { clock }) }),
  );
});

test("contract: openVault(file) on Node", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "toka-node-"));
  let n = 0;
  try {
    await runContract(
      asDenoContext(t),
      async (clock) => ({ store: await openVault(join(dir, `store-${n++}.kv`), { clock }) }),
    );
  } finally {
    await rm(dir, { recursive: true });
  }
});
