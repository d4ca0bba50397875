// Runs suites written for Deno.test's `t.step` under node:test: each step is a subtest.
import type { TestContext } from "node:test";

/** A `Deno.TestContext` stand-in whose `step` runs a node:test subtest. */
export function asDenoContext(t: TestContext): Deno.TestContext {
  const step = async (name: string, fn: (t: Deno.TestContext) => unknown): Promise<boolean> => {
    let ok = true;
    await t.test(name, async (sub) => {
      try {
        await fn(asDenoContext(sub));
      } catch (error) {
        ok = false;
        throw error;
      }
    });
    return ok;
  };
  return { step, name: t.name } as unknown as Deno.TestContext;
}
