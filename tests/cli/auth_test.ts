// `toka auth ...` in-process: every main() call opens and closes its own store on a temp KV
// file, so each step also crosses authority instances as separate processes would.
import assert from "node:assert/strict";
import { main } from "../../cli.ts";
import { generateMasterKey, KvTokenAuthority } from "../../auth/mod.ts";
import { MemoryEventStore } from "../../vault/mod.ts";
import { hasNoStackTrace, opener, type RecordingIo, recordingIo } from "./_fakes.ts";

const TOKEN_RE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
const ISO_RE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const SECRET_LIKE = /[A-Za-z0-9_-]{43}/;

interface Run {
  code: number;
  io: RecordingIo;
  out: string;
}

function tokaAt(db: string, env: Record<string, string> = {}) {
  return async (...args: string[]): Promise<Run> => {
    const io = recordingIo({ env });
    const code = await main(["--db", db, ...args], io);
    assert.ok(hasNoStackTrace(io));
    return { code, io, out: io.out.join("") };
  };
}

async function withStdin(db: string, stdin: string, ...args: string[]): Promise<Run> {
  const io = recordingIo({ stdin });
  const code = await main(["--db", db, ...args], io);
  return { code, io, out: io.out.join("") };
}

/** The raw secret bytes of the pool, base64url, read straight from KV. */
async function rawSecrets(db: string): Promise<{ secrets: string[]; wrapped: boolean }> {
  using kv = await Deno.openKv(db);
  const pool = (await kv.get<Record<string, unknown>>(["auth", "pool"])).value;
  assert.ok(pool !== null, "the pool exists");
  const all = [pool.active, ...(pool.retired as unknown[])] as Record<string, Uint8Array>[];
  const b64 = (bytes: Uint8Array) => bytes.toBase64({ alphabet: "base64url", omitPadding: true });
  return {
    secrets: all.flatMap((s) => [s.secret, s.wrapped].filter((b) => b !== undefined).map(b64)),
    wrapped: all.every((s) => s.secret === undefined && s.wrapped !== undefined),
  };
}

/** Every key and value under `prefix`, for "nothing was stored" checks. */
async function kvState(db: string, prefix: Deno.KvKey): Promise<string[]> {
  using kv = await Deno.openKv(db);
  const rows: string[] = [];
  for await (const e of kv.list({ prefix })) rows.push(JSON.stringify([e.key, e.value]));
  return rows;
}

Deno.test("toka auth", async (t) => {
  const dir = await Deno.makeTempDir();
  const db = `${dir}/t.kv`;
  const toka = tokaAt(db);
  try {
    let firstKid = "";

    await t.step("status after the first issue shows one active secret", async () => {
      // Status only reads; issuing creates the vault and its pool.
      assert.equal((await toka("auth", "status")).code, 1);
      assert.equal((await toka("auth", "issue", "--sub", "a", "--perm", "a:b")).code, 0);
      const { code, out, io } = await toka("--json", "auth", "status");
      assert.equal(code, 0);
      assert.deepEqual(io.err, []);
      const status = JSON.parse(out);
      assert.equal(status.vault, "default");
      assert.equal(status.wrapped, false);
      assert.equal(status.revoked, 0);
      assert.equal(status.secrets.length, 1);
      assert.equal(status.secrets[0].state, "active");
      assert.equal(status.secrets[0].kid, status.activeKid);
      assert.match(status.secrets[0].createdAt, ISO_RE);
      firstKid = status.activeKid;
    });

    let secondKid = "";

    await t.step("rotate-secret prints the message and the new kid", async () => {
      const { code, out, io } = await toka("auth", "rotate-secret");
      assert.equal(code, 0);
      assert.deepEqual(io.err, []);
      const match = /^✅ Secret rotated successfully\nkid: ([A-Za-z0-9_-]+)\n$/.exec(out);
      assert.ok(match, out);
      secondKid = match[1];
      assert.notEqual(secondKid, firstKid);
    });

    await t.step("status then shows the new kid active and the old one retired", async () => {
      const { code, out } = await toka("--json", "auth", "status");
      assert.equal(code, 0);
      const status = JSON.parse(out);
      assert.equal(status.activeKid, secondKid);
      assert.deepEqual(
        status.secrets.map((s: { kid: string; state: string }) => [s.kid, s.state]),
        [[secondKid, "active"], [firstKid, "retired"]],
      );
      const retired = status.secrets[1];
      assert.match(retired.retiredAt, ISO_RE);
      assert.equal(Date.parse(retired.validUntil) - Date.parse(retired.retiredAt), 300_000);
    });

    await t.step("rotate-secret --json", async () => {
      const { code, out } = await toka("--json", "auth", "rotate-secret");
      assert.equal(code, 0);
      const result = JSON.parse(out);
      assert.deepEqual(Object.keys(result), ["rotated", "kid"]);
      assert.equal(result.rotated, true);
      assert.notEqual(result.kid, secondKid);
      const status = JSON.parse((await toka("--json", "auth", "status")).out);
      assert.equal(status.activeKid, result.kid);
    });

    await t.step("status never shows secret material, as text or JSON", async () => {
      const { secrets, wrapped } = await rawSecrets(db);
      assert.equal(wrapped, false);
      assert.equal(secrets.length, 3);
      for (const args of [["auth", "status"], ["--json", "auth", "status"]]) {
        const { code, out } = await toka(...args);
        assert.equal(code, 0);
        for (const secret of secrets) assert.ok(!out.includes(secret), args.join(" "));
        assert.doesNotMatch(out, SECRET_LIKE);
      }
      const { activeKid } = JSON.parse((await toka("--json", "auth", "status")).out);
      const text = (await toka("auth", "status")).out;
      assert.match(text, new RegExp(`^active +${activeKid}$`, "m"));
      assert.match(text, new RegExp(`^${activeKid} +active +\\S+Z +- +-$`, "m"));
      assert.match(text, new RegExp(`^${secondKid} +retired +\\S+Z +\\S+Z +\\S+Z$`, "m"));
      assert.match(text, /^wrapped +no$/m);
      assert.match(text, /^revoked +0$/m);
      assert.match(text, new RegExp(`^${firstKid} +retired +\\S+Z +\\S+Z +\\S+Z$`, "m"));
    });

    let token = "";

    await t.step("issue prints the token alone; verify prints its claims", async () => {
      const issued = await toka(
        "auth",
        "issue",
        "--sub",
        "agent/planner",
        "--perm",
        "tool:*:invoke",
        "--perm",
        "events:read:*",
        "--ttl",
        "600",
      );
      assert.equal(issued.code, 0);
      assert.deepEqual(issued.io.err, []);
      assert.equal(issued.io.outLines().length, 1);
      token = issued.io.outLines()[0];
      assert.match(token, TOKEN_RE);

      const verified = await toka("auth", "verify", token);
      assert.equal(verified.code, 0);
      assert.deepEqual(verified.io.err, []);
      assert.match(verified.out, /^valid +yes$/m);
      assert.match(verified.out, /^sub +agent\/planner$/m);
      assert.match(verified.out, /^permissions +tool:\*:invoke events:read:\*$/m);
      assert.match(verified.out, /^expires +\S+Z \(in (599|600) s\)$/m);
      assert.ok(!verified.out.includes(token), "the token is not echoed");

      const json = await toka("--json", "auth", "verify", token);
      assert.equal(json.code, 0);
      const { valid, claims } = JSON.parse(json.out);
      assert.equal(valid, true);
      assert.equal(claims.sub, "agent/planner");
      assert.deepEqual(claims.permissions, ["tool:*:invoke", "events:read:*"]);
      assert.equal(claims.exp - claims.iat, 600);
    });

    await t.step("verify - reads the token from stdin", async () => {
      const { code, out } = await withStdin(db, `${token}\n`, "--json", "auth", "verify", "-");
      assert.equal(code, 0);
      assert.equal(JSON.parse(out).valid, true);
      const empty = await withStdin(db, "\n", "auth", "verify", "-");
      assert.equal(empty.code, 2);
      assert.deepEqual(empty.io.errLines(), ["error: Missing token: standard input was empty"]);
    });

    await t.step(
      "issue --json gives the token and its claims; the default ttl is 1 h",
      async () => {
        const { code, out } = await toka("--json", "auth", "issue", "--sub", "cli", "--perm", "*");
        assert.equal(code, 0);
        const issued = JSON.parse(out);
        assert.match(issued.token, TOKEN_RE);
        assert.equal(issued.sub, "cli");
        assert.equal(issued.vault, "default");
        assert.deepEqual(issued.permissions, ["*"]);
        assert.equal(issued.exp - issued.iat, 3600);
        assert.equal(typeof issued.jti, "string");
        const verified = JSON.parse((await toka("--json", "auth", "verify", issued.token)).out);
        assert.deepEqual({ token: issued.token, ...verified.claims }, issued);
      },
    );

    await t.step("bad issue input exits 2 with one line naming the problem", async () => {
      const cases: [string[], RegExp][] = [
        [["--perm", "a:b"], /^error: required option '--sub <subject>' not specified$/],
        [["--sub", "a"], /^error: required option '--perm <permission>' not specified$/],
        [["--sub", " ", "--perm", "a:b"], /'--sub <subject>' argument ' ' is invalid/],
        [["--sub", "x".repeat(257), "--perm", "a:b"], /'--sub <subject>' .* at most 256/],
        [["--sub", "a", "--perm", "bad perm"], /'--perm <permission>' argument 'bad perm'/],
        [["--sub", "a", "--perm", "nocolon"], /'--perm <permission>' argument 'nocolon'/],
        [["--sub", "a", "--perm", "a:b", "--ttl", "0"], /'--ttl <seconds>' argument '0'/],
        [["--sub", "a", "--perm", "a:b", "--ttl", "-5"], /'--ttl <seconds>' argument '-5'/],
        [["--sub", "a", "--perm", "a:b", "--ttl", "1.5"], /'--ttl <seconds>' argument '1\.5'/],
        [["--sub", "a", "--perm", "a:b", "--ttl", "abc"], /'--ttl <seconds>' argument 'abc'/],
        [["--sub", "a", "--perm", "a:b", "--ttl", "86401"], /argument '86401' .* 1 to 86400$/],
        [
          ["--sub", "a", ...Array.from({ length: 101 }, (_, i) => ["--perm", `t:${i}`]).flat()],
          /^error: Too many --perm: at most 100, got 101$/,
        ],
      ];
      for (const [args, message] of cases) {
        const { code, io } = await toka("auth", "issue", ...args);
        assert.equal(code, 2, args.join(" "));
        assert.deepEqual(io.out, []);
        assert.equal(io.errLines().length, 1, io.err.join(""));
        assert.match(io.errLines()[0], message);
      }
      const longest = await toka("auth", "issue", "--sub", "a", "--perm", "a:b", "--ttl", "86400");
      assert.equal(longest.code, 0);
    });

    await t.step("verify refuses bad tokens with exit 1 and never echoes them", async () => {
      const [h, p, s] = token.split(".");
      const flipped = `${s[0] === "A" ? "B" : "A"}${s.slice(1)}`;
      const cases: [string, RegExp, string][] = [
        ["garbage", /^error: Invalid token: it is not a well-formed compact JWS/, "malformed"],
        [`${h}.${p}.${flipped}`, /^error: Invalid token: its signature/, "bad_signature"],
        ["", /^error: Invalid token: it is not a well-formed/, "malformed"],
      ];
      for (const [bad, message, reason] of cases) {
        const text = await toka("auth", "verify", bad);
        assert.equal(text.code, 1);
        assert.deepEqual(text.io.out, []);
        assert.equal(text.io.errLines().length, 1);
        assert.match(text.io.errLines()[0], message);
        if (bad !== "") assert.ok(!text.io.err.join("").includes(bad));
        const json = await toka("--json", "auth", "verify", bad);
        assert.equal(json.code, 1);
        const result = JSON.parse(json.out);
        assert.deepEqual([result.valid, result.code, result.reason], [
          false,
          "invalid_token",
          reason,
        ]);
        assert.equal(result.claims, undefined);
        if (bad !== "") assert.ok(!json.out.includes(bad));
      }
    });

    await t.step("verify of an expired token exits 1 with Token expired", async () => {
      let expired: string;
      {
        using kv = await Deno.openKv(db);
        const past = await KvTokenAuthority.open(kv, { clock: () => Date.now() - 7_200_000 });
        expired = await past.issue({ sub: "old", permissions: ["a:b"], ttlSecs: 60 });
      }
      const text = await toka("auth", "verify", expired);
      assert.equal(text.code, 1);
      assert.equal(text.io.errLines().length, 1);
      assert.match(text.io.errLines()[0], /^error: Token expired at \S+Z$/);
      const json = await toka("--json", "auth", "verify", expired);
      assert.equal(json.code, 1);
      const result = JSON.parse(json.out);
      assert.deepEqual([result.valid, result.code, result.reason], [
        false,
        "token_expired",
        "expired",
      ]);
      assert.match(result.message, /^Token expired at /);
    });

    await t.step("a token of another vault file is refused", async () => {
      const other = tokaAt(`${dir}/other.kv`);
      const foreign = (await other("auth", "issue", "--sub", "a", "--perm", "a:b")).out.trim();
      const { code, io } = await toka("auth", "verify", foreign);
      assert.equal(code, 1);
      assert.match(
        io.errLines()[0],
        /^error: Invalid token: its key id is not in the secret pool$/,
      );
    });

    await t.step("revoke makes a later verify fail with the revoked reason", async () => {
      const issued = JSON.parse(
        (await toka("--json", "auth", "issue", "--sub", "r", "--perm", "a:b")).out,
      );
      const revoked = await toka("auth", "revoke", issued.jti, "--exp", String(issued.exp));
      assert.equal(revoked.code, 0);
      assert.equal(
        revoked.out,
        `Revoked token "${issued.jti}" until ${new Date(issued.exp * 1000).toISOString()}\n`,
      );
      const text = await toka("auth", "verify", issued.token);
      assert.equal(text.code, 1);
      assert.deepEqual(text.io.errLines(), [`error: Token "${issued.jti}" has been revoked`]);
      const json = JSON.parse((await toka("--json", "auth", "verify", issued.token)).out);
      assert.deepEqual([json.valid, json.code, json.reason], [false, "token_revoked", "revoked"]);
      // The earlier token is unaffected.
      assert.equal((await toka("auth", "verify", token)).code, 0);
      const status = JSON.parse((await toka("--json", "auth", "status")).out);
      assert.equal(status.revoked, 1);
    });

    await t.step("attenuate prints a narrower child; revoking the parent revokes it", async () => {
      const parent = JSON.parse(
        (await toka("--json", "auth", "issue", "--sub", "p", "--perm", "tool:*:invoke")).out,
      );
      const made = await toka("auth", "attenuate", parent.token, "--perm", "tool:echo:invoke");
      assert.equal(made.code, 0);
      assert.deepEqual(made.io.err, []);
      const child = made.out.trim();
      assert.match(child, TOKEN_RE);
      const shown = await toka("auth", "verify", child);
      assert.match(shown.out, /^permissions +tool:echo:invoke$/m);
      assert.match(shown.out, new RegExp(`^ancestors +${parent.jti}$`, "m"));

      const json = await withStdin(
        db,
        `${parent.token}\n`,
        "--json",
        "auth",
        "attenuate",
        "-",
        "--ttl",
        "60",
      );
      assert.equal(json.code, 0);
      const nothing = JSON.parse(json.out);
      assert.deepEqual(nothing.permissions, [], "no --perm: a token that can do nothing");
      assert.equal(nothing.exp - nothing.iat, 60);
      assert.deepEqual(nothing.ancestors, [parent.jti]);

      await toka("auth", "revoke", parent.jti, "--exp", String(parent.exp));
      const refused = await toka("auth", "verify", child);
      assert.equal(refused.code, 1);
      const childJti = shown.out.match(/^jti +(\S+)$/m)![1];
      // Issue 8: the revoked ancestor is named as such, by its id, never the token.
      assert.deepEqual(refused.io.errLines(), [
        `error: Token "${childJti}" is revoked: its ancestor "${parent.jti}" has been revoked`,
      ]);
    });

    await t.step("a tool family (fs.*) is granted and narrows to a member only", async () => {
      // Issue 19 item 8: --perm "tool:fs.*:invoke" was refused while the README speaks of it.
      const family = await toka("auth", "issue", "--sub", "f", "--perm", "tool:fs.*:invoke");
      assert.equal(family.code, 0, family.io.err.join(""));
      const member = await toka(
        "auth",
        "attenuate",
        family.out.trim(),
        "--perm",
        "tool:fs.read:invoke",
      );
      assert.equal(member.code, 0, member.io.err.join(""));
      const shown = await toka("auth", "verify", member.out.trim());
      assert.match(shown.out, /^permissions +tool:fs\.read:invoke$/m);
      const widened = await toka(
        "auth",
        "attenuate",
        member.out.trim(),
        "--perm",
        "tool:fs.*:invoke",
      );
      assert.equal(widened.code, 1);
      assert.deepEqual(widened.io.errLines(), [
        `error: Permission "tool:fs.*:invoke" is not granted to "f"`,
      ]);
      const partial = await toka("auth", "issue", "--sub", "f", "--perm", "tool:fs*:invoke");
      assert.equal(partial.code, 2);
    });

    await t.step("bad attenuate input: one line, exit 2 (usage) or 1 (refused)", async () => {
      const parent =
        (await toka("auth", "issue", "--sub", "p", "--perm", "tool:echo:*", "--ttl", "600"))
          .out.trim();
      const cases: [string[], number, RegExp][] = [
        [[], 2, /^error: missing required argument 'token'$/],
        [[parent, "--perm", "nocolon"], 2, /'--perm <permission>' argument 'nocolon'/],
        [[parent, "--ttl", "0"], 2, /'--ttl <seconds>' argument '0'/],
        [[parent, "--ttl", "601"], 1, /^error: ttlSecs 601 would outlive the parent token/],
        [
          [parent, "--perm", "tool:hash:invoke"],
          1,
          /^error: Permission "tool:hash:invoke" is not granted to "p"$/,
        ],
        [["garbage"], 1, /^error: Invalid token: it is not a well-formed compact JWS/],
      ];
      for (const [args, exit, message] of cases) {
        const { code, io } = await toka("auth", "attenuate", ...args);
        assert.equal(code, exit, args.join(" "));
        assert.deepEqual(io.out, []);
        assert.equal(io.errLines().length, 1, io.err.join(""));
        assert.match(io.errLines()[0], message);
        assert.ok(!io.err.join("").includes(parent), "the token is not echoed");
      }
    });

    await t.step("revoke refuses an id this vault never issued unless --force", async () => {
      // Issue 17 item 7: a typo printed "Revoked" while the real token stayed valid.
      const issued = JSON.parse(
        (await toka("--json", "auth", "issue", "--sub", "t", "--perm", "a:b", "--ttl", "600"))
          .out,
      );
      const typo = issued.jti.slice(0, -1) + (issued.jti.endsWith("0") ? "1" : "0");
      const before = await kvState(db, ["auth", "revoked"]);
      const refused = await toka("auth", "revoke", typo);
      assert.equal(refused.code, 1);
      assert.deepEqual(refused.io.out, []);
      assert.deepEqual(refused.io.errLines(), [
        `error: No token "${typo}" was issued by this vault, or it has expired: ` +
        `nothing revoked (--force revokes the id anyway)`,
      ]);
      const json = await toka("--json", "auth", "revoke", typo);
      assert.equal(json.code, 1);
      assert.equal(JSON.parse(json.io.err.join("")).error.code, "unknown_token");
      assert.deepEqual(await kvState(db, ["auth", "revoked"]), before, "nothing stored");
      assert.equal((await toka("auth", "verify", issued.token)).code, 0);

      // The real id is revoked until the token's own expiry, recorded when it was issued.
      const real = await toka("auth", "revoke", issued.jti);
      assert.equal(real.code, 0);
      assert.equal(
        real.out,
        `Revoked token "${issued.jti}" until ${new Date(issued.exp * 1000).toISOString()}\n`,
      );
      assert.equal((await toka("auth", "verify", issued.token)).code, 1);

      // --force: for tokens issued before ids were recorded.
      const forced = await toka("auth", "revoke", typo, "--force");
      assert.equal(forced.code, 0);
      assert.match(forced.out, new RegExp(`^Revoked token "${typo}" until `));
    });

    await t.step("a malformed id is a usage error, with or without --force", async () => {
      const before = await kvState(db, ["auth"]);
      for (
        const jti of ["some-jti", "0".repeat(31), "0".repeat(33), "A".repeat(32), "g".repeat(32)]
      ) {
        for (const extra of [[], ["--force"]]) {
          const { code, io } = await toka("auth", "revoke", jti, ...extra);
          assert.equal(code, 2, jti);
          assert.deepEqual(io.out, []);
          assert.equal(io.errLines().length, 1);
          assert.match(io.errLines()[0], /argument 'jti'\. Expected 32 lowercase hex digits/);
        }
      }
      assert.deepEqual(await kvState(db, ["auth"]), before);
    });

    await t.step("revoke --force --json, and without --exp it lasts 24 h", async () => {
      const before = Math.ceil(Date.now() / 1000);
      const jti = "ab".repeat(16);
      const { code, out } = await toka("--json", "auth", "revoke", jti, "--force");
      assert.equal(code, 0);
      const result = JSON.parse(out);
      assert.equal(result.revoked, true);
      assert.equal(result.jti, jti);
      assert.ok(result.exp >= before + 86_400 && result.exp <= before + 86_401);
      assert.equal(JSON.parse((await toka("--json", "auth", "status")).out).revoked, 5);
    });

    await t.step("bad revoke input exits 2 with one line", async () => {
      const far = String(Math.ceil(Date.now() / 1000) + 3 * 86_400);
      const cases: [string[], RegExp][] = [
        [[], /^error: missing required argument 'jti'$/],
        [[" "], /argument 'jti'\. Expected 32 lowercase hex digits/],
        [["x".repeat(257)], /argument 'jti'\. Expected 32 lowercase hex digits/],
        [["j", "--exp", "soon"], /'--exp <epoch-seconds>' argument 'soon' is invalid/],
        [["j", "--exp", "-1"], /'--exp <epoch-seconds>' argument '-1' is invalid/],
        [["j", "--exp", far], /argument '\d+' is invalid\. Expected a time at most 48 hours/],
      ];
      for (const [args, message] of cases) {
        const { code, io } = await toka("auth", "revoke", ...args);
        assert.equal(code, 2, args.join(" "));
        assert.deepEqual(io.out, []);
        assert.equal(io.errLines().length, 1, io.err.join(""));
        assert.match(io.errLines()[0], message);
      }
    });

    await t.step("a bare or unknown auth command is a usage error; --help lists all", async () => {
      const bare = await toka("auth");
      assert.equal(bare.code, 2);
      assert.match(bare.io.errLines()[0], /^error: Missing command: run "toka auth --help"/);
      const unknown = await toka("auth", "nope");
      assert.equal(unknown.code, 2);
      const help = await toka("auth", "--help");
      assert.equal(help.code, 0);
      for (const name of ["rotate-secret", "issue", "verify", "status", "revoke"]) {
        assert.match(help.out, new RegExp(`^  ${name}\\b`, "m"));
      }
      const top = await toka("--help");
      assert.match(top.out, /toka auth rotate-secret/);
    });

    await t.step("a store without Deno KV cannot hold the pool: exit 1", async () => {
      const store = new MemoryEventStore();
      const io = recordingIo();
      const code = await main(["auth", "status"], io, { openStore: opener(store) });
      assert.equal(code, 1);
      assert.deepEqual(io.errLines(), [
        "error: The auth commands need a Deno KV vault, and this store is not one",
      ]);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("toka auth with TOKA_MASTER_KEY", async (t) => {
  const dir = await Deno.makeTempDir();
  const db = `${dir}/wrapped.kv`;
  const key = generateMasterKey();
  const locked = "error: Cannot unwrap the secret pool: wrong or missing TOKA_MASTER_KEY";
  try {
    const toka = tokaAt(db, { TOKA_MASTER_KEY: key });

    await t.step("the pool is created wrapped and the commands work with the key", async () => {
      assert.equal((await toka("auth", "rotate-secret")).code, 0);
      const status = JSON.parse((await toka("--json", "auth", "status")).out);
      assert.equal(status.wrapped, true);
      assert.match((await toka("auth", "status")).out, /^wrapped +yes \(TOKA_MASTER_KEY\)$/m);
      const raw = await rawSecrets(db);
      assert.equal(raw.wrapped, true, "no raw secret is stored");
      const token = (await toka("auth", "issue", "--sub", "a", "--perm", "a:b")).out.trim();
      assert.equal((await toka("auth", "verify", token)).code, 0);
    });

    await t.step("a missing, wrong or empty key exits 1 with one line", async () => {
      const envs: Record<string, string>[] = [
        {},
        { TOKA_MASTER_KEY: generateMasterKey() },
        { TOKA_MASTER_KEY: "" },
      ];
      for (const env of envs) {
        for (
          const args of [["auth", "rotate-secret"], [
            "auth",
            "issue",
            "--sub",
            "a",
            "--perm",
            "a:b",
          ]]
        ) {
          const { code, io } = await tokaAt(db, env)(...args);
          assert.equal(code, 1);
          assert.deepEqual(io.out, []);
          assert.deepEqual(io.errLines(), [locked]);
        }
      }
    });

    await t.step(
      "status without the key still lists kids and states, which are not secret",
      async () => {
        // Issue 19 item 10: it said only "Cannot unwrap the secret pool".
        const expected = JSON.parse((await toka("--json", "auth", "status")).out);
        const before = await rawSecrets(db);
        const envs: Record<string, string>[] = [
          {},
          { TOKA_MASTER_KEY: generateMasterKey() },
          { TOKA_MASTER_KEY: "" },
        ];
        for (const env of envs) {
          const json = await tokaAt(db, env)("--json", "auth", "status");
          assert.equal(json.code, 0, json.io.err.join(""));
          assert.deepEqual(json.io.err, []);
          assert.deepEqual(JSON.parse(json.out), { ...expected, locked: true });
          const text = await tokaAt(db, env)("auth", "status");
          assert.equal(text.code, 0);
          assert.match(
            text.out,
            /^wrapped +yes \(locked: TOKA_MASTER_KEY is missing or wrong\)$/m,
          );
          assert.match(text.out, new RegExp(`^${expected.activeKid} +active +\\S+Z +- +-$`, "m"));
          for (const secret of before.secrets) assert.ok(!text.out.includes(secret));
        }
        assert.deepEqual(await rawSecrets(db), before, "nothing changed");
      },
    );

    await t.step("a malformed key exits 1 without showing it", async () => {
      const bad = "not-a-key-but-a-secret-value";
      const { code, io } = await tokaAt(db, { TOKA_MASTER_KEY: bad })("auth", "status");
      assert.equal(code, 1);
      assert.equal(io.errLines().length, 1);
      assert.match(io.errLines()[0], /^error: Invalid master key: expected base64url of 32 bytes/);
      assert.ok(!io.err.join("").includes(bad));
    });

    await t.step("a raw pool is refused under a key until wrap-secrets wraps it", async () => {
      const rawDb = `${dir}/raw.kv`;
      const plain = tokaAt(rawDb);
      const token = (await plain("auth", "issue", "--sub", "a", "--perm", "a:b")).out.trim();
      const keyed = tokaAt(rawDb, { TOKA_MASTER_KEY: key });
      const refused = await keyed("auth", "status");
      assert.equal(refused.code, 1);
      assert.match(
        refused.io.errLines()[0],
        /^error: The secret pool holds an unwrapped secret "[0-9a-f]+" while a master key is configured: refusing it; run "toka auth wrap-secrets" once to wrap the raw secrets$/,
      );
      assert.equal((await rawSecrets(rawDb)).wrapped, false, "nothing changed");
      const wrapped = await keyed("auth", "wrap-secrets");
      assert.equal(wrapped.code, 0);
      assert.equal(wrapped.out, "✅ Secret pool wrapped with TOKA_MASTER_KEY\n");
      assert.equal((await rawSecrets(rawDb)).wrapped, true);
      assert.equal(JSON.parse((await keyed("--json", "auth", "status")).out).wrapped, true);
      assert.equal((await keyed("auth", "verify", token)).code, 0);
      const again = await keyed("--json", "auth", "wrap-secrets");
      assert.deepEqual(JSON.parse(again.out), { wrapped: true });
      const without = await plain("auth", "wrap-secrets");
      assert.equal(without.code, 2);
      assert.deepEqual(without.io.errLines(), [
        "error: Set TOKA_MASTER_KEY to the key that should wrap the secret pool",
      ]);
    });

    await t.step("status output holds neither the key nor any stored bytes", async () => {
      const { secrets } = await rawSecrets(db);
      for (const args of [["auth", "status"], ["--json", "auth", "status"]]) {
        const { out } = await toka(...args);
        assert.ok(!out.includes(key));
        for (const s of secrets) assert.ok(!out.includes(s));
        assert.doesNotMatch(out, SECRET_LIKE);
      }
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
