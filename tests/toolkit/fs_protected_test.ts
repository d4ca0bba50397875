// The fs tools and storage("local") never reach Toka's own files (issue 17 item 1): with the
// root set to the project folder, the vault (.toka/toka.kv and its -wal/-shm/-journal), its
// folder and toka.json are refused by identity (device and inode), through hard links,
// symbolic links and case variants too.
import assert from "node:assert/strict";
import { join } from "node:path";
import { createRuntime } from "../../mod.ts";
import { createLocalStorage } from "../../runtime/mod.ts";
import { AllowAllAuthority, createFsTools, ToolRegistry } from "../../toolkit/mod.ts";
import { main } from "../../cli.ts";
import { hasNoStackTrace, recordingIo } from "../cli/_fakes.ts";

const PROTECTED = /is one of Toka's own files \(the vault, its folder or the config\)/;

async function project(): Promise<{ dir: string; db: string; config: string }> {
  const dir = await Deno.realPath(await Deno.makeTempDir());
  const config = join(dir, "toka.json");
  await Deno.writeTextFile(config, '{ "storageRoot": "." }\n');
  return { dir, db: join(dir, ".toka", "toka.kv"), config };
}

async function message(call: Promise<unknown>): Promise<string> {
  const error = await call.then(() => undefined, (e: unknown) => e);
  assert.ok(error instanceof Error, "the call failed");
  assert.ok(!error.message.includes("\n"), `one line: ${error.message}`);
  return error.message;
}

Deno.test("the fs tools under the project folder never reach the vault or the config", async (t) => {
  const { dir, db, config } = await project();
  const runtime = await createRuntime({
    db,
    storageRoot: dir,
    fs: {},
    auth: new AllowAllAuthority(), // the refusal holds whatever the token grants
    protectedPaths: [config],
  });
  const call = (name: string, input: unknown) => runtime.tools.call(name, input);
  try {
    const kvBefore = await Deno.readFile(db);
    const configBefore = await Deno.readTextFile(config);

    await t.step("fs.read of .toka/toka.kv is refused, in one line", async () => {
      for (const path of [".toka/toka.kv", ".toka/toka.kv-wal", ".toka/toka.kv-shm"]) {
        const text = await message(call("fs.read", { path, encoding: "base64" }));
        assert.match(text, PROTECTED);
        assert.ok(text.includes(`"${path}"`), text);
        assert.ok(!text.includes(dir), text);
      }
      // The README's words.
      assert.equal(
        await message(call("fs.read", { path: ".toka/toka.kv" })),
        `Tool "fs.read" failed: Cannot read ".toka/toka.kv": it is one of Toka's own files (the vault, its folder or the config), which the fs tools never reach`,
      );
    });

    await t.step("the .toka folder: no read, write, delete or listing inside it", async () => {
      await Deno.writeTextFile(join(dir, ".toka", "other.txt"), "x");
      assert.match(await message(call("fs.read", { path: ".toka/other.txt" })), PROTECTED);
      assert.match(
        await message(call("fs.write", { path: ".toka/new.txt", content: "x" })),
        PROTECTED,
      );
      assert.match(await message(call("fs.delete", { path: ".toka/other.txt" })), PROTECTED);
      assert.match(await message(call("fs.list", { path: ".toka" })), PROTECTED);
      assert.equal(await Deno.readTextFile(join(dir, ".toka", "other.txt")), "x");
      await assert.rejects(Deno.stat(join(dir, ".toka", "new.txt")), Deno.errors.NotFound);
    });

    await t.step("fs.write and fs.delete of toka.json are refused", async () => {
      const write = await message(
        call("fs.write", { path: "toka.json", content: '{ "plugins": {} }' }),
      );
      assert.match(write, PROTECTED);
      assert.match(await message(call("fs.delete", { path: "toka.json" })), PROTECTED);
      assert.match(await message(call("fs.read", { path: "toka.json" })), PROTECTED);
      assert.equal(await Deno.readTextFile(config), configBefore);
    });

    await t.step("a hard link to toka.kv in the root is refused (same inode)", async () => {
      await Deno.link(db, join(dir, "copy.db"));
      assert.match(await message(call("fs.read", { path: "copy.db" })), PROTECTED);
      assert.match(await message(call("fs.write", { path: "copy.db", content: "x" })), PROTECTED);
      assert.match(await message(call("fs.delete", { path: "copy.db" })), PROTECTED);
      await Deno.remove(join(dir, "copy.db"));
    });

    await t.step("a symbolic link to toka.kv or .toka is refused", async () => {
      await Deno.symlink(db, join(dir, "link.db"));
      await Deno.symlink(join(dir, ".toka"), join(dir, "linked"));
      await assert.rejects(call("fs.read", { path: "link.db" }));
      await assert.rejects(call("fs.read", { path: "linked/toka.kv" }));
      await Deno.remove(join(dir, "link.db"));
      await Deno.remove(join(dir, "linked"));
    });

    await t.step("case variants and .. are refused", async () => {
      await assert.rejects(call("fs.read", { path: ".toka/../.toka/toka.kv" }), /Invalid path/);
      // On a case-sensitive file system the variant is another, missing file; where case
      // folds it is the vault, refused by identity: never its bytes.
      const variant = await message(call("fs.read", { path: ".TOKA/TOKA.KV" }));
      assert.match(variant, /No file at|is one of Toka's own files/);
    });

    await t.step("fs.list of the root omits the protected entries", async () => {
      await call("fs.write", { path: "src/main.ts", content: "x" });
      assert.deepEqual(await call("fs.list", {}), { paths: ["src/main.ts"], truncated: false });
    });

    await t.step("the vault and the config are unchanged", async () => {
      assert.equal(await Deno.readTextFile(config), configBefore);
      assert.ok((await Deno.readFile(db)).length >= kvBefore.length);
    });
  } finally {
    await runtime.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test('storage("local") under the project folder never reaches the vault', async (t) => {
  const { dir, db, config } = await project();
  const runtime = await createRuntime({ db, storageRoot: dir, protectedPaths: [config] });
  try {
    const local = runtime.storage("local")!;
    await t.step("get, put, delete and list of .toka are refused or omit it", async () => {
      assert.match(await message(local.get(".toka/toka.kv")), PROTECTED);
      assert.match(await message(local.put(".toka/toka.kv", "x")), PROTECTED);
      assert.match(await message(local.delete(".toka/toka.kv")), PROTECTED);
      assert.match(await message(local.put("toka.json", "{}")), PROTECTED);
      await Deno.link(db, join(dir, "copy.db"));
      assert.match(await message(local.get("copy.db")), PROTECTED);
      await local.put("notes/a.txt", "a");
      assert.deepEqual(await local.list(), ["notes/a.txt"]);
    });
  } finally {
    await runtime.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("createFsTools and createLocalStorage take protectedPaths", async (t) => {
  const dir = await Deno.realPath(await Deno.makeTempDir());
  try {
    const vault = join(dir, "data", "v.kv");
    await Deno.mkdir(join(dir, "data"));
    await Deno.writeTextFile(vault, "SECRET");
    const protectedPaths = [vault, join(dir, "data")];
    for (const mode of ["fd", "checked"] as const) {
      await t.step(`fs tools, ${mode} mode`, async () => {
        const tools = new ToolRegistry({
          tools: createFsTools({ root: dir, protectedPaths, mode }),
        });
        assert.match(await message(tools.call("fs.read", { path: "data/v.kv" })), PROTECTED);
        // A file that does not exist yet beside it: protected by its folder.
        assert.match(
          await message(tools.call("fs.write", { path: "data/v.kv-wal", content: "x" })),
          PROTECTED,
        );
        await Deno.link(vault, join(dir, "hard"));
        assert.match(await message(tools.call("fs.read", { path: "hard" })), PROTECTED);
        await Deno.remove(join(dir, "hard"));
        await tools.call("fs.write", { path: "ok.txt", content: "fine" });
        assert.deepEqual(await tools.call("fs.list", {}), { paths: ["ok.txt"], truncated: false });
        await tools.call("fs.delete", { path: "ok.txt" });
      });
    }
    await t.step("a vault whose -wal is not made yet: its place is refused", async () => {
      const root = join(dir, "flat");
      await Deno.mkdir(root);
      await Deno.writeTextFile(join(root, "v.kv"), "SECRET");
      const tools = new ToolRegistry({
        tools: createFsTools({
          root,
          protectedPaths: [join(root, "v.kv"), join(root, "v.kv-wal")],
        }),
      });
      assert.match(
        await message(tools.call("fs.write", { path: "v.kv-wal", content: "x" })),
        PROTECTED,
      );
      await assert.rejects(Deno.stat(join(root, "v.kv-wal")), Deno.errors.NotFound);
    });
    await t.step("local storage", async () => {
      const storage = createLocalStorage(dir, { protectedPaths });
      assert.match(await message(storage.get("data/v.kv")), PROTECTED);
    });
    await t.step(
      "a root inside a protected folder still works, the files stay refused",
      async () => {
        await Deno.link(vault, join(dir, "data", "hard"));
        const storage = createLocalStorage(join(dir, "data"), { protectedPaths });
        await storage.put("mine.txt", "ok");
        assert.equal(new TextDecoder().decode(await storage.get("mine.txt")), "ok");
        assert.match(await message(storage.get("v.kv")), PROTECTED);
        assert.match(await message(storage.get("hard")), PROTECTED);
        assert.deepEqual(await storage.list(), ["mine.txt"]);
      },
    );
    await t.step("protectedPaths is checked", () => {
      assert.throws(() => createFsTools({ root: dir, protectedPaths: [""] }), TypeError);
      assert.throws(
        () => createLocalStorage(dir, { protectedPaths: "x" as unknown as string[] }),
        TypeError,
      );
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("toka tool run with the project as storage root refuses the vault and toka.json", async () => {
  const { dir, db, config } = await project();
  try {
    const toka = async (args: string[], env: Record<string, string> = {}) => {
      const io = recordingIo({ env });
      const code = await main(["--config", config, "--db", db, ...args], io);
      assert.ok(hasNoStackTrace(io), io.err.join(""));
      return { code, out: io.out.join(""), err: io.err.join("") };
    };
    const issued = await toka(["auth", "issue", "--sub", "me", "--perm", "tool:fs.*:invoke"]);
    assert.equal(issued.code, 0, issued.err);
    const env = { TOKA_TOKEN: issued.out.trim() };
    const before = await Deno.readTextFile(config);
    const read = await toka(
      ["tool", "run", "fs.read", "--input", '{"path":".toka/toka.kv","encoding":"base64"}'],
      env,
    );
    assert.notEqual(read.code, 0);
    assert.match(read.err, PROTECTED);
    const write = await toka(
      ["tool", "run", "fs.write", "--input", '{"path":"toka.json","content":"{}"}'],
      env,
    );
    assert.notEqual(write.code, 0);
    assert.match(write.err, PROTECTED);
    assert.equal(await Deno.readTextFile(config), before);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
