/**
 * `toka init [dir]`: makes a folder a Toka project: `toka.json` (with its
 * `$schema`), a small `agents.ts` that exports one working agent, a
 * `deno.json` that resolves `@toka/runtime` for it, the vault with its first
 * secret, and the storage folder. It never overwrites a `toka.json` without
 * `--force`, nor ever an `agents.ts`, `deno.json` or `.gitignore`.
 *
 * @module
 */
import { type Command, InvalidArgumentError } from "commander";
import { dirname, isAbsolute, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import denoJson from "../deno.json" with { type: "json" };
import { KvTokenAuthority, parseMasterKey } from "../auth/mod.ts";
import { openVault } from "../vault/mod.ts";
import { TokaError } from "../runtime/errors.ts";
import { type CommandContext, type RunCommand, shellQuote, withoutConfig } from "./_context.ts";
import { CONFIG_FILE, SCHEMA_URL } from "./_config.ts";
import { configDigest, recordTrust } from "./_trust.ts";
import { UsageError } from "./_usage_error.ts";

/** Options of {@linkcode initProject}. */
export interface InitOptions {
  /** Overwrite an existing `toka.json`. */
  force?: boolean;
  /** The vault to name in `toka.json` (`--db`); `.toka/toka.kv` in the folder by default. */
  db?: string;
}

/** What {@linkcode initProject} made, also printed with `--json`. */
export interface InitResult {
  /** The project folder, absolute. */
  dir: string;
  /** Files and folders created, absolute. */
  created: string[];
  /** Files that already existed and were left as they were. */
  kept: string[];
  /** The vault's location. */
  db: string;
  /** The key id of the vault's active secret. */
  kid: string;
  /** The two commands to run next. */
  next: string[];
}

const AGENTS_TS =
  `// The agents that \`toka run\` hosts: every agent (and tool) this module exports.
import { defineAgent } from "@toka/runtime";

/** Greets each user who joins, through the echo tool its token allows. */
export const greeter = defineAgent({
  name: "greeter",
  subscribe: ["user.joined"],
  permissions: ["tool:echo:invoke"],
  async handle(event, ctx) {
    const reply = await ctx.tools.call("echo", { text: \`Hello \${event.payload}\` });
    await ctx.emit({ kind: "user.greeted", payload: reply });
  },
});
`;

/**
 * Creates the project in `dir`. Everything is checked before anything is made:
 * an existing `toka.json` without `force` changes nothing.
 *
 * @param ctx The command context (output and environment).
 * @param dir The project folder, relative to the working directory.
 * @param options `force` and `db`.
 * @returns 0 once made.
 * @throws {TokaError} (`config_exists`) When `toka.json` exists and `force` is not set.
 * @throws {TypeError} When the master-key variable holds a malformed key.
 */
export async function initProject(
  ctx: CommandContext,
  dir: string,
  options: InitOptions = {},
): Promise<number> {
  const root = resolve(dir);
  const config = join(root, CONFIG_FILE);
  if (!options.force && await exists(config)) {
    throw new TokaError(
      "config_exists",
      `"${config}" already exists: nothing was changed (--force overwrites it)`,
    );
  }
  const masterKey = ctx.io.env(ctx.settings.masterKeyEnv) || undefined;
  if (masterKey !== undefined) parseMasterKey(masterKey);
  if (options.db !== undefined && /^http:\/\//i.test(options.db)) {
    // toka.json may not send DENO_KV_ACCESS_TOKEN in clear (see loadSettings).
    throw new UsageError(
      `Invalid --db "${options.db}" for toka.json: a remote vault must be an https:// URL`,
    );
  }
  // A path given on the command line is relative to the working directory; in toka.json,
  // to the file.
  const db = options.db === undefined
    ? ".toka/toka.kv"
    : options.db === ":memory:" || /^[a-z][a-z0-9+.-]*:\/\//i.test(options.db) ||
        isAbsolute(options.db)
    ? options.db
    : relative(root, resolve(options.db)) || options.db;
  const dbLocation = db === ":memory:" || /^[a-z][a-z0-9+.-]*:\/\//i.test(db) || isAbsolute(db)
    ? db
    : join(root, db);

  const created: string[] = [];
  const kept: string[] = [];
  const write = async (name: string, text: string, overwrite = false) => {
    const path = join(root, name);
    if (!overwrite && await exists(path)) {
      kept.push(path);
      return;
    }
    await Deno.mkdir(dirname(path), { recursive: true });
    await Deno.writeTextFile(path, text);
    created.push(path);
  };
  const settings = {
    $schema: SCHEMA_URL,
    db,
    storageRoot: ".toka/storage",
    agents: ["./agents.ts"],
  };
  const configText = `${JSON.stringify(settings, null, 2)}\n`;
  await write(CONFIG_FILE, configText, true);
  const trustNote = await trustWritten(ctx, config, configText);
  await write("agents.ts", AGENTS_TS);
  await write("deno.json", `${JSON.stringify(projectDenoJson(), null, 2)}\n`);
  await write(".gitignore", "# The vault holds the secret pool: never commit it.\n.toka/\n");
  const storage = join(root, settings.storageRoot);
  if (!await exists(storage)) {
    // Inside the vault's folder, which holds the secret pool: its owner's only.
    await Deno.mkdir(storage, { recursive: true, mode: 0o700 });
    created.push(storage);
  }
  const vault = await openVault(dbLocation);
  let kid: string;
  try {
    const auth = await KvTokenAuthority.open(vault.kv!, {
      masterKey,
      retiredTtlSecs: ctx.settings.retiredTtlSecs,
    });
    kid = (await auth.status()).activeKid;
  } finally {
    await vault.close();
  }

  const program = ctx.io.program ?? ["toka"];
  const here = root === resolve(".");
  // A program on PATH runs from the project's folder, as a user would go on; a path to a
  // checkout's cli.ts would not resolve from there, so it names the config instead.
  const onPath = program.length === 1 && !program[0].includes("/");
  const cd = here || !onPath ? "" : `cd ${shellQuote(relative(".", root))} && `;
  const command = (...words: string[]) =>
    cd + [...program, ...(here || onPath ? [] : ["--config", relative(".", config)]), ...words]
      .map(shellQuote).join(" ");
  const next = [command("run"), command("emit", "user.joined", "--payload", '"Ada"')];
  const result: InitResult = { dir: root, created, kept, db: dbLocation, kid, next };
  if (ctx.json) {
    ctx.io.stdout(`${JSON.stringify(result)}\n`);
    return 0;
  }
  const lines = [
    ...created.map((path) => `Created ${path}`),
    ...kept.map((path) => `Kept ${path} (it already existed)`),
    `Vault ${dbLocation} holds its first secret (kid ${kid})`,
    "Next, host the agent, then give it work from another terminal:",
    `  ${next[0]}`,
    `  ${next[1]}`,
  ];
  ctx.io.stdout(`${lines.join("\n")}\n`);
  if (trustNote !== undefined) ctx.io.stderr(`note: ${trustNote}\n`);
  if (ctx.io.env("TOKA_DB")) {
    ctx.io.stderr(`note: TOKA_DB is set: it overrides toka.json's "db" until you unset it\n`);
  }
  return 0;
}

// What init writes is what the user asked for: trusted, so `toka tool` offers agents.ts's
// tools at once. A failure to record it leaves the project usable: a note, not an error.
async function trustWritten(
  ctx: CommandContext,
  config: string,
  text: string,
): Promise<string | undefined> {
  try {
    const digest = configDigest(new TextEncoder().encode(text));
    await recordTrust((name) => ctx.io.env(name), await Deno.realPath(config), digest);
    return undefined;
  } catch (error) {
    return `"${config}" is not recorded as trusted (${
      (error as Error).message.split("\n")[0]
    }): "toka tool" and "toka mcp serve" skip its agents until "toka trust"`;
  }
}

// How the project's agents.ts finds `@toka/runtime`: the JSR package, and when this Toka
// runs from a local checkout, that checkout (Deno's "links"), so it also works offline.
function projectDenoJson(): Record<string, unknown> {
  const json: Record<string, unknown> = {
    imports: { "@toka/runtime": `jsr:@toka/runtime@^${denoJson.version}` },
    unstable: ["kv"],
  };
  const here = new URL("../", import.meta.url);
  if (here.protocol === "file:" && !Deno.build.standalone) json.links = [fileURLToPath(here)];
  return json;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/**
 * Registers `toka init` on the program.
 *
 * @param program The `toka` command.
 * @param run Runs the command's task with its context.
 */
export function registerInitCommand(program: Command, run: RunCommand): void {
  const command = program.command("init")
    .description("create a project: toka.json, agents.ts, the vault and its first secret")
    .argument("[dir]", "the project folder (default: the working directory)", checkDir)
    .option("--force", "overwrite an existing toka.json")
    .addHelpText(
      "after",
      `
--db names the vault to write into toka.json (default: .toka/toka.kv in the folder).
An existing agents.ts, deno.json or .gitignore is never overwritten.`,
    );
  withoutConfig(command);
  command.action((dir: string | undefined, options: { force?: boolean }, self: Command) =>
    run(self, (ctx) => {
      const { db } = self.optsWithGlobals<{ db?: string }>();
      return initProject(ctx, dir ?? ".", { force: options.force, db });
    })
  );
}

function checkDir(value: string): string {
  if (value.trim() === "") throw new InvalidArgumentError("Expected a folder");
  return value;
}
