// http.fetch never echoes a URL's userinfo or query: not in an error, not in
// a stored event (issue 17 item 11). No request leaves the machine: every URL
// here is invalid, refused, or to a closed loopback port.
import assert from "node:assert/strict";
import { createRuntime } from "../../mod.ts";
import { AllowAllAuthority } from "../../toolkit/mod.ts";

const SECRETS = ["hunter2pass", "s3cr3tkey", "fragm3nt", "us3rname"];

Deno.test("http.fetch keeps a URL's credentials and query out of errors and events", async (t) => {
  const runtime = await createRuntime({
    db: ":memory:",
    http: { allowPrivate: ["127.0.0.1"], allow: ["api.example.test"] },
    auth: new AllowAllAuthority(),
  });
  try {
    const cases: [string, string | RegExp][] = [
      // An invalid URL (port out of range): the echo keeps scheme, host and port only.
      [
        "http://us3rname:hunter2pass@api.example.test:99999/path?key=s3cr3tkey#fragm3nt",
        'Tool "http.fetch" failed: Invalid url "http://api.example.test:99999/path": not a URL',
      ],
      [
        "http://us3rname:hunter2pass@/x",
        'Tool "http.fetch" failed: Invalid url "http:///x": not a URL',
      ],
      // A password holding "/" and "@" still goes, whole.
      [
        "http://us3rname:hunter2pass/@@x@api.example.test:99999/",
        'Tool "http.fetch" failed: Invalid url "http://api.example.test:99999/": not a URL',
      ],
      [
        "not a url?key=s3cr3tkey",
        'Tool "http.fetch" failed: Invalid url "not a url": not a URL',
      ],
      // A valid URL with credentials is refused naming the host only.
      [
        "http://us3rname:hunter2pass@127.0.0.1:1/?key=s3cr3tkey",
        'Tool "http.fetch" failed: Host "127.0.0.1" refused: credentials in the URL are not allowed, send them in a header',
      ],
      // A failed request names the host only.
      [
        "http://127.0.0.1:1/?key=s3cr3tkey#fragm3nt",
        'Tool "http.fetch" failed: Request to host "127.0.0.1" failed: connection refused',
      ],
    ];
    for (const [url, expected] of cases) {
      await t.step(url.slice(0, 40), async () => {
        const error = await runtime.tools.call("http.fetch", { url }).then(
          () => undefined,
          (e: unknown) => e as Error,
        );
        assert.ok(error instanceof Error);
        if (typeof expected === "string") assert.equal(error.message, expected);
        else assert.match(error.message, expected);
      });
    }

    await t.step("no stored event holds any of the secrets", async () => {
      const events = await Array.fromAsync(runtime.bus.store!.read());
      const failed = events.filter((e) => e.kind === "tool.failed");
      assert.equal(failed.length, cases.length);
      for (const event of events) {
        const json = JSON.stringify(event);
        for (const secret of SECRETS) {
          assert.ok(!json.includes(secret), `${secret} in ${json}`);
        }
      }
    });
  } finally {
    await runtime.close();
  }
});
