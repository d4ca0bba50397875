// Crash safety of the Deno KV store: a process appending in a loop is killed
// with SIGKILL; every append it acknowledged is on disk, whole, and the store
// continues with the right versions.
import assert from "node:assert/strict";
import { type EventRecord, openVault } from "../../vault/mod.ts";

const WORKER = new URL("./_append_worker.ts", import.meta.url).pathname;
const STREAMS = 5;

interface Ack {
  s: string;
  v: number;
  ids: string[];
  big: number[];
}

/** Starts the worker, reads acknowledgements until `acks` were seen, kills it, drains the rest. */
async function appendThenKill(path: string, acks: number): Promise<Ack[]> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--unstable-kv", WORKER, path, String(STREAMS)],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  const seen: Ack[] = [];
  const decoder = new TextDecoder();
  let buffered = "";
  let killed = false;
  // Keep reading after the kill: lines written before it were acknowledged too.
  for await (const chunk of child.stdout) {
    buffered += decoder.decode(chunk, { stream: true });
    let newline: number;
    while ((newline = buffered.indexOf("\n")) >= 0) {
      seen.push(JSON.parse(buffered.slice(0, newline)));
      buffered = buffered.slice(newline + 1);
    }
    if (!killed && seen.length >= acks) {
      child.kill("SIGKILL");
      killed = true;
    }
  }
  const status = await child.status;
  const errors = await stderr;
  assert.ok(killed, `the worker ended before ${acks} acknowledgements: ${errors}`);
  assert.equal(status.signal, "SIGKILL", `the worker was not killed but ended: ${errors}`);
  // A line cut short by the kill was never acknowledged; everything before it was.
  return seen;
}

async function collect(iterator: AsyncIterable<EventRecord>): Promise<EventRecord[]> {
  const out: EventRecord[] = [];
  for await (const record of iterator) out.push(record);
  return out;
}

function checkPayload(record: EventRecord, big: boolean): void {
  const payload = record.payload as { s: string; v: number; fill?: string };
  assert.equal(payload.s, record.stream, `payload of ${record.id}`);
  assert.equal(payload.v, record.version, `payload of ${record.id}`);
  if (big) {
    assert.equal(record.kind, "crash.big");
    assert.equal(payload.fill?.length, 9000 + record.version % 7);
    assert.ok(payload.fill?.startsWith(`${record.stream}:${record.version}:x`));
  }
}

Deno.test("crash: every acknowledged append survives SIGKILL, nothing partial, appends continue", {
  sanitizeResources: true,
  sanitizeOps: true,
}, async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/crash.kv`;
  try {
    // Every acknowledged append, per stream, over all runs.
    const acked = new Map<string, Map<number, { id: string; big: boolean }>>();
    const killAt = [300, 137, 420];
    for (const [run, acks] of killAt.entries()) {
      const lines = await appendThenKill(path, acks);
      assert.ok(lines.length >= acks);
      for (const line of lines) {
        let versions = acked.get(line.s);
        if (versions === undefined) acked.set(line.s, versions = new Map());
        const first = line.v - line.ids.length + 1;
        for (const [i, id] of line.ids.entries()) {
          assert.ok(!versions.has(first + i), `version ${first + i} of ${line.s} acked twice`);
          versions.set(first + i, { id, big: line.big.includes(i) });
        }
      }

      const store = await openVault(path);
      try {
        // No event is partial: every stored event parses and its blob loads.
        const all = await collect(store.read());
        const bigSeen = all.filter((e) => e.kind === "crash.big").length;
        for (const record of all) checkPayload(record, record.kind === "crash.big");
        assert.ok(bigSeen > 0, "some appends used a chunked blob");
        assert.deepEqual(
          all.map((e) => Number(e.position)),
          all.map((_, i) => i + 1),
          "positions have no gap",
        );

        let total = 0;
        for (let n = 0; n < STREAMS; n++) {
          const stream = `crash/s${n}`;
          const events = await collect(store.readStream(stream));
          total += events.length;
          assert.deepEqual(
            events.map((e) => e.version),
            events.map((_, i) => i + 1),
            `${stream} has versions 1..N with no gap (run ${run})`,
          );
          const versions = acked.get(stream) ?? new Map();
          // Appends in flight at the kill may be stored without an acknowledgement,
          // but every acknowledged one is there, with its id.
          assert.ok(events.length >= versions.size, `${stream} lost acknowledged events`);
          for (const [version, { id, big }] of versions) {
            const event = events[version - 1];
            assert.equal(event?.id, id, `${stream} v${version} is the acknowledged event`);
            const got = await store.get(id);
            assert.ok(got !== null, `get(${id}) finds the acknowledged event`);
            assert.equal(got.stream, stream);
            assert.equal(got.version, version);
            checkPayload(got, big);
          }
          // Learn what was stored beyond the acknowledgements, to check it next run.
          for (const event of events) {
            if (!versions.has(event.version)) {
              versions.set(event.version, { id: event.id, big: event.kind === "crash.big" });
            }
          }
          acked.set(stream, versions);
        }
        assert.equal(total, all.length, "every event belongs to a worker stream");

        // Big payloads really went through chunked blobs (orphans of killed appends may add more).
        let blobs = 0;
        for await (const _ of store.kv.list({ prefix: ["vault", "blob"] })) blobs++;
        assert.ok(blobs >= bigSeen, `${blobs} blobs for ${bigSeen} big events`);

        const report = await store.verify();
        assert.deepEqual(report, { ok: true, checked: all.length, problems: [] });

        // Appending continues with the right next versions, from this process.
        if (run === killAt.length - 1) {
          for (let n = 0; n < STREAMS; n++) {
            const stream = `crash/s${n}`;
            const version = acked.get(stream)?.size ?? 0;
            const result = await store.append(stream, [{ kind: "crash.after" }], {
              expectedVersion: version,
            });
            assert.equal(result.version, version + 1);
            await assert.rejects(
              store.append(stream, [{ kind: "crash.after" }], { expectedVersion: version }),
              { name: "VersionConflictError" },
            );
          }
          assert.equal((await store.verify()).ok, true);
        }
      } finally {
        await store.close();
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
