// Shared by the README tests: finds an example under a heading and runs it as
// a user runs it (a module of their own, importing the package by name).
import assert from "node:assert/strict";

const root = new URL("../../", import.meta.url);
const readme = await Deno.readTextFile(new URL("README.md", root));

/** The first ```ts (or other language) block under a README heading. */
export function example(heading: string, language = "ts"): string {
  const start = readme.indexOf(`\n${heading}\n`);
  assert.ok(start >= 0, `README has no heading "${heading}"`);
  const match = readme.slice(start).match(new RegExp("```" + language + "\\n([\\s\\S]*?)```"));
  assert.ok(match, `README has no ${language} example under "${heading}"`);
  return match[1];
}

export const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

/** Runs a module in a subprocess with the package's own config; returns its output. */
export async function run(
  code: string,
  dir: string,
): Promise<{ code: number; out: string; err: string }> {
  const file = `${dir}/example.ts`;
  // A module outside the package imports it by path, as a project with an import map would.
  const source = code.replace(
    /"@toka\/runtime(\/[a-z]+)?"/g,
    (_, sub: string | undefined) => JSON.stringify(new URL(`.${sub ?? ""}/mod.ts`, root).href),
  );
  await Deno.writeTextFile(file, source);
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", "--config", new URL("deno.json", root).pathname, file],
    cwd: dir,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: output.code, out: decode(output.stdout), err: decode(output.stderr) };
}
