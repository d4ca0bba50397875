// The README's fs and http tools example, run as a user runs it and checked for what it prints.
import assert from "node:assert/strict";

const root = new URL("../../", import.meta.url);

/** The first ```ts block under a README heading. */
async function example(heading: string): Promise<string> {
  const readme = await Deno.readTextFile(new URL("README.md", root));
  const start = readme.indexOf(`\n${heading}\n`);
  assert.ok(start >= 0, `README has no heading "${heading}"`);
  const match = readme.slice(start).match(/```ts\n([\s\S]*?)```/);
  assert.ok(match, `README has no example under "${heading}"`);
  return match[1];
}

/** Runs a module outside the package, importing it by path; returns its output. */
async function run(code: string): Promise<{ code: number; out: string; err: string }> {
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/example.ts`;
    await Deno.writeTextFile(
      file,
      code.replace(
        /"@toka\/runtime(\/[a-z]+)?"/g,
        (_, sub: string | undefined) => JSON.stringify(new URL(`.${sub ?? ""}/mod.ts`, root).href),
      ),
    );
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--quiet", "--config", new URL("deno.json", root).pathname, file],
      cwd: dir,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
    return { code: output.code, out: decode(output.stdout), err: decode(output.stderr) };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("README: the fs and http tools example prints what its comments say", async () => {
  const code = await example("### Files and the web: fs and http tools");
  const result = await run(code);
  assert.equal(result.code, 0, result.err);
  // Each printed value is the comment below or beside its console.log.
  const expected = [...code.matchAll(/console\.log\(.*\);(?: \/\/ (.*))?\n(?:\/\/ (.*)\n)?/g)]
    .map((m) => m[1] ?? m[2]);
  assert.ok(expected.length >= 3 && expected.every((e) => e !== undefined), "comments say it");
  // console.log breaks long objects over lines: compare with whitespace collapsed.
  const squash = (text: string) => text.replace(/\s+/g, " ").trim();
  assert.equal(squash(result.out), squash(expected.join("\n")));
});
