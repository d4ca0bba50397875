// Token verification against jose's jwtVerify on the same token (baseline).
// Target: KvTokenAuthority.verify at least 10× jose. Run: deno bench -A bench/auth_bench.ts
import { jwtVerify } from "jose";
import { KvTokenAuthority } from "../auth/mod.ts";

const kv = await Deno.openKv(":memory:");
globalThis.addEventListener("unload", () => kv.close());
const secret = crypto.getRandomValues(new Uint8Array(32));
const cached = await KvTokenAuthority.open(kv, { vault: "bench", initialSecret: secret });
const uncached = await KvTokenAuthority.open(kv, { vault: "bench", verifyCacheSize: 0 });
const token = await cached.issue({
  sub: "agent/planner",
  permissions: ["tool:*:invoke", "events:read:*"],
});

Deno.bench({
  name: "jose jwtVerify",
  group: "verify",
  baseline: true,
  async fn() {
    await jwtVerify(token, secret, { algorithms: ["HS256"] });
  },
});

Deno.bench({
  name: "KvTokenAuthority.verify (verified-token cache)",
  group: "verify",
  async fn() {
    await cached.verify(token);
  },
});

Deno.bench({
  name: "KvTokenAuthority.verify (no cache: parse + HMAC every call)",
  group: "verify",
  async fn() {
    await uncached.verify(token);
  },
});

Deno.bench({
  name: "KvTokenAuthority.authorize (cache)",
  group: "verify",
  async fn() {
    await cached.authorize(token, "tool:echo:invoke");
  },
});
