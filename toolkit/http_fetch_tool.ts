/**
 * The `http.fetch` built-in tool: HTTP requests to the hosts of an allowlist.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { lookup } from "node:dns/promises";
import { TokaError } from "../runtime/errors.ts";
import { redactTokens } from "../internal/redact.ts";
import { defineTool, type Tool } from "./tool.ts";
import { addressClass, isIpLiteral } from "./_ip.ts";
import { intOption } from "../internal/int_option.ts";
import { bare, canonicalHost, hostList, matches } from "./_http_allowlist.ts";
import { failureReason, headerRecord, readBody, sendPinned } from "./_http_request.ts";

/** Options of {@linkcode createHttpFetchTool}. */
export interface HttpFetchOptions {
  /**
   * The hosts requests may go to: names (`"api.example.com"`), `"*.example.com"` for any
   * host below a domain, or IP addresses (`"203.0.113.7"`, `"[2001:db8::1]"`). None by default:
   * every request is refused until a host is allowed. An entry may name one port
   * (`"api.example.com:8443"`, `"[2001:db8::1]:8080"`); without one it allows every port. A host
   * whose addresses are loopback, private or link-local is still refused unless it is also in
   * `allowPrivate`.
   */
  allow?: string[];
  /**
   * Hosts (exact names or addresses, no wildcard) allowed even when they resolve to loopback,
   * private, link-local or other non-public addresses, e.g. `["localhost"]`. They need not be
   * repeated in `allow`. An address listed here may also be reached under a name on `allow`
   * that resolves to it. As in `allow`, `"127.0.0.5:8080"` (`"[::1]:8080"`) allows that port
   * only, a bare host every port.
   */
  allowPrivate?: string[];
  /** The largest response body, in bytes (1 MiB; at most 16 MiB); a larger one is refused. */
  maxResponseBytes?: number;
  /** The largest request body, in bytes (1 MiB; at most 16 MiB). */
  maxRequestBytes?: number;
  /** Milliseconds the whole call may take, redirects included (10000). */
  timeoutMs?: number;
  /** The most redirects followed (5); each is checked against the lists like the first URL. */
  maxRedirects?: number;
  /**
   * Resolves a host name to its IP addresses; `node:dns` `lookup` (the system resolver) by
   * default. It is asked once per request, for the check, and the request connects to the
   * addresses it gave. `localhost` and names under `.localhost` are 127.0.0.1 and ::1 without
   * asking it.
   */
  resolve?: (hostname: string) => Promise<string[]>;
}

/** The input of `http.fetch`. */
export interface HttpFetchInput {
  /** An `http:` or `https:` URL without credentials. */
  url: string;
  /** `GET` by default. */
  method?: "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS";
  /** Request headers. */
  headers?: Record<string, string>;
  /** The request body (not with GET or HEAD). */
  body?: string;
  /** How `body` is encoded: `"utf8"` (the default) or `"base64"`. */
  bodyEncoding?: "utf8" | "base64";
  /** How to return the response body: `"utf8"` (the default; it must be UTF-8) or `"base64"`. */
  responseEncoding?: "utf8" | "base64";
}

/** The output of `http.fetch`. */
export interface HttpFetchOutput {
  /** The URL that answered, after redirects. */
  url: string;
  /** The HTTP status. */
  status: number;
  /** The status text. */
  statusText: string;
  /** Response headers, lower-cased names; repeated ones joined with ", ". */
  headers: Record<string, string>;
  /** The response body, as `encoding` says. */
  body: string;
  /** How `body` is encoded. */
  encoding: "utf8" | "base64";
  /** How many redirects were followed. */
  redirects: number;
}

const MIB = 1024 * 1024;
const MAX_BYTES = 16 * MIB;
const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
// The only caller's headers kept when a redirect leaves the origin, as curl does without
// --location-trusted: any other may carry a key meant for the first host (content-type goes
// with the body, which a 303 drops).
const CROSS_ORIGIN_SAFE = new Set([
  "accept",
  "accept-language",
  "content-language",
  "user-agent",
  "content-type",
]);
const utf8 = new TextDecoder("utf-8", { fatal: true });

async function systemResolve(hostname: string): Promise<string[]> {
  const found = await lookup(hostname, { all: true, verbatim: true });
  return found.map((entry) => entry.address);
}

/**
 * Creates `http.fetch`: an HTTP request to a host on the allowlist, returning
 * `{ url, status, statusText, headers, body, encoding, redirects }`.
 *
 * Every URL, the first and each redirect's (followed by the tool, at most `maxRedirects`),
 * must be `http:` or `https:`, without credentials, to a host on `allow` or `allowPrivate`;
 * a host's addresses (from `resolve`, or the address itself) must all be public unless the
 * host is on `allowPrivate`: loopback, private, link-local, multicast and reserved addresses
 * are refused, also as IPv4 inside IPv6 (`::ffff:127.0.0.1`) or in decimal or octal forms
 * (`2130706433`, `0177.0.0.1`), which URLs normalise. A redirect to another origin (scheme,
 * host or port) keeps only the caller's `accept`, `accept-language`, `content-language`,
 * `user-agent` and, with the body, `content-type` headers; 303, and 301/302 after a POST,
 * continue as GET without a body. The response body is read up to `maxResponseBytes` and the
 * whole call is bounded by `timeoutMs`. Refusals and failures are one-line errors naming
 * the host. Needs `tool:http.fetch:invoke`.
 *
 * The host is resolved once per request (each redirect too), its addresses are checked, and
 * the request connects to those addresses, sending the URL's host as `Host` and as the TLS
 * server name, so a DNS answer that changes after the check (DNS rebinding) cannot move it.
 * Proxies are never used: `HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY` and `NO_PROXY` are ignored.
 *
 * @param options The allowlists and limits; with none, every request is refused.
 * @returns The tool, ready to register.
 * @throws {TypeError} When a host entry is not a host name or address, with an optional port.
 * @throws {RangeError} When a host entry's port is not from 1 to 65535.
 * @throws {RangeError} When a limit is not an integer in range.
 *
 * @example Nothing is allowed by default
 * ```ts
 * import { createHttpFetchTool, ToolRegistry } from "@toka/runtime/toolkit";
 *
 * const tools = new ToolRegistry({ tools: [createHttpFetchTool()] });
 * await tools.call("http.fetch", { url: "https://example.com/" })
 *   .catch((error) => console.log(error.message));
 * // Tool "http.fetch" failed: Host "example.com" is not on the http.fetch allowlist
 * ```
 */
export function createHttpFetchTool(
  options: HttpFetchOptions = {},
): Tool<HttpFetchInput, HttpFetchOutput> {
  const allow = hostList("http allow", options.allow, true);
  const allowPrivate = hostList("http allowPrivate", options.allowPrivate, false);
  const maxResponse = intOption("maxResponseBytes", options.maxResponseBytes, MIB, 0, MAX_BYTES);
  const maxRequest = intOption("maxRequestBytes", options.maxRequestBytes, MIB, 0, MAX_BYTES);
  const timeoutMs = intOption("timeoutMs", options.timeoutMs, 10_000, 1, 3_600_000);
  const maxRedirects = intOption("maxRedirects", options.maxRedirects, 5, 0, 20);
  const resolve = options.resolve ?? systemResolve;

  // Throws unless a request may go to `url`; returns the addresses it may go to. The request
  // connects to these, never resolving the host again, so a later DNS answer cannot move it.
  const check = async (url: URL, redirected: boolean): Promise<string[]> => {
    const host = bare(url.hostname);
    const refuse = (why: string): never => {
      throw new TokaError(
        "http_refused",
        `${redirected ? "Redirect to host" : "Host"} ${JSON.stringify(host)} ${why}`,
      );
    };
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw new TokaError(
        "http_refused",
        `${redirected ? "Redirect to" : "URL with"} scheme ${
          JSON.stringify(url.protocol.slice(0, -1))
        } refused: only http and https are allowed`,
      );
    }
    if (url.username !== "" || url.password !== "") {
      refuse("refused: credentials in the URL are not allowed, send them in a header");
    }
    const port = Number(url.port || (url.protocol === "https:" ? 443 : 80));
    const privateOk = matches(allowPrivate, host, port);
    if (!privateOk && !matches(allow, host, port)) {
      const listed = matches(allowPrivate, host) || matches(allow, host);
      refuse(`is not on the http.fetch allowlist${listed ? ` for port ${port}` : ""}`);
    }
    let addresses: string[];
    if (isIpLiteral(host)) addresses = [host];
    else if (host === "localhost" || host.endsWith(".localhost")) {
      addresses = ["127.0.0.1", "::1"];
    } else {
      try {
        addresses = (await resolve(host)).filter((address) => isIpLiteral(address));
      } catch {
        addresses = [];
      }
      if (addresses.length === 0) refuse("cannot be resolved");
    }
    if (privateOk) return addresses;
    for (const address of addresses) {
      const kind = addressClass(address);
      // An address named in allowPrivate may be reached under any allowed name.
      if (kind !== undefined && !matches(allowPrivate, canonicalHost(address) ?? "", port)) {
        refuse(
          `has the ${kind} address ${address}: list the host in allowPrivate to reach it`,
        );
      }
    }
    return addresses;
  };

  return defineTool<HttpFetchInput, HttpFetchOutput>({
    name: "http.fetch",
    description:
      "Sends an HTTP request to an allowed host and returns the status, headers and body",
    version: "1.0.0",
    inputSchema: {
      type: "object",
      properties: {
        url: { type: "string", minLength: 1, maxLength: 8192 },
        method: {
          type: "string",
          enum: ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
        },
        headers: { type: "object", additionalProperties: { type: "string" } },
        body: { type: "string", maxLength: Math.ceil(maxRequest / 3) * 4 },
        bodyEncoding: { type: "string", enum: ["utf8", "base64"] },
        responseEncoding: { type: "string", enum: ["utf8", "base64"] },
      },
      required: ["url"],
      additionalProperties: false,
    },
    outputSchema: {
      type: "object",
      properties: {
        url: { type: "string" },
        status: { type: "integer" },
        statusText: { type: "string" },
        headers: { type: "object", additionalProperties: { type: "string" } },
        body: { type: "string" },
        encoding: { type: "string", enum: ["utf8", "base64"] },
        redirects: { type: "integer", minimum: 0 },
      },
      required: ["url", "status", "statusText", "headers", "body", "encoding", "redirects"],
    },
    annotations: {
      readOnlyHint: false,
      destructiveHint: true,
      idempotentHint: false,
      openWorldHint: true,
    },
    // The tool's own deadline reports first, with the host in its message.
    timeoutMs: timeoutMs + 5000,
    execute: async (input, ctx) => {
      let url: URL;
      try {
        url = new URL(input.url);
      } catch {
        throw new TypeError(`Invalid url ${JSON.stringify(urlForMessage(input.url))}: not a URL`);
      }
      let method: string = input.method ?? "GET";
      let body: Uint8Array<ArrayBuffer> | undefined;
      if (input.body !== undefined) {
        if (method === "GET" || method === "HEAD") {
          throw new TypeError(`A ${method} request cannot have a body`);
        }
        if (input.bodyEncoding === "base64") {
          if (!BASE64.test(input.body)) throw new TypeError("The body is not valid base64");
          body = new Uint8Array(Buffer.from(input.body, "base64"));
        } else {
          if (!input.body.isWellFormed()) throw new TypeError("The body has a lone surrogate");
          body = new TextEncoder().encode(input.body);
        }
        if (body.length > maxRequest) {
          throw new RangeError(
            `The body has ${body.length} bytes, more than the ${maxRequest} allowed`,
          );
        }
      }
      let headers: Headers;
      try {
        headers = new Headers(input.headers ?? {});
      } catch {
        throw new TypeError("Invalid headers: a name or value is not allowed in HTTP");
      }

      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort("timeout"), timeoutMs);
      const onAbort = () => controller.abort(ctx.signal.reason);
      ctx.signal.addEventListener("abort", onAbort, { once: true });
      let host = bare(url.hostname);
      // fetch's own messages may hold the whole URL: say only which host failed, and how.
      const failed = (error: unknown): never => {
        if (controller.signal.reason === "timeout") {
          throw new TokaError(
            "http_timeout",
            `Request to host ${JSON.stringify(host)} timed out after ${timeoutMs} ms`,
          );
        }
        if (ctx.signal.aborted) throw ctx.signal.reason;
        throw new TokaError(
          "http_failed",
          `Request to host ${JSON.stringify(host)} failed: ${failureReason(error)}`,
        );
      };
      try {
        for (let redirects = 0;; redirects++) {
          host = bare(url.hostname);
          const addresses = await check(url, redirects > 0);
          const response = await sendPinned({
            url,
            method,
            headers,
            body,
            addresses,
            signal: controller.signal,
          }).catch(failed);
          const status = response.statusCode ?? 0;
          const location = response.headers.location;
          if (REDIRECTS.has(status) && location !== undefined) {
            response.destroy();
            if (redirects >= maxRedirects) {
              throw new TokaError(
                "http_redirects",
                `Host ${JSON.stringify(host)} redirected more than ${maxRedirects} times`,
              );
            }
            let next: URL;
            try {
              next = new URL(location, url);
            } catch {
              throw new TokaError(
                "http_failed",
                `Host ${JSON.stringify(host)} redirected to an invalid URL`,
              );
            }
            if (status === 303 || ((status === 301 || status === 302) && method === "POST")) {
              if (method !== "HEAD") method = "GET";
              body = undefined;
              headers.delete("content-type");
            }
            if (next.origin !== url.origin) {
              for (const name of [...headers.keys()]) {
                if (!CROSS_ORIGIN_SAFE.has(name)) headers.delete(name);
              }
            }
            url = next;
            continue;
          }
          const bytes = await readBody(response, maxResponse, host, failed);
          const encoding = input.responseEncoding ?? "utf8";
          let text: string;
          if (encoding === "base64") text = Buffer.from(bytes).toString("base64");
          else {
            try {
              text = utf8.decode(bytes);
            } catch {
              throw new TokaError(
                "http_not_text",
                `The response from host ${
                  JSON.stringify(host)
                } is not UTF-8 text: ask for responseEncoding "base64"`,
              );
            }
          }
          return {
            url: url.href,
            status,
            statusText: response.statusMessage ?? "",
            headers: headerRecord(response),
            body: text,
            encoding,
            redirects,
          };
        }
      } finally {
        clearTimeout(timer);
        ctx.signal.removeEventListener("abort", onAbort);
      }
    },
  });
}

// The message reaches logs and tool.failed events: never echo the userinfo (up to the last "@",
// as a password may hold "/" or "@"), the query or the fragment, nor a token elsewhere.
function urlForMessage(text: string): string {
  let shown = text.split(/[?#]/, 1)[0];
  const at = shown.lastIndexOf("@");
  if (at !== -1) {
    shown = (/^[a-z][a-z0-9+.-]*:[/\\]*/i.exec(shown)?.[0] ?? "") + shown.slice(at + 1);
  }
  return redactTokens(shown.slice(0, 100));
}
