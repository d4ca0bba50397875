// http.fetch connects to the addresses that passed its check (issue 17 item 4):
// a resolver that answers differently the second time (DNS rebinding) does not
// move the request, each redirect hop is resolved and checked again, HTTPS
// still verifies the certificate for the host name, and proxy variables never
// divert a request. Every server here is on loopback: 127.0.0.2 stands for the
// address that passed the check (listed in allowPrivate), 127.0.0.1 for the one
// a rebinding DNS answer points to, which must never be reached.
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { createHttpFetchTool, ToolRegistry } from "../../toolkit/mod.ts";

type Hit = { path: string; host: string | null };

function recordingServer(
  hostname: string,
  port: number,
  hits: Hit[],
  handler: (path: string) => Response,
  tls?: { cert: string; key: string },
): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve({ hostname, port, onListen() {}, ...tls }, (req) => {
    const path = new URL(req.url).pathname;
    hits.push({ path, host: req.headers.get("host") });
    return handler(path);
  });
}

/** Two servers on one port: 127.0.0.2 (checked) and 127.0.0.1 (rebound to). */
function serverPair(
  checkedHits: Hit[],
  reboundHits: Hit[],
  handler: (path: string) => Response,
  tls?: { cert: string; key: string },
): Deno.HttpServer<Deno.NetAddr>[] {
  for (let attempt = 0;; attempt++) {
    const checked = recordingServer("127.0.0.2", 0, checkedHits, handler, tls);
    try {
      const rebound = recordingServer(
        "127.0.0.1",
        checked.addr.port,
        reboundHits,
        () => new Response("rebound"),
        tls,
      );
      return [checked, rebound];
    } catch (error) {
      // The port is taken on 127.0.0.1: try another.
      checked.shutdown();
      if (attempt > 20 || !(error instanceof Deno.errors.AddrInUse)) throw error;
    }
  }
}

/** A resolver that answers `first` once, then `later` (the rebinding). */
function rebinding(first: string[], later: string[]) {
  const calls: string[] = [];
  const resolve = (host: string) => {
    calls.push(host);
    return Promise.resolve(calls.length === 1 ? first : later);
  };
  return { calls, resolve };
}

async function message(call: Promise<unknown>): Promise<string> {
  const error = await call.then(() => undefined, (e: unknown) => e);
  assert.ok(error instanceof Error, "the call failed");
  return error.message;
}

Deno.test("http.fetch connects to the checked address", async (t) => {
  const checkedHits: Hit[] = [];
  const reboundHits: Hit[] = [];
  const servers = serverPair(checkedHits, reboundHits, (path) => {
    if (path === "/hop") return new Response(null, { status: 302, headers: { location: "/x" } });
    if (path === "/elsewhere") {
      return new Response(null, {
        status: 302,
        headers: { location: `http://other.test:${port}/x` },
      });
    }
    return new Response("checked");
  });
  const port = servers[0].addr.port;
  const tool = (resolve: (host: string) => Promise<string[]>) =>
    new ToolRegistry({
      tools: [createHttpFetchTool({
        allow: ["rebind.test", "other.test"],
        allowPrivate: ["127.0.0.2"],
        resolve,
      })],
    });
  try {
    await t.step("a second, different DNS answer does not move the request", async () => {
      const dns = rebinding(["127.0.0.2"], ["127.0.0.1"]);
      const out = await tool(dns.resolve).call("http.fetch", {
        url: `http://rebind.test:${port}/x`,
      }) as { status: number; body: string };
      assert.equal(out.body, "checked");
      assert.deepEqual(checkedHits, [{ path: "/x", host: `rebind.test:${port}` }]);
      assert.deepEqual(reboundHits, []);
      assert.deepEqual(dns.calls, ["rebind.test"], "resolved once, for the check");
    });

    await t.step("each redirect hop is resolved and checked again", async () => {
      checkedHits.length = 0;
      const same = rebinding(["127.0.0.2"], ["127.0.0.1"]);
      assert.equal(
        await message(
          tool(same.resolve).call("http.fetch", { url: `http://rebind.test:${port}/hop` }),
        ),
        'Tool "http.fetch" failed: Redirect to host "rebind.test" has the loopback address 127.0.0.1: list the host in allowPrivate to reach it',
      );
      assert.deepEqual(same.calls, ["rebind.test", "rebind.test"]);
      const other = rebinding(["127.0.0.2"], ["127.0.0.1"]);
      assert.equal(
        await message(
          tool(other.resolve).call("http.fetch", { url: `http://rebind.test:${port}/elsewhere` }),
        ),
        'Tool "http.fetch" failed: Redirect to host "other.test" has the loopback address 127.0.0.1: list the host in allowPrivate to reach it',
      );
      assert.deepEqual(other.calls, ["rebind.test", "other.test"]);
      // A hop whose answer passes is pinned too.
      const steady = rebinding(["127.0.0.2"], ["127.0.0.2"]);
      const out = await tool(steady.resolve).call("http.fetch", {
        url: `http://rebind.test:${port}/elsewhere`,
      }) as { body: string; redirects: number };
      assert.equal(out.body, "checked");
      assert.equal(out.redirects, 1);
      assert.deepEqual(checkedHits.map((hit) => hit.host), [
        `rebind.test:${port}`,
        `rebind.test:${port}`,
        `rebind.test:${port}`,
        `other.test:${port}`,
      ]);
      assert.deepEqual(reboundHits, []);
    });
  } finally {
    await Promise.all(servers.map((server) => server.shutdown()));
  }
});

const CHILD = fileURLToPath(new URL("./_http_fetch_child.ts", import.meta.url));
const TESTDATA = new URL("./testdata/", import.meta.url);

async function child(
  config: Record<string, unknown>,
  env: Record<string, string>,
): Promise<{ status?: number; body?: string; error?: string }> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CHILD, JSON.stringify(config)],
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(code, 0, new TextDecoder().decode(stderr));
  return JSON.parse(new TextDecoder().decode(stdout).trim().split("\n").at(-1)!);
}

Deno.test("http.fetch ignores proxy variables", async () => {
  const proxyHits: Hit[] = [];
  const directHits: Hit[] = [];
  const proxy = recordingServer("127.0.0.3", 0, proxyHits, () => new Response("proxy"));
  const direct = recordingServer("127.0.0.1", 0, directHits, () => new Response("direct"));
  try {
    const proxyUrl = `http://127.0.0.3:${proxy.addr.port}`;
    const out = await child(
      { url: `http://127.0.0.1:${direct.addr.port}/x`, allowPrivate: ["127.0.0.1"] },
      {
        HTTP_PROXY: proxyUrl,
        http_proxy: proxyUrl,
        HTTPS_PROXY: proxyUrl,
        https_proxy: proxyUrl,
        ALL_PROXY: proxyUrl,
        all_proxy: proxyUrl,
      },
    );
    assert.deepEqual(out, { status: 200, body: "direct" });
    assert.deepEqual(proxyHits, []);
    assert.equal(directHits.length, 1);
  } finally {
    await Promise.all([proxy.shutdown(), direct.shutdown()]);
  }
});

Deno.test("https: the pinned connection still checks the certificate for the host name", async (t) => {
  const tls = {
    cert: await Deno.readTextFile(new URL("http_fetch_server.pem", TESTDATA)),
    key: await Deno.readTextFile(new URL("http_fetch_server.key", TESTDATA)),
  };
  const checkedHits: Hit[] = [];
  const reboundHits: Hit[] = [];
  const servers = serverPair(checkedHits, reboundHits, () => new Response("secure"), tls);
  const port = servers[0].addr.port;
  // The test CA is trusted through the variable that node:https reads, in Deno and Node alike.
  const env = { NODE_EXTRA_CA_CERTS: fileURLToPath(new URL("http_fetch_ca.pem", TESTDATA)) };
  const answers = { "api.example.test": ["127.0.0.2"], "other.example.test": ["127.0.0.2"] };
  const config = { allow: ["*.example.test"], allowPrivate: ["127.0.0.2"], answers };
  try {
    await t.step(
      "the certificate's name is the URL's host, the address the checked one",
      async () => {
        const out = await child({ ...config, url: `https://api.example.test:${port}/x` }, env);
        assert.deepEqual(out, { status: 200, body: "secure" });
        assert.deepEqual(checkedHits, [{ path: "/x", host: `api.example.test:${port}` }]);
      },
    );
    await t.step("a certificate for another name is refused", async () => {
      const out = await child({ ...config, url: `https://other.example.test:${port}/x` }, env);
      assert.deepEqual(out, {
        error: 'Tool "http.fetch" failed: Request to host "other.example.test" failed: TLS error',
      });
    });
    assert.deepEqual(reboundHits, []);
  } finally {
    await Promise.all(servers.map((server) => server.shutdown()));
  }
});
