// Subprocess for rotation_concurrency_test.ts: opens the KV file given as the
// first argument, rotates the secret N times and prints the new kids as JSON.
import { KvTokenAuthority } from "../../auth/mod.ts";

const [path, times] = Deno.args;
using kv = await Deno.openKv(path);
const auth = await KvTokenAuthority.open(kv, { vault: "concurrency" });
const kids: string[] = [];
for (let i = 0; i < Number(times); i++) kids.push((await auth.rotate()).kid);
console.log(JSON.stringify(kids));
