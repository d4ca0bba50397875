/**
 * `toka auth ...`: rotate the secret pool, issue, attenuate, verify and revoke
 * capability tokens, and show the pool's state, in the Deno KV vault named by
 * `--db`. Secrets are unwrapped with `TOKA_MASTER_KEY` when the pool is
 * wrapped; no command ever prints secret material.
 *
 * @module
 */
import { type Command, InvalidArgumentError } from "commander";
import {
  InvalidTokenError,
  isValidPermission,
  KvTokenAuthority,
  MASTER_KEY_ENV,
  MAX_ID_LENGTH,
  MAX_LIFETIME_SECS,
  MAX_PERMISSIONS,
  parseMasterKey,
  type PoolStatus,
  SecretPoolError,
  TokenExpiredError,
  TokenRevokedError,
} from "../auth/mod.ts";
import type { TokenClaims } from "../runtime/token_authority.ts";
import type { EventStore } from "../runtime/log/event_store.ts";
import { TokaError } from "../runtime/errors.ts";
import { type CommandContext, type RunCommand, withStore, writes } from "./_context.ts";
import { UsageError } from "./_usage_error.ts";
import { formatStatus, iso, statusJson, table } from "./_auth_format.ts";
import { vaultKv } from "../vault/kv_store.ts";

// The auth module's own limits: the CLI checks them before it opens a vault, so that a
// bad value is a usage error (exit 2) and creates nothing.
// A revocation is kept until the token's expiry, which the authority accepts up to here.
const MAX_REVOKE_SECS = 2 * MAX_LIFETIME_SECS;

/** Options of {@linkcode issueToken}. */
export interface IssueTokenOptions {
  /** The subject, e.g. `"agent/planner"`. */
  sub: string;
  /** The permissions to grant, `resource:action[:target]`. */
  perm: string[];
  /** Lifetime in seconds, 1 to 86400; the authority's default (3600) when omitted. */
  ttl?: number;
}

/** Options of {@linkcode attenuateToken}. */
export interface AttenuateTokenOptions {
  /** The child's permissions; each must be covered by the parent's. */
  perm: string[];
  /** Lifetime in seconds; it ends with the parent's when omitted and may not pass it. */
  ttl?: number;
}

/** Options of {@linkcode revokeToken}. */
export interface RevokeTokenOptions {
  /**
   * The token's `exp`, seconds since the epoch; when omitted, the expiry recorded when the
   * token was issued, or 24 hours from now with `force`.
   */
  exp?: number;
  /** Revoke an id this vault has no record of issuing (a token issued before ids were recorded). */
  force?: boolean;
}

/**
 * Opens the store and the token authority on its Deno KV, with the master key
 * from `TOKA_MASTER_KEY` in `ctx.io`, runs `task` and closes the store. The
 * authority creates the secret pool when the vault has none.
 *
 * @param ctx The command context.
 * @param task The work to do with the authority.
 * @returns What `task` returns.
 * @throws {Error} When the store is not backed by Deno KV.
 * @throws {TypeError} When `TOKA_MASTER_KEY` is malformed.
 * @throws {SecretPoolError} When the pool is wrapped and the key is wrong or missing.
 */
export async function withAuthority<T>(
  ctx: CommandContext,
  task: (auth: KvTokenAuthority) => Promise<T>,
): Promise<T> {
  checkMasterKey(ctx);
  return await withStore(ctx, async (store) => task(await openAuthority(ctx, store)));
}

/**
 * Like {@linkcode withAuthority} for commands that only read: a vault without
 * a secret pool runs `task` with `undefined`, and nothing is written.
 *
 * @param ctx The command context.
 * @param task The work to do with the authority, if the vault has a pool, and the open store.
 * @returns What `task` returns.
 * @throws {Error} When the store is not backed by Deno KV.
 * @throws {TypeError} When `TOKA_MASTER_KEY` is malformed.
 * @throws {SecretPoolError} When the pool is wrapped and the key is wrong or missing.
 */
export function withExistingAuthority<T>(
  ctx: CommandContext,
  task: (auth: KvTokenAuthority | undefined, store: EventStore) => Promise<T>,
): Promise<T> {
  return withStore(ctx, async (store) => {
    const exists = await KvTokenAuthority.hasPool(kvOf(store));
    return await task(exists ? await openAuthority(ctx, store) : undefined, store);
  });
}

// A malformed key is refused before the vault is opened (and so created, for a writer).
function checkMasterKey(ctx: CommandContext): void {
  const masterKey = ctx.io.env(ctx.settings.masterKeyEnv) || undefined;
  if (masterKey !== undefined) parseMasterKey(masterKey);
}

async function openAuthority(
  ctx: CommandContext,
  store: EventStore,
  options: { wrapRawSecrets?: boolean } = {},
): Promise<KvTokenAuthority> {
  const masterKey = ctx.io.env(ctx.settings.masterKeyEnv) || undefined;
  try {
    return await KvTokenAuthority.open(kvOf(store), {
      masterKey,
      clock: ctx.clock,
      retiredTtlSecs: ctx.settings.retiredTtlSecs,
      ...options,
    });
  } catch (error) {
    if (!(error instanceof SecretPoolError) || error.code !== "secret_pool_unwrapped") throw error;
    throw new SecretPoolError(
      error.code,
      `${error.message}; run "toka auth wrap-secrets" once to wrap the raw secrets`,
    );
  }
}

/**
 * Wraps the raw secrets of the pool with `TOKA_MASTER_KEY`, once, on purpose:
 * with a master key set, raw secrets are otherwise refused. The wrapped key ids
 * are logged.
 *
 * @param ctx The command context.
 * @returns The exit code.
 * @throws {UsageError} When `TOKA_MASTER_KEY` is not set.
 */
export function wrapSecrets(ctx: CommandContext): Promise<number> {
  if (!ctx.io.env(ctx.settings.masterKeyEnv)) {
    throw new UsageError(
      `Set ${ctx.settings.masterKeyEnv} to the key that should wrap the secret pool`,
    );
  }
  return withStore(ctx, async (store) => {
    const auth = await openAuthority(ctx, store, { wrapRawSecrets: true });
    const { wrapped } = await auth.status();
    ctx.io.stdout(
      ctx.json
        ? `${JSON.stringify({ wrapped })}\n`
        : `✅ Secret pool wrapped with ${ctx.settings.masterKeyEnv}\n`,
    );
    return 0;
  });
}

function noPool(ctx: CommandContext): TokaError {
  return new TokaError(
    "no_secret_pool",
    `No secret pool in vault "${ctx.dbLocation}" yet, so no token is valid here: ` +
      `"toka auth issue" or "toka auth rotate-secret" creates one`,
  );
}

/**
 * Makes a new active secret and retires the current one, then prints
 * `✅ Secret rotated successfully` and the new key id.
 *
 * @param ctx The command context.
 * @returns The exit code.
 */
export function rotateSecret(ctx: CommandContext): Promise<number> {
  return withAuthority(ctx, async (auth) => {
    const { kid } = await auth.rotate();
    ctx.io.stdout(
      ctx.json
        ? `${JSON.stringify({ rotated: true, kid })}\n`
        : `✅ Secret rotated successfully\nkid: ${kid}\n`,
    );
    return 0;
  });
}

/**
 * Issues a token and prints it alone on a line, so `$(toka auth issue ...)`
 * captures it; with `--json`, the token and its claims.
 *
 * @param ctx The command context.
 * @param options Subject, permissions and lifetime.
 * @returns The exit code.
 * @throws {UsageError} When the authority refuses the request's values.
 */
export async function issueToken(
  ctx: CommandContext,
  options: IssueTokenOptions,
): Promise<number> {
  const permissions = options.perm ?? [];
  if (permissions.length === 0) throw new UsageError("Missing --perm: grant at least one");
  if (permissions.length > MAX_PERMISSIONS) {
    throw new UsageError(`Too many --perm: at most ${MAX_PERMISSIONS}, got ${permissions.length}`);
  }
  return await withAuthority(ctx, async (auth) => {
    let token: string;
    try {
      token = await auth.issue({ sub: options.sub, permissions, ttlSecs: options.ttl });
    } catch (error) {
      throw asUsageError(error);
    }
    if (!ctx.json) {
      ctx.io.stdout(`${token}\n`);
      return 0;
    }
    const claims = await auth.verify(token);
    ctx.io.stdout(`${JSON.stringify({ token, ...claims })}\n`);
    return 0;
  });
}

/**
 * Derives a narrower token from one the caller holds (`-` reads it from
 * standard input) and prints it alone on a line; with `--json`, the token and
 * its claims. Revoking the parent later revokes the child too.
 *
 * @param ctx The command context.
 * @param token The parent token, or `-`.
 * @param options The child's permissions and lifetime.
 * @returns The exit code.
 * @throws {UsageError} When there are too many permissions.
 * @throws {CapabilityDeniedError} When the parent does not grant a permission.
 * @throws {RangeError} When the lifetime would outlive the parent.
 */
export async function attenuateToken(
  ctx: CommandContext,
  token: string,
  options: AttenuateTokenOptions,
): Promise<number> {
  const permissions = options.perm ?? [];
  if (permissions.length > MAX_PERMISSIONS) {
    throw new UsageError(`Too many --perm: at most ${MAX_PERMISSIONS}, got ${permissions.length}`);
  }
  if (token === "-") token = await readStdinToken(ctx);
  return await withExistingAuthority(ctx, async (auth) => {
    if (auth === undefined) throw noPool(ctx);
    // The values were checked as arguments: what the authority refuses now (a
    // permission or lifetime the parent does not grant) is a denial, exit 1.
    const child = await auth.attenuate(token, { permissions, ttlSecs: options.ttl });
    ctx.io.stdout(
      ctx.json
        ? `${JSON.stringify({ token: child, ...await auth.verify(child) })}\n`
        : `${child}\n`,
    );
    return 0;
  });
}

/**
 * Verifies a token (`-` reads it from standard input) and prints its claims.
 * When it is not valid, the reason goes to stderr (or into the JSON) and the
 * exit code is 1; the token itself is never echoed.
 *
 * @param ctx The command context.
 * @param token The compact JWS, or `-`.
 * @returns 0 when the token is valid, 1 when it is not.
 */
export async function verifyToken(ctx: CommandContext, token: string): Promise<number> {
  if (token === "-") token = await readStdinToken(ctx);
  return withExistingAuthority(ctx, async (auth) => {
    if (auth === undefined) throw noPool(ctx);
    let claims: TokenClaims;
    try {
      claims = await auth.verify(token);
    } catch (error) {
      const refusal = refusalOf(error);
      if (refusal === undefined || !ctx.json) throw error;
      ctx.io.stdout(`${JSON.stringify({ valid: false, ...refusal })}\n`);
      return 1;
    }
    if (ctx.json) {
      ctx.io.stdout(`${JSON.stringify({ valid: true, claims })}\n`);
      return 0;
    }
    const now = Date.now();
    const rows: [string, string][] = [
      ["valid", "yes"],
      ["sub", claims.sub],
      ["vault", claims.vault],
      ["permissions", claims.permissions.join(" ")],
      ["issued", iso(claims.iat * 1000)],
      ["expires", `${iso(claims.exp * 1000)} (in ${Math.ceil(claims.exp - now / 1000)} s)`],
    ];
    if (claims.nbf !== undefined) rows.push(["not before", iso(claims.nbf * 1000)]);
    rows.push(["jti", claims.jti]);
    if (claims.ancestors !== undefined) rows.push(["ancestors", claims.ancestors.join(" ")]);
    ctx.io.stdout(table(rows));
    return 0;
  });
}

/**
 * Prints the secret pool: key ids, states, times, and how many token ids are
 * revoked. Never any secret material. It only reads: a vault without a pool
 * says so (`{"pool":null}` with `--json`) and stays as it was. A wrapped pool
 * is described without its master key too (then marked locked), as none of
 * this is secret.
 *
 * @param ctx The command context.
 * @returns The exit code.
 */
export function authStatus(ctx: CommandContext): Promise<number> {
  return withStore(ctx, async (store) => {
    const kv = kvOf(store);
    if (!await KvTokenAuthority.hasPool(kv)) {
      ctx.io.stdout(
        ctx.json
          ? `${JSON.stringify({ pool: null })}\n`
          : `No secret pool in this vault yet: "toka auth issue" or "toka auth rotate-secret" creates one\n`,
      );
      return 0;
    }
    let status: PoolStatus | null;
    let locked = false;
    try {
      status = await (await openAuthority(ctx, store)).status();
    } catch (error) {
      if (!(error instanceof SecretPoolError) || error.code !== "secret_pool_locked") throw error;
      status = await KvTokenAuthority.readStatus(kv, {
        retiredTtlSecs: ctx.settings.retiredTtlSecs,
      });
      locked = true;
    }
    if (status === null) throw noPool(ctx);
    ctx.io.stdout(
      ctx.json
        ? `${JSON.stringify({ ...statusJson(status), ...(locked ? { locked } : {}) })}\n`
        : formatStatus(status, ctx.settings.masterKeyEnv, locked),
    );
    return 0;
  });
}

/**
 * Revokes a token id until the token's expiry; every process sees it within
 * a second. An id this vault has no record of issuing (a typo, or a token that
 * has expired) is refused unless `options.force`, so that a mistyped id never
 * reads as revoked while the real token stays valid.
 *
 * @param ctx The command context.
 * @param jti The token id (`jti` claim).
 * @param options The token's expiry, when known, and `force`.
 * @returns The exit code.
 * @throws {TokaError} With code `"unknown_token"` when the vault never issued the id, or
 *   `"no_secret_pool"` when the vault has no pool.
 * @throws {UsageError} When the id or the expiry is refused.
 */
export function revokeToken(
  ctx: CommandContext,
  jti: string,
  options: RevokeTokenOptions,
): Promise<number> {
  checkMasterKey(ctx);
  return withExistingAuthority(ctx, async (auth) => {
    if (auth === undefined) throw noPool(ctx);
    const issuedExp = await auth.issuedExpiry(jti);
    if (issuedExp === undefined && options.force !== true) {
      throw new TokaError(
        "unknown_token",
        `No token ${JSON.stringify(jti)} was issued by this vault, or it has expired: ` +
          `nothing revoked (--force revokes the id anyway)`,
      );
    }
    // Never shorter than the token's own life: a revocation that lapsed first would revive it.
    const exp = issuedExp === undefined
      ? options.exp ?? Math.ceil(Date.now() / 1000) + MAX_LIFETIME_SECS
      : Math.max(options.exp ?? 0, issuedExp);
    try {
      await auth.revoke(jti, exp);
    } catch (error) {
      throw asUsageError(error);
    }
    ctx.io.stdout(
      ctx.json
        ? `${JSON.stringify({ revoked: true, jti, exp })}\n`
        : `Revoked token ${JSON.stringify(jti)} until ${iso(exp * 1000)}\n`,
    );
    return 0;
  });
}

/**
 * Adds `auth` and its subcommands to the program.
 *
 * @param program The root command.
 * @param run Runs a task with the context of the global options.
 * @returns The `auth` command.
 */
export function registerAuthCommands(program: Command, run: RunCommand): Command {
  const auth = program.command("auth").description(
    `manage capability tokens and the secret pool (${MASTER_KEY_ENV} unwraps it)`,
  );

  writes(auth.command("rotate-secret"))
    .description("make a new signing secret; the old one is retired")
    .action((_options: unknown, command: Command) => run(command, rotateSecret));

  writes(auth.command("issue"))
    .description("issue a token and print it alone on stdout (creates the pool if needed)")
    .requiredOption("--sub <subject>", "who holds the token, e.g. agent/planner", parseIdArg)
    .requiredOption(
      "--perm <permission>",
      "a granted permission, resource:action[:target]; * or fs.* wildcards; repeatable",
      (value: string, previous: string[] = []) => [...previous, parsePermissionArg(value)],
    )
    .option("--ttl <seconds>", `lifetime, 1 to ${MAX_LIFETIME_SECS} (default: 3600)`, parseTtlArg)
    .action((options: IssueTokenOptions, command: Command) =>
      run(command, (ctx) => issueToken(ctx, options))
    );

  auth.command("attenuate").description(
    "derive a narrower token from a valid one and print it alone on stdout",
  )
    .argument("<token>", "the parent token, or - to read it from stdin")
    .option(
      "--perm <permission>",
      "a permission the parent grants; repeatable (none: a token that can do nothing)",
      (value: string, previous: string[] = []) => [...previous, parsePermissionArg(value)],
    )
    .option("--ttl <seconds>", "lifetime (default: until the parent expires)", parseTtlArg)
    .action((token: string, options: AttenuateTokenOptions, command: Command) =>
      run(command, (ctx) => attenuateToken(ctx, token, options))
    );

  auth.command("verify").description("check a token and print its claims; exit 1 when invalid")
    .argument("<token>", "the token, or - to read it from stdin")
    .action((token: string, _options: unknown, command: Command) =>
      run(command, (ctx) => verifyToken(ctx, token))
    );

  auth.command("status").description("list the pool's key ids, states and times, and revocations")
    .action((_options: unknown, command: Command) => run(command, authStatus));

  writes(auth.command("wrap-secrets"))
    .description(
      `wrap a raw secret pool with ${MASTER_KEY_ENV}, once (raw secrets are refused under a key)`,
    )
    .action((_options: unknown, command: Command) => run(command, wrapSecrets));

  writes(auth.command("revoke"), { create: false })
    .description("revoke a token this vault issued, by its id (jti), until it expires")
    .argument("<jti>", "the token id, 32 hex digits", parseJtiArg)
    .option(
      "--exp <epoch-seconds>",
      "the token's expiry, in the next 48 h (default: as recorded at issue, or 24 h from now)",
      parseExpiryArg,
    )
    .option("--force", "revoke an id this vault has no record of (issued before ids were recorded)")
    .action((jti: string, options: RevokeTokenOptions, command: Command) =>
      run(command, (ctx) => revokeToken(ctx, jti, options))
    );

  return auth;
}

function kvOf(store: EventStore): Deno.Kv {
  const kv = vaultKv(store);
  if (kv !== undefined) return kv;
  throw new Error("The auth commands need a Deno KV vault, and this store is not one");
}

// Values the user typed that the authority refuses are usage errors.
function asUsageError(error: unknown): unknown {
  return error instanceof TypeError || error instanceof RangeError
    ? new UsageError(error.message)
    : error;
}

function refusalOf(error: unknown): { code: string; reason: string; message: string } | undefined {
  if (error instanceof TokenExpiredError) {
    return { code: error.code, reason: "expired", message: error.message };
  }
  if (error instanceof TokenRevokedError) {
    return { code: error.code, reason: "revoked", message: error.message };
  }
  if (error instanceof InvalidTokenError) {
    return { code: error.code, reason: error.reason, message: error.message };
  }
  return undefined;
}

async function readStdinToken(ctx: CommandContext): Promise<string> {
  const stdin = ctx.io.stdin;
  if (stdin === undefined) throw new Error("No standard input to read the token from");
  const text = (await new Response(stdin).text()).trim();
  if (text === "") throw new UsageError("Missing token: standard input was empty");
  return text;
}

// Every token id this vault issues is 16 random bytes in hex.
function parseJtiArg(value: string): string {
  if (!/^[0-9a-f]{32}$/.test(value)) {
    throw new InvalidArgumentError(
      'Expected 32 lowercase hex digits, the jti that "toka auth verify" shows',
    );
  }
  return value;
}

function parseIdArg(value: string): string {
  if (value.trim() === "") throw new InvalidArgumentError("Expected a non-blank subject");
  if (value.length > MAX_ID_LENGTH) {
    throw new InvalidArgumentError(`Expected at most ${MAX_ID_LENGTH} characters`);
  }
  return value;
}

function parsePermissionArg(value: string): string {
  if (!isValidPermission(value)) {
    throw new InvalidArgumentError(
      'Expected "resource:action[:target]" of at most 64 characters; a segment may be * or end in .*',
    );
  }
  return value;
}

function parseTtlArg(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || n > MAX_LIFETIME_SECS) {
    throw new InvalidArgumentError(
      `Expected a whole number of seconds from 1 to ${MAX_LIFETIME_SECS}`,
    );
  }
  return n;
}

function parseExpiryArg(value: string): number {
  const n = Number(value);
  if (!/^\d{1,15}$/.test(value) || !Number.isSafeInteger(n)) {
    throw new InvalidArgumentError("Expected a whole number of seconds since the epoch");
  }
  const now = Date.now() / 1000;
  if (n <= now) {
    throw new InvalidArgumentError(
      "Expected a time in the future: a token past its expiry is refused anyway",
    );
  }
  if (n > now + MAX_REVOKE_SECS) {
    throw new InvalidArgumentError(
      `Expected a time at most ${MAX_REVOKE_SECS / 3600} hours from now`,
    );
  }
  return n;
}
