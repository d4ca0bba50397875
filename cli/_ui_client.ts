// The client of `toka ui` (served as app.js): plain browser JavaScript in one module, shipped in
// the package as a string so it works offline and when installed from JSR, with no build step.
// Every value from the vault reaches the page as text (textContent), never as HTML. It holds no
// backtick or dollar-brace, as it lives in a template literal.

/** The page's script. */
export const CLIENT_JS: string = String.raw`
"use strict";
const main = document.getElementById("main");
const liveBadge = document.getElementById("live");
let stopView = () => {};
// The most event rows the events view keeps while following.
const MAX_ROWS = 1000;

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else el.setAttribute(key, String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

async function api(path) {
  const response = await fetch("api/" + path, { headers: { accept: "application/json" } });
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new Error(body && body.error ? body.error.message : response.statusText);
  return body;
}

function show(...nodes) {
  main.replaceChildren(...nodes);
}

function failure(error) {
  return h("p", { class: "error" }, String(error && error.message || error));
}

function time(ms) {
  return new Date(ms).toISOString().replace("T", " ").replace("Z", "");
}

function short(value, n) {
  const text = JSON.stringify(value);
  return text === undefined ? "" : text.length > n ? text.slice(0, n - 1) + "…" : text;
}

function pos(position) {
  return String(Number(position));
}

function eventLink(event) {
  return h("a", { href: "#/event/" + event.id, class: "mono" }, event.id);
}

function eventLine(event) {
  return h("li", { "data-id": event.id }, eventLink(event), " ",
    h("span", { class: "kind" }, event.kind), " ",
    h("span", { class: "muted" }, event.stream + "#" + event.version + " · " + time(event.timestamp)));
}

function setLive(on, text) {
  liveBadge.className = "live " + (on ? "on" : "off");
  liveBadge.textContent = text;
}

// Route: #/events?stream=..&kind=..&correlation=.., #/event/ID, #/runs, #/run/ID, #/agents,
// #/integrity.
function route() {
  stopView();
  stopView = () => {};
  setLive(false, "not live");
  const hash = location.hash.replace(/^#\/?/, "") || "events";
  const [path, search] = hash.split("?");
  const [view, ...rest] = path.split("/");
  const arg = decodeURIComponent(rest.join("/"));
  for (const link of document.querySelectorAll("nav a")) {
    const active = link.dataset.view === view || (view === "event" && link.dataset.view === "events") ||
      (view === "run" && link.dataset.view === "runs");
    link.classList.toggle("active", active);
  }
  const params = new URLSearchParams(search || "");
  if (view === "event") return eventView(arg);
  if (view === "run") return runView(arg);
  if (view === "runs") return runsView(params);
  if (view === "agents") return agentsView();
  if (view === "integrity") return integrityView();
  return eventsView(params);
}

// Events, newest first, filtered; new ones arrive live at the top.
async function eventsView(params) {
  const filters = new URLSearchParams();
  for (const key of ["stream", "correlation"]) if (params.get(key)) filters.set(key, params.get(key));
  for (const kind of params.getAll("kind")) if (kind) filters.append("kind", kind);
  const input = (name, placeholder) =>
    h("input", { name, placeholder, value: name === "kind" ? params.getAll("kind").join(",") : params.get(name) || "" });
  const form = h("form", { class: "filters", onsubmit: (e) => {
    e.preventDefault();
    const next = new URLSearchParams();
    const data = new FormData(form);
    for (const key of ["stream", "correlation"]) if (data.get(key)) next.set(key, String(data.get(key)).trim());
    for (const kind of String(data.get("kind") || "").split(",")) if (kind.trim()) next.append("kind", kind.trim());
    location.hash = "#/events" + (next.size ? "?" + next : "");
  } }, input("stream", "stream"), input("kind", "kind pattern, e.g. task.*"),
    input("correlation", "correlation id"), h("button", { type: "submit" }, "Filter"));
  const body = h("tbody", { id: "events" });
  const table = h("table", {}, h("thead", {}, h("tr", {}, ["position", "time", "stream", "kind", "payload"].map((c) => h("th", {}, c)))), body);
  const pager = h("div", { class: "pager" });
  show(h("h2", {}, "Events"), form, table, pager);
  let page;
  try {
    page = await api("events?" + filters);
  } catch (error) {
    return show(h("h2", {}, "Events"), form, failure(error));
  }
  for (const event of page.events) body.append(eventRow(event));
  let shown = page.events.length;
  if (page.events.length === 0) body.append(h("tr", { class: "empty" }, h("td", { colspan: 5, class: "muted" }, page.next === null ? "No events" : "None among the latest events read: “Older events” searches on")));
  const more = (next) => {
    pager.replaceChildren();
    if (next === null) return;
    pager.append(h("button", { class: "plain", onclick: async () => {
      const older = await api("events?" + filters + "&from=" + next);
      for (const event of older.events) body.append(eventRow(event));
      shown += older.events.length;
      more(older.next);
    } }, "Older events"));
  };
  more(page.next);
  const live = new URLSearchParams(filters);
  live.set("after", page.head ? page.head.position : "0");
  const source = new EventSource("api/live?" + live);
  source.addEventListener("open", () => setLive(true, "live"));
  source.addEventListener("error", () => setLive(false, "reconnecting…"));
  source.addEventListener("append", (message) => {
    const event = JSON.parse(message.data);
    const empty = body.querySelector("tr.empty");
    if (empty) empty.remove();
    const row = eventRow(event);
    row.classList.add("new");
    body.prepend(row);
    // A page left open on a busy log keeps the newest rows; the rest are a click away.
    if (++shown <= MAX_ROWS) return;
    for (; shown > MAX_ROWS; shown--) {
      if (body.lastElementChild.classList.contains("detail")) body.lastElementChild.remove();
      body.lastElementChild.remove();
    }
    let kept = body.lastElementChild;
    if (kept.classList.contains("detail")) kept = kept.previousElementSibling;
    const last = Number(kept.dataset.position) - 1;
    more(last < 1 ? null : String(last).padStart(16, "0"));
  });
  stopView = () => source.close();
}

function eventRow(event) {
  const row = h("tr", { class: "event", "data-id": event.id, "data-position": event.position },
    h("td", { class: "mono" }, pos(event.position)),
    h("td", { class: "mono" }, time(event.timestamp)),
    h("td", {}, event.stream + "#" + event.version),
    h("td", { class: "kind" }, event.kind),
    h("td", { class: "payload mono" }, short(event.payload, 120)));
  row.addEventListener("click", () => toggleDetail(row, event));
  return row;
}

// Several events may be open at once: each click opens or closes its own detail row.
async function toggleDetail(row, event) {
  const next = row.nextElementSibling;
  if (next && next.classList.contains("detail")) return next.remove();
  const cell = h("td", { colspan: 5 }, h("span", { class: "muted" }, "Loading…"));
  row.after(h("tr", { class: "detail", "data-for": event.id }, cell));
  try {
    cell.replaceChildren(detail(await api("events/" + event.id)));
  } catch (error) {
    cell.replaceChildren(failure(error));
  }
}

function detail(d) {
  const e = d.event;
  const rows = [["id", e.id], ["position", pos(e.position)], ["stream", e.stream + "#" + e.version],
    ["kind", e.kind], ["time", time(e.timestamp)], ["digest", e.digest]];
  if (e.intent !== undefined) rows.push(["intent", e.intent]);
  const grid = h("dl", { class: "detail-grid" }, rows.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]),
    h("dt", {}, "run"), h("dd", {}, h("a", { href: "#/run/" + encodeURIComponent(d.correlationId) }, d.correlationId)));
  const list = (events, cls) => events.length ? h("ul", { class: "links " + cls }, events.map(eventLine)) : h("p", { class: "muted" }, "None");
  return h("div", { class: "event-detail", "data-id": e.id }, grid,
    h("div", { class: "cols" },
      h("div", {}, h("h3", {}, "Payload"), h("pre", { class: "payload" }, JSON.stringify(e.payload, null, 2))),
      h("div", {}, h("h3", {}, "Meta"), h("pre", { class: "meta" }, JSON.stringify(e.meta, null, 2)))),
    h("div", { class: "cols" },
      h("div", {}, h("h3", {}, "Parents (" + d.parents.length + ")"), list(d.parents, "parents")),
      h("div", {}, h("h3", {}, "Caused (" + d.children.length + (d.childrenComplete ? "" : "+, search stopped early") + ")"), list(d.children, "children"))));
}

// One event on its own page: walk the tree through its parents' and children's links.
async function eventView(id) {
  show(h("h2", {}, "Event"), h("p", { class: "muted" }, "Loading…"));
  try {
    show(h("h2", {}, "Event"), detail(await api("events/" + encodeURIComponent(id))));
  } catch (error) {
    show(h("h2", {}, "Event"), failure(error));
  }
}

async function runsView(params) {
  const form = h("form", { class: "filters", onsubmit: (e) => {
    e.preventDefault();
    const id = String(new FormData(form).get("id") || "").trim();
    if (id) location.hash = "#/run/" + encodeURIComponent(id);
  } }, h("input", { name: "id", placeholder: "correlation id (or the id of the event that began it)", size: 50, value: params.get("id") || "" }),
    h("button", { type: "submit" }, "Show"));
  const intro = h("p", { class: "muted" }, "A run is everything sharing a correlation id. The latest:");
  show(h("h2", {}, "Runs"), form, intro);
  let list;
  try {
    list = await api("runs");
  } catch (error) {
    return show(h("h2", {}, "Runs"), form, failure(error));
  }
  const rows = list.runs.map((r) => h("tr", { class: "run", "data-id": r.correlationId },
    h("td", {}, h("a", { href: "#/run/" + encodeURIComponent(r.correlationId), class: "mono" }, r.correlationId)),
    h("td", { class: "kind" }, r.kind), h("td", {}, String(r.events)),
    h("td", { class: "mono" }, time(r.start)), h("td", { class: "mono" }, (r.end - r.start) + " ms")));
  show(h("h2", {}, "Runs"), form, intro, list.runs.length === 0 ? h("p", { class: "muted" }, "No events yet") :
    h("table", {}, h("thead", {}, h("tr", {}, ["run", "began with", "events", "started", "lasted"].map((c) => h("th", {}, c)))), h("tbody", {}, rows)),
    h("p", { class: "muted" }, "From the latest " + list.scanned.toLocaleString() + " events."));
}

// A correlation as a waterfall of handlings, tool and model calls and steps, then its events.
async function runView(id) {
  show(h("h2", {}, "Run " + id), h("p", { class: "muted" }, "Loading…"));
  let t;
  try {
    t = await api("correlations/" + encodeURIComponent(id));
  } catch (error) {
    return show(h("h2", {}, "Run " + id), failure(error));
  }
  const span = Math.max(1, t.end - t.start);
  const fall = h("div", { class: "waterfall" });
  for (const s of t.spans) {
    const bar = h("div", { class: "bar " + s.type + (s.ok ? "" : " failed"), title: s.label });
    bar.style.left = ((s.start - t.start) / span * 100) + "%";
    bar.style.width = (Math.max(s.end - s.start, 0) / span * 100) + "%";
    fall.append(h("div", { class: "label span-" + s.type }, h("span", { class: "muted" }, s.type + " "), s.label),
      h("div", { class: "track" }, bar), h("div", { class: "mono" }, s.durationMs + " ms"));
  }
  show(h("h2", {}, "Run " + id),
    h("p", { class: "muted" }, t.events.length + " events" + (t.complete ? "" : " (search stopped early)") +
      (t.start === null ? "" : ", " + time(t.start) + " to " + time(t.end))),
    h("h3", {}, "Timeline"), t.spans.length ? fall : h("p", { class: "muted" }, "No handlings or calls"),
    h("h3", {}, "Events"), h("ul", { class: "links run-events" }, t.events.map(eventLine)));
}

async function agentsView() {
  show(h("h2", {}, "Agents"), h("p", { class: "muted" }, "Loading…"));
  let agents;
  try {
    agents = await api("agents");
  } catch (error) {
    return show(h("h2", {}, "Agents"), failure(error));
  }
  if (agents.length === 0) return show(h("h2", {}, "Agents"), h("p", { class: "muted" }, "No agent has a checkpoint in this vault yet"));
  const now = Date.now();
  const rows = agents.map((a) => h("tr", { class: "agent", "data-name": a.name },
    h("td", { class: "kind" }, a.name),
    h("td", { class: "mono" }, a.position === null ? "-" : pos(a.position)),
    h("td", {}, (a.subscribe === null ? "≤" : "") + a.lag),
    h("td", { class: "lease" }, a.lease === null ? "none" :
      [h("span", { class: "mono" }, a.lease.owner), " ", a.lease.expiresAt > now ? "until " + time(a.lease.expiresAt) : h("span", { class: "muted" }, "ended " + time(a.lease.expiresAt))]),
    h("td", { class: "given-up" }, a.givenUp.length === 0 ? "0" : h("ul", { class: "links" }, a.givenUp.map((f) =>
      h("li", {}, h("a", { href: "#/event/" + f.eventId, class: "mono" }, f.eventId), " ", h("span", { class: "kind" }, f.kind), " ",
        h("span", { class: "bad" }, f.error), f.retryRequested ? h("span", { class: "muted" }, " (retry requested)") : "")))),
    h("td", { class: "mono" }, time(a.updatedAt))));
  // An agent's state (ctx.state) once it had handled everything up to a position.
  const result = h("div", { id: "state-result" });
  const form = h("form", { class: "filters", onsubmit: async (e) => {
    e.preventDefault();
    const data = new FormData(form);
    const at = String(data.get("at") || "").trim();
    try {
      const s = await api("agents/" + encodeURIComponent(String(data.get("agent"))) + "/state" + (at ? "?at=" + encodeURIComponent(at) : ""));
      result.replaceChildren(s.position === null
        ? h("p", { class: "muted" }, s.agent + " had no state at position " + (s.at === null ? "-" : pos(s.at)))
        : h("div", {}, h("p", { class: "muted" }, s.agent + " at position " + pos(s.at) + ": set while handling position " + pos(s.after) + ", recorded at " + pos(s.position)),
          h("pre", { class: "state" }, JSON.stringify(s.state, null, 2))));
    } catch (error) {
      result.replaceChildren(failure(error));
    }
  } }, h("select", { name: "agent" }, agents.map((a) => h("option", { value: a.name }, a.name))),
    h("input", { name: "at", placeholder: "position (default: the head)", size: 28 }),
    h("button", { type: "submit" }, "Show state"));
  show(h("h2", {}, "Agents"), h("table", {}, h("thead", {}, h("tr", {}, ["agent", "position", "lag", "lease holder", "gave up on", "updated"].map((c) => h("th", {}, c)))), h("tbody", {}, rows)),
    h("h3", {}, "State at a position"), form, result);
}

function integrityView() {
  const bar = h("progress", { max: 1, value: 0 });
  const status = h("p", { id: "verify-status", class: "muted" }, "Recompute every digest, the chain and the parent links.");
  const result = h("div", { id: "verify-result" });
  const button = h("button", { onclick: () => {
    button.disabled = true;
    result.replaceChildren();
    const source = new EventSource("api/verify");
    stopView = () => source.close();
    source.addEventListener("progress", (m) => {
      const p = JSON.parse(m.data);
      bar.max = Math.max(1, p.total);
      bar.value = p.checked;
      status.textContent = "Checked " + p.checked.toLocaleString() + " of " + p.total.toLocaleString() + " events";
    });
    source.addEventListener("done", (m) => {
      source.close();
      button.disabled = false;
      const d = JSON.parse(m.data);
      bar.value = bar.max;
      status.replaceChildren(h("span", { class: d.report.ok ? "ok" : "bad" }, d.report.ok ? "ok" : "problems found"),
        ": " + d.report.checked.toLocaleString() + " events checked");
      result.replaceChildren(
        d.head === null ? h("p", { class: "muted" }, "The log is empty") :
          h("div", {}, h("h3", {}, "Head to keep"), h("pre", { class: "head" }, d.head.position + "@" + d.head.digest),
            h("p", { class: "muted" }, "Later, toka events verify --expect-head <this> proves nothing up to it changed.")),
        d.report.problems.length ? h("ul", { class: "problems" }, d.report.problems.map((p) =>
          h("li", { class: "bad" }, pos(p.position) + (p.id ? " " + p.id : "") + ": " + p.reason))) : "");
    });
    source.addEventListener("failed", (m) => {
      source.close();
      button.disabled = false;
      status.replaceChildren(failure(new Error(JSON.parse(m.data).error.message)));
    });
    // A dropped stream is not resumed: verifying again starts over.
    source.addEventListener("error", () => {
      source.close();
      button.disabled = false;
    });
  } }, "Verify");
  show(h("h2", {}, "Integrity"), button, " ", bar, status, result);
}

addEventListener("hashchange", route);
route();
`;
