// Issue 22: `toka ui`'s server without a browser: the token, Host and Origin checks, the
// security headers, the JSON API (paging, filters, an event's neighbourhood, a run's timeline,
// agents, verify) and live events that resume after Last-Event-ID with no gap.
import assert from "node:assert/strict";
import { join } from "node:path";
import { openVault } from "../../vault/mod.ts";
import { KvCheckpointStore, KvLeaseStore } from "../../runtime/mod.ts";
import { vaultKv } from "../../vault/kv_store.ts";
import type { EventRecord } from "../../runtime/log/event_store.ts";
import { CONTENT_SECURITY_POLICY } from "../../cli/_ui_http.ts";
import { sameToken, startUiServer } from "../../cli/_ui_server.ts";
import { eventPage, recentRuns } from "../../cli/_ui_api.ts";
import { main } from "../../cli.ts";
import { recordingIo } from "./_fakes.ts";
import { until } from "./_process.ts";
import { rawGet, readSse, seedRun, serve } from "./_ui_fixture.ts";

const TOKEN = "test-token-0123456789";

Deno.test("toka ui: the server", async (t) => {
  const dir = await Deno.makeTempDir();
  // Each append 10 ms after the one before, as a handling takes time.
  let now = Date.parse("2026-12-06T12:00:00.000Z");
  const store = await openVault(join(dir, "toka.kv"), { clock: () => now += 10 });
  const run = await seedRun(store);
  const other = await seedRun(store, "t2");
  const server = await serve(store, TOKEN);
  const base = `http://127.0.0.1:${server.port}/t/${TOKEN}/`;
  const get = async (path: string, init?: RequestInit) => {
    const response = await fetch(base + path, init);
    return { response, body: await response.text() };
  };
  const api = async (path: string) => {
    const { response, body } = await get(`api/${path}`);
    return { status: response.status, json: JSON.parse(body) };
  };
  try {
    await t.step(
      "the printed URL carries the token; without it, or with another, 401",
      async () => {
        assert.equal(server.url, base);
        for (
          const path of ["/", "/api/events", `/t/${TOKEN.slice(0, -1)}/api/events`, "/t/x/", "/o/x"]
        ) {
          const response = await fetch(`http://127.0.0.1:${server.port}${path}`);
          assert.equal(response.status, 401, path);
          assert.match(await response.text(), /^Unauthorized: open the URL that toka ui printed/);
        }
        assert.equal(sameToken("a", "a"), true);
        assert.equal(sameToken("a", "ab"), false);
      },
    );

    await t.step("another Host (DNS rebinding) is refused, localhost is served", async () => {
      const path = `/t/${TOKEN}/api/head`;
      const evil = await rawGet(server.port, path, { host: `attacker.example:${server.port}` });
      assert.equal(evil.status, 403);
      assert.match(evil.text, /Forbidden: this server answers only to 127\.0\.0\.1 and localhost/);
      assert.equal((await rawGet(server.port, path, {})).status, 403);
      assert.equal(
        (await rawGet(server.port, path, { host: `localhost:${server.port}` })).status,
        200,
      );
    });

    await t.step("a cross-origin request is refused; the page's own origin is served", async () => {
      const { response } = await get("api/head", { headers: { origin: "http://evil.example" } });
      assert.equal(response.status, 403);
      const own = await get("api/head", { headers: { origin: `http://127.0.0.1:${server.port}` } });
      assert.equal(own.response.status, 200);
    });

    await t.step("it only reads: other methods get 405", async () => {
      for (const method of ["POST", "PUT", "DELETE"]) {
        const { response } = await get("api/events", { method });
        assert.equal(response.status, 405, method);
      }
      assert.equal(Number((await store.head())!.position), 8);
    });

    await t.step("every response has a strict CSP and no-referrer", async () => {
      assert.match(
        CONTENT_SECURITY_POLICY,
        /default-src 'none'; script-src 'self'; style-src 'self'/,
      );
      for (const path of ["", "app.js", "app.css", "api/events", "api/nothing"]) {
        const { response } = await get(path);
        assert.equal(response.headers.get("content-security-policy"), CONTENT_SECURITY_POLICY);
        assert.equal(response.headers.get("referrer-policy"), "no-referrer");
        assert.equal(response.headers.get("x-content-type-options"), "nosniff");
      }
      const page = await get("");
      assert.match(page.response.headers.get("content-type")!, /^text\/html/);
      assert.match(page.body, /<script type="module" src="app.js"><\/script>/);
      assert.doesNotMatch(page.body, /<script>|style=/);
      assert.match((await get("app.js")).response.headers.get("content-type")!, /javascript/);
    });

    await t.step("events page newest first; next pages on without overlap", async () => {
      const first = await api("events?limit=3");
      assert.equal(first.status, 200);
      assert.deepEqual(first.json.events.map((e: EventRecord) => e.position), [
        "0000000000000008",
        "0000000000000007",
        "0000000000000006",
      ]);
      assert.equal(first.json.next, "0000000000000005");
      assert.deepEqual(first.json.head, await store.head());
      const second = await api(`events?limit=3&from=${first.json.next}`);
      assert.deepEqual(second.json.events.map((e: EventRecord) => Number(e.position)), [5, 4, 3]);
      const last = await api(`events?limit=3&from=${second.json.next}`);
      assert.deepEqual(last.json.events.map((e: EventRecord) => Number(e.position)), [2, 1]);
      assert.equal(last.json.next, null);
      // The CLI's --json shape: the records as stored.
      assert.deepEqual(last.json.events[1], run.created);
    });

    await t.step("filters: stream, kind pattern, correlation id", async () => {
      const byStream = await api("events?stream=agent%2Fworker");
      assert.deepEqual(byStream.json.events.map((e: EventRecord) => e.id), [
        other.done.id,
        run.done.id,
      ]);
      const byKind = await api("events?kind=tool.*&limit=2");
      assert.deepEqual(byKind.json.events.map((e: EventRecord) => e.id), [
        other.completed.id,
        other.invoked.id,
      ]);
      // Kinds are not indexed: the page says where its scan stopped.
      assert.equal(byKind.json.next, "0000000000000005");
      const rest = await api(`events?kind=tool.*&from=${byKind.json.next}`);
      assert.deepEqual(rest.json.events.map((e: EventRecord) => e.id), [
        run.completed.id,
        run.invoked.id,
      ]);
      const byRun = await api(`events?correlation=${run.created.id}`);
      assert.deepEqual(byRun.json.events.map((e: EventRecord) => e.id), [
        run.done.id,
        run.completed.id,
        run.invoked.id,
        run.created.id,
      ]);
      const paged = await api(`events?correlation=${run.created.id}&limit=3`);
      assert.equal(paged.json.events.length, 3);
      const last = await api(`events?correlation=${run.created.id}&from=${paged.json.next}`);
      assert.deepEqual(last.json.events.map((e: EventRecord) => e.id), [run.created.id]);
    });

    await t.step("a rare kind is looked for in a bounded number of events a page", async () => {
      const pages = [];
      let from: string | null = null;
      do {
        const query = new URLSearchParams({ kind: "task.created" });
        if (from !== null) query.set("from", from);
        const page = await eventPage(store, query, 3);
        pages.push(page.events.map((e) => e.id));
        from = page.next;
      } while (from !== null);
      // 8, 7, 6 read: nothing; 5, 4, 3: the second run's task; 2, 1: the first's.
      assert.deepEqual(pages, [[], [other.created.id], [run.created.id]]);
    });

    await t.step("bad parameters: 400 with one line, as the CLI's --json errors", async () => {
      for (
        const [query, pattern] of [
          ["limit=0", /^Invalid limit "0": expected 1 to 500$/],
          ["limit=abc", /^Invalid limit "abc"/],
          ["from=x1", /^Invalid from "x1": expected a position$/],
          ["stream=bad%20stream", /stream/i],
          ["kind=a..b", /^Invalid kind pattern "a..b"/],
        ] as const
      ) {
        const { status, json } = await api(`events?${query}`);
        assert.equal(status, 400, query);
        assert.equal(json.error.code, "bad_request");
        assert.match(json.error.message, pattern);
        assert.doesNotMatch(json.error.message, /\n/);
      }
      const missing = await api("events/01M96G4BJS000000000YGXEQRS");
      assert.equal(missing.status, 404);
      assert.deepEqual(missing.json.error, {
        code: "event_not_found",
        message: 'No event with id "01M96G4BJS000000000YGXEQRS"',
      });
      assert.equal((await api("events/not-an-id")).status, 400);
      const malformed = await api("correlations/%E0%A4%A");
      assert.equal(malformed.status, 400);
      assert.equal(malformed.json.error.message, "Invalid path: a malformed %-escape");
    });

    await t.step("an event with its parents and children", async () => {
      const created = await api(`events/${run.created.id}`);
      assert.deepEqual(created.json.event, run.created);
      assert.equal(created.json.correlationId, run.created.id);
      assert.deepEqual(created.json.parents, []);
      assert.deepEqual(created.json.children.map((e: EventRecord) => e.id), [
        run.invoked.id,
        run.completed.id,
        run.done.id,
      ]);
      assert.equal(created.json.childrenComplete, true);
      const done = await api(`events/${Number(run.done.position)}`);
      assert.deepEqual(done.json.parents, [run.created]);
      assert.deepEqual(done.json.children, []);
    });

    await t.step("a run's timeline: the handling and the tool call", async () => {
      const { json } = await api(`correlations/${run.created.id}`);
      assert.equal(json.correlationId, run.created.id);
      assert.equal(json.complete, true);
      assert.deepEqual(json.events.map((e: EventRecord) => e.id), [
        run.created.id,
        run.invoked.id,
        run.completed.id,
        run.done.id,
      ]);
      const spans = json.spans.map((s: { type: string; label: string }) => `${s.type}: ${s.label}`);
      assert.deepEqual(spans, ["handling: agent/worker handled task.created", "tool: echo"]);
      const tool = json.spans[1];
      assert.equal(tool.durationMs, 3);
      assert.equal(tool.end, run.completed.timestamp);
      assert.deepEqual(tool.events, [run.invoked.id, run.completed.id]);
    });

    await t.step("recent runs, newest first, from the latest events", async () => {
      const { json } = await api("runs");
      assert.equal(json.scanned, 8);
      assert.deepEqual(
        json.runs,
        [other, run].map((r) => ({
          correlationId: r.created.id,
          kind: "task.created",
          start: r.created.timestamp,
          end: r.done.timestamp,
          events: 4,
        })),
      );
      const cut = await recentRuns(store, 3);
      assert.deepEqual(cut.runs.map((r) => [r.correlationId, r.kind, r.events]), [
        [other.created.id, "tool.invoked", 3],
      ]);
    });

    await t.step("agents: position, lag, the lease holder and what each gave up on", async () => {
      const kv = vaultKv(store)!;
      await new KvCheckpointStore(kv).save("worker", {
        position: run.done.position,
        failures: 1,
        updatedAt: 1_800_000_000_000,
        subscribe: ["task.created"],
      });
      await new KvLeaseStore(kv).swap("worker", null, {
        owner: "runner-1",
        expiresAt: 4_000_000_000_000,
      });
      const [failed] = (await store.append("agent/worker", [{
        kind: "agent.failed",
        payload: {
          agent: "worker",
          eventId: other.created.id,
          kind: "task.created",
          attempts: 3,
          error: "boom",
        },
        parents: [other.created.id],
      }])).events;
      const { json } = await api("agents");
      assert.equal(json.length, 1);
      const [worker] = json;
      assert.equal(worker.name, "worker");
      assert.equal(worker.position, run.done.position);
      assert.equal(worker.lag, 1); // other's task.created
      assert.deepEqual(worker.lease, { owner: "runner-1", expiresAt: 4_000_000_000_000 });
      assert.equal(worker.leasedUntil, 4_000_000_000_000);
      // As `toka agent failed --json` lists it.
      assert.deepEqual(worker.givenUp, [{
        agent: "worker",
        eventId: other.created.id,
        kind: "task.created",
        attempts: 3,
        error: "boom",
        failureId: failed.id,
        failedAt: failed.timestamp,
        retryRequested: false,
      }]);
      // Once a retry handled it, it is no longer listed.
      await store.append("agent/worker", [{
        kind: "agent.recovered",
        payload: { agent: "worker", eventId: other.created.id },
      }]);
      assert.deepEqual((await api("agents")).json[0].givenUp, []);
    });

    await t.step("an agent's state at a chosen position", async () => {
      const checkpoints = new KvCheckpointStore(vaultKv(store)!);
      const commit = async (after: EventRecord, state: unknown) => {
        const checkpoint = { position: after.position, failures: 0, updatedAt: 1, subscribe: [] };
        const effect = checkpoints.withState("counter", checkpoint, JSON.stringify(state));
        const payload = { agent: "counter", after: after.position, state };
        // As the runtime records it: verify() checks the state index against it.
        const meta = { actor: "agent/counter" };
        return (await store.append("agent/counter", [{ kind: "agent.state", payload, meta }], {
          effect,
        })).events[0];
      };
      const one = await commit(run.created, { seen: 1 });
      const two = await commit(other.created, { seen: 2 });
      const before = await api(`agents/counter/state?at=${Number(run.created.position) - 1}`);
      assert.deepEqual(before.json, {
        agent: "counter",
        at: "0000000000000000",
        after: null,
        position: null,
        state: null,
      });
      const between = await api(`agents/counter/state?at=${Number(other.created.position) - 1}`);
      assert.deepEqual(between.json, {
        agent: "counter",
        at: `000000000000000${Number(other.created.position) - 1}`,
        after: run.created.position,
        position: one.position,
        state: { seen: 1 },
      });
      const now = await api("agents/counter/state");
      assert.equal(now.json.at, (await store.head())!.position);
      assert.deepEqual(now.json.state, { seen: 2 });
      assert.equal(now.json.position, two.position);
      assert.equal((await api("agents/counter/state?at=x")).status, 400);
      const past = await api("agents/counter/state?at=999");
      assert.equal(past.status, 400);
      assert.equal(past.json.error.code, "position_past_head");
      const nobody = await api("agents/nobody/state");
      assert.equal(nobody.status, 404);
      assert.deepEqual(nobody.json.error, {
        code: "agent_not_found",
        message: 'No agent "nobody" in this vault',
      });
    });

    await t.step("verify streams its progress, then the report and the head to keep", async () => {
      const response = await fetch(`${base}api/verify`);
      assert.match(response.headers.get("content-type")!, /^text\/event-stream/);
      const messages = await readSse(response, 2);
      assert.deepEqual(messages[0], {
        event: "progress",
        data: JSON.stringify({ checked: 0, total: 12 }),
      });
      assert.equal(messages[1].event, "done");
      const done = JSON.parse(messages[1].data);
      assert.equal(done.report.ok, true);
      assert.equal(done.report.checked, 12);
      assert.deepEqual(done.head, await store.head());
    });

    await t.step("live: new events arrive, and a reconnect resumes with no gap", async () => {
      const head = (await store.head())!.position;
      const live = await fetch(`${base}api/live?after=${head}`);
      assert.equal(live.status, 200);
      const appended = seedRun(store, "t3");
      const first = await readSse(live, 2);
      const seeded = await appended;
      assert.deepEqual(first.map((m) => m.id), [seeded.created.position, seeded.invoked.position]);
      assert.deepEqual(JSON.parse(first[0].data), seeded.created);
      // Disconnected after two: two more were appended meanwhile, then more after reconnect.
      const later = await seedRun(store, "t4");
      const resumed = await fetch(`${base}api/live?after=0`, {
        headers: { "last-event-id": first[1].id! },
      });
      const rest = await readSse(resumed, 6);
      assert.deepEqual(rest.map((m) => m.id), [
        seeded.completed.position,
        seeded.done.position,
        later.created.position,
        later.invoked.position,
        later.completed.position,
        later.done.position,
      ]);
    });

    await t.step("live with filters sends only matching events", async () => {
      const head = (await store.head())!.position;
      const live = await fetch(`${base}api/live?after=${head}&kind=task.*&stream=agent%2Fworker`);
      const seeded = await seedRun(store, "t5");
      const [message] = await readSse(live, 1);
      assert.equal(message.id, seeded.done.position);
      const bad = await fetch(`${base}api/live`, { headers: { "last-event-id": "x" } });
      assert.equal(bad.status, 400);
      await bad.body?.cancel();
    });
  } finally {
    await server.shutdown();
    await store.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("toka ui: the command", async (t) => {
  const dir = await Deno.makeTempDir();
  const path = join(dir, "toka.kv");
  try {
    await t.step("a bad --port is a usage error (exit 2) and creates no vault", async () => {
      const io = recordingIo();
      assert.equal(await main(["--db", path, "ui", "--port", "70000"], io), 2);
      assert.match(io.err.join(""), /^error: .*Expected a port from 0 to 65535/);
      await assert.rejects(Deno.stat(path), Deno.errors.NotFound);
    });

    await t.step("a missing vault is an error and is not created", async () => {
      const io = recordingIo();
      assert.equal(await main(["--db", path, "ui"], io), 1);
      assert.equal(io.errLines().length, 1);
      await assert.rejects(Deno.stat(path), Deno.errors.NotFound);
    });

    await t.step(
      "--open runs $BROWSER with a one-time link, not the token; a failure is a warning",
      async () => {
        const vault = await openVault(path);
        await seedRun(vault);
        await vault.close();
        const opened = join(dir, "opened.txt");
        const browser = join(dir, "browser.sh");
        await Deno.writeTextFile(browser, `#!/bin/sh\nprintf %s "$1" > "${opened}"\n`);
        await Deno.chmod(browser, 0o755);
        for (const [program, works] of [[browser, true], [join(dir, "none"), false]] as const) {
          const stop = new AbortController();
          const io = recordingIo({ signal: stop.signal, env: { BROWSER: program } });
          const running = main(["--db", path, "--json", "ui", "--open"], io);
          await io.waitForLines(1);
          const { url } = JSON.parse(io.outLines()[0]);
          const written = () => Deno.readTextFile(opened).then((t) => t !== "", () => false);
          await until(() => works ? written() : io.err.length > 0, "the browser or a warning");
          if (works) {
            // Its arguments show in `ps` to every local user: the token is not among them.
            const link = await Deno.readTextFile(opened);
            const token = new URL(url).pathname.split("/")[2];
            assert.ok(!link.includes(token), link);
            const port = new URL(url).port;
            assert.match(link, new RegExp(`^http://127\\.0\\.0\\.1:${port}/o/[A-Za-z0-9_-]{43}$`));
            const first = await fetch(link, { redirect: "manual" });
            await first.body?.cancel();
            assert.equal(first.status, 303);
            assert.equal(new URL(first.headers.get("location")!, link).href, url);
            // Used once: whoever read it from `ps` later gets nothing.
            const again = await fetch(link, { redirect: "manual" });
            assert.equal(again.status, 410);
            assert.match(await again.text(), /^Gone: this link opens the page once/);
          }
          stop.abort();
          assert.equal(await running, 0);
          assert.deepEqual(
            io.errLines(),
            works ? [] : [
              `warning: Could not open a browser ("${program}" was not found): open the URL above`,
            ],
          );
        }
      },
    );

    await t.step("it prints the URL, serves until interrupted, and writes nothing", async () => {
      const vault = await openVault(path);
      await seedRun(vault);
      const head = await vault.head();
      await vault.close();
      const stop = new AbortController();
      const io = recordingIo({ signal: stop.signal });
      const running = main(["--db", path, "--json", "ui"], io);
      await io.waitForLines(1);
      const { url, port } = JSON.parse(io.outLines()[0]);
      assert.match(url, new RegExp(`^http://127\\.0\\.0\\.1:${port}/t/[A-Za-z0-9_-]{43}/$`));
      const response = await fetch(`${url}api/head`);
      assert.deepEqual(await response.json(), head);
      assert.equal(
        await fetch(`http://127.0.0.1:${port}/`).then(async (r) => {
          await r.body?.cancel();
          return r.status;
        }),
        401,
      );
      stop.abort();
      assert.equal(await running, 0);
      const reopened = await openVault(path, { readOnly: true, create: false });
      assert.deepEqual(await reopened.head(), head);
      await reopened.close();
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// Port 80 needs privileges (root here); where it cannot be bound the test says so by being ignored.
function canListenOn80(): boolean {
  try {
    Deno.listen({ hostname: "127.0.0.1", port: 80 }).close();
    return true;
  } catch {
    return false;
  }
}

Deno.test({
  name: "toka ui --port 80: a browser's Host and Origin without the port are served",
  ignore: !canListenOn80(),
  fn: async () => {
    const store = await openVault(":memory:");
    const server = await startUiServer({ store, token: TOKEN, port: 80 });
    try {
      const path = `/t/${TOKEN}/api/head`;
      for (const host of ["127.0.0.1", "localhost", "127.0.0.1:80", "LOCALHOST"]) {
        assert.equal((await rawGet(80, path, { host })).status, 200, host);
      }
      const origin = { host: "127.0.0.1", origin: "http://127.0.0.1" };
      assert.equal((await rawGet(80, path, origin)).status, 200);
      for (const host of ["attacker.example", "127.0.0.1:8080"]) {
        assert.equal((await rawGet(80, path, { host })).status, 403, host);
      }
    } finally {
      await server.shutdown();
      await store.close();
    }
  },
});
