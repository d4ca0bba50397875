// `events import` in bounded memory and in batches: a line without end is refused once it is
// too long (without reading the rest), an export larger than a batch keeps ids, versions,
// positions and digests, and the copy of standard input it checks is always removed.
import assert from "node:assert/strict";
import { main } from "../../cli.ts";
import { importEvents, MAX_LINE_BYTES, type Spool } from "../../cli/_events_import.ts";
import { defaultSettings } from "../../cli/_config.ts";
import { MemoryEventStore, openVault } from "../../vault/mod.ts";
import type { EventRecord } from "../../runtime/log/event_store.ts";
import { recordDigest } from "../../runtime/log/event_rules.ts";
import { hasNoStackTrace, opener, recordingIo, unclosable } from "./_fakes.ts";

/** 50 MiB of one line without a newline, made as it is read; counts what was read. */
function endlessLine(): { stream: ReadableStream<Uint8Array>; read(): number } {
  const chunk = new TextEncoder().encode(`{"id":"${"x".repeat(1024 * 1024 - 7)}`);
  let read = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (read >= 50 * 1024 * 1024) controller.close();
      else {
        read += chunk.length;
        controller.enqueue(chunk);
      }
    },
  });
  return { stream, read: () => read };
}

/** An export of `count` events over a few streams, some with parents in earlier batches. */
async function exportOf(count: number): Promise<EventRecord[]> {
  const source = new MemoryEventStore();
  let first: string | undefined;
  for (let n = 0; n < count; n += 100) {
    const events = Array.from({ length: Math.min(100, count - n) }, (_, i) => ({
      kind: "test.event",
      payload: { n: n + i, text: "é€".repeat(8) },
      parents: first === undefined || i > 0 ? [] : [first],
    }));
    const result = await source.append(`s-${(n / 100) % 7}`, events);
    first ??= result.events[0].id;
  }
  const records = await Array.fromAsync(source.read());
  await source.close();
  return records;
}

Deno.test("events import in bounded memory and batches", async (t) => {
  const dir = await Deno.makeTempDir();
  try {
    await t.step("a 50 MB line without a newline is refused once it is too long", async () => {
      const db = `${dir}/long.kv`;
      const line = endlessLine();
      const io = recordingIo();
      const code = await main(["--db", db, "events", "import"], { ...io, stdin: line.stream });
      assert.equal(code, 1);
      assert.deepEqual(io.errLines(), [
        `error: Line 1 is longer than ${
          MAX_LINE_BYTES.toLocaleString("en-US")
        } bytes; nothing was imported`,
      ]);
      assert.ok(line.read() <= MAX_LINE_BYTES + 2 * 1024 * 1024, `read ${line.read()} bytes`);
      assert.equal(await Deno.stat(db).then(() => true, () => false), false);
    });

    const records = await exportOf(4500);
    const text = records.map((r) => JSON.stringify(r)).join("\n") + "\n";
    const db = `${dir}/copy.kv`;

    await t.step("an export larger than a batch keeps ids, positions and digests", async () => {
      // Cut into uneven chunks, mid-line and mid-character.
      const chunks: string[] = [];
      for (let at = 0; at < text.length; at += 70_001) chunks.push(text.slice(at, at + 70_001));
      const io = recordingIo({ stdin: chunks });
      assert.equal(await main(["--db", db, "events", "import"], io), 0, io.err.join(""));
      assert.deepEqual(io.outLines(), ["Imported 4500 events, skipped 0 already stored"]);
      assert.deepEqual(io.err, []);
      const vault = await openVault(db, { create: false });
      try {
        assert.deepEqual(await Array.fromAsync(vault.read()), records);
        assert.deepEqual((await vault.verify()).ok, true);
      } finally {
        await vault.close();
      }
    });

    await t.step("a re-run skips every stored event", async () => {
      const io = recordingIo({ stdin: text });
      assert.equal(await main(["--db", db, "--json", "events", "import"], io), 0);
      assert.deepEqual(JSON.parse(io.out.join("")), { imported: 0, skipped: 4500 });
    });

    await t.step("a refused line in a later batch names its line and what was stored", async () => {
      const lines = text.trimEnd().split("\n");
      const bad = { ...records[3000], payload: { n: -1 } };
      lines[3000] = JSON.stringify(bad);
      const fresh = `${dir}/refused.kv`;
      const io = recordingIo({ stdin: lines.join("\n") });
      assert.equal(await main(["--db", fresh, "events", "import"], io), 1);
      assert.ok(hasNoStackTrace(io));
      assert.equal(io.errLines().length, 1);
      assert.match(
        io.errLines()[0],
        /^error: Invalid record on line 3001: digest does not match .*; the 3000 events before it are stored, and a re-run skips them$/,
      );
      const vault = await openVault(fresh, { create: false });
      try {
        assert.equal((await vault.stats()).events, 3000);
        assert.equal((await vault.verify()).ok, true);
      } finally {
        await vault.close();
      }
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("events import refuses a timestamp no Date holds, though its digest matches", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const db = `${dir}/v.kv`;
    const emitted = recordingIo();
    assert.equal(await main(["--db", db, "emit", "a.b", "--payload", '{"n":1}'], emitted), 0);
    const [record] = await exportOf(1);
    // Forged as an attacker would: the digest recomputed over the new timestamp.
    const forged = { ...record, timestamp: 1e16 };
    forged.digest = recordDigest(
      {
        ...forged,
        position: Number(forged.position),
        canonicalPayload: JSON.stringify(forged.payload),
      },
      [],
      null,
    );
    const io = recordingIo({ stdin: `${JSON.stringify(forged)}\n` });
    assert.equal(await main(["--db", db, "events", "import"], io), 1);
    assert.ok(hasNoStackTrace(io));
    assert.deepEqual(io.errLines(), [
      'error: Invalid record on line 1: "timestamp" is not a whole number of milliseconds from 0 to 8640000000000000; nothing was imported',
    ]);
    const listed = recordingIo();
    assert.equal(await main(["--db", db, "events", "list"], listed), 0, listed.err.join(""));
    assert.equal(listed.outLines().length, 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("events import names a line whose payload has a lone surrogate", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const db = `${dir}/v.kv`;
    const [first, second] = await exportOf(2);
    // JSON text may spell a lone surrogate ("\ud800"); it is not Unicode text and has no
    // canonical form, so no digest can cover it.
    const bad = { ...second, payload: { text: "a\uD800" } };
    const io = recordingIo({ stdin: `${JSON.stringify(first)}\n${JSON.stringify(bad)}\n` });
    assert.equal(await main(["--db", db, "events", "import"], io), 1);
    assert.ok(hasNoStackTrace(io));
    assert.deepEqual(io.errLines(), [
      "error: Invalid record on line 2: Invalid payload of event 0: $.text has a lone surrogate U+D800 at index 1, not valid Unicode; the 1 event before it is stored, and a re-run skips it",
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("events import reports a full disk as what it is", async (t) => {
  const records = await exportOf(4500);
  const text = records.map((r) => JSON.stringify(r)).join("\n") + "\n";

  await t.step("while it writes its temporary copy: nothing imported, no vault", async () => {
    const io = recordingIo({ stdin: text });
    let opened = false;
    let written = 0;
    // A disk that fills up once the copy holds 100,000 bytes.
    const spool = (): Promise<Spool> =>
      Promise.resolve({
        write: (bytes: Uint8Array) => {
          if (written + bytes.length > 100_000) {
            return Promise.reject(
              Object.assign(new Error("No space left on device (os error 28)"), { code: "ENOSPC" }),
            );
          }
          written += bytes.length;
          return Promise.resolve(bytes.length);
        },
        readBack: () => Promise.reject(new Error("never read back")),
        [Symbol.dispose]: () => {},
      });
    await assert.rejects(
      importEvents({
        io,
        json: false,
        dbLocation: ":memory:",
        settings: { ...defaultSettings(), db: ":memory:" },
        openStore: () => {
          opened = true;
          return Promise.reject(new Error("no vault expected"));
        },
      }, { spool }),
      {
        message:
          "Cannot import: no space left on device while writing the temporary copy; nothing was imported",
      },
    );
    assert.equal(opened, false);
  });

  await t.step("while it stores: says how many are stored, and a re-run skips them", async () => {
    const inner = new MemoryEventStore();
    // What Deno KV throws when SQLite cannot write: full after the first 3,000 events.
    const full = unclosable(inner, {
      importEvents: async (input) => {
        const batch = await Array.fromAsync(input);
        const fits = batch.filter((r) => Number(r.position) <= 3000);
        const result = await inner.importEvents(fits);
        if (fits.length < batch.length) throw new TypeError("database or disk is full");
        return result;
      },
    });
    const io = recordingIo({ stdin: text });
    try {
      assert.equal(await main(["events", "import"], io, { openStore: opener(full) }), 1);
      assert.ok(hasNoStackTrace(io));
      assert.deepEqual(io.errLines(), [
        "error: Cannot import: no space left on device while storing line 3001; the 3000 events before it are stored, and a re-run skips them",
      ]);
      assert.equal((await inner.stats()).events, 3000);
    } finally {
      await inner.close();
    }
  });
});
