// toka.json and the one rule for every setting: flag, TOKA_* variable, file, default.
import assert from "node:assert/strict";
import { join } from "node:path";
import { checkConfig, loadSettings, SCHEMA_URL, SETTINGS } from "../../cli/_config.ts";
import { openVault } from "../../vault/mod.ts";
import { generateMasterKey, MASTER_KEY_ENV } from "../../auth/mod.ts";
import schema from "../../toka.schema.json" with { type: "json" };
import denoJson from "../../deno.json" with { type: "json" };
import { exists, runToka as toka } from "./_fakes.ts";
import { section } from "../docs/_readme.ts";

Deno.test("toka.json", async (t) => {
  const dir = await Deno.makeTempDir();
  const project = join(dir, "project");
  await Deno.mkdir(project);
  const write = (value: unknown, name = "toka.json") =>
    Deno.writeTextFile(join(project, name), JSON.stringify(value));
  try {
    await t.step("defaults without a file", async () => {
      const settings = await loadSettings({ flags: {}, env: () => undefined, cwd: project });
      assert.deepEqual(settings, {
        db: "./.toka/toka.kv",
        storageRoot: "./.toka/storage",
        agents: [],
        retiredTtlSecs: 300,
        masterKeyEnv: MASTER_KEY_ENV,
        agentLeaseSecs: 10,
        stopTimeoutMs: 10_000,
        maxCausalDepth: 100,
      });
    });

    await t.step("the file's paths are relative to the file; every field is read", async () => {
      await write({
        $schema: SCHEMA_URL,
        db: "data/v.kv",
        storageRoot: "files",
        agents: ["./agents.ts", "https://example.com/a.ts"],
        plugins: { weather: { transport: { type: "stdio", command: "weather" } } },
        tools: {
          http: { allow: ["api.example.com"], allowPrivate: ["127.0.0.1"] },
          // Its baseUrl and apiKeyEnv need a trusted file: tests/cli/model_test.ts.
          model: { model: "llama3.2", recordPrompt: true },
        },
        auth: { retiredTtlSecs: 60, masterKeyEnv: "MY_KEY" },
        runtime: { agentLeaseSecs: 2, stopTimeoutMs: 500, maxCausalDepth: 250 },
        logLevel: "debug",
      });
      // Found in the working directory, and named from elsewhere with --config.
      for (
        const [sources, trusted] of [
          [{ flags: {}, cwd: project }, false],
          [{ flags: { config: "project/toka.json" }, cwd: dir }, true],
        ] as const
      ) {
        const { plugins, configTrusted, ...settings } = await loadSettings({
          ...sources,
          env: () => undefined,
        });
        // Only a named file is trusted without "toka trust".
        assert.equal(configTrusted, trusted);
        // Parsed by the plugins' own manifest rules.
        assert.deepEqual(plugins?.map((p) => [p.name, p.transport]), [
          ["weather", { type: "stdio", command: "weather", cwd: project }],
        ]);
        assert.deepEqual(settings, {
          configPath: join(project, "toka.json"),
          db: join(project, "data/v.kv"),
          storageRoot: join(project, "files"),
          agents: [join(project, "agents.ts"), "https://example.com/a.ts"],
          httpAllow: ["api.example.com"],
          httpAllowPrivate: ["127.0.0.1"],
          model: "llama3.2",
          modelRecordPrompt: true,
          retiredTtlSecs: 60,
          masterKeyEnv: "MY_KEY",
          agentLeaseSecs: 2,
          stopTimeoutMs: 500,
          maxCausalDepth: 250,
          logLevel: "debug",
        });
      }
    });

    await t.step(
      "flags beat variables beat the file beat defaults, for every setting",
      async () => {
        await write({ db: "file.kv", storageRoot: "file-root", logLevel: "error" });
        const env: Record<string, string> = {
          TOKA_DB: "env.kv",
          TOKA_STORAGE_ROOT: "env-root",
          TOKA_HTTP_ALLOW: "a.example, b.example",
          TOKA_HTTP_ALLOW_PRIVATE: "localhost",
          TOKA_MODEL: "env-model",
          TOKA_MODEL_BASE_URL: "http://127.0.0.1:11434/v1",
          TOKA_RETIRED_TTL_SECS: "30",
          TOKA_MASTER_KEY_ENV: "ENV_KEY",
          TOKA_AGENT_LEASE_SECS: "0.5",
          TOKA_STOP_TIMEOUT_MS: "0",
          TOKA_MAX_CAUSAL_DEPTH: "5",
          TOKA_LOG_LEVEL: "warning",
        };
        const fromEnv = await loadSettings({ flags: {}, env: (name) => env[name], cwd: project });
        assert.equal(fromEnv.db, "env.kv");
        assert.equal(fromEnv.storageRoot, "env-root");
        assert.deepEqual(fromEnv.httpAllow, ["a.example", "b.example"]);
        assert.deepEqual(fromEnv.httpAllowPrivate, ["localhost"]);
        assert.equal(fromEnv.model, "env-model");
        assert.equal(fromEnv.modelBaseUrl, "http://127.0.0.1:11434/v1");
        assert.equal(fromEnv.retiredTtlSecs, 30);
        assert.equal(fromEnv.masterKeyEnv, "ENV_KEY");
        assert.equal(fromEnv.agentLeaseSecs, 0.5);
        assert.equal(fromEnv.stopTimeoutMs, 0);
        assert.equal(fromEnv.maxCausalDepth, 5);
        assert.equal(fromEnv.logLevel, "warning");
        const fromFlags = await loadSettings({
          flags: { db: "flag.kv", storageRoot: "flag-root", logLevel: "trace" },
          env: (name) => env[name],
          cwd: project,
        });
        assert.equal(fromFlags.db, "flag.kv");
        assert.equal(fromFlags.storageRoot, "flag-root");
        assert.equal(fromFlags.logLevel, "trace");
        // Every setting with a variable was overridden above.
        const withEnv = SETTINGS.filter((spec) => spec.env !== undefined).map((spec) => spec.env);
        assert.deepEqual(withEnv.sort(), Object.keys(env).sort());
      },
    );

    await t.step("commands use the settings: the file's vault, its log level", async () => {
      await write({ db: "data/v.kv", logLevel: "info" });
      const vault = await openVault(join(project, "data/v.kv"));
      await vault.append("s", [{ kind: "a" }, { kind: "b" }]);
      await vault.close();
      const listed = await toka(["--json", "events", "stats"], { cwd: project });
      assert.equal(listed.code, 0, listed.errLines.join("\n"));
      assert.equal(JSON.parse(listed.out).events, 2);
      // --db beats the file: a missing vault there is refused, not created.
      const other = join(dir, "other.kv");
      const flag = await toka(["--db", other, "events", "stats"], { cwd: project });
      assert.equal(flag.code, 1);
      assert.deepEqual(flag.errLines, [`error: No vault at "${other}"`]);
      const env = await toka(["events", "stats"], { cwd: project, env: { TOKA_DB: other } });
      assert.deepEqual(env.errLines, [`error: No vault at "${other}"`]);
      assert.equal(await exists(other), false);
    });

    await t.step("tool commands get the file's tools: http.fetch and plugins", async () => {
      const toolkit = new URL("../../toolkit/mod.ts", import.meta.url).href;
      await Deno.writeTextFile(
        join(project, "shout.ts"),
        `import { defineTool } from ${JSON.stringify(toolkit)};
export const up = defineTool({
  name: "up", description: "Upper-cases", version: "1.0.0",
  inputSchema: { type: "object" }, execute: () => ({}),
});`,
      );
      await write({
        tools: { http: { allow: ["api.example.com"] } },
        plugins: { shout: { transport: { type: "module", module: "./shout.ts" } } },
      });
      // A found file's plugins load once it is trusted (tests/cli/trust_test.ts: not before).
      const env = { TOKA_TRUST_FILE: join(dir, "trusted.json") };
      assert.equal((await toka(["trust"], { cwd: project, env })).code, 0);
      const { code, out, errLines } = await toka(["--json", "tool", "list"], { cwd: project, env });
      assert.equal(code, 0, errLines.join("\n"));
      const names = (JSON.parse(out) as { name: string }[]).map((tool) => tool.name);
      assert.ok(names.includes("http.fetch"), names.join());
      assert.ok(names.includes("shout.up"), names.join());
    });

    await t.step(
      "auth commands use the file's master-key variable and retiredTtlSecs",
      async () => {
        await write({ db: "auth.kv", auth: { retiredTtlSecs: 60, masterKeyEnv: "MY_KEY" } });
        const env = { MY_KEY: generateMasterKey() };
        const rotated = await toka(["auth", "rotate-secret"], { cwd: project, env });
        assert.equal(rotated.code, 0, rotated.errLines.join("\n"));
        const status = await toka(["--json", "auth", "status"], { cwd: project, env });
        assert.equal(status.code, 0, status.errLines.join("\n"));
        assert.equal(JSON.parse(status.out).wrapped, true);
        assert.equal(JSON.parse(status.out).retiredTtlSecs, 60);
        // Without the key in that variable the wrapped pool cannot be used: status says locked
        // (key ids and states are not secret), rotate-secret is refused.
        const without = await toka(["--json", "auth", "status"], { cwd: project });
        assert.equal(without.code, 0, without.errLines.join("\n"));
        assert.equal(JSON.parse(without.out).locked, true);
        const rotate = await toka(["auth", "rotate-secret"], { cwd: project });
        assert.equal(rotate.code, 1);
      },
    );

    await t.step("a bad file, flag or variable: exit 2, one line naming it, no vault", async () => {
      const config = join(project, "toka.json");
      const cases: [unknown, string][] = [
        [{ dbb: "x" }, `error: Unknown field "dbb" in config "${config}"`],
        [{ db: 42 }, `error: Invalid field "db" in config "${config}": must be string`],
        [
          { tools: { http: { allow: ["ok", 7] } } },
          `error: Invalid field "tools.http.allow[1]" in config "${config}": must be string`,
        ],
        [
          { auth: { retiredTtlSecs: -1 } },
          `error: Invalid field "auth.retiredTtlSecs" in config "${config}": must be >= 0`,
        ],
        [
          { runtime: { maxCausalDepth: 0 } },
          `error: Invalid field "runtime.maxCausalDepth" in config "${config}": must be >= 1`,
        ],
        [
          { runtime: { maxCausalDepth: 2.5 } },
          `error: Invalid field "runtime.maxCausalDepth" in config "${config}": must be integer`,
        ],
        [
          { logLevel: "loud" },
          `error: Invalid field "logLevel" in config "${config}": must be one of "trace", "debug", "info", "warning", "error", "fatal"`,
        ],
        [
          { plugins: { Bad: { transport: { type: "stdio" } } } },
          `error: Invalid name "Bad" in field "plugins" in config "${config}": must match pattern "^[a-z][a-z0-9_-]{0,31}$"`,
        ],
        [[], `error: Invalid config "${config}": must be object`],
        [
          { plugins: { w: { transport: { type: "stdio" } } } },
          `error: Invalid plugin manifest ${JSON.stringify(config)}: `,
        ],
      ];
      for (const [value, line] of cases) {
        await write({ db: "never.kv", ...value as object });
        if (Array.isArray(value)) await write(value);
        const { code, errLines, out } = await toka(["events", "stats"], { cwd: project });
        assert.equal(code, 2, line);
        assert.equal(out, "");
        if (line.endsWith(": ")) assert.ok(errLines[0].startsWith(line), errLines[0]);
        else assert.deepEqual(errLines, [line]);
      }
      await Deno.writeTextFile(config, "{ db: oops");
      const json = await toka(["auth", "rotate-secret"], { cwd: project });
      assert.equal(json.code, 2);
      assert.match(json.errLines[0], /^error: Invalid JSON in config ".*toka.json": /);
      assert.equal(json.errLines.length, 1);

      const missing = join(dir, "missing.json");
      const named = await toka(["--config", missing, "events", "stats"], { cwd: dir });
      assert.equal(named.code, 2);
      assert.match(named.errLines[0], /^error: Cannot read config ".*missing.json": /);
      const viaEnv = await toka(["events", "stats"], { cwd: dir, env: { TOKA_CONFIG: missing } });
      assert.equal(viaEnv.code, 2);

      await write({ db: "never.kv" });
      const badEnv: [Record<string, string>, string][] = [
        [
          { TOKA_RETIRED_TTL_SECS: "soon" },
          'error: Invalid TOKA_RETIRED_TTL_SECS "soon": ' +
          "expected a whole number from 0 to 86400",
        ],
        [
          { TOKA_AGENT_LEASE_SECS: "0" },
          'error: Invalid TOKA_AGENT_LEASE_SECS "0": ' +
          "expected a number from 0.1 to 3600",
        ],
        [
          { TOKA_MAX_CAUSAL_DEPTH: "1e9" },
          'error: Invalid TOKA_MAX_CAUSAL_DEPTH "1e9": ' +
          "expected a whole number from 1 to 1000000",
        ],
        [
          { TOKA_MAX_CAUSAL_DEPTH: "ten" },
          'error: Invalid TOKA_MAX_CAUSAL_DEPTH "ten": ' +
          "expected a whole number from 1 to 1000000",
        ],
        [
          { TOKA_MASTER_KEY_ENV: "A B" },
          'error: Invalid TOKA_MASTER_KEY_ENV "A B": ' +
          "expected a variable name",
        ],
        [
          { TOKA_STORAGE_ROOT: "" },
          "error: TOKA_STORAGE_ROOT is set but empty: " +
          "unset it or give a value",
        ],
        [
          { TOKA_LOG_LEVEL: "loud" },
          'error: Invalid TOKA_LOG_LEVEL "loud": ' +
          "expected one of trace, debug, info, warning, error, fatal",
        ],
      ];
      for (const [env, line] of badEnv) {
        const { code, errLines } = await toka(["auth", "rotate-secret"], { cwd: project, env });
        assert.equal(code, 2, line);
        assert.deepEqual(errLines, [line]);
      }
      const flag = await toka(["--storage-root", "", "events", "stats"], { cwd: project });
      assert.equal(flag.code, 2);
      assert.deepEqual(flag.errLines, ['error: Invalid --storage-root "": expected a folder']);
      assert.equal(await exists(join(project, "never.kv")), false);
    });

    await t.step("the schema ships with the package, at the URL the files name", () => {
      assert.equal(schema.$id, SCHEMA_URL);
      assert.equal(SCHEMA_URL, `https://jsr.io/@toka/runtime/${denoJson.version}/toka.schema.json`);
      const excluded = denoJson.publish.exclude;
      assert.ok(!excluded.some((path) => "toka.schema.json".startsWith(path.replace(/\/$/, ""))));
      // Every field of the file is a setting or a section of settings.
      const files = SETTINGS.flatMap((spec) => spec.file ? [spec.file[0]] : []);
      assert.deepEqual(
        Object.keys(schema.properties).filter((key) => key !== "$schema").sort(),
        [...new Set(files)].sort(),
      );
    });

    await t.step("the README's table is the rule as implemented", async () => {
      const settings = section("## Settings and toka.json");
      const rows = settings.split("\n").filter((line) => line.startsWith("| `"))
        .map((line) => line.split("|").slice(1, -1).map((cell) => cell.trim()));
      // | toka.json | flag | variable | default | what |
      const expected = SETTINGS.map((spec) => [
        code(spec.file!.join(".")),
        spec.flag === undefined ? "—" : code(spec.flag),
        spec.env === undefined ? "—" : code(spec.env),
        spec.defaultText,
      ]);
      assert.deepEqual(rows.map((row) => row.slice(0, 4)), expected);
      // Its example file is valid.
      const example = JSON.parse(settings.split("```json\n")[1].split("```")[0]);
      await checkConfig(example, "docs/cli.md");
      assert.equal(example.$schema, SCHEMA_URL);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

function code(text: string): string {
  return text.startsWith("`") ? text : `\`${text}\``;
}
