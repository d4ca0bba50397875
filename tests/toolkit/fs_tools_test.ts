// The fs.* built-in tools: files under one root, the same rules as storage("local").
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  CapabilityDeniedError,
  createFsTools,
  ToolExecutionError,
  ToolInputError,
  ToolRegistry,
} from "../../toolkit/mod.ts";
import { FakeAuthority } from "./_fakes.ts";

const b64 = (bytes: number[]) => btoa(String.fromCharCode(...bytes));

/** The message of a failed call, checked to be one line that does not name the root. */
async function failure(call: Promise<unknown>, root: string): Promise<string> {
  const error = await call.then(() => undefined, (e: unknown) => e);
  assert.ok(error instanceof Error, "the call failed");
  assert.ok(!error.message.includes("\n"), `one line: ${error.message}`);
  assert.ok(!error.message.includes(root), `no path of the root: ${error.message}`);
  return error.message;
}

Deno.test("fs tools", async (t) => {
  const dir = await Deno.realPath(await Deno.makeTempDir());
  const root = join(dir, "root");
  const outside = join(dir, "outside");
  await Deno.mkdir(root);
  await Deno.mkdir(outside);
  await Deno.writeTextFile(join(outside, "secret.txt"), "SECRET");
  const tools = new ToolRegistry({
    tools: createFsTools({ root, maxReadBytes: 64, maxWriteBytes: 64 }),
  });
  try {
    await t.step("four tools with schemas, annotations and default permissions", () => {
      const infos = tools.list();
      assert.deepEqual(infos.map((i) => i.name), ["fs.delete", "fs.list", "fs.read", "fs.write"]);
      for (const info of infos) {
        assert.deepEqual(info.permissions, [`tool:${info.name}:invoke`]);
        assert.equal(info.outputSchema?.type, "object");
      }
      assert.deepEqual(tools.get("fs.read")?.annotations, {
        readOnlyHint: true,
        destructiveHint: false,
        idempotentHint: true,
        openWorldHint: false,
      });
      assert.deepEqual(tools.get("fs.write")?.annotations, {
        readOnlyHint: false,
        destructiveHint: true,
        idempotentHint: true,
        openWorldHint: false,
      });
      assert.equal(tools.get("fs.delete")?.annotations?.destructiveHint, true);
      assert.equal(tools.get("fs.list")?.annotations?.readOnlyHint, true);
    });

    await t.step("writes and reads text, making folders on the way", async () => {
      assert.deepEqual(
        await tools.call("fs.write", { path: "notes/a/hello.txt", content: "héllo ✓" }),
        { path: "notes/a/hello.txt", size: 10 },
      );
      assert.equal(await Deno.readTextFile(join(root, "notes/a/hello.txt")), "héllo ✓");
      assert.deepEqual(await tools.call("fs.read", { path: "notes/a/hello.txt" }), {
        path: "notes/a/hello.txt",
        encoding: "utf8",
        content: "héllo ✓",
        size: 10,
      });
    });

    await t.step("writes and reads bytes as base64", async () => {
      const content = b64([0, 255, 128, 10]);
      assert.deepEqual(
        await tools.call("fs.write", { path: "bin", content, encoding: "base64" }),
        { path: "bin", size: 4 },
      );
      assert.deepEqual(await Deno.readFile(join(root, "bin")), new Uint8Array([0, 255, 128, 10]));
      assert.deepEqual(await tools.call("fs.read", { path: "bin", encoding: "base64" }), {
        path: "bin",
        encoding: "base64",
        content,
        size: 4,
      });
      const message = await failure(tools.call("fs.read", { path: "bin" }), root);
      assert.equal(
        message,
        'Tool "fs.read" failed: File "bin" is not UTF-8 text: read it with encoding "base64"',
      );
    });

    await t.step("lists files, under a folder or all, and deletes", async () => {
      assert.deepEqual(await tools.call("fs.list", {}), {
        paths: ["bin", "notes/a/hello.txt"],
        truncated: false,
      });
      assert.deepEqual(await tools.call("fs.list", { path: "notes" }), {
        paths: ["notes/a/hello.txt"],
        truncated: false,
      });
      assert.deepEqual(await tools.call("fs.list", { path: "note" }), {
        paths: [],
        truncated: false,
      });
      assert.deepEqual(await tools.call("fs.delete", { path: "bin" }), {
        path: "bin",
        deleted: true,
      });
      assert.deepEqual(await tools.call("fs.delete", { path: "bin" }), {
        path: "bin",
        deleted: false,
      });
      assert.deepEqual(await tools.call("fs.list", {}), {
        paths: ["notes/a/hello.txt"],
        truncated: false,
      });
    });

    await t.step("refuses paths out of the root, in one line, creating nothing", async () => {
      const before = await snapshot(dir);
      for (
        const path of [
          "../outside/secret.txt",
          "/etc/passwd",
          join(outside, "secret.txt"),
          "a//b",
          "./a",
          "a/",
          "notes/../../outside/x",
          "a\\b",
          "a\0b",
          ".tmp-x",
        ]
      ) {
        for (
          const [name, input] of [
            ["fs.read", { path }],
            ["fs.write", { path, content: "x" }],
            ["fs.delete", { path }],
            ["fs.list", { path }],
          ] as const
        ) {
          const message = await failure(tools.call(name, input), root);
          assert.match(message, new RegExp(`^Tool "${name}" failed: Invalid path "`), message);
        }
      }
      const message = await failure(tools.call("fs.read", { path: "../outside/secret.txt" }), root);
      assert.equal(
        message,
        'Tool "fs.read" failed: Invalid path "../outside/secret.txt": use a relative path without empty, "." or ".." segments',
      );
      await assert.rejects(tools.call("fs.read", { path: "" }), ToolInputError);
      await assert.rejects(tools.call("fs.read", { path: 5 }), ToolInputError);
      await assert.rejects(tools.call("fs.read", { path: "x", extra: 1 }), ToolInputError);
      await assert.rejects(tools.call("fs.read", { path: "x", encoding: "hex" }), ToolInputError);
      assert.deepEqual(await snapshot(dir), before);
    });

    await t.step("never follows a symbolic link below the root", async () => {
      await Deno.symlink(outside, join(root, "link"));
      await Deno.symlink(join(outside, "secret.txt"), join(root, "file-link"));
      const calls = [
        ["fs.read", { path: "link/secret.txt" }],
        ["fs.read", { path: "file-link" }],
        ["fs.write", { path: "link/new.txt", content: "x" }],
        ["fs.delete", { path: "link/secret.txt" }],
        ["fs.delete", { path: "file-link" }],
      ] as const;
      for (const [name, input] of calls) {
        const message = await failure(tools.call(name, input), root);
        assert.equal(
          message,
          `Tool "${name}" failed: Path "${input.path}" goes through a symbolic link, which the fs tools never follow`,
        );
      }
      assert.deepEqual(await tools.call("fs.list", {}), {
        paths: ["notes/a/hello.txt"],
        truncated: false,
      });
      // A write whose last segment is a link replaces the link itself, never its target.
      await tools.call("fs.write", { path: "file-link", content: "x" });
      assert.ok((await Deno.lstat(join(root, "file-link"))).isFile);
      assert.deepEqual(await Array.fromAsync(Deno.readDir(outside), (e) => e.name), [
        "secret.txt",
      ]);
      assert.equal(await Deno.readTextFile(join(outside, "secret.txt")), "SECRET");
      await Deno.remove(join(root, "link"));
      await Deno.remove(join(root, "file-link"));
    });

    await t.step("size limits on read and write", async () => {
      await Deno.writeTextFile(join(root, "big.txt"), "x".repeat(65));
      assert.equal(
        await failure(tools.call("fs.read", { path: "big.txt" }), root),
        'Tool "fs.read" failed: File "big.txt" has 65 bytes, more than the 64 allowed',
      );
      assert.equal(
        await failure(tools.call("fs.write", { path: "w.txt", content: "é".repeat(33) }), root),
        'Tool "fs.write" failed: Content for "w.txt" has 66 bytes, more than the 64 allowed',
      );
      assert.equal(
        await failure(
          tools.call("fs.write", {
            path: "w.txt",
            content: b64(Array(65).fill(1)),
            encoding: "base64",
          }),
          dir,
        ),
        'Tool "fs.write" failed: Content for "w.txt" has 65 bytes, more than the 64 allowed',
      );
      // Far over the limit: refused by the schema before the tool runs.
      await assert.rejects(
        tools.call("fs.write", { path: "w.txt", content: "x".repeat(1000) }),
        ToolInputError,
      );
      await tools.call("fs.write", { path: "w.txt", content: "x".repeat(64) });
      assert.equal((await Deno.stat(join(root, "w.txt"))).size, 64);
      assert.equal((await tools.call("fs.read", { path: "w.txt" }) as { size: number }).size, 64);
    });

    await t.step("other bad input: one line each, nothing written", async () => {
      const before = await snapshot(dir);
      const cases: [string, Record<string, unknown>, string][] = [
        ["fs.read", { path: "missing.txt" }, 'No file at "missing.txt"'],
        ["fs.read", { path: "notes" }, 'No file at "notes"'],
        [
          "fs.write",
          { path: "x.bin", content: "not base64!", encoding: "base64" },
          'Content for "x.bin" is not valid base64',
        ],
        [
          "fs.write",
          { path: "x.txt", content: "\ud800" },
          'Content for "x.txt" has a lone surrogate',
        ],
        [
          "fs.write",
          { path: "notes", content: "x" },
          'Cannot write "notes": a folder is where the file would go',
        ],
        [
          "fs.write",
          { path: "w.txt/inner", content: "x" },
          'Cannot write "w.txt/inner": a file is where a folder is needed',
        ],
      ];
      for (const [name, input, expected] of cases) {
        const message = await failure(tools.call(name, input), root);
        assert.equal(message, `Tool "${name}" failed: ${expected}`);
      }
      assert.deepEqual(await snapshot(dir), before);
    });

    await t.step("a control character in a path is escaped, never raw", async () => {
      const message = await failure(tools.call("fs.read", { path: "a\n\u001b[31m" }), root);
      assert.ok(![...message].some((c) => c < " "), message);
    });

    await t.step("each tool needs its own permission", async () => {
      const authority = new FakeAuthority({
        reader: {
          sub: "agent/reader",
          permissions: ["tool:fs.read:invoke", "tool:fs.list:invoke"],
        },
      });
      const gated = new ToolRegistry({ authority, tools: createFsTools({ root }) });
      const read = await gated.call("fs.read", { path: "w.txt" }, { token: "reader" });
      assert.equal((read as { size: number }).size, 64);
      await assert.rejects(
        gated.call("fs.write", { path: "w.txt", content: "" }, { token: "reader" }),
        CapabilityDeniedError,
      );
      await assert.rejects(
        gated.call("fs.delete", { path: "w.txt" }, { token: "reader" }),
        CapabilityDeniedError,
      );
      assert.equal((await Deno.stat(join(root, "w.txt"))).size, 64);
    });

    await t.step("a missing root reads as empty and is made on the first write", async () => {
      const fresh = new ToolRegistry({ tools: createFsTools({ root: join(dir, "later") }) });
      assert.deepEqual(await fresh.call("fs.list", {}), { paths: [], truncated: false });
      await assert.rejects(fresh.call("fs.read", { path: "a" }), ToolExecutionError);
      await fresh.call("fs.write", { path: "a", content: "1" });
      assert.equal(await Deno.readTextFile(join(dir, "later", "a")), "1");
    });

    await t.step("options are checked", () => {
      assert.throws(() => createFsTools({ root: "" }), {
        name: "TypeError",
        message: 'Invalid fs root "": expected a path',
      });
      assert.throws(() => createFsTools({ root, maxReadBytes: -1 }), {
        name: "RangeError",
        message: "Invalid maxReadBytes -1: expected an integer from 0 to 16777216",
      });
      assert.throws(() => createFsTools({ root, maxWriteBytes: 1.5 }), RangeError);
      assert.throws(() => createFsTools({ root, maxListEntries: 0 }), RangeError);
    });

    await t.step("fs.list stops at maxListEntries and says so", async () => {
      const few = new ToolRegistry({ tools: createFsTools({ root, maxListEntries: 1 }) });
      const listed = await few.call("fs.list", {}) as { paths: string[]; truncated: boolean };
      assert.equal(listed.paths.length, 1);
      assert.equal(listed.truncated, true);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Every path under a folder (without following links), with file contents. */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (path: string) => {
    for await (const entry of Deno.readDir(path)) {
      const full = join(path, entry.name);
      if (entry.isDirectory) {
        out[full] = "(folder)";
        await walk(full);
      } else if (entry.isSymlink) out[full] = "(link)";
      else out[full] = await Deno.readTextFile(full);
    }
  };
  await walk(dir);
  return out;
}
