// One SIGINT stops a long command cleanly: it says how far it got and exits 130, and what is
// stored stays intact. Real processes (`deno run cli.ts`) sent a real SIGINT once the work
// has visibly started.
import assert from "node:assert/strict";
import { main } from "../../cli.ts";
import { openVault } from "../../vault/mod.ts";
import type { EventStore } from "../../runtime/log/event_store.ts";
import { opener, recordingIo, unclosable } from "./_fakes.ts";

const CLI = new URL("../../cli.ts", import.meta.url).pathname;
const TIMEOUT_MS = 120_000;

/** Writes `count` events to a vault file and returns their export. */
async function fill(db: string, count: number): Promise<string> {
  const vault = await openVault(db);
  try {
    for (let n = 0; n < count; n += 500) {
      await vault.append(
        `s-${(n / 500) % 5}`,
        Array.from({ length: Math.min(500, count - n) }, (_, i) => ({
          kind: "test.event",
          payload: { n: n + i, text: "x".repeat(200) },
        })),
      );
    }
    return (await Array.fromAsync(vault.read())).map((e) => `${JSON.stringify(e)}\n`).join("");
  } finally {
    await vault.close();
  }
}

/** Polls until `condition` holds; fails after a generous deadline, never on load alone. */
async function until(what: string, condition: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + TIMEOUT_MS;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * Whether `events import` has started checking its input: it holds its temporary copy open.
 * (By then cli.ts handles SIGINT; a SIGINT handler alone is no sign, as Deno sets and
 * removes one of its own while it starts.)
 */
function checking(pid: number): boolean {
  try {
    for (const fd of Deno.readDirSync(`/proc/${pid}/fd`)) {
      try {
        if (Deno.readLinkSync(`/proc/${pid}/fd/${fd.name}`).includes("toka-import-")) return true;
      } catch {
        // closed meanwhile
      }
    }
  } catch {
    // not started yet, or gone
  }
  return false;
}

async function events(db: string): Promise<number> {
  const vault = await openVault(db, { create: false, check: false });
  try {
    return Number((await vault.head())?.position ?? 0);
  } finally {
    await vault.close();
  }
}

function spawn(
  args: string[],
  options: { stdin?: "piped" | "null"; env?: Record<string, string> } = {},
): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, ...args],
    env: options.env,
    stdin: options.stdin ?? "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

async function text(stream: ReadableStream<Uint8Array>): Promise<string> {
  return await new Response(stream).text();
}

Deno.test("SIGINT stops long commands cleanly", async (t) => {
  const dir = await Deno.makeTempDir();
  try {
    await t.step("import while it checks its input: nothing imported, no vault", async () => {
      const db = `${dir}/never.kv`;
      const child = spawn(["--db", db, "events", "import"], { stdin: "piped" });
      const stderr = text(child.stderr);
      const stdout = text(child.stdout);
      const writer = child.stdin.getWriter();
      await writer.write(new TextEncoder().encode('{"id":"partial'));
      await until("the import checks its input", () => checking(child.pid));
      child.kill("SIGINT");
      const status = await child.status;
      await writer.close().catch(() => {});
      assert.equal(status.code, 130);
      assert.equal(await stdout, "");
      assert.equal(
        await stderr,
        "Interrupted while checking the input; nothing was imported\n",
      );
      assert.equal(await Deno.stat(db).then(() => true, () => false), false);
    });

    await t.step("import while it stores: says how many, and a re-run skips them", async () => {
      const source = `${dir}/source.kv`;
      let lines = "";
      let status: Deno.CommandStatus | undefined;
      let stderr = "";
      const db = `${dir}/copy.kv`;
      // A larger export each time the import finished before it could be interrupted.
      for (let count = 20_000; status?.code !== 130; count *= 2) {
        assert.ok(count <= 320_000, "the import always finished before the interrupt");
        await Deno.remove(source).catch(() => {});
        await Deno.remove(db).catch(() => {});
        lines = await fill(source, count);
        const file = `${dir}/export.jsonl`;
        await Deno.writeTextFile(file, lines);
        const child = spawn(["--db", db, "events", "import"], { stdin: "piped" });
        const output = Promise.all([text(child.stdout), text(child.stderr)]);
        const input = await Deno.open(file);
        const feeding = input.readable.pipeTo(child.stdin);
        let exited = false;
        const done = child.status.finally(() => (exited = true));
        await until(
          "the import stores events",
          async () =>
            exited || (await Deno.stat(db).then(() => true, () => false) && await events(db) > 0),
        );
        child.kill("SIGINT");
        [status] = await Promise.all([done, feeding]);
        stderr = (await output)[1];
      }
      const match = stderr.match(
        /^Interrupted: ([\d,]+) events? stored; run the same import again to skip (?:it|them) and store the rest\n$/,
      );
      assert.ok(match, stderr);
      const stored = Number(match[1].replaceAll(",", ""));
      assert.equal(await events(db), stored);
      const vault = await openVault(db, { create: false });
      try {
        assert.equal((await vault.verify()).ok, true);
      } finally {
        await vault.close();
      }
      const total = lines.split("\n").length - 1;
      const rerun = recordingIo({ stdin: lines });
      assert.equal(await main(["--db", db, "--json", "events", "import"], rerun), 0);
      assert.deepEqual(JSON.parse(rerun.out.join("")), {
        imported: total - stored,
        skipped: stored,
      });
    });

    await t.step("export: complete lines only, and how many", async () => {
      const db = `${dir}/copy.kv`;
      const total = await events(db);
      const child = spawn(["--db", db, "events", "export"]);
      const stderr = text(child.stderr);
      const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
      let out = "";
      let signalled = false;
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        out += value;
        if (!signalled && out.includes("\n")) {
          child.kill("SIGINT");
          signalled = true;
        }
      }
      const status = await child.status;
      assert.equal(status.code, 130, await stderr);
      const lines = out.split("\n");
      assert.equal(lines.pop(), "");
      for (const line of lines) JSON.parse(line);
      assert.equal(
        await stderr,
        `Interrupted after exporting ${lines.length.toLocaleString("en-US")} events of ${
          total.toLocaleString("en-US")
        }; the output is incomplete\n`,
      );
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Whether `events import` has started copying its input: its temporary copy holds bytes. */
function copying(pid: number): boolean {
  try {
    for (const fd of Deno.readDirSync(`/proc/${pid}/fd`)) {
      try {
        const path = `/proc/${pid}/fd/${fd.name}`;
        if (Deno.readLinkSync(path).includes("toka-import-") && Deno.statSync(path).size > 0) {
          return true;
        }
      } catch {
        // closed meanwhile
      }
    }
  } catch {
    // not started yet, or gone
  }
  return false;
}

Deno.test("a killed import leaves no temporary copy behind", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const child = spawn(["--db", `${tmp}/never.kv`, "events", "import"], {
      stdin: "piped",
      env: { TMPDIR: tmp },
    });
    const output = Promise.all([text(child.stdout), text(child.stderr)]);
    const writer = child.stdin.getWriter();
    // Standard input stays open: the import waits for the rest while it holds its copy.
    await writer.write(new TextEncoder().encode('{"id":"partial'));
    await until("the import copies its input", () => copying(child.pid));
    child.kill("SIGKILL");
    assert.equal((await child.status).signal, "SIGKILL");
    await writer.close().catch(() => {});
    await output;
    assert.deepEqual(await Array.fromAsync(Deno.readDir(tmp), (e) => e.name), []);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("an interrupted verify says how far it got and exits 130", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const db = `${dir}/v.kv`;
    await fill(db, 2500);
    const vault = await openVault(db, { create: false });
    const controller = new AbortController();
    // Interrupted once the first 1,000 events are checked, as a user's Ctrl-C would.
    const store: EventStore = unclosable(vault, {
      verify: (options) =>
        vault.verify({
          ...options,
          onProgress: (n) => {
            options?.onProgress?.(n);
            controller.abort();
          },
        }),
    });
    const io = recordingIo({ signal: controller.signal });
    try {
      assert.equal(await main(["events", "verify"], io, { openStore: opener(store) }), 130);
      assert.deepEqual(io.out, []);
      assert.deepEqual(io.errLines(), [
        "Interrupted after checking 1,000 events; nothing was changed, and no problem was reported",
      ]);
    } finally {
      await vault.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
