// What the multi-process tests share, on a local file (multi_process_test.ts)
// and on a remote vault (remote_multi_process_test.ts): the contending worker
// and the checks of what several processes wrote.
import assert from "node:assert/strict";
import type { EventRecord, EventStore } from "../../runtime/log/event_store.ts";

const WORKER = new URL("./_contend_worker.ts", import.meta.url).pathname;

/** What `_contend_worker.ts` prints. */
export interface WorkerResult {
  worker: string;
  ids: string[];
  conflicts: number;
}

/**
 * Runs a worker appending `k` events to `stream` of the vault at `location`
 * (a path or a URL) to its end; kills it and fails after `timeoutMs` (a
 * livelock, say). "database is locked" must never surface.
 */
export async function startWorker(
  location: string,
  stream: string,
  worker: string,
  k: number,
  options: { env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<WorkerResult> {
  const timeoutMs = options.timeoutMs ?? 60_000;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--unstable-kv", WORKER, location, stream, worker, String(k)],
    env: options.env,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill("SIGKILL");
  }, timeoutMs);
  const out = await child.output();
  clearTimeout(timer);
  const stderr = new TextDecoder().decode(out.stderr);
  assert.ok(!timedOut, `worker ${worker} did not finish within ${timeoutMs} ms: ${stderr}`);
  assert.equal(out.code, 0, `worker ${worker} failed: ${stderr}`);
  assert.ok(!/locked|busy/i.test(stderr), stderr);
  return JSON.parse(new TextDecoder().decode(out.stdout)) as WorkerResult;
}

export async function collect(iterator: AsyncIterable<EventRecord>): Promise<EventRecord[]> {
  const out: EventRecord[] = [];
  for await (const record of iterator) out.push(record);
  return out;
}

/**
 * Checks what workers that each appended `k` events to `stream` with expected
 * versions left in `store`: versions exactly 1..N, each worker's events once
 * and in its order, at least one conflict (otherwise the test proved
 * nothing), the whole log without a gap, and this process continuing after.
 */
export async function checkContendedStream(
  store: EventStore,
  stream: string,
  results: WorkerResult[],
  k: number,
): Promise<void> {
  const events = await collect(store.readStream(stream));
  const n = k * results.length;
  assert.deepEqual(
    events.map((e) => e.version),
    Array.from({ length: n }, (_, i) => i + 1),
    "versions are exactly 1..N",
  );
  assert.equal(new Set(events.map((e) => e.id)).size, n, "no duplicate");
  const byId = new Map(events.map((e) => [e.id, e]));
  for (const { worker, ids } of results) {
    assert.equal(ids.length, k);
    for (const id of ids) assert.equal(byId.get(id)?.stream, stream, `${id} is stored`);
    const mine = events.filter((e) => e.meta.worker === worker);
    assert.deepEqual(mine.map((e) => e.id), ids, `worker ${worker}'s events, in its order`);
    assert.deepEqual(
      mine.map((e) => (e.payload as { n: number }).n),
      Array.from({ length: k }, (_, i) => i),
    );
  }
  assert.ok(results.some((r) => r.conflicts > 0), "no worker saw a version conflict");
  // Positions are the whole log, with no gap.
  const all = await collect(store.read());
  assert.deepEqual(all.map((e) => Number(e.position)), events.map((_, i) => i + 1));
  assert.deepEqual(await store.verify(), { ok: true, checked: n, problems: [] });
  const next = await store.append(stream, [{ kind: "contend.after" }], { expectedVersion: n });
  assert.equal(next.version, n + 1);
}

/**
 * Subscribes to `store` (which holds nothing yet), appends one event itself,
 * has two workers append `k` events each to stream "remote" (`run`), and
 * checks the subscriber saw every append once, in position order, then one
 * more local append after them.
 */
export async function followOtherProcesses(
  store: EventStore,
  k: number,
  run: (stream: string, worker: string) => Promise<WorkerResult>,
): Promise<void> {
  await store.append("local", [{ kind: "local.before" }]);
  const controller = new AbortController();
  const seen: EventRecord[] = [];
  const { promise: allSeen, resolve: resolveAll } = Promise.withResolvers<void>();
  const following = (async () => {
    for await (const record of store.subscribe({ signal: controller.signal })) {
      seen.push(record);
      if (seen.length === 1 + 2 * k) resolveAll();
    }
  })();
  try {
    const results = await Promise.all([run("remote", "x"), run("remote", "y")]);
    const timeout = setTimeout(() => controller.abort(), 10_000);
    await Promise.race([allSeen, following]);
    clearTimeout(timeout);
    assert.equal(seen.length, 1 + 2 * k, "every append was delivered before the timeout");
    assert.deepEqual(
      seen.map((e) => Number(e.position)),
      seen.map((_, i) => i + 1),
      "in position order, no gap, no duplicate",
    );
    assert.equal(seen[0].kind, "local.before");
    const delivered = new Set(seen.map((e) => e.id));
    for (const { ids } of results) for (const id of ids) assert.ok(delivered.has(id));
    assert.deepEqual(
      seen.slice(1).map((e) => e.version),
      Array.from({ length: 2 * k }, (_, i) => i + 1),
    );
    // A local append after them still reaches the subscriber, at the next position.
    const local = await store.append("local", [{ kind: "local.after" }], { expectedVersion: 1 });
    assert.equal(local.position, String(2 + 2 * k).padStart(16, "0"));
    const deadline = Date.now() + 5_000;
    while (seen.length < 2 + 2 * k && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(seen.at(-1)?.id, local.events[0].id);
  } finally {
    controller.abort();
    await following;
  }
}
