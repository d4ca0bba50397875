// http.fetch's allow and allowPrivate take "host:port" entries (issue 26 §4):
// `allowPrivate: ["127.0.0.5:8080"]` opens that port only, a bare host every
// port. Servers on 127.0.0.5 and ::1 only; names come from a fake resolver.
import assert from "node:assert/strict";
import { createHttpFetchTool, type HttpFetchOptions, ToolRegistry } from "../../toolkit/mod.ts";

async function message(call: Promise<unknown>): Promise<string> {
  const error = await call.then(() => undefined, (e: unknown) => e);
  assert.ok(error instanceof Error, "the call failed");
  assert.ok(!error.message.includes("\n"), `one line: ${error.message}`);
  return error.message;
}

Deno.test("http.fetch: one port of a host", async (t) => {
  const hits: string[] = [];
  const serve = (hostname: string, name: string): Deno.HttpServer<Deno.NetAddr> =>
    Deno.serve({ hostname, port: 0, onListen() {} }, (req): Response => {
      const path = new URL(req.url).pathname;
      hits.push(`${name} ${path}`);
      if (path === "/to-admin") {
        return new Response(null, {
          status: 302,
          headers: { location: `http://127.0.0.5:${admin.addr.port}/` },
        });
      }
      return new Response(name);
    });
  const service = serve("127.0.0.5", "service");
  const admin = serve("127.0.0.5", "admin");
  const v6 = serve("::1", "v6");
  const [servicePort, adminPort, v6Port] = [service, admin, v6].map((s) => s.addr.port);
  const tool = (options: HttpFetchOptions) =>
    new ToolRegistry({ tools: [createHttpFetchTool(options)] });
  const body = async (tools: ToolRegistry, url: string) =>
    (await tools.call("http.fetch", { url }) as { body: string }).body;
  try {
    await t.step("allowPrivate host:port opens that port only", async () => {
      const tools = tool({ allowPrivate: [`127.0.0.5:${servicePort}`] });
      assert.equal(await body(tools, `http://127.0.0.5:${servicePort}/`), "service");
      assert.equal(
        await message(tools.call("http.fetch", { url: `http://127.0.0.5:${adminPort}/` })),
        `Tool "http.fetch" failed: Host "127.0.0.5" is not on the http.fetch allowlist for port ${adminPort}`,
      );
      assert.equal(
        await message(
          tools.call("http.fetch", { url: `http://127.0.0.5:${servicePort}/to-admin` }),
        ),
        `Tool "http.fetch" failed: Redirect to host "127.0.0.5" is not on the http.fetch allowlist for port ${adminPort}`,
      );
      assert.deepEqual(hits, ["service /", "service /to-admin"]);
    });

    await t.step("a bare host still means every port", async () => {
      const tools = tool({ allowPrivate: ["127.0.0.5"] });
      assert.equal(await body(tools, `http://127.0.0.5:${adminPort}/`), "admin");
    });

    await t.step("IPv6 with brackets: [::1]:port", async () => {
      const tools = tool({ allowPrivate: [`[::1]:${v6Port}`] });
      assert.equal(await body(tools, `http://[::1]:${v6Port}/`), "v6");
      assert.equal(
        await message(tools.call("http.fetch", { url: `http://[::1]:${servicePort}/` })),
        `Tool "http.fetch" failed: Host "::1" is not on the http.fetch allowlist for port ${servicePort}`,
      );
    });

    await t.step("allow host:port, with the scheme's default port", async () => {
      // The resolver answers 127.0.0.5, which allowPrivate admits on the service port only.
      const tools = tool({
        allow: [`svc.test:${servicePort}`, `svc.test:${adminPort}`, "*.api.test:443"],
        allowPrivate: [`127.0.0.5:${servicePort}`],
        resolve: () => Promise.resolve(["127.0.0.5"]),
      });
      assert.equal(await body(tools, `http://svc.test:${servicePort}/`), "service");
      assert.equal(
        await message(tools.call("http.fetch", { url: `http://svc.test:${adminPort}/` })),
        'Tool "http.fetch" failed: Host "svc.test" has the loopback address 127.0.0.5: list the host in allowPrivate to reach it',
      );
      assert.equal(
        await message(tools.call("http.fetch", { url: "http://a.api.test/" })),
        'Tool "http.fetch" failed: Host "a.api.test" is not on the http.fetch allowlist for port 80',
      );
      // Port 443 passes the list; the loopback answer then stops it, before any connection.
      assert.equal(
        await message(tools.call("http.fetch", { url: "https://a.api.test/" })),
        'Tool "http.fetch" failed: Host "a.api.test" has the loopback address 127.0.0.5: list the host in allowPrivate to reach it',
      );
    });

    await t.step("bad entries are one-line errors at creation", () => {
      for (const [name, entry] of [["allow", "a.test:0"], ["allowPrivate", "127.0.0.5:70000"]]) {
        assert.throws(() => createHttpFetchTool({ [name]: [entry] }), {
          name: "RangeError",
          message: `Invalid http ${name} entry ${
            JSON.stringify(entry)
          }: the port must be from 1 to 65535`,
        });
      }
      for (
        const entry of [
          "a.test:",
          "a.test:8x",
          "a.test:080",
          "a.test:80:81",
          "[::1]8080",
          "[::1]:",
          "http://a.test:80",
          "a.test:80/x",
          "*.1.2.3.4:80",
        ]
      ) {
        assert.throws(() => createHttpFetchTool({ allow: [entry] }), {
          name: "TypeError",
          message: `Invalid http allow entry ${
            JSON.stringify(entry)
          }: expected a host name, "*.<domain>" or an IP address, with an optional ":<port>" ("[<IPv6>]:<port>"), without scheme or path`,
        });
      }
    });
  } finally {
    await Promise.all([service.shutdown(), admin.shutdown(), v6.shutdown()]);
  }
});
