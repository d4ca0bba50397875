// http.fetch on a redirect to another origin keeps only a short list of safe
// headers, as curl does without --location-trusted (issue 26 §3): a key meant
// for one allowed host never reaches another. Two loopback servers stand for
// the two origins.
import assert from "node:assert/strict";
import { createHttpFetchTool, ToolRegistry } from "../../toolkit/mod.ts";

// Headers the tool adds itself on every request.
const TRANSPORT = ["connection", "content-length", "host"];

Deno.test("http.fetch: headers on a cross-origin redirect", async (t) => {
  const echo = async (req: Request) =>
    Response.json({
      method: req.method,
      body: await req.text(),
      headers: Object.fromEntries(
        [...req.headers].filter(([name]) => !TRANSPORT.includes(name)),
      ),
    });
  const second = Deno.serve({ hostname: "127.0.0.2", port: 0, onListen() {} }, echo);
  const other = `http://127.0.0.2:${second.addr.port}`;
  const third = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, echo);
  const first = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const path = new URL(req.url).pathname;
    const redirect = (status: number, location: string) =>
      new Response(null, { status, headers: { location } });
    if (path === "/keep-body") return redirect(307, `${other}/echo`);
    if (path === "/see-other") return redirect(303, `${other}/echo`);
    if (path === "/other-port") return redirect(307, `http://127.0.0.1:${third.addr.port}/`);
    if (path === "/same") return redirect(307, "/echo");
    return echo(req);
  });
  const base = `http://127.0.0.1:${first.addr.port}`;
  const tools = new ToolRegistry({
    tools: [createHttpFetchTool({ allowPrivate: ["127.0.0.1", "127.0.0.2"] })],
  });
  const sent = {
    authorization: "Bearer s3cret",
    cookie: "session=s3cret",
    "x-api-key": "k3y",
    "proxy-authorization": "Basic s3cret",
    "x-custom": "mine",
    accept: "application/json",
    "accept-language": "nb",
    "content-language": "nb",
    "user-agent": "agent/1",
    "content-type": "text/plain",
  };
  const call = async (path: string) => {
    const out = await tools.call("http.fetch", {
      url: `${base}${path}`,
      method: "POST",
      headers: sent,
      body: "payload",
    }) as { body: string };
    return JSON.parse(out.body) as {
      method: string;
      body: string;
      headers: Record<string, string>;
    };
  };
  try {
    await t.step(
      "307 to another origin: the safe list and content-type with the body",
      async () => {
        assert.deepEqual(await call("/keep-body"), {
          method: "POST",
          body: "payload",
          headers: {
            accept: "application/json",
            "accept-language": "nb",
            "content-language": "nb",
            "user-agent": "agent/1",
            "content-type": "text/plain",
          },
        });
      },
    );

    await t.step("303 to another origin: a GET without body nor content-type", async () => {
      assert.deepEqual(await call("/see-other"), {
        method: "GET",
        body: "",
        headers: {
          accept: "application/json",
          "accept-language": "nb",
          "content-language": "nb",
          "user-agent": "agent/1",
        },
      });
    });

    await t.step("another port of the same host is another origin", async () => {
      const seen = await call("/other-port");
      assert.equal(seen.body, "payload");
      assert.deepEqual(Object.keys(seen.headers).sort(), [
        "accept",
        "accept-language",
        "content-language",
        "content-type",
        "user-agent",
      ]);
    });

    await t.step("the same origin keeps every header", async () => {
      const seen = await call("/same");
      assert.equal(seen.headers["x-api-key"], "k3y");
      assert.equal(seen.headers.authorization, "Bearer s3cret");
      assert.equal(seen.headers.cookie, "session=s3cret");
      assert.equal(seen.headers["x-custom"], "mine");
    });
  } finally {
    await Promise.all([first.shutdown(), second.shutdown(), third.shutdown()]);
  }
});
