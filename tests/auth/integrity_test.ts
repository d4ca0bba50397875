// Issue 10 "Auth": each step reproduces an attack or a fault of the review.
import assert from "node:assert/strict";
import {
  generateMasterKey,
  KvTokenAuthority,
  type KvTokenAuthorityOptions,
  SecretPoolError,
  TokenRevokedError,
} from "../../auth/mod.ts";
import { isInvalid, kidOf, sign } from "./_tokens.ts";

const T0 = 1_700_000_000_000;
const SECRET = new Uint8Array(32).fill(5);

/** Signs arbitrary claims under `kid` with a secret, bypassing every check. */
const forge = (kid: string, claims: Record<string, unknown>, secret = SECRET) =>
  sign({ alg: "HS256", typ: "toka.cap+jwt", kid }, claims, secret);

interface Clocks {
  now: number;
  mono: number;
}

function open(kv: Deno.Kv, clocks: Clocks, options: KvTokenAuthorityOptions = {}) {
  return KvTokenAuthority.open(kv, {
    vault: "v",
    clock: () => clocks.now,
    monotonicClock: () => clocks.mono,
    ...options,
  });
}

// deno-lint-ignore no-explicit-any
async function poolValue(kv: Deno.Kv): Promise<any> {
  return (await kv.get(["auth", "pool"])).value;
}

Deno.test("a raw secret planted in a wrapped pool is refused", async (t) => {
  using kv = await Deno.openKv(":memory:");
  const clocks = { now: T0, mono: 0 };
  const masterKey = generateMasterKey();
  const auth = await open(kv, clocks, { masterKey });
  const valid = await auth.issue({ sub: "s", permissions: ["tool:echo:invoke"] });
  const now = Math.floor(T0 / 1000);
  const forged = forge("evil", {
    sub: "attacker",
    vault: "v",
    permissions: ["*"],
    iat: now,
    exp: now + 3600,
    jti: "j1",
  });
  const pool = await poolValue(kv);
  pool.retired.unshift({ kid: "evil", createdAt: T0, retiredAt: T0, secret: SECRET });
  await kv.set(["auth", "pool"], pool);
  const planted = await kv.get(["auth", "pool"]);

  const refused = (e: unknown) => {
    assert.ok(e instanceof SecretPoolError, String(e));
    assert.equal(e.code, "secret_pool_unwrapped");
    assert.equal(
      e.message,
      'The secret pool holds an unwrapped secret "evil" while a master key is configured: refusing it',
    );
    return true;
  };

  await t.step("a new authority refuses to open on it", async () => {
    await assert.rejects(open(kv, clocks, { masterKey }), refused);
  });

  await t.step("a running authority refuses the forged token on its next read", async () => {
    clocks.now += 1_000;
    await assert.rejects(auth.verify(forged), refused);
    await assert.rejects(auth.authorize(forged, "tool:shell:invoke"));
  });

  await t.step("rotating does not wrap it silently", async () => {
    await assert.rejects(auth.rotate(), refused);
    assert.deepEqual(await kv.get(["auth", "pool"]), planted);
  });

  await t.step("wrapping raw secrets is an explicit, logged step", async () => {
    const wrapped = await open(kv, clocks, { masterKey, wrapRawSecrets: true });
    for (const s of [(await poolValue(kv)).active, ...(await poolValue(kv)).retired]) {
      assert.equal(s.secret, undefined);
    }
    assert.equal((await wrapped.status()).wrapped, true);
    assert.equal((await wrapped.verify(valid)).sub, "s");
  });
});

Deno.test("status().wrapped says how the pool is stored", async () => {
  using kv = await Deno.openKv(":memory:");
  const clocks = { now: T0, mono: 0 };
  const masterKey = generateMasterKey();
  await open(kv, clocks);
  // A key supplied for a raw pool does not make it wrapped.
  await assert.rejects(open(kv, clocks, { masterKey }), { code: "secret_pool_unwrapped" });
  const raw = await open(kv, clocks);
  assert.equal((await raw.status()).wrapped, false);
  const migrated = await open(kv, clocks, { masterKey, wrapRawSecrets: true });
  assert.equal((await migrated.status()).wrapped, true);
});

Deno.test("iat in the future and nbf not before exp", async (t) => {
  using kv = await Deno.openKv(":memory:");
  const clocks = { now: T0, mono: 0 };
  // iat may be ahead by the leeway, and by a minute at least (issue 18 #19).
  const auth = await open(kv, clocks, { initialSecret: SECRET, leewaySecs: 90 });
  const kid = (await auth.status()).activeKid;
  const now = Math.floor(T0 / 1000);
  const claims = { sub: "s", vault: "v", permissions: ["*"], jti: "j" };

  await t.step("a token issued in the future is refused beyond the leeway", async () => {
    const future = forge(kid, { ...claims, iat: now + 30 * 86_400, exp: now + 31 * 86_400 });
    await assert.rejects(auth.verify(future), isInvalid("issued_in_future"));
    const withinLeeway = forge(kid, { ...claims, jti: "k", iat: now + 90, exp: now + 160 });
    assert.equal((await auth.verify(withinLeeway)).jti, "k");
    const beyond = forge(kid, { ...claims, jti: "l", iat: now + 91, exp: now + 160 });
    await assert.rejects(auth.verify(beyond), isInvalid("issued_in_future"));
  });

  await t.step("without a leeway, iat may be a minute ahead, no more", async () => {
    const strict = await open(kv, clocks, { initialSecret: SECRET });
    const minute = forge(kid, { ...claims, jti: "n", iat: now + 60, exp: now + 160 });
    assert.equal((await strict.verify(minute)).jti, "n");
    const beyond = forge(kid, { ...claims, jti: "o", iat: now + 61, exp: now + 160 });
    await assert.rejects(strict.verify(beyond), isInvalid("issued_in_future"));
  });

  await t.step("a cached token issued in the future is refused too", async () => {
    const soon = forge(kid, { ...claims, jti: "m", iat: now + 90, exp: now + 160 });
    await auth.verify(soon);
    clocks.now -= 1_000;
    await assert.rejects(auth.verify(soon), isInvalid("issued_in_future"));
    clocks.now = T0;
  });

  await t.step("issue refuses nbf at or after exp; verify refuses such a token", async () => {
    for (const nbf of [now + 60, now + 61]) {
      await assert.rejects(auth.issue({ sub: "s", permissions: [], ttlSecs: 60, nbf }), {
        name: "RangeError",
        message: 'Claim "nbf" must be before "exp"',
      });
    }
    const token = forge(kid, { ...claims, iat: now, exp: now + 60, nbf: now + 60 });
    await assert.rejects(auth.verify(token), isInvalid("bad_claims"));
  });
});

Deno.test("another process's fresh rotation is never refused as unknown_kid", async (t) => {
  using kv = await Deno.openKv(":memory:");
  const clocks = { now: T0, mono: 0 };
  const a = await open(kv, clocks);
  const b = await open(kv, clocks);
  const now = Math.floor(T0 / 1000);
  const bogus = forge("bogus", {
    sub: "s",
    vault: "v",
    permissions: [],
    iat: now,
    exp: now + 9,
    jti: "b",
  });

  await t.step("right after a bogus kid, a valid new kid still verifies", async () => {
    for (let i = 0; i < 3; i++) {
      await assert.rejects(b.verify(bogus), isInvalid("unknown_kid"));
      await a.rotate();
      const token = await a.issue({ sub: "s", permissions: ["*"] });
      assert.equal((await b.verify(token)).sub, "s");
    }
  });

  await t.step("concurrent with a flood of bogus kids and an in-flight read", async () => {
    const flood = Array.from({ length: 50 }, () => b.verify(bogus).catch((e) => e));
    await a.rotate();
    const token = await a.issue({ sub: "s", permissions: ["*"] });
    const [claims, ...errors] = await Promise.all([b.verify(token), ...flood]);
    assert.equal(claims.sub, "s");
    for (const error of errors) isInvalid("unknown_kid")(error);
    assert.equal(kidOf(token), (await b.status()).activeKid);
  });
});

Deno.test("more rotations than the pool keeps within the grace are refused", async () => {
  using kv = await Deno.openKv(":memory:");
  const clocks = { now: T0, mono: 0 };
  const auth = await open(kv, clocks, { retiredTtlSecs: 3600 });
  const first = await auth.issue({ sub: "s", permissions: [], ttlSecs: 86_400 });
  for (let i = 0; i < 100; i++) {
    await auth.rotate();
    clocks.now += 1_000;
    clocks.mono += 1_000;
  }
  const before = await kv.get(["auth", "pool"]);
  await assert.rejects(auth.rotate(), (e: unknown) => {
    assert.ok(e instanceof SecretPoolError);
    assert.equal(e.code, "secret_pool_full");
    assert.match(
      e.message,
      /^Cannot rotate the secret: 100 retired secrets are still within their grace \(retiredTtlSecs 3600\), and another rotation would end one early; try again after 2023-11-14T23:13:20\.000Z$/,
    );
    return true;
  });
  assert.deepEqual(await kv.get(["auth", "pool"]), before, "nothing dropped");
  assert.equal((await auth.verify(first)).sub, "s", "the oldest retired secret still verifies");
  // Once the oldest grace ends, rotation prunes it and goes on.
  clocks.now = T0 + 3_600_000;
  clocks.mono = 3_600_000;
  await auth.rotate();
  await assert.rejects(auth.verify(first), isInvalid("unknown_kid"));
});

Deno.test("a backward wall-clock jump does not extend a retired secret's grace", async () => {
  using kv = await Deno.openKv(":memory:");
  const clocks = { now: T0, mono: 0 };
  const auth = await open(kv, clocks, { retiredTtlSecs: 300 });
  const old = await auth.issue({ sub: "s", permissions: [], ttlSecs: 86_400 });
  clocks.now += 600_000;
  clocks.mono += 600_000;
  await auth.rotate();
  const other = await open(kv, clocks, { retiredTtlSecs: 300 });
  clocks.now += 200_000;
  clocks.mono += 200_000;
  assert.equal((await auth.verify(old)).sub, "s");
  assert.equal((await other.verify(old)).sub, "s");
  clocks.now -= 500_000; // the wall clock jumps back
  clocks.mono += 99_999;
  assert.equal((await auth.verify(old)).sub, "s", "1 ms of grace left by this process's clock");
  clocks.mono += 1;
  for (const x of [auth, other]) await assert.rejects(x.verify(old), isInvalid("key_expired"));
  const status = await auth.status();
  assert.equal(status.secrets[1].state, "expired");
});

Deno.test("a revoked ancestor is named as such", async () => {
  using kv = await Deno.openKv(":memory:");
  const clocks = { now: T0, mono: 0 };
  const auth = await open(kv, clocks);
  const parent = await auth.issue({ sub: "s", permissions: ["tool:*:invoke"] });
  const child = await auth.attenuate(parent, { permissions: ["tool:echo:invoke"] });
  const p = await auth.verify(parent);
  const c = await auth.verify(child);
  await auth.revoke(p.jti, p.exp);
  await assert.rejects(auth.verify(child), (e: unknown) => {
    assert.ok(e instanceof TokenRevokedError);
    assert.equal(e.jti, p.jti);
    assert.equal(e.tokenJti, c.jti);
    assert.equal(
      e.message,
      `Token "${c.jti}" is revoked: its ancestor "${p.jti}" has been revoked`,
    );
    assert.ok(!e.message.includes(child) && !e.message.includes(parent));
    return true;
  });
  await assert.rejects(auth.verify(parent), {
    message: `Token "${p.jti}" has been revoked`,
  });
});
