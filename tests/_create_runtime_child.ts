// Run without --allow-env by mod_test.ts: createRuntime() must not fall back to a raw pool.
import { createRuntime } from "../mod.ts";

const masterKey = Deno.args[0] === "none" ? null : undefined;
try {
  const runtime = await createRuntime({ db: ":memory:", auth: { masterKey } });
  await runtime.close();
  console.log("opened");
} catch (error) {
  console.log(`${(error as Error).name}: ${(error as Error).message}`);
}
