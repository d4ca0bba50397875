import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { jwtVerify } from "jose";
import {
  generateMasterKey,
  InvalidTokenError,
  KvTokenAuthority,
  type KvTokenAuthorityOptions,
  SecretPoolError,
  TokenRevokedError,
} from "../../auth/mod.ts";

const T0 = 1_700_000_000_000;
const SECRET = new Uint8Array(32).fill(9);
const LOCKED = "Cannot unwrap the secret pool: wrong or missing TOKA_MASTER_KEY";

function kidOf(token: string): string {
  return JSON.parse(Buffer.from(token.split(".")[0], "base64url").toString()).kid;
}

function open(kv: Deno.Kv, clock: { now: number }, options: KvTokenAuthorityOptions = {}) {
  return KvTokenAuthority.open(kv, { vault: "v", clock: () => clock.now, ...options });
}

// deno-lint-ignore no-explicit-any
async function poolValue(kv: Deno.Kv): Promise<any> {
  return (await kv.get(["auth", "pool"])).value;
}

Deno.test("bootstrap", async (t) => {
  using kv = await Deno.openKv(":memory:");
  const clock = { now: T0 };

  await t.step("authorities opening together agree on one pool", async () => {
    const [a, b, c] = await Promise.all([open(kv, clock), open(kv, clock), open(kv, clock)]);
    const kids = await Promise.all([a, b, c].map(async (x) => (await x.status()).activeKid));
    assert.equal(new Set(kids).size, 1);
    const token = await a.issue({ sub: "s", permissions: ["*"] });
    assert.equal((await c.verify(token)).sub, "s");
  });

  await t.step("initialSecret is ignored once the pool exists", async () => {
    const before = await kv.get(["auth", "pool"]);
    const d = await open(kv, clock, { initialSecret: SECRET });
    assert.equal((await kv.get(["auth", "pool"])).versionstamp, before.versionstamp);
    const token = await d.issue({ sub: "s", permissions: [] });
    await assert.rejects(jwtVerify(token, SECRET, { algorithms: ["HS256"] }));
  });
});

Deno.test("rotation and the retired-secret window", async (t) => {
  using kv = await Deno.openKv(":memory:");
  const clock = { now: T0 };
  const auth = await open(kv, clock, { initialSecret: SECRET, retiredTtlSecs: 300 });
  const old = await auth.issue({ sub: "s", permissions: ["*"], ttlSecs: 86_400 });
  await auth.verify(old); // cached: the window must hold for cached tokens too
  const uncached = await auth.issue({ sub: "s2", permissions: ["*"], ttlSecs: 86_400 });
  const T1 = T0 + 1_000;
  clock.now = T1;
  const { kid } = await auth.rotate();

  await t.step("new tokens use the new kid; old ones still verify", async () => {
    assert.notEqual(kid, kidOf(old));
    assert.match(kid, /^[0-9a-f]{16}$/);
    const fresh = await auth.issue({ sub: "s", permissions: ["*"] });
    assert.equal(kidOf(fresh), kid);
    await auth.verify(fresh);
    await auth.verify(old);
  });

  await t.step("status shows states and times, never secret material", async () => {
    const status = await auth.status();
    assert.equal(status.activeKid, kid);
    assert.equal(status.wrapped, false);
    assert.deepEqual(status.secrets, [
      { kid, state: "active", createdAt: T1 },
      { kid: kidOf(old), state: "retired", createdAt: T0, retiredAt: T1, validUntil: T1 + 300_000 },
    ]);
    const text = JSON.stringify(status);
    assert.ok(!text.includes(Buffer.from(SECRET).toString("base64url")));
    assert.ok(!text.includes(Buffer.from(SECRET).toString("base64")));
  });

  await t.step("valid 1 ms before the window closes, refused at its end", async () => {
    clock.now = T1 + 300_000 - 1;
    await auth.verify(old);
    await auth.verify(uncached);
    clock.now = T1 + 300_000;
    for (const token of [old, uncached]) {
      await assert.rejects(auth.verify(token), (e: unknown) => {
        assert.ok(e instanceof InvalidTokenError);
        assert.equal(e.reason, "key_expired");
        return true;
      });
    }
    assert.equal((await auth.status()).secrets[1].state, "expired");
  });

  await t.step("the expired secret is pruned on the next rotation", async () => {
    assert.equal((await poolValue(kv)).retired.length, 1);
    const second = await auth.rotate();
    const pool = await poolValue(kv);
    assert.equal(pool.active.kid, second.kid);
    assert.deepEqual(pool.retired.map((s: { kid: string }) => s.kid), [kid]);
    await assert.rejects(auth.verify(old), (e: unknown) => {
      assert.ok(e instanceof InvalidTokenError);
      assert.equal(e.reason, "unknown_kid");
      return true;
    });
  });
});

Deno.test("another authority's writes", async (t) => {
  using kv = await Deno.openKv(":memory:");
  const clock = { now: T0 };
  const a = await open(kv, clock);
  const b = await open(kv, clock);

  await t.step("a rotation elsewhere is seen at once through the unknown kid", async () => {
    await a.rotate();
    const token = await a.issue({ sub: "s", permissions: ["*"] });
    assert.equal((await b.verify(token)).sub, "s");
    assert.equal(kidOf(await b.issue({ sub: "s", permissions: [] })), kidOf(token));
  });

  await t.step("a revocation elsewhere is seen after the refresh interval", async () => {
    const token = await b.issue({ sub: "s", permissions: ["*"] });
    const { jti, exp } = await b.verify(token);
    await a.revoke(jti, exp);
    await assert.rejects(a.verify(token), TokenRevokedError);
    clock.now += 1_000;
    await assert.rejects(b.verify(token), TokenRevokedError);
    const entry = await kv.get(["auth", "revoked", jti]);
    assert.equal(entry.value, exp);
    assert.equal((await a.status()).revoked, 1);
  });

  await t.step("issued and attenuated ids are recorded until their expiry", async () => {
    const token = await a.issue({ sub: "s", permissions: ["tool:*:invoke"], ttlSecs: 600 });
    const { jti, exp } = await a.verify(token);
    assert.equal(await b.issuedExpiry(jti), exp, "another authority sees the record");
    assert.equal((await kv.get(["auth", "issued", jti])).value, exp);
    const child = await b.attenuate(token, { permissions: ["tool:echo:invoke"], ttlSecs: 60 });
    const c = await b.verify(child);
    assert.equal(await a.issuedExpiry(c.jti), c.exp);
    assert.equal(await a.issuedExpiry("0".repeat(32)), undefined, "never issued");
    clock.now += 61_000;
    assert.equal(await a.issuedExpiry(c.jti), undefined, "expired with its token");
    assert.equal(await a.issuedExpiry(jti), exp);
    clock.now -= 61_000;
    await assert.rejects(a.issuedExpiry(" "), TypeError);
  });

  await t.step("bad revocations are refused and store nothing", async () => {
    const before = await Array.fromAsync(kv.list({ prefix: ["auth"] }));
    await assert.rejects(a.revoke(" "), {
      name: "TypeError",
      message: "jti must be a non-blank string",
    });
    await assert.rejects(a.revoke("j", clock.now), {
      name: "RangeError",
      message: "exp must be at most 48 hours from now, in seconds since the epoch",
    });
    await assert.rejects(a.revoke("j", 1.5), TypeError);
    assert.deepEqual(await Array.fromAsync(kv.list({ prefix: ["auth"] })), before);
  });

  await t.step("revoke without exp covers the longest lifetime", async () => {
    await a.revoke("no-exp");
    assert.equal((await kv.get(["auth", "revoked", "no-exp"])).value, clock.now / 1000 + 86_400);
  });
});

Deno.test("secrets wrapped at rest with a master key", async (t) => {
  using kv = await Deno.openKv(":memory:");
  const clock = { now: T0 };
  const masterKey = generateMasterKey();
  const auth = await open(kv, clock, { masterKey, initialSecret: SECRET });
  const token = await auth.issue({ sub: "s", permissions: ["*"] });

  await t.step("no raw secret is stored", async () => {
    const pool = await poolValue(kv);
    assert.equal(pool.active.secret, undefined);
    assert.equal(pool.active.wrapped.length, 32 + 16);
    assert.ok(!Buffer.from(pool.active.wrapped).equals(Buffer.from(SECRET)));
    assert.equal((await auth.status()).wrapped, true);
  });

  await t.step("the same key reopens the pool", async () => {
    const again = await open(kv, clock, { masterKey });
    assert.equal((await again.verify(token)).sub, "s");
  });

  await t.step("a wrong or missing key is a clear error and changes nothing", async () => {
    const before = await kv.get(["auth", "pool"]);
    for (const options of [{}, { masterKey: generateMasterKey() }]) {
      await assert.rejects(open(kv, clock, options), (e: unknown) => {
        assert.ok(e instanceof SecretPoolError);
        assert.equal(e.code, "secret_pool_locked");
        assert.equal(e.message, LOCKED);
        return true;
      });
    }
    assert.deepEqual(await kv.get(["auth", "pool"]), before);
  });

  await t.step("a raw pool gets wrapped only when asked, then rotates wrapped", async () => {
    using raw = await Deno.openKv(":memory:");
    const first = await open(raw, clock);
    const old = await first.issue({ sub: "s", permissions: [] });
    assert.ok((await poolValue(raw)).active.secret instanceof Uint8Array);
    await assert.rejects(open(raw, clock, { masterKey }), { code: "secret_pool_unwrapped" });
    assert.ok((await poolValue(raw)).active.secret instanceof Uint8Array, "left as it was");
    const wrapped = await open(raw, clock, { masterKey, wrapRawSecrets: true });
    await wrapped.rotate();
    const pool = await poolValue(raw);
    for (const s of [pool.active, ...pool.retired]) {
      assert.equal(s.secret, undefined);
      assert.ok(s.wrapped instanceof Uint8Array);
    }
    await wrapped.verify(old);
    await assert.rejects(open(raw, clock), SecretPoolError);
  });

  await t.step("readStatus describes the pool without the key, as status() does", async () => {
    await auth.rotate();
    const { jti, exp } = await auth.verify(token);
    await auth.revoke(jti, exp);
    const read = await KvTokenAuthority.readStatus(kv, { vault: "v", clock: () => clock.now });
    assert.deepEqual(read, await auth.status());
    assert.equal(read?.secrets.length, 2);
    clock.now += 301_000;
    const later = await KvTokenAuthority.readStatus(kv, { vault: "v", clock: () => clock.now });
    assert.deepEqual(later?.secrets.map((s) => s.state), ["active", "expired"]);
    clock.now -= 301_000;
    using empty = await Deno.openKv(":memory:");
    assert.equal(await KvTokenAuthority.readStatus(empty), null);
  });
});

Deno.test("a corrupt pool is reported, not overwritten", async () => {
  using kv = await Deno.openKv(":memory:");
  await kv.set(["auth", "pool"], { v: 1, active: "nope", retired: [] });
  await assert.rejects(KvTokenAuthority.open(kv), {
    name: "SecretPoolError",
    message: `The secret pool at ["auth","pool"] is corrupt`,
  });
  assert.deepEqual((await kv.get(["auth", "pool"])).value, { v: 1, active: "nope", retired: [] });
});

// The CLI asked KV for the pool's key itself (internal/auth_keys.ts) to tell
// whether a vault has a pool: a public read instead.
Deno.test("hasPool tells whether a KV holds a secret pool, creating none", async () => {
  using kv = await Deno.openKv(":memory:");
  assert.equal(await KvTokenAuthority.hasPool(kv), false);
  assert.deepEqual(await Array.fromAsync(kv.list({ prefix: [] })), []);
  await KvTokenAuthority.open(kv, { masterKey: undefined });
  assert.equal(await KvTokenAuthority.hasPool(kv), true);
});
