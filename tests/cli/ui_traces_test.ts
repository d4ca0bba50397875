// toka ui with Deno's built-in OpenTelemetry on (OTEL_DENO=true, as the README's Traces section
// has users export): Deno makes a span of every request it serves, with the URL in url.full and
// url.path, and the URL holds the token. The token must reach no exporter.
import assert from "node:assert/strict";
import { join } from "node:path";
import { openVault } from "../../vault/mod.ts";
import { OtlpReceiver } from "./_otlp_receiver.ts";
import { until } from "./_process.ts";

const CLI = new URL("../../cli.ts", import.meta.url).pathname;
const CONFIG = new URL("../../deno.json", import.meta.url).pathname;

Deno.test("toka ui's token is in no exported span", async () => {
  const dir = await Deno.makeTempDir();
  const receiver = new OtlpReceiver();
  try {
    const db = join(dir, "v.kv");
    const vault = await openVault(db);
    await vault.append("runtime", [{ kind: "a.b" }]);
    await vault.close();
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--quiet", "--config", CONFIG, CLI, "--db", db, "--json", "ui"],
      env: { ...receiver.env, OTEL_BSP_SCHEDULE_DELAY: "50", NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).spawn();
    const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    try {
      let text = "";
      while (!text.includes("\n")) {
        const { value, done } = await lines.read();
        if (done) throw new Error(`toka ui ended before printing its URL: ${text}`);
        text += value;
      }
      const { url } = JSON.parse(text) as { url: string };
      const token = new URL(url).pathname.split("/")[2];
      assert.ok(token.length >= 32);
      const wrong = url.replace(token, `${token.slice(0, -1)}x`);
      for (const path of [`${url}api/head`, `${url}api/events?limit=1`, `${wrong}api/head`]) {
        await (await fetch(path)).body?.cancel();
      }
      await until(() => receiver.spans.length >= 3, () => `3 spans; got ${receiver.spans.length}`);
      const exported = JSON.stringify(receiver.spans);
      assert.ok(!exported.includes(token), exported);
      assert.ok(!exported.includes(token.slice(0, -1)), exported);
      // The spans are there, with the rest of the path to tell them apart.
      const paths = receiver.spans.map((span) => span.attributes["url.path"]).sort();
      assert.deepEqual(paths, [
        "/t/<token>/api/events",
        "/t/<token>/api/head",
        "/t/<token>/api/head",
      ]);
    } finally {
      child.kill("SIGINT");
      await child.status;
      await lines.cancel();
    }
  } finally {
    await receiver.close();
    await Deno.remove(dir, { recursive: true });
  }
});
