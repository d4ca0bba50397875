// One HTTP request of http.fetch, sent to addresses that were already checked.
// node:http and node:https (in Deno and Node alike) connect through a `lookup`
// that answers those addresses, so a DNS answer that changes after the check
// (DNS rebinding) cannot move the request, while the Host header and the TLS
// server name (SNI and the certificate check) stay the URL's host. No agent,
// so no pooled connection and no proxy: HTTP_PROXY and the like are ignored.
import { type IncomingMessage, request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { isIP } from "node:net";
import { TokaError } from "../runtime/errors.ts";

/** What to send, and where. */
export interface PinnedRequest {
  url: URL;
  method: string;
  headers: Headers;
  body: Uint8Array | undefined;
  /** The checked addresses of the URL's host, tried in order. */
  addresses: string[];
  signal: AbortSignal;
}

// Framing and connection headers are the transport's, never the caller's.
const TRANSPORT_HEADERS = new Set([
  "host",
  "content-length",
  "transfer-encoding",
  "connection",
  "keep-alive",
  "upgrade",
  "te",
  "trailer",
  "expect",
]);

type LookupCallback = (
  error: Error | null,
  address: string | { address: string; family: number }[],
  family?: number,
) => void;

/**
 * Sends the request and resolves with the response head once it arrives; its body is
 * still to be read (or destroyed).
 */
export function sendPinned(request: PinnedRequest): Promise<IncomingMessage> {
  const { url, addresses } = request;
  const hostname = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname;
  const pinned = addresses.map((address) => ({ address, family: isIP(address) }));
  const headers: Record<string, string> = { accept: "*/*", "user-agent": "toka" };
  for (const [name, value] of request.headers) {
    if (!TRANSPORT_HEADERS.has(name)) headers[name] = value;
  }
  headers.host = url.host;
  if (request.body !== undefined) headers["content-length"] = String(request.body.length);
  const send = url.protocol === "https:" ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const outgoing = send({
      hostname,
      port: url.port === "" ? undefined : Number(url.port),
      path: `${url.pathname}${url.search}`,
      method: request.method,
      headers,
      agent: false,
      signal: request.signal,
      lookup: (_name: string, options: { all?: boolean }, callback: LookupCallback) => {
        if (options?.all) callback(null, pinned);
        else callback(null, pinned[0].address, pinned[0].family);
      },
      // The certificate is checked against the host name, not the address connected to.
      ...(isIP(hostname) === 0 && { servername: hostname.replace(/\.$/, "") }),
    }, resolve);
    outgoing.on("error", reject);
    outgoing.end(request.body);
  });
}

/** Response headers: lower-cased names, repeated ones joined with ", ". */
export function headerRecord(response: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  const raw = response.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i].toLowerCase();
    out[name] = name in out ? `${out[name]}, ${raw[i + 1]}` : raw[i + 1];
  }
  return out;
}

/** Why a request failed, in a few words: never the error's own text, which may hold the URL. */
export function failureReason(error: unknown): string {
  const text = error instanceof Error
    ? `${(error as { code?: string }).code ?? ""} ${error.message} ${String(error.cause ?? "")}`
    : "";
  if (/refused/i.test(text)) return "connection refused";
  if (/reset/i.test(text)) return "connection reset";
  if (/certificate|cert_|tls|ssl/i.test(text)) return "TLS error";
  if (/dns|resolve|lookup|ENOTFOUND/i.test(text)) return "the host cannot be resolved";
  return "network error";
}

/** Reads a body up to `max` bytes; refuses a larger one without reading the rest. */
export async function readBody(
  response: IncomingMessage,
  max: number,
  host: string,
  failed: (error: unknown) => never,
): Promise<Uint8Array> {
  const tooLarge = (): never => {
    response.destroy();
    throw new TokaError(
      "http_too_large",
      `The response from host ${JSON.stringify(host)} is larger than the ${max} bytes allowed`,
    );
  };
  if (Number(response.headers["content-length"] ?? NaN) > max) tooLarge();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for await (const chunk of response as AsyncIterable<Uint8Array>) {
      size += chunk.length;
      if (size > max) tooLarge();
      chunks.push(chunk);
    }
  } catch (error) {
    if (error instanceof TokaError) throw error;
    failed(error);
  }
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.length;
  }
  return bytes;
}
