// Which folder may import which (DESIGN.md §2, issue 9): features meet only
// through runtime/'s public files, shared helpers live in internal/, and no file
// reaches into another folder's `_private.ts`.
import assert from "node:assert/strict";

const ROOT = new URL("../", import.meta.url);
const FEATURES = ["vault", "auth", "toolkit"];

/** Every relative import and re-export specifier in `source`, comments removed. */
export function importsOf(source: string): string[] {
  const code = source
    .replace(/\/\*[\s\S]*?\*\//g, "")
    .replace(/^\s*\/\/.*$/gm, "");
  const found: string[] = [];
  const patterns = [
    /\b(?:import|export)\s+(?:type\s+)?[^;"']*?\sfrom\s*["']([^"']+)["']/g,
    /\bimport\s*["']([^"']+)["']/g,
    /\bimport\s*\(\s*["']([^"']+)["']\s*\)/g,
  ];
  for (const re of patterns) {
    for (const m of code.matchAll(re)) found.push(m[1]);
  }
  return found.filter((s) => s.startsWith("."));
}

/** The top folder ("" for a root file), the folder below it, and the file name of a root-relative path. */
function place(path: string): { folder: string; room: string; dir: string; name: string } {
  const parts = path.split("/");
  const name = parts[parts.length - 1];
  const dir = parts.slice(0, -1).join("/");
  return parts.length === 1
    ? { folder: "", room: "", dir, name }
    : { folder: parts[0], room: parts.length > 2 ? parts[1] : "", dir, name };
}

// runtime/'s rooms and what each may import besides itself and internal/ (issue 25): the log is
// the base, the bus sits on it, agents on both and on storage; storage knows nothing of agents or
// the bus. The root ("") composes them all.
const RUNTIME_ROOMS: Record<string, string[]> = {
  log: [],
  bus: ["log"],
  storage: ["log"],
  agents: ["log", "bus", "storage"],
};
// runtime/'s root files that every room and every feature may use: the errors and the port
// contracts. The rest of the root (runtime.ts, its config, mod.ts) composes and is used by none.
const RUNTIME_SHARED = ["errors.ts", "tool_registry.ts", "token_authority.ts"];
// The agents' state ports (checkpoint and lease stores, with their KV implementations, which need
// only the log and internal/): the KV vault offers them beside its log (issue 18 #13).
const VAULT_AGENT_STATE = [
  "agents/agent_state.ts",
  "agents/agent_state_fork.ts",
  "agents/agent_state_verify.ts",
];

/** Why an import inside runtime/ (both paths under it) runs the wrong way, if it does. */
function runtimeViolation(
  a: { room: string; dir: string },
  b: { room: string; dir: string; name: string },
): string | undefined {
  if (a.room === b.room || a.room === "") return undefined;
  if (b.room === "") {
    return RUNTIME_SHARED.includes(b.name)
      ? undefined
      : `runtime/${a.room}/ imports only the errors and port contracts of runtime/'s root`;
  }
  return RUNTIME_ROOMS[a.room]?.includes(b.room)
    ? undefined
    : `runtime/${a.room}/ may not import runtime/${b.room}/`;
}

/** The reason an import from `from` to `to` (root-relative paths) breaks the layering, if it does. */
export function violation(from: string, to: string): string | undefined {
  const a = place(from);
  const b = place(to);
  // cli.ts and cli/ are one program.
  const group = (p: { folder: string; name: string }) =>
    p.folder === "" && p.name === "cli.ts" ? "cli" : p.folder;
  const ga = group(a);
  const gb = group(b);
  // A private file belongs to its own folder; inside runtime/ the root, which composes the
  // rooms, may use them too.
  const composer = ga === "runtime" && gb === "runtime" && a.dir === "runtime";
  if (b.name.startsWith("_") && a.dir !== b.dir && !(ga === gb && ga !== "runtime") && !composer) {
    return ga === gb
      ? `imports another room's private file`
      : `imports another folder's private file`;
  }
  if (ga === "runtime" && gb === "runtime") return runtimeViolation(a, b);
  if (ga === gb) return undefined;
  if (ga === "runtime" && gb !== "internal") return "runtime/ imports only runtime/ and internal/";
  if (ga === "internal") return "internal/ imports nothing outside internal/";
  if (FEATURES.includes(ga) && gb !== "runtime" && gb !== "internal") {
    return `${ga}/ imports only runtime/ and internal/`;
  }
  if (
    ga === "vault" && gb === "runtime" && b.room !== "log" && !RUNTIME_SHARED.includes(b.name) &&
    !VAULT_AGENT_STATE.includes(`${b.room}/${b.name}`)
  ) {
    return "vault/ uses only runtime/log/, the errors and the port contracts";
  }
  return undefined;
}

async function* tsFiles(dir: URL, prefix: string): AsyncGenerator<string> {
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isFile && entry.name.endsWith(".ts")) yield prefix + entry.name;
    if (entry.isDirectory) {
      yield* tsFiles(new URL(`${entry.name}/`, dir), `${prefix}${entry.name}/`);
    }
  }
}

Deno.test("layering", async (t) => {
  await t.step("the import parser sees imports, re-exports and nothing in comments", () => {
    const source = [
      `import { a } from "./a.ts";`,
      `import type { B } from "../runtime/b.ts";`,
      `export { c } from "../internal/c.ts";`,
      `import {\n  d,\n  e,\n} from "../vault/_d.ts";`,
      `import "./side.ts";`,
      `// import { x } from "../auth/_x.ts";`,
      `/** import { y } from "../auth/_y.ts"; */`,
      `import canonicalize from "canonicalize";`,
    ].join("\n");
    assert.deepEqual(importsOf(source).sort(), [
      "../internal/c.ts",
      "../runtime/b.ts",
      "../vault/_d.ts",
      "./a.ts",
      "./side.ts",
    ]);
  });

  await t.step("the rules refuse what they should", () => {
    assert.equal(violation("vault/a.ts", "runtime/log/event_store.ts"), undefined);
    assert.equal(violation("vault/a.ts", "runtime/errors.ts"), undefined);
    assert.ok(violation("vault/a.ts", "runtime/bus/event_bus.ts"));
    assert.ok(violation("vault/a.ts", "runtime/runtime.ts"));
    assert.equal(violation("vault/a.ts", "runtime/agents/agent_state.ts"), undefined);
    assert.ok(violation("vault/a.ts", "runtime/agents/agent.ts"));
    assert.ok(violation("vault/a.ts", "runtime/agents/_lease.ts"));
    assert.equal(violation("runtime/bus/event_bus.ts", "runtime/log/event_store.ts"), undefined);
    assert.ok(violation("runtime/log/event_store.ts", "runtime/bus/event_bus.ts"));
    assert.ok(violation("runtime/bus/event_bus.ts", "runtime/agents/agent.ts"));
    assert.ok(violation("runtime/storage/storage.ts", "runtime/agents/agent.ts"));
    assert.ok(violation("runtime/storage/storage.ts", "runtime/bus/event_bus.ts"));
    assert.ok(violation("runtime/log/event_store.ts", "runtime/runtime.ts"));
    assert.equal(violation("runtime/log/append_rules.ts", "runtime/errors.ts"), undefined);
    assert.ok(violation("runtime/agents/a.ts", "runtime/storage/_local_storage.ts"));
    assert.equal(violation("runtime/runtime.ts", "runtime/agents/_agent_runner.ts"), undefined);
    assert.equal(violation("runtime/agents/a.ts", "runtime/agents/_lease.ts"), undefined);
    assert.ok(violation("toolkit/a.ts", "runtime/agents/_lease.ts"));
    assert.equal(violation("vault/a.ts", "internal/ids.ts"), undefined);
    assert.ok(violation("vault/a.ts", "runtime/_ids.ts"));
    assert.ok(violation("toolkit/tool.ts", "auth/permissions.ts"));
    assert.ok(violation("runtime/a.ts", "vault/mod.ts"));
    assert.ok(violation("internal/a.ts", "runtime/errors.ts"));
    assert.ok(violation("cli/auth.ts", "auth/_jws.ts"));
    assert.ok(violation("cli.ts", "auth/_redact.ts"));
    assert.equal(violation("cli.ts", "cli/_io.ts"), undefined);
    assert.equal(violation("cli/demo.ts", "mod.ts"), undefined);
    assert.ok(violation("mod.ts", "vault/_event.ts"));
  });

  await t.step("every library and CLI file keeps them", async () => {
    const files: string[] = ["mod.ts", "cli.ts"];
    for (const folder of ["runtime", "vault", "auth", "toolkit", "internal", "cli"]) {
      try {
        for await (const f of tsFiles(new URL(`${folder}/`, ROOT), `${folder}/`)) files.push(f);
      } catch (error) {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      }
    }
    assert.ok(files.some((f) => f.startsWith("runtime/log/")), "sub-folders are read");
    assert.ok(files.length > 40, `expected the library's files, found ${files.length}`);
    const broken: string[] = [];
    for (const file of files) {
      const source = await Deno.readTextFile(new URL(file, ROOT));
      for (const spec of importsOf(source)) {
        const target = new URL(spec, new URL(file, ROOT)).href.slice(ROOT.href.length);
        const why = violation(file, target);
        if (why) broken.push(`${file} -> ${target}: ${why}`);
      }
    }
    assert.deepEqual(broken, []);
  });
});
