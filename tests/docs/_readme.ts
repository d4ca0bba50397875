// Shared by the documentation tests: finds an example under a heading of the README or
// of a docs/ page and runs it as a user runs it (a module of their own, importing the
// package by name).
import assert from "node:assert/strict";

const root = new URL("../../", import.meta.url);
const pages = ["README.md"];
for await (const entry of Deno.readDir(new URL("docs/", root))) {
  if (entry.isFile && entry.name.endsWith(".md")) pages.push(`docs/${entry.name}`);
}
pages.sort();

/**
 * The README and every docs/ page, each starting on a new line, so that a heading
 * is found wherever the text moved.
 */
export const docs: string = (await Promise.all(
  pages.map((page) => Deno.readTextFile(new URL(page, root))),
)).map((text) => `\n${text}`).join("");

/** The text under a heading (`## Title`, the whole line), up to the next heading as high or higher. */
export function section(heading: string): string {
  const start = docs.indexOf(`\n${heading}\n`);
  assert.ok(start >= 0, `No heading "${heading}" in the README or docs/`);
  assert.equal(
    docs.indexOf(`\n${heading}\n`, start + 1),
    -1,
    `Heading "${heading}" is not unique in the README and docs/`,
  );
  const level = heading.match(/^#+/)![0].length;
  const rest = docs.slice(start + heading.length + 2);
  let end = rest.length;
  // A line starting with "#" inside a code block (a shell comment) is not a heading.
  let fenced = false, offset = 0;
  for (const line of rest.split("\n")) {
    if (line.startsWith("```")) fenced = !fenced;
    else if (!fenced && (line.match(/^(#+) /)?.[1].length ?? Infinity) <= level) {
      end = offset;
      break;
    }
    offset += line.length + 1;
  }
  return docs.slice(start, start + heading.length + 2 + end);
}

/** The first ```ts (or other language) block, attributes allowed, under a heading of the README or docs/. */
export function example(heading: string, language = "ts"): string {
  // An attribute after the language (`js ignore`: not type-checked by `deno test --doc`) is allowed.
  const match = section(heading).match(
    new RegExp("```" + language + "(?: [^\\n]*)?\\n([\\s\\S]*?)```"),
  );
  assert.ok(match, `No ${language} example under "${heading}"`);
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
