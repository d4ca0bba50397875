// Several processes on one remote vault, reached over KV Connect through the
// test server: the one check per group commit travels as a protocol Check, and
// appends to one stream with expected versions must still serialise with no gap
// or duplicate, and a subscriber must see every other process's append.
import assert from "node:assert/strict";
import { openVault } from "../../vault/mod.ts";
import { KvConnectServer, useTestToken } from "./_kv_connect_server.ts";
import {
  checkContendedStream,
  followOtherProcesses,
  startWorker,
  type WorkerResult,
} from "./_multi_process.ts";

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

/** Runs `body` with a KV Connect server and the token `Deno.openKv` reads set in this process. */
async function withServer(
  body: (server: KvConnectServer, token: string) => Promise<void>,
): Promise<void> {
  const token = useTestToken();
  const server = await KvConnectServer.start({ accessToken: token });
  try {
    await body(server, token);
  } finally {
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
        workers.map((w) =>
          startWorker(gate.url("shared"), "shared", w, K, {
            env: { DENO_KV_ACCESS_TOKEN: token },
            timeoutMs: 30_000,
          })
        ),
      );
    } finally {
      await gate.close();
    }
    assert.ok(gate.together, "the workers did not open the vault together");
    // The children's commits went over the wire, not to some local file.
    assert.ok(server.served.atomic_write - writesBefore >= workers.length * K);

    // Opened together, each worker first reads the stream and appends with
    // the version read, so the losers of each commit race see a conflict; in
    // practice two workers see dozens. Interleaving is not expected: over this
    // serialised path the winner needs one round trip per append and a loser
    // two (re-read, commit), so the log comes out as one block per worker.
    const store = await openVault(server.url("shared"));
    try {
      await checkContendedStream(store, "shared", results, K);
    } finally {
      await store.close();
    }
  });
});

Deno.test("remote multi-process: a subscriber sees other processes' appends", async () => {
  await withServer(async (server, token) => {
    const url = await server.create("follow");
    const store = await openVault(url);
    try {
      await followOtherProcesses(
        store,
        60,
        (stream, w) => startWorker(url, stream, w, 60, { env: { DENO_KV_ACCESS_TOKEN: token } }),
      );
    } finally {
      await store.close();
    }
  });
});
