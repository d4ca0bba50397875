// Several processes on one remote vault, reached over KV Connect through the
// test server: the one check per group commit travels as a protocol Check, and
// appends to one stream with expected versions must still serialise with no gap
// or duplicate, and a subscriber must see every other process's append.
import assert from "node:assert/strict";
import { type EventRecord, openVault } from "../../vault/mod.ts";
import { KvConnectServer } from "./_kv_connect_server.ts";

const WORKER = new URL("./_contend_worker.ts", import.meta.url).pathname;
const TOKEN_VAR = "DENO_KV_ACCESS_TOKEN";

interface WorkerResult {
  worker: string;
  ids: string[];
  conflicts: number;
}

/** Runs a worker against `url` to its end; kills it and fails after `timeoutMs`. */
async function startWorker(
  url: string,
  token: string,
  stream: string,
  worker: string,
  k: number,
  timeoutMs = 30_000,
): Promise<WorkerResult> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--unstable-kv", WORKER, url, stream, worker, String(k)],
    env: { [TOKEN_VAR]: token },
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
  return JSON.parse(new TextDecoder().decode(out.stdout)) as WorkerResult;
}

/**
 * A pass-through proxy in front of the server that holds metadata exchanges
 * (made within each child's `Deno.openKv`) until `n` have arrived, so the
 * children open the vault together however staggered their start-ups are.
 * Data path requests follow it too: Deno's client resolves the endpoint the
 * server gives, a relative one, against the metadata URL.
 */
function startGate(server: KvConnectServer, n: number) {
  const upstream = new URL(server.url("x")).origin;
  const { promise: opened, resolve: open } = Promise.withResolvers<void>();
  // A child that dies before its open must not hold the others forever.
  const timer = setTimeout(open, 10_000);
  let arrived = 0;
  let together = false;
  const abort = new AbortController();
  const proxy = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: abort.signal, onListen: () => {} },
    async (request) => {
      const { pathname } = new URL(request.url);
      if (pathname.startsWith("/kv/")) {
        // A client makes its second exchange only once its first is answered,
        // so the first n come from n different processes.
        if (++arrived === n) {
          together = true;
          open();
        }
        await opened;
      }
      const headers = new Headers(request.headers);
      for (const name of ["host", "content-length", "connection"]) headers.delete(name);
      const response = await fetch(upstream + pathname, {
        method: request.method,
        headers,
        body: await request.arrayBuffer(),
      });
      return new Response(await response.arrayBuffer(), {
        status: response.status,
        headers: { "content-type": response.headers.get("content-type") ?? "text/plain" },
      });
    },
  );
  return {
    url: (name: string) => `http://127.0.0.1:${proxy.addr.port}/kv/${encodeURIComponent(name)}`,
    /** Whether all `n` arrived before the timeout released them. */
    get together() {
      return together;
    },
    async close() {
      clearTimeout(timer);
      open();
      abort.abort();
      await proxy.finished;
    },
  };
}

async function collect(iterator: AsyncIterable<EventRecord>): Promise<EventRecord[]> {
  const out: EventRecord[] = [];
  for await (const record of iterator) out.push(record);
  return out;
}

/** Runs `body` with a KV Connect server and the token `Deno.openKv` reads set in this process. */
async function withServer(
  body: (server: KvConnectServer, token: string) => Promise<void>,
): Promise<void> {
  const token = crypto.randomUUID();
  const server = await KvConnectServer.start({ accessToken: token });
  const previous = Deno.env.get(TOKEN_VAR);
  Deno.env.set(TOKEN_VAR, token);
  try {
    await body(server, token);
  } finally {
    if (previous === undefined) Deno.env.delete(TOKEN_VAR);
    else Deno.env.set(TOKEN_VAR, previous);
    await server.close();
  }
}

Deno.test("remote multi-process: three processes append to one stream with expected versions", async () => {
  await withServer(async (server, token) => {
    await server.create("shared");
    const K = 150;
    const workers = ["a", "b", "c"];
    const gate = startGate(server, workers.length);
    const writesBefore = server.served.atomic_write;
    let results: WorkerResult[];
    try {
      results = await Promise.all(
        workers.map((w) => startWorker(gate.url("shared"), token, "shared", w, K)),
      );
    } finally {
      await gate.close();
    }
    assert.ok(gate.together, "the workers did not open the vault together");
    // The children's commits went over the wire, not to some local file.
    assert.ok(server.served.atomic_write - writesBefore >= workers.length * K);

    const store = await openVault(server.url("shared"));
    try {
      const events = await collect(store.readStream("shared"));
      const N = K * workers.length;
      assert.deepEqual(
        events.map((e) => e.version),
        Array.from({ length: N }, (_, i) => i + 1),
        "versions are exactly 1..N",
      );
      assert.equal(new Set(events.map((e) => e.id)).size, N, "no duplicate");
      const byId = new Map(events.map((e) => [e.id, e]));
      for (const { worker, ids } of results) {
        assert.equal(ids.length, K);
        for (const id of ids) assert.equal(byId.get(id)?.stream, "shared", `${id} is stored`);
        const mine = events.filter((e) => e.meta.worker === worker);
        assert.deepEqual(mine.map((e) => e.id), ids, `worker ${worker}'s events, in its order`);
        assert.deepEqual(
          mine.map((e) => (e.payload as { n: number }).n),
          Array.from({ length: K }, (_, i) => i),
        );
      }
      // The processes did contend: otherwise this test proves nothing. Opened
      // together, each first reads the stream and appends with the version read,
      // and a worker takes hundreds of ms for its K appends, so the losers of
      // each commit race see a conflict; in practice two workers see dozens.
      // Interleaving is not asserted: over this serialised path the winner needs
      // one round trip per append and a loser two (re-read, commit), so the log
      // comes out as one block per worker.
      assert.ok(results.some((r) => r.conflicts > 0), "no worker saw a version conflict");
      // Positions are the whole log, strictly increasing with no gap.
      const all = await collect(store.read());
      assert.deepEqual(all.map((e) => Number(e.position)), events.map((_, i) => i + 1));
      assert.deepEqual(await store.verify(), { ok: true, checked: N, problems: [] });
      // This process continues where they left off.
      const next = await store.append("shared", [{ kind: "contend.after" }], {
        expectedVersion: N,
      });
      assert.equal(next.version, N + 1);
    } finally {
      await store.close();
    }
  });
});

Deno.test("remote multi-process: a subscriber sees other processes' appends", async () => {
  await withServer(async (server, token) => {
    const url = await server.create("follow");
    const K = 60;
    const store = await openVault(url);
    await store.append("local", [{ kind: "local.before" }]);
    const controller = new AbortController();
    const seen: EventRecord[] = [];
    const { promise: allSeen, resolve: resolveAll } = Promise.withResolvers<void>();
    const following = (async () => {
      for await (const record of store.subscribe({ signal: controller.signal })) {
        seen.push(record);
        if (seen.length === 1 + 2 * K) resolveAll();
      }
    })();
    try {
      const results = await Promise.all([
        startWorker(url, token, "remote", "x", K),
        startWorker(url, token, "remote", "y", K),
      ]);
      const timeout = setTimeout(() => controller.abort(), 10_000);
      await Promise.race([allSeen, following]);
      clearTimeout(timeout);
      assert.equal(seen.length, 1 + 2 * K, "every append was delivered before the timeout");
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
        Array.from({ length: 2 * K }, (_, i) => i + 1),
      );
      // A local append after them lands at the next position, past the others' appends.
      const local = await store.append("local", [{ kind: "local.after" }], { expectedVersion: 1 });
      assert.equal(local.position, String(2 + 2 * K).padStart(16, "0"));
      const deadline = Date.now() + 5_000;
      while (seen.length < 2 + 2 * K && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 10));
      }
      assert.equal(seen.at(-1)?.id, local.events[0].id);
    } finally {
      controller.abort();
      await following;
      await store.close();
    }
  });
});
