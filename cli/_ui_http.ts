// The responses of `toka ui`, each with the same security headers, and the context its handlers
// share.
import type { EventStore } from "../runtime/log/event_store.ts";

/**
 * The Content-Security-Policy of every response: scripts, styles and connections from this
 * origin only, no inline script or style, no frames, forms, plugins or base changes.
 */
export const CONTENT_SECURITY_POLICY: string = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

const SECURITY_HEADERS: Record<string, string> = {
  "content-security-policy": CONTENT_SECURITY_POLICY,
  "x-content-type-options": "nosniff",
  // The token is in every path: no page may leak it in a Referer.
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-resource-policy": "same-origin",
  "cache-control": "no-store",
};

/** What a request handler needs besides the request. */
export interface UiContext {
  /** The store; never written to. */
  store: EventStore;
  /** Where it lives, as the user named it. */
  location: string;
  /** Milliseconds since the epoch, to judge leases. */
  clock: () => number;
  /** Aborts when the server stops: every stream ends. */
  stopping: AbortSignal;
}

/**
 * A response with the server's security headers.
 *
 * @param status The HTTP status.
 * @param body The body.
 * @param type The content type.
 * @param extra More headers.
 * @returns The response.
 */
export function respond(
  status: number,
  body: BodyInit | null,
  type: string,
  extra: Record<string, string> = {},
): Response {
  return new Response(body, {
    status,
    headers: { ...SECURITY_HEADERS, "content-type": type, ...extra },
  });
}

/**
 * A JSON response with the server's security headers.
 *
 * @param status The HTTP status.
 * @param value The body.
 * @returns The response.
 */
export function json(status: number, value: unknown): Response {
  return respond(status, JSON.stringify(value), "application/json; charset=utf-8");
}

/**
 * A plain text response of one line.
 *
 * @param status The HTTP status.
 * @param line The line.
 * @param extra More headers.
 * @returns The response.
 */
export function text(status: number, line: string, extra: Record<string, string> = {}): Response {
  return respond(status, `${line}\n`, "text/plain; charset=utf-8", extra);
}

/**
 * A server-sent events response with the server's security headers.
 *
 * @param body The stream of `text/event-stream` bytes.
 * @returns The response.
 */
export function eventStream(body: ReadableStream<Uint8Array>): Response {
  return respond(200, body, "text/event-stream; charset=utf-8");
}
