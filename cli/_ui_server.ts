// The `toka ui` web server: one port on 127.0.0.1, a random token in the path of every URL,
// Host and Origin checked against DNS rebinding, a strict Content-Security-Policy, GET only.
// What it serves is read from the store; see _ui_api.ts for the JSON and _ui_live.ts for the
// server-sent events.
import { Buffer } from "node:buffer";
import { createHash, timingSafeEqual } from "node:crypto";
import { trace } from "@opentelemetry/api";
import type { EventStore } from "../runtime/log/event_store.ts";
import { TokaError } from "../runtime/errors.ts";
import { ApiError, apiRoute } from "./_ui_api.ts";
import { liveEvents, verifyProgress } from "./_ui_live.ts";
import { CLIENT_JS } from "./_ui_client.ts";
import { CLIENT_CSS } from "./_ui_style.ts";
import { pageHtml } from "./_ui_page.ts";
import { json, respond, text, type UiContext } from "./_ui_http.ts";

/** Options of {@linkcode startUiServer}. */
export interface UiServerOptions {
  /** The store to show; the server never writes to it. */
  store: EventStore;
  /** The port; 0 (the default) picks a free one. */
  port?: number;
  /** The token every URL carries; 32 random bytes (base64url) by default. */
  token?: string;
  /** Where the store lives, as the user named it, shown in the page. */
  location?: string;
  /** Milliseconds since the epoch, to judge leases; `Date.now` by default. */
  clock?: () => number;
}

/** A running `toka ui` server. */
export interface UiServer {
  /** The URL to open, token included. */
  url: string;
  /**
   * A link that opens the page once, for a browser started with it as an argument (where
   * `ps` shows it to every local user): it holds a one-time code, not the token, and is
   * redirected to {@linkcode UiServer.url} on its first use only.
   */
  openUrl: string;
  /** The port it listens on. */
  port: number;
  /** Stops listening and ends every open stream. */
  shutdown(): Promise<void>;
  /** Settles once the server has stopped. */
  finished: Promise<void>;
}

/**
 * A fresh random token: 32 bytes from the platform's CSPRNG, base64url.
 *
 * @returns The token.
 */
export function randomToken(): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64url");
}

/**
 * Starts the `toka ui` server on 127.0.0.1.
 *
 * @param options The store, port and token.
 * @returns The running server and its URL.
 * @throws {TokaError} `"port_in_use"` when the port is taken.
 */
export async function startUiServer(options: UiServerOptions): Promise<UiServer> {
  const token = options.token ?? randomToken();
  const stopping = new AbortController();
  const ctx: UiContext = {
    store: options.store,
    location: options.location ?? "",
    clock: options.clock ?? Date.now,
    stopping: stopping.signal,
  };
  const once = { code: randomToken(), used: false };
  let port = 0;
  const listening = Promise.withResolvers<void>();
  let server: Deno.HttpServer;
  try {
    server = Deno.serve({
      hostname: "127.0.0.1",
      port: options.port ?? 0,
      signal: stopping.signal,
      onListen: (addr) => {
        port = addr.port;
        listening.resolve();
      },
      onError: () => json(500, { error: { code: "error", message: "Internal error" } }),
    }, (request) => handle(request, ctx, token, port, once));
  } catch (error) {
    if (error instanceof Deno.errors.AddrInUse) {
      throw new TokaError(
        "port_in_use",
        `Cannot serve on port ${options.port}: it is in use; pick another with --port`,
      );
    }
    throw error;
  }
  await listening.promise;
  return {
    url: `http://127.0.0.1:${port}/t/${token}/`,
    openUrl: `http://127.0.0.1:${port}/o/${once.code}`,
    port,
    finished: server.finished,
    async shutdown() {
      stopping.abort();
      await server.finished;
    },
  };
}

/**
 * Whether two tokens are equal, in time that depends on neither: both are hashed first, so
 * not even their lengths show.
 *
 * @param given The token a request carried.
 * @param expected The server's token.
 * @returns True when they are the same.
 */
export function sameToken(given: string, expected: string): boolean {
  const a = createHash("sha256").update(given).digest();
  const b = createHash("sha256").update(expected).digest();
  return timingSafeEqual(a, b);
}

function handle(
  request: Request,
  ctx: UiContext,
  token: string,
  port: number,
  once: { code: string; used: boolean },
): Response | Promise<Response> {
  hideToken(request.url);
  // DNS rebinding: a page of another site whose name now points here sends its own Host.
  const host = request.headers.get("host");
  const origins = [`127.0.0.1:${port}`, `localhost:${port}`];
  // On the default port a browser sends Host and Origin without it.
  if (port === 80) origins.push("127.0.0.1", "localhost");
  if (host === null || !origins.includes(host.toLowerCase())) {
    return text(403, "Forbidden: this server answers only to 127.0.0.1 and localhost");
  }
  const url = new URL(request.url);
  const [, t, given, ...rest] = url.pathname.split("/");
  if (t === "o" && given !== undefined && rest.length === 0 && sameToken(given, once.code)) {
    if (once.used) {
      return text(
        410,
        "Gone: this link opens the page once and was used; open the URL that toka ui printed",
      );
    }
    once.used = true;
    return respond(303, null, "text/plain; charset=utf-8", { location: `/t/${token}/` });
  }
  if (t !== "t" || given === undefined || !sameToken(given, token)) {
    return text(401, "Unauthorized: open the URL that toka ui printed, token included");
  }
  const origin = request.headers.get("origin");
  if (origin !== null && !origins.some((o) => origin.toLowerCase() === `http://${o}`)) {
    return text(403, "Forbidden: cross-origin requests are refused");
  }
  if (request.method !== "GET" && request.method !== "HEAD") {
    return text(405, "Method not allowed: this server only reads", { allow: "GET, HEAD" });
  }
  const path = rest.join("/");
  if (rest.length === 0) return redirect(`/t/${given}/`);
  switch (path) {
    case "":
      return respond(200, pageHtml(ctx.location), "text/html; charset=utf-8");
    case "app.js":
      return respond(200, CLIENT_JS, "text/javascript; charset=utf-8");
    case "app.css":
      return respond(200, CLIENT_CSS, "text/css; charset=utf-8");
    case "api/live":
      return guarded(() => liveEvents(request, url, ctx));
    case "api/verify":
      return guarded(() => verifyProgress(ctx));
  }
  if (path.startsWith("api/")) {
    return guarded(async () => json(200, await apiRoute(path.slice(4), url.searchParams, ctx)));
  }
  return json(404, { error: { code: "not_found", message: `Nothing at ${JSON.stringify(path)}` } });
}

// Errors as the CLI's --json prints them: { error: { code, message } }.
async function guarded(task: () => Response | Promise<Response>): Promise<Response> {
  try {
    return await task();
  } catch (error) {
    if (error instanceof ApiError) {
      return json(error.status, { error: { code: error.code, message: error.message } });
    }
    if (error instanceof TokaError) {
      const status = error.code.endsWith("not_found") ? 404 : 500;
      return json(status, { error: { code: error.code, message: error.message } });
    }
    return json(500, {
      error: { code: "error", message: error instanceof Error ? error.message : String(error) },
    });
  }
}

// With OTEL_DENO=true Deno makes a span of each request it serves, with the URL in url.full and
// url.path; the URL holds the token, which no trace backend may get.
function hideToken(href: string): void {
  const span = trace.getActiveSpan();
  if (span === undefined) return;
  const url = new URL(href);
  const path = url.pathname.replace(/^\/([to])\/[^/]*/, (_, t) => `/${t}/<token>`);
  span.setAttributes({ "url.full": `${url.origin}${path}${url.search}`, "url.path": path });
}

function redirect(location: string): Response {
  return respond(308, null, "text/plain; charset=utf-8", { location });
}
