/**
 * `toka trust [file]`: records a `toka.json` (the one named, else the first found
 * in the working directory or above) as trusted, by its real path and the sha256
 * of its bytes, outside the project (see `TOKA_TRUST_FILE`). Until then a found
 * file may not start plugins, have modules imported for `toka tool`,
 * `toka mcp serve` and the other inspecting commands, nor send
 * `DENO_KV_ACCESS_TOKEN` to its `db`. Editing the file untrusts it.
 *
 * @module
 */
import type { Command } from "commander";
import { resolve } from "node:path";
import { type CommandContext, type RunCommand, withoutConfig } from "./_context.ts";
import { findConfig, loadSettings, readConfigFile } from "./_config.ts";
import { recordTrust, TRUST_FILE_ENV } from "./_trust.ts";
import { TokaError } from "../runtime/errors.ts";
import type { PluginSpec } from "../toolkit/plugin_manifest.ts";

/** What {@linkcode trustConfig} recorded, also printed with `--json`. */
export interface TrustResult {
  /** The config file, absolute, as named or found. */
  path: string;
  /** The sha256 of the bytes trusted. */
  digest: string;
  /** Where the trust is recorded. */
  trustFile: string;
  /** What the file may now start, import or contact, one line each. */
  allows: string[];
}

/**
 * Checks a config file as every command would and records it as trusted.
 *
 * @param ctx The command context (working directory, environment, output).
 * @param file The file to trust; the first `toka.json` found upwards when absent.
 * @returns 0 once recorded.
 * @throws {UsageError} When the file cannot be read or holds a bad value.
 * @throws {TokaError} When no file is found, or the trust cannot be recorded.
 */
export async function trustConfig(ctx: CommandContext, file?: string): Promise<number> {
  const cwd = ctx.cwd ?? Deno.cwd();
  const path = file === undefined ? await findConfig(cwd) : resolve(cwd, file);
  if (path === undefined) {
    throw new TokaError(
      "no_config",
      `No toka.json in "${
        resolve(cwd)
      }" or above it: name the file ("toka trust path/to/toka.json")`,
    );
  }
  // Read once: what is checked below is what is digested and trusted.
  const config = await readConfigFile(path, true);
  const settings = await loadSettings({ flags: {}, env: () => undefined, file: config });
  const env = (name: string) => ctx.io.env(name);
  const trustFile = await recordTrust(env, config.realPath, config.digest);
  const allows = [
    ...(settings.plugins ?? []).map(describePlugin),
    ...(config.value.agents === undefined ? [] : settings.agents).map((module) =>
      `agents: imports ${module}`
    ),
    ...(/^https:\/\//i.test(settings.db)
      ? [`db: sends DENO_KV_ACCESS_TOKEN to ${settings.db}`]
      : []),
  ];
  const result: TrustResult = { path, digest: config.digest, trustFile, allows };
  if (ctx.json) {
    ctx.io.stdout(`${JSON.stringify(result)}\n`);
    return 0;
  }
  ctx.io.stdout(
    [`Trusted "${path}" (${config.digest}) in "${trustFile}"`, ...allows.map((l) => `  ${l}`)]
      .join("\n") + "\n",
  );
  return 0;
}

function describePlugin(spec: PluginSpec): string {
  const t = spec.transport;
  const what = t.type === "module"
    ? `imports ${t.module}`
    : t.type === "http" || (t.type === "mcp" && t.url !== undefined)
    ? `connects to ${t.url}`
    : `starts ${[t.command, ...(t.args ?? [])].join(" ")}`;
  return `plugin "${spec.name}" (${t.type}): ${what}`;
}

/**
 * Registers `toka trust` on the program.
 *
 * @param program The `toka` command.
 * @param run Runs the command's task with its context.
 */
export function registerTrustCommand(program: Command, run: RunCommand): void {
  const command = program.command("trust")
    .description(
      "trust a toka.json found in this folder or above: its plugins, modules and vault",
    )
    .argument("[file]", "the config file (default: the first toka.json here or above)")
    .addHelpText(
      "after",
      `
A toka.json that toka finds (rather than one named by --config or TOKA_CONFIG) is
untrusted until this records its real path and sha256: "toka tool", "mcp serve",
"events", "agent" and "auth" then start none of its plugins, import none of its
modules, and no command sends DENO_KV_ACCESS_TOKEN to a remote db it names.
"toka run" still runs the project, as "npm start" would. Editing the file
untrusts it. The record is $${TRUST_FILE_ENV}, else $XDG_CONFIG_HOME/toka/trusted.json,
else ~/.config/toka/trusted.json. "toka init" trusts the toka.json it writes.`,
    );
  // It reads the file itself: loading it as settings would refuse what it is about to trust.
  withoutConfig(command);
  command.action((file: string | undefined, _options: unknown, self: Command) =>
    run(self, (ctx) => trustConfig(ctx, file))
  );
}
