// Issue 22: `toka ui` in a real browser (headless Chromium through playwright-core), on a file
// vault that a running runtime writes to from its own handle, as another process would. Skipped,
// with one line saying why, where there is no Chromium. Set TOKA_UPDATE_SCREENSHOTS=1 to write
// the README's screenshot (docs/ui.png); otherwise it is taken to a temporary file.
import assert from "node:assert/strict";
import { join } from "node:path";
import { createRuntime } from "../../mod.ts";
import { defineAgent, KvCheckpointStore, KvLeaseStore } from "../../runtime/mod.ts";
import { openVault } from "../../vault/mod.ts";
import { vaultKv } from "../../vault/kv_store.ts";
import { startUiServer } from "../../cli/_ui_server.ts";
import { exists } from "./_fakes.ts";
import { PATIENCE_MS } from "./_process.ts";
import type { EventRecord } from "../../runtime/log/event_store.ts";

/** Where the browser is: Debian's chromium, or $TOKA_CHROMIUM. */
export const CHROMIUM: string = Deno.env.get("TOKA_CHROMIUM") ?? "/usr/bin/chromium";
const available = await exists(CHROMIUM);
if (!available) {
  console.log(
    `toka ui browser tests skipped: no Chromium at ${CHROMIUM} (apt-get install chromium, or set TOKA_CHROMIUM)`,
  );
}
const SCREENSHOT = new URL("../../docs/ui.png", import.meta.url);

Deno.test({
  name: "toka ui in Chromium, on a vault a running runtime writes",
  ignore: !available,
  fn: async (t) => {
    const { chromium } = await import("playwright-core");
    const dir = await Deno.makeTempDir();
    const db = join(dir, "toka.kv");
    const runtime = await createRuntime({ db, storageRoot: join(dir, "storage") });
    runtime.register(defineAgent({
      name: "worker",
      subscribe: ["task.created"],
      permissions: ["tool:echo:invoke"],
      async handle(event, ctx) {
        const { label } = event.payload as { label: string };
        const echoed = await ctx.tools.call("echo", { text: label }) as { text: string };
        await ctx.emit({ kind: "task.done", payload: { label, echo: echoed.text } });
      },
    }));
    await runtime.start();
    const done = (label: string) =>
      new Promise<string>((resolve) => {
        const sub = runtime.subscribe("task.done", (event) => {
          if ((event.payload as { label: string }).label !== label) return;
          void sub.close();
          resolve(event.id);
        });
      });
    const warmUp = done("warm-up");
    const first = await runtime.emit({ kind: "task.created", payload: { label: "warm-up" } });
    await warmUp;
    // The server reads through its own handle, read-only, as `toka ui` does.
    const store = await openVault(db, { readOnly: true, create: false });
    // Shown in the page's header (and the README's screenshot) as a project's default vault.
    const server = await startUiServer({ store, location: "./.toka/toka.kv" });
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 }, locale: "en-US" });
    // A loaded machine runs the whole suite in parallel: wait as patiently as the process tests.
    page.setDefaultTimeout(PATIENCE_MS);
    const errors: string[] = [];
    page.on("pageerror", (error) => errors.push(error.message));
    try {
      await t.step("a request without the token is refused", async () => {
        const response = await page.goto(`http://127.0.0.1:${server.port}/`);
        assert.equal(response?.status(), 401);
        const wrong = await page.goto(`http://127.0.0.1:${server.port}/t/not-the-token/`);
        assert.equal(wrong?.status(), 401);
      });

      await t.step("an event appended after the page loaded appears without a reload", async () => {
        await page.goto(server.url);
        await page.waitForSelector(`tr.event[data-id="${first.id}"]`);
        await page.waitForSelector("#live.on");
        const finished = done("live");
        const created = await runtime.emit({ kind: "task.created", payload: { label: "live" } });
        const doneId = await finished;
        await page.waitForSelector(`tr.event[data-id="${created.id}"]`);
        await page.waitForSelector(`tr.event[data-id="${doneId}"]`);
        // Newest first: the agent's task.done above the task that caused it.
        const ids = await page.locator("tr.event").evaluateAll((rows) =>
          rows.map((row) => row.getAttribute("data-id"))
        );
        assert.equal(ids.indexOf(doneId) < ids.indexOf(created.id), true);
      });

      await t.step("clicking an event shows its parent and children", async () => {
        const finished = done("click");
        const created = await runtime.emit({ kind: "task.created", payload: { label: "click" } });
        const doneId = await finished;
        await page.locator(`tr.event[data-id="${doneId}"]`).click();
        const doneDetail = page.locator(`.event-detail[data-id="${doneId}"]`);
        await doneDetail.locator(`.parents li[data-id="${created.id}"]`).waitFor();
        await page.locator(`tr.event[data-id="${created.id}"]`).click();
        const createdDetail = page.locator(`.event-detail[data-id="${created.id}"]`);
        const children = createdDetail.locator(".children li");
        await children.first().waitFor();
        const kinds = await children.locator(".kind").allTextContents();
        assert.deepEqual(kinds.sort(), ["task.done", "tool.completed", "tool.invoked"]);
        // Both stay open: several events can be expanded at once.
        assert.equal(await page.locator("tr.detail").count(), 2);
        // Walking the tree: the child's link opens it, with its parent.
        await createdDetail.locator(`.children li[data-id="${doneId}"] a`).click();
        await page.locator(
          `.event-detail[data-id="${doneId}"] .parents li[data-id="${created.id}"]`,
        )
          .waitFor();
      });

      await t.step(
        "while following, the page keeps the newest 1,000 rows; older ones a click away",
        async () => {
          await page.goto("about:blank");
          await page.goto(server.url);
          await page.locator("#live.on").waitFor();
          const writer = await openVault(db);
          let last: EventRecord | undefined;
          try {
            for (let i = 0; i < 4; i++) {
              const batch = Array.from({ length: 300 }, (_, n) => ({
                kind: "bulk.added",
                payload: { n: i * 300 + n },
              }));
              last = (await writer.append("bulk", batch)).events.at(-1)!;
            }
          } finally {
            await writer.close();
          }
          await page.locator(`tr.event[data-id="${last!.id}"]`).waitFor();
          await page.waitForFunction('document.querySelectorAll("tr.event").length === 1000');
          const oldest = Number(
            await page.locator("tr.event").last().getAttribute("data-position"),
          );
          await page.getByRole("button", { name: "Older events" }).click();
          await page.locator(`tr.event[data-position="${String(oldest - 1).padStart(16, "0")}"]`)
            .waitFor();
        },
      );

      await t.step("a correlation's timeline lists the handling and the tool call", async () => {
        // From the list of recent runs.
        await page.goto(`${server.url}#/runs`);
        await page.locator(`tr.run[data-id="${first.id}"] a`).click();
        await page.locator(".waterfall").waitFor();
        assert.equal(new URL(page.url()).hash, `#/run/${first.id}`);
        const labels = await page.locator(".waterfall .label").allTextContents();
        assert.deepEqual(labels, ["handling agent/worker handled task.created", "tool echo"]);
        const events = await page.locator(".run-events .kind").allTextContents();
        assert.deepEqual(events, ["task.created", "tool.invoked", "tool.completed", "task.done"]);
      });

      await t.step("an agent's lease is shown", async () => {
        const [[name, lease]] = await Array.fromAsync(new KvLeaseStore(vaultKv(store)!).list());
        assert.equal(name, "worker");
        await page.goto(`${server.url}#/agents`);
        const cell = page.locator('tr.agent[data-name="worker"] td.lease');
        await cell.waitFor();
        const text = await cell.textContent();
        assert.match(text!, new RegExp(`^${lease.owner} until \\d{4}-\\d\\d-\\d\\d `));
      });

      await t.step("an agent's state at a chosen position", async () => {
        // Recorded as the runner records ctx.state: an agent.state event committed with the
        // checkpoint store's index entry, here through a handle of its own.
        const writer = await openVault(db);
        try {
          const checkpoints = new KvCheckpointStore(vaultKv(writer)!);
          const checkpoint = { position: first.position, failures: 0, updatedAt: 1, subscribe: [] };
          const state = { greeted: ["Ada"] };
          const effect = checkpoints.withState("greeter", checkpoint, JSON.stringify(state));
          await writer.append("agent/greeter", [{
            kind: "agent.state",
            payload: { agent: "greeter", after: first.position, state },
            meta: { actor: "agent/greeter" },
          }], { effect });
        } finally {
          await writer.close();
        }
        // The page shows #/agents already: load it afresh.
        await page.goto("about:blank");
        await page.goto(`${server.url}#/agents`);
        await page.locator('select[name="agent"]').selectOption("greeter");
        await page.getByRole("button", { name: "Show state" }).click();
        const shown = await page.locator("#state-result pre.state").textContent();
        assert.deepEqual(JSON.parse(shown!), { greeted: ["Ada"] });
        await page.locator('input[name="at"]').fill(String(Number(first.position) - 1));
        await page.getByRole("button", { name: "Show state" }).click();
        await page.locator("#state-result p", { hasText: "had no state" }).waitFor();
      });

      await t.step("verify reports ok and the head to keep", async () => {
        await page.goto(`${server.url}#/integrity`);
        await page.getByRole("button", { name: "Verify" }).click();
        await page.locator("pre.head").waitFor();
        const status = await page.locator("#verify-status").textContent();
        const head = (await store.head())!;
        assert.equal(status, `ok: ${Number(head.position).toLocaleString("en-US")} events checked`);
        assert.equal(
          await page.locator("pre.head").textContent(),
          `${head.position}@${head.digest}`,
        );
      });
      await t.step("the README's screenshot: events, one of them open", async () => {
        const finished = done("screenshot");
        const created = await runtime.emit({
          kind: "task.created",
          payload: { label: "screenshot" },
        });
        await finished;
        await page.goto(`${server.url}#/events`);
        await page.locator(`tr.event[data-id="${created.id}"]`).click();
        await page.locator(`.event-detail[data-id="${created.id}"] .children li`).first().waitFor();
        const path = Deno.env.get("TOKA_UPDATE_SCREENSHOTS") === "1"
          ? SCREENSHOT.pathname
          : join(dir, "ui.png");
        await page.screenshot({ path });
        const png = await Deno.readFile(path);
        assert.deepEqual([...png.subarray(1, 4)], [..."PNG"].map((c) => c.charCodeAt(0)));
      });
      assert.deepEqual(errors, []);
    } finally {
      await browser.close();
      await server.shutdown();
      await store.close();
      await runtime.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
