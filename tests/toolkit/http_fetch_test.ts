// http.fetch against a Deno.serve on 127.0.0.1 that the test starts. No
// request ever leaves loopback: hosts that are not loopback are refused
// before any connection or DNS query (fake resolvers answer for them).
import assert from "node:assert/strict";
import {
  createHttpFetchTool,
  type HttpFetchOptions,
  ToolInputError,
  ToolRegistry,
} from "../../toolkit/mod.ts";
import { addressClass } from "../../toolkit/_ip.ts";

type Output = {
  url: string;
  status: number;
  statusText: string;
  headers: Record<string, string>;
  body: string;
  encoding: string;
  redirects: number;
};

/** The message of a failed call, checked to be one line. */
async function failure(call: Promise<unknown>): Promise<string> {
  const error = await call.then(() => undefined, (e: unknown) => e);
  assert.ok(error instanceof Error, "the call failed");
  assert.ok(!error.message.includes("\n"), `one line: ${error.message}`);
  return error.message;
}

Deno.test("http.fetch", async (t) => {
  const requests: string[] = [];
  const release = Promise.withResolvers<void>();
  const server: Deno.HttpServer<Deno.NetAddr> = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen() {},
  }, async (req): Promise<Response> => {
    const url = new URL(req.url);
    requests.push(`${req.method} ${url.pathname}`);
    switch (url.pathname) {
      case "/hello":
        return new Response("héllo", {
          headers: [["x-test", "1"], ["set-cookie", "a=1"], ["set-cookie", "b=2"]],
        });
      case "/echo":
        return Response.json({
          method: req.method,
          body: await req.text(),
          auth: req.headers.get("authorization"),
          custom: req.headers.get("x-custom"),
        });
      case "/bin":
        return new Response(new Uint8Array([0, 255, 1]));
      case "/big":
        return new Response("x".repeat(2000));
      case "/big-stream":
        return new Response(
          new ReadableStream({
            start(controller) {
              for (let i = 0; i < 20; i++) {
                controller.enqueue(new TextEncoder().encode("y".repeat(100)));
              }
              controller.close();
            },
          }),
        );
      case "/slow":
        await release.promise;
        return new Response("late");
      case "/to-hello":
        return new Response(null, { status: 302, headers: { location: "/hello" } });
      case "/to-localhost":
        return new Response(null, {
          status: 307,
          headers: { location: `http://localhost:${server.addr.port}/echo` },
        });
      case "/to-outside":
        return new Response(null, {
          status: 302,
          headers: { location: "http://not-allowed.test/steal" },
        });
      case "/to-metadata":
        return new Response(null, {
          status: 302,
          headers: { location: "http://169.254.169.254/latest/meta-data/" },
        });
      case "/to-file":
        return new Response(null, { status: 302, headers: { location: "file:///etc/passwd" } });
      case "/see-other":
        return new Response(null, { status: 303, headers: { location: "/echo" } });
      case "/loop":
        return new Response(null, { status: 302, headers: { location: "/loop" } });
      default:
        return new Response("not found", { status: 404 });
    }
  });
  const port = server.addr.port;
  const base = `http://127.0.0.1:${port}`;
  const tool = (options: HttpFetchOptions) =>
    new ToolRegistry({ tools: [createHttpFetchTool(options)] });
  const local = tool({
    allowPrivate: ["127.0.0.1", "localhost"],
    maxResponseBytes: 1000,
  });
  const fetchOk = async (input: Record<string, unknown>) =>
    await local.call("http.fetch", input) as Output;

  try {
    await t.step("refuses every host by default, sending nothing", async () => {
      const none = tool({});
      assert.equal(
        await failure(none.call("http.fetch", { url: `${base}/hello` })),
        'Tool "http.fetch" failed: Host "127.0.0.1" is not on the http.fetch allowlist',
      );
      assert.deepEqual(requests, []);
      const info = none.list()[0];
      assert.deepEqual(info.permissions, ["tool:http.fetch:invoke"]);
      assert.equal(info.annotations?.openWorldHint, true);
      assert.equal(info.annotations?.readOnlyHint, false);
      assert.equal(info.outputSchema?.type, "object");
    });

    await t.step("GET returns status, headers and the body as text", async () => {
      const out = await fetchOk({ url: `${base}/hello` });
      assert.equal(out.status, 200);
      assert.equal(out.statusText, "OK");
      assert.equal(out.body, "héllo");
      assert.equal(out.encoding, "utf8");
      assert.equal(out.headers["x-test"], "1");
      assert.equal(out.headers["set-cookie"], "a=1, b=2");
      assert.equal(out.url, `${base}/hello`);
      assert.equal(out.redirects, 0);
      const missing = await fetchOk({ url: `${base}/nope` });
      assert.equal(missing.status, 404);
      assert.equal(missing.body, "not found");
    });

    await t.step("method, headers and body; base64 both ways", async () => {
      const out = await fetchOk({
        url: `${base}/echo`,
        method: "POST",
        headers: { "x-custom": "yes" },
        body: "payload ✓",
      });
      assert.deepEqual(JSON.parse(out.body), {
        method: "POST",
        body: "payload ✓",
        auth: null,
        custom: "yes",
      });
      const raw = await fetchOk({
        url: `${base}/echo`,
        method: "PUT",
        body: btoa("abc"),
        bodyEncoding: "base64",
      });
      assert.equal(JSON.parse(raw.body).body, "abc");
      const bin = await fetchOk({ url: `${base}/bin`, responseEncoding: "base64" });
      assert.equal(bin.body, btoa(String.fromCharCode(0, 255, 1)));
      assert.equal(bin.encoding, "base64");
      assert.equal(
        await failure(fetchOk({ url: `${base}/bin` })),
        'Tool "http.fetch" failed: The response from host "127.0.0.1" is not UTF-8 text: ask for responseEncoding "base64"',
      );
    });

    await t.step("follows redirects to allowed hosts, re-checking each", async () => {
      const out = await fetchOk({ url: `${base}/to-hello` });
      assert.equal(out.body, "héllo");
      assert.equal(out.redirects, 1);
      assert.equal(out.url, `${base}/hello`);
      // To another allowed origin: the caller's headers stay behind (only a safe list goes on,
      // see http_fetch_redirect_headers_test.ts), the method and body go on (307).
      const moved = await fetchOk({
        url: `${base}/to-localhost`,
        method: "POST",
        body: "kept",
        headers: { authorization: "Bearer s3cret", "x-custom": "c" },
      });
      assert.deepEqual(JSON.parse(moved.body), {
        method: "POST",
        body: "kept",
        auth: null,
        custom: null,
      });
      assert.equal(moved.url, `http://localhost:${port}/echo`);
      // 303 after a POST continues as a GET without a body.
      const seen = await fetchOk({ url: `${base}/see-other`, method: "POST", body: "gone" });
      assert.deepEqual(JSON.parse(seen.body), {
        method: "GET",
        body: "",
        auth: null,
        custom: null,
      });
    });

    await t.step("refuses a redirect to a host that is not allowed", async () => {
      const before = requests.length;
      assert.equal(
        await failure(fetchOk({ url: `${base}/to-outside` })),
        'Tool "http.fetch" failed: Redirect to host "not-allowed.test" is not on the http.fetch allowlist',
      );
      assert.equal(
        await failure(fetchOk({ url: `${base}/to-metadata` })),
        'Tool "http.fetch" failed: Redirect to host "169.254.169.254" is not on the http.fetch allowlist',
      );
      assert.equal(
        await failure(fetchOk({ url: `${base}/to-file` })),
        'Tool "http.fetch" failed: Redirect to scheme "file" refused: only http and https are allowed',
      );
      assert.equal(
        await failure(fetchOk({ url: `${base}/loop` })),
        'Tool "http.fetch" failed: Host "127.0.0.1" redirected more than 5 times',
      );
      assert.deepEqual(requests.slice(before), [
        "GET /to-outside",
        "GET /to-metadata",
        "GET /to-file",
        ...Array(6).fill("GET /loop"),
      ]);
    });

    await t.step("refuses an oversize body, declared or streamed", async () => {
      const message =
        'Tool "http.fetch" failed: The response from host "127.0.0.1" is larger than the 1000 bytes allowed';
      assert.equal(await failure(fetchOk({ url: `${base}/big` })), message);
      assert.equal(await failure(fetchOk({ url: `${base}/big-stream` })), message);
    });

    await t.step("gives up after timeoutMs", async () => {
      // Its own tool: a 300 ms limit on every call would make the others timing-fragile.
      const hasty = tool({ allowPrivate: ["127.0.0.1"], timeoutMs: 300 });
      const started = Date.now();
      assert.equal(
        await failure(hasty.call("http.fetch", { url: `${base}/slow` })),
        'Tool "http.fetch" failed: Request to host "127.0.0.1" timed out after 300 ms',
      );
      assert.ok(Date.now() - started < 5000, "the tool's own limit, not the registry's");
    });

    await t.step("refuses loopback and private addresses unless allowed by name", async () => {
      const listed = tool({ allow: ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]"] });
      const before = requests.length;
      for (
        const [url, host, address] of [
          [`${base}/hello`, "127.0.0.1", "127.0.0.1"],
          [`http://localhost:${port}/hello`, "localhost", "127.0.0.1"],
          // Decimal, hex and octal forms are the same host once the URL is parsed.
          [`http://2130706433:${port}/hello`, "127.0.0.1", "127.0.0.1"],
          [`http://0x7f.0.0.1:${port}/hello`, "127.0.0.1", "127.0.0.1"],
          [`http://0177.0.0.1:${port}/hello`, "127.0.0.1", "127.0.0.1"],
          [`http://[::ffff:127.0.0.1]:${port}/hello`, "::ffff:7f00:1", "::ffff:7f00:1"],
        ]
      ) {
        assert.equal(
          await failure(listed.call("http.fetch", { url })),
          `Tool "http.fetch" failed: Host "${host}" has the loopback address ${address}: list the host in allowPrivate to reach it`,
        );
      }
      // A name on the allowlist that resolves to a private address, or to any among others.
      for (
        const [addresses, kind, address] of [
          [["10.1.2.3"], "private", "10.1.2.3"],
          [["192.0.2.1", "93.184.215.14"], "reserved", "192.0.2.1"],
          [["93.184.215.14", "172.20.0.1"], "private", "172.20.0.1"],
          [["::ffff:169.254.169.254"], "link-local", "::ffff:169.254.169.254"],
          [["fd00::1"], "private", "fd00::1"],
          [["::1"], "loopback", "::1"],
        ] as const
      ) {
        const named = tool({
          allow: ["*.corp.test"],
          resolve: () => Promise.resolve([...addresses]),
        });
        assert.equal(
          await failure(named.call("http.fetch", { url: "http://db.corp.test/" })),
          `Tool "http.fetch" failed: Host "db.corp.test" has the ${kind} address ${address}: list the host in allowPrivate to reach it`,
        );
      }
      const unresolved = tool({
        allow: ["ghost.test"],
        resolve: () => Promise.reject(new Error("x")),
      });
      assert.equal(
        await failure(unresolved.call("http.fetch", { url: "http://ghost.test/" })),
        'Tool "http.fetch" failed: Host "ghost.test" cannot be resolved',
      );
      assert.equal(requests.length, before, "nothing was sent");
    });

    await t.step("bad input: one line each, nothing sent", async () => {
      const before = requests.length;
      const cases: [Record<string, unknown>, string][] = [
        [{ url: "not a url" }, 'Invalid url "not a url": not a URL'],
        [
          { url: "bad url?token=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln" },
          'Invalid url "bad url": not a URL',
        ],
        [
          { url: "ftp://127.0.0.1/x" },
          'URL with scheme "ftp" refused: only http and https are allowed',
        ],
        [
          { url: `http://user:pw@127.0.0.1:${port}/` },
          'Host "127.0.0.1" refused: credentials in the URL are not allowed, send them in a header',
        ],
        [{ url: `${base}/echo`, body: "x" }, "A GET request cannot have a body"],
        [
          { url: `${base}/echo`, method: "POST", body: "%%", bodyEncoding: "base64" },
          "The body is not valid base64",
        ],
        [
          { url: `${base}/echo`, headers: { "bad name": "x" } },
          "Invalid headers: a name or value is not allowed in HTTP",
        ],
      ];
      for (const [input, expected] of cases) {
        assert.equal(
          await failure(local.call("http.fetch", input)),
          `Tool "http.fetch" failed: ${expected}`,
        );
      }
      await assert.rejects(
        local.call("http.fetch", { url: base, method: "TRACE" }),
        ToolInputError,
      );
      await assert.rejects(
        local.call("http.fetch", { url: base, headers: { a: 1 } }),
        ToolInputError,
      );
      await assert.rejects(local.call("http.fetch", {}), ToolInputError);
      assert.equal(requests.length, before);
    });

    await t.step("options are checked", () => {
      for (
        const entry of [
          "http://a.test",
          "a.test/x",
          "*.1.2.3.4",
          "",
          "a b",
        ]
      ) {
        assert.throws(() => createHttpFetchTool({ allow: [entry] }), {
          name: "TypeError",
          message: `Invalid http allow entry ${
            JSON.stringify(entry)
          }: expected a host name, "*.<domain>" or an IP address, with an optional ":<port>" ("[<IPv6>]:<port>"), without scheme or path`,
        });
      }
      assert.throws(() => createHttpFetchTool({ allowPrivate: ["*.a.test"] }), TypeError);
      // Addresses are written as URLs print them, with or without IPv6 brackets.
      createHttpFetchTool({ allow: ["2130706433", "::1", "[fe80::1]", "*.Example.COM."] });
      assert.throws(() => createHttpFetchTool({ timeoutMs: 0 }), {
        name: "RangeError",
        message: "Invalid timeoutMs 0: expected an integer from 1 to 3600000",
      });
      assert.throws(() => createHttpFetchTool({ maxResponseBytes: -1 }), RangeError);
    });
  } finally {
    release.resolve();
    await server.shutdown();
  }
});

Deno.test("addressClass: every form of a non-public address", () => {
  const cases: [string, string | undefined][] = [
    ["127.0.0.1", "loopback"],
    ["127.255.0.9", "loopback"],
    ["10.0.0.1", "private"],
    ["172.16.0.1", "private"],
    ["172.31.255.255", "private"],
    ["172.32.0.1", undefined],
    ["192.168.1.1", "private"],
    ["100.64.0.1", "private"],
    ["169.254.169.254", "link-local"],
    ["0.0.0.0", "unspecified"],
    ["224.0.0.1", "multicast"],
    ["255.255.255.255", "reserved"],
    ["8.8.8.8", undefined],
    ["93.184.215.14", undefined],
    ["::1", "loopback"],
    ["::", "unspecified"],
    ["fe80::1", "link-local"],
    ["fc00::1", "private"],
    ["fd12:3456::1", "private"],
    ["ff02::1", "multicast"],
    ["::ffff:127.0.0.1", "loopback"],
    ["::ffff:7f00:1", "loopback"],
    ["::ffff:10.0.0.1", "private"],
    ["::ffff:8.8.8.8", undefined],
    ["::127.0.0.1", "loopback"],
    ["64:ff9b::a9fe:a9fe", "link-local"],
    ["2002:7f00:1::", "loopback"],
    ["2002:808:808::", undefined],
    ["2001:db8::1", "reserved"],
    ["2606:4700::1111", undefined],
    ["not an address", "invalid"],
  ];
  for (const [address, expected] of cases) {
    assert.equal(addressClass(address), expected, address);
  }
});
