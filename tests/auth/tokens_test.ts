import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { createHmac } from "node:crypto";
import { jwtVerify, SignJWT } from "jose";
import { CapabilityDeniedError } from "../../runtime/errors.ts";
import {
  InvalidTokenError,
  KvTokenAuthority,
  type KvTokenAuthorityOptions,
  TokenExpiredError,
  TokenRevokedError,
} from "../../auth/mod.ts";
import { b64, isInvalid, kidOf, sign } from "./_tokens.ts";

const SECRET = new Uint8Array(32).fill(7);
const T0 = 1_700_000_000_000;
const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

async function withAuthority(
  fn: (auth: KvTokenAuthority, clock: { now: number }) => Promise<void>,
  options: KvTokenAuthorityOptions = {},
): Promise<void> {
  using kv = await Deno.openKv(":memory:");
  const clock = { now: T0 };
  const auth = await KvTokenAuthority.open(kv, {
    vault: "test",
    clock: () => clock.now,
    initialSecret: SECRET,
    ...options,
  });
  await fn(auth, clock);
}

/** Signs arbitrary header and claims with the test secret, bypassing every check. */
const forge = (header: Record<string, unknown>, claims: unknown, secret = SECRET) =>
  sign(header, claims, secret);

Deno.test("issue and verify", async (t) => {
  await withAuthority(async (auth, clock) => {
    const token = await auth.issue({ sub: "agent/planner", permissions: ["tool:*:invoke"] });

    await t.step("round trip with header and claims", async () => {
      const [h] = token.split(".");
      const header = JSON.parse(Buffer.from(h, "base64url").toString());
      assert.deepEqual(Object.keys(header).sort(), ["alg", "kid", "typ"]);
      assert.equal(header.alg, "HS256");
      assert.equal(header.typ, "toka.cap+jwt");
      const claims = await auth.verify(token);
      assert.equal(claims.sub, "agent/planner");
      assert.equal(claims.vault, "test");
      assert.deepEqual(claims.permissions, ["tool:*:invoke"]);
      assert.equal(claims.iat, T0 / 1000);
      assert.equal(claims.exp, T0 / 1000 + 3600);
      assert.match(claims.jti, /^[0-9a-f]{32}$/);
    });

    await t.step("jose verifies a Toka token", async () => {
      const { payload, protectedHeader } = await jwtVerify(token, SECRET, {
        algorithms: ["HS256"],
        currentDate: new Date(clock.now),
        typ: "toka.cap+jwt",
      });
      assert.equal(payload.sub, "agent/planner");
      assert.equal(protectedHeader.kid, kidOf(token));
    });

    await t.step("authorize grants and denies", async () => {
      const claims = await auth.authorize(token, "tool:echo:invoke");
      assert.equal(claims.sub, "agent/planner");
      await assert.rejects(auth.authorize(token, "events:read:*"), (e: unknown) => {
        assert.ok(e instanceof CapabilityDeniedError);
        assert.equal(e.message, `Permission "events:read:*" is not granted to "agent/planner"`);
        return true;
      });
      await assert.rejects(auth.authorize(undefined, "tool:echo:invoke"), CapabilityDeniedError);
      await assert.rejects(auth.authorize(token, "bad"), TypeError);
      await assert.rejects(auth.authorize("garbage", "tool:echo:invoke"), isInvalid("malformed"));
    });

    await t.step("returned claims cannot alter later verifications", async () => {
      const claims = await auth.verify(token);
      assert.throws(() => claims.permissions.push("*"));
      assert.deepEqual((await auth.verify(token)).permissions, ["tool:*:invoke"]);
    });

    await t.step("exp boundary, with and without the verification cache", async () => {
      const fresh = await auth.issue({ sub: "a", permissions: ["*"], ttlSecs: 10 });
      clock.now = T0 + 9_999;
      await auth.verify(fresh); // cached from here on
      clock.now = T0 + 10_000;
      await assert.rejects(auth.verify(fresh), (e: unknown) => {
        assert.ok(e instanceof TokenExpiredError);
        assert.equal(e.code, "token_expired");
        return true;
      });
      clock.now = T0;
    });
  });
});

Deno.test("leeway and nbf", async (t) => {
  await withAuthority(async (auth, clock) => {
    await t.step("leeway extends exp and advances nbf", async () => {
      const token = await auth.issue({ sub: "a", permissions: ["*"], ttlSecs: 10 });
      clock.now = T0 + 14_999;
      await auth.verify(token);
      clock.now = T0 + 15_000;
      await assert.rejects(auth.verify(token), TokenExpiredError);
      clock.now = T0;
      const later = await auth.issue({ sub: "a", permissions: ["*"], nbf: T0 / 1000 + 20 });
      clock.now = T0 + 14_999;
      await assert.rejects(auth.verify(later), isInvalid("not_yet_valid"));
      clock.now = T0 + 15_000;
      await auth.verify(later);
    });
  }, { leewaySecs: 5 });

  await withAuthority(async (auth, clock) => {
    await t.step("nbf without leeway", async () => {
      const later = await auth.issue({ sub: "a", permissions: ["*"], nbf: T0 / 1000 + 20 });
      await assert.rejects(auth.verify(later), isInvalid("not_yet_valid"));
      clock.now = T0 + 20_000;
      assert.equal((await auth.verify(later)).nbf, T0 / 1000 + 20);
    });
  });
});

Deno.test("issue rejects bad claims with one-line errors", async (t) => {
  await withAuthority(async (auth) => {
    const cases: [string, Record<string, unknown>, ErrorConstructor, string][] = [
      [
        "blank sub",
        { sub: "  ", permissions: [] },
        TypeError,
        `Claim "sub" must be a non-blank string`,
      ],
      [
        "long sub",
        { sub: "x".repeat(257), permissions: [] },
        RangeError,
        `Claim "sub" must be at most 256 characters, got 257`,
      ],
      [
        "non-string sub",
        { sub: 42, permissions: [] },
        TypeError,
        `Claim "sub" must be a non-blank string`,
      ],
      [
        "too many permissions",
        { sub: "a", permissions: Array(101).fill("a:b") },
        RangeError,
        "At most 100 permissions are allowed, got 101",
      ],
      [
        "bad permission",
        { sub: "a", permissions: ["nope"] },
        TypeError,
        `Invalid permission "nope": expected "resource:action[:target]" of at most 64 characters`,
      ],
      [
        "long permission",
        { sub: "a", permissions: ["a:" + "b".repeat(63)] },
        TypeError,
        `Invalid permission "a:${
          "b".repeat(63)
        }": expected "resource:action[:target]" of at most 64 characters`,
      ],
      [
        "permissions not array",
        { sub: "a", permissions: "*" },
        TypeError,
        "permissions must be an array",
      ],
      [
        "ttl over 24 h",
        { sub: "a", permissions: [], ttlSecs: 86_401 },
        RangeError,
        "ttlSecs must be an integer from 1 to 86400",
      ],
      [
        "zero ttl",
        { sub: "a", permissions: [], ttlSecs: 0 },
        RangeError,
        "ttlSecs must be an integer from 1 to 86400",
      ],
      [
        "fractional ttl",
        { sub: "a", permissions: [], ttlSecs: 1.5 },
        RangeError,
        "ttlSecs must be an integer from 1 to 86400",
      ],
      [
        "bad nbf",
        { sub: "a", permissions: [], nbf: "soon" },
        TypeError,
        `Claim "nbf" must be a non-negative integer of seconds`,
      ],
    ];
    for (const [name, request, type, message] of cases) {
      await t.step(name, async () => {
        // deno-lint-ignore no-explicit-any
        await assert.rejects(auth.issue(request as any), { name: type.name, message });
      });
    }
    await t.step("24 h and 100 permissions of 64 characters are allowed", async () => {
      const permissions = Array.from({ length: 100 }, (_, i) => `t:${String(i).padStart(62, "x")}`);
      const token = await auth.issue({ sub: "x".repeat(256), permissions, ttlSecs: 86_400 });
      assert.equal((await auth.verify(token)).permissions.length, 100);
    });
  });
});

Deno.test("verify rejects every malformed or forged token", async (t) => {
  await withAuthority(async (auth, clock) => {
    const good = await auth.issue({ sub: "a", permissions: ["*"] });
    const kid = kidOf(good);
    const header = { alg: "HS256", typ: "toka.cap+jwt", kid };
    const claims = {
      sub: "a",
      vault: "test",
      permissions: ["*"],
      iat: T0 / 1000,
      exp: T0 / 1000 + 60,
      jti: "j1",
    };
    const [h, p, s] = good.split(".");

    await t.step(
      "a forged token with valid claims verifies (sanity for the cases below)",
      async () => {
        assert.equal((await auth.verify(forge(header, claims))).jti, "j1");
      },
    );

    const cases: [string, unknown, string][] = [
      ["empty", "", "malformed"],
      ["not a string", 42, "malformed"],
      ["two segments", `${h}.${p}`, "malformed"],
      ["four segments", `${good}.x`, "malformed"],
      ["bad base64url", `${h}.${p}!.${s}`, "malformed"],
      ["header not base64url", `@@.${p}.${s}`, "malformed"],
      ["header not JSON", `${b64("x").slice(0, 2)}.${p}.${s}`, "malformed"],
      ["header an array", `${b64([1])}.${p}.${s}`, "malformed"],
      ["huge input", `${h}.${"A".repeat(20_000)}.${s}`, "malformed"],
      ["alg none", `${b64({ alg: "none", typ: "toka.cap+jwt", kid })}.${p}.`, "alg_not_allowed"],
      ["alg HS512", forge({ ...header, alg: "HS512" }, claims), "alg_not_allowed"],
      ["alg missing", forge({ typ: "toka.cap+jwt", kid }, claims), "alg_not_allowed"],
      ["other typ", forge({ ...header, typ: "JWT" }, claims), "malformed"],
      ["crit header", forge({ ...header, crit: ["exp"] }, claims), "malformed"],
      ["missing kid", forge({ alg: "HS256", typ: "toka.cap+jwt" }, claims), "malformed"],
      ["unknown kid", forge({ ...header, kid: "nope" }, claims), "unknown_kid"],
      ["bad signature", forge(header, claims, new Uint8Array(32)), "bad_signature"],
      ["truncated signature", `${h}.${p}.${s.slice(0, 20)}`, "bad_signature"],
      [
        "non-canonical signature (same bytes, other spelling)",
        `${h}.${p}.${s.slice(0, -1)}${B64[B64.indexOf(s.at(-1)!) + 1]}`,
        "bad_signature",
      ],
      ["swapped payload", `${h}.${b64({ ...claims, permissions: ["*"] })}.${s}`, "bad_signature"],
      ["payload an array", forge(header, [claims]), "bad_claims"],
      ["permissions a string", forge(header, { ...claims, permissions: "*" }), "bad_claims"],
      ["bad permission", forge(header, { ...claims, permissions: ["x"] }), "bad_claims"],
      ["exp a string", forge(header, { ...claims, exp: "later" }), "bad_claims"],
      ["missing jti", forge(header, { ...claims, jti: undefined }), "bad_claims"],
      ["blank sub", forge(header, { ...claims, sub: " " }), "bad_claims"],
      ["exp before iat", forge(header, { ...claims, exp: claims.iat }), "bad_claims"],
      [
        "lifetime over 24 h",
        forge(header, { ...claims, exp: claims.iat + 86_401 }),
        "lifetime_too_long",
      ],
      ["another vault", forge(header, { ...claims, vault: "other" }), "wrong_vault"],
      ["ancestors a string", forge(header, { ...claims, ancestors: "j0" }), "bad_claims"],
      ["ancestors empty", forge(header, { ...claims, ancestors: [] }), "bad_claims"],
      ["ancestor blank", forge(header, { ...claims, ancestors: [" "] }), "bad_claims"],
      [
        "more than 8 ancestors",
        forge(header, { ...claims, ancestors: Array.from({ length: 9 }, (_, i) => `a${i}`) }),
        "bad_claims",
      ],
    ];
    for (const [name, token, reason] of cases) {
      await t.step(name, async () => {
        await assert.rejects(auth.verify(token as string), (e: unknown) => {
          isInvalid(reason)(e);
          const message = (e as Error).message;
          assert.ok(
            !message.includes(s) && !message.includes(p),
            "message must not echo the token",
          );
          assert.ok(!message.includes("\n"));
          return true;
        });
      });
    }

    await t.step("a payload that is not JSON under a valid signature", async () => {
      const input = `${b64(header)}.${Buffer.from("{nope").toString("base64url")}`;
      const sig = createHmac("sha256", SECRET).update(input).digest("base64url");
      await assert.rejects(auth.verify(`${input}.${sig}`), isInvalid("malformed"));
    });

    await t.step("revoked jti", async () => {
      const claims = await auth.verify(good);
      await auth.revoke(claims.jti, claims.exp);
      await assert.rejects(auth.verify(good), (e: unknown) => {
        assert.ok(e instanceof TokenRevokedError);
        assert.equal(e.code, "token_revoked");
        return true;
      });
      clock.now = T0 + 10_000_000; // expired: expiry is reported, no longer the revocation
      await assert.rejects(auth.verify(good), TokenExpiredError);
    });
  });
});

Deno.test("attenuate narrows and never widens", async (t) => {
  await withAuthority(async (auth, clock) => {
    const parent = await auth.issue({
      sub: "p",
      permissions: ["tool:*:invoke", "events:read:*"],
      ttlSecs: 600,
    });

    await t.step("child with covered permissions and the parent's exp", async () => {
      clock.now = T0 + 100_000;
      const child = await auth.attenuate(parent, { permissions: ["tool:echo:invoke"] });
      const claims = await auth.verify(child);
      assert.deepEqual(claims.permissions, ["tool:echo:invoke"]);
      assert.equal(claims.exp, T0 / 1000 + 600);
      assert.equal(claims.iat, T0 / 1000 + 100);
      assert.equal(claims.sub, "p");
      await assert.rejects(auth.authorize(child, "events:read:x"), CapabilityDeniedError);
      const shorter = await auth.attenuate(parent, { permissions: ["events:read:*"], ttlSecs: 60 });
      assert.equal((await auth.verify(shorter)).exp, T0 / 1000 + 160);
      const grandchild = await auth.attenuate(child, { permissions: [] });
      assert.deepEqual((await auth.verify(grandchild)).permissions, []);
      clock.now = T0;
    });

    await t.step("revoking a token revokes the tokens attenuated from it", async () => {
      const root = await auth.issue({ sub: "r", permissions: ["tool:*:invoke", "events:read:*"] });
      const child = await auth.attenuate(root, { permissions: ["tool:*:invoke"] });
      const sibling = await auth.attenuate(root, { permissions: ["events:read:*"] });
      const grandchild = await auth.attenuate(child, { permissions: ["tool:echo:invoke"] });
      const [p, c, s, g] = await Promise.all(
        [root, child, sibling, grandchild].map((t) => auth.verify(t)),
      );
      assert.equal(p.ancestors, undefined);
      assert.deepEqual(c.ancestors, [p.jti]);
      assert.deepEqual(g.ancestors, [p.jti, c.jti]);
      await auth.revoke(c.jti, c.exp);
      await assert.rejects(auth.verify(grandchild), {
        name: "TokenRevokedError",
        message: `Token "${g.jti}" is revoked: its ancestor "${c.jti}" has been revoked`,
      });
      await assert.rejects(auth.authorize(grandchild, "tool:echo:invoke"), TokenRevokedError);
      assert.equal((await auth.verify(sibling)).jti, s.jti, "a sibling is not revoked");
      assert.equal((await auth.verify(root)).jti, p.jti, "nor the parent");
      await auth.revoke(p.jti, p.exp);
      await assert.rejects(auth.verify(sibling), TokenRevokedError);
    });

    await t.step("a token may be attenuated 8 times, one from another", async () => {
      const root = await auth.issue({ sub: "p", permissions: ["tool:*:invoke"], ttlSecs: 600 });
      let token = root;
      for (let i = 0; i < 8; i++) token = await auth.attenuate(token, { permissions: [] });
      assert.equal((await auth.verify(token)).ancestors?.length, 8);
      await assert.rejects(auth.attenuate(token, { permissions: [] }), {
        name: "RangeError",
        message: "Cannot attenuate a token attenuated 8 times already",
      });
    });

    await t.step("widening permissions is refused", async () => {
      await assert.rejects(auth.attenuate(parent, { permissions: ["tool:echo:delete"] }), {
        name: "CapabilityDeniedError",
        message: `Permission "tool:echo:delete" is not granted to "p"`,
      });
      await assert.rejects(auth.attenuate(parent, { permissions: ["*"] }), CapabilityDeniedError);
      await assert.rejects(
        auth.attenuate(parent, { permissions: ["tool:*:*"] }),
        CapabilityDeniedError,
      );
      await assert.rejects(auth.attenuate(parent, { permissions: ["bad"] }), TypeError);
    });

    await t.step("outliving the parent is refused", async () => {
      await assert.rejects(auth.attenuate(parent, { permissions: [], ttlSecs: 601 }), {
        name: "RangeError",
        message: "ttlSecs 601 would outlive the parent token, which expires in 600 seconds",
      });
    });

    await t.step("an invalid parent yields no child", async () => {
      await assert.rejects(auth.attenuate("x.y.z", { permissions: [] }), InvalidTokenError);
      clock.now = T0 + 600_000;
      await assert.rejects(auth.attenuate(parent, { permissions: [] }), TokenExpiredError);
      clock.now = T0;
    });
  });
});

Deno.test("open rejects bad options", async (t) => {
  using kv = await Deno.openKv(":memory:");
  const cases: [string, KvTokenAuthorityOptions, string, string][] = [
    [
      "short initial secret",
      { initialSecret: new Uint8Array(31) },
      "RangeError",
      `Option "initialSecret" must be base64url text or bytes of at least 32 bytes`,
    ],
    [
      "initial secret not base64url",
      { initialSecret: "not base64url!".repeat(4) },
      "RangeError",
      `Option "initialSecret" must be base64url text or bytes of at least 32 bytes`,
    ],
    ["blank vault", { vault: "" }, "TypeError", `Option "vault" must be a non-blank string`],
    [
      "negative leeway",
      { leewaySecs: -1 },
      "RangeError",
      `Option "leewaySecs" must be a number from 0 to 300`,
    ],
    [
      "default ttl too long",
      { defaultTtlSecs: 90_000 },
      "RangeError",
      "ttlSecs must be an integer from 1 to 86400",
    ],
    [
      "bad master key",
      { masterKey: "short" },
      "TypeError",
      "Invalid master key: expected base64url of 32 bytes (43 characters), as TOKA_MASTER_KEY holds",
    ],
  ];
  for (const [name, options, type, message] of cases) {
    await t.step(name, async () => {
      await assert.rejects(KvTokenAuthority.open(kv, options), { name: type, message });
    });
  }
  await t.step("nothing was stored by the failed opens", async () => {
    assert.equal((await Array.fromAsync(kv.list({ prefix: [] }))).length, 0);
  });
  await t.step("a base64url initial secret is used as is", async () => {
    const text = Buffer.from(SECRET).toString("base64url");
    const auth = await KvTokenAuthority.open(kv, { initialSecret: text });
    const token = await auth.issue({ sub: "a", permissions: [] });
    await jwtVerify(token, SECRET, { algorithms: ["HS256"] });
  });
});

Deno.test("jose-signed HS256 tokens in Toka's format verify, other algorithms do not", async () => {
  await withAuthority(async (auth) => {
    const kid = kidOf(await auth.issue({ sub: "a", permissions: [] }));
    const claims = { vault: "test", permissions: ["*"] };
    const build = (alg: string) =>
      new SignJWT(claims).setProtectedHeader({ alg, typ: "toka.cap+jwt", kid }).setSubject("a")
        .setJti("j").setIssuedAt(T0 / 1000).setExpirationTime(T0 / 1000 + 60);
    assert.equal((await auth.verify(await build("HS256").sign(SECRET))).sub, "a");
    await assert.rejects(
      auth.verify(await build("HS384").sign(new Uint8Array(48))),
      isInvalid("alg_not_allowed"),
    );
  });
});
