// The http transport: JSON-RPC 2.0 requests sent by POST, one per call.
import { parseResponse, rpcError, rpcRequest } from "./_plugin_jsonrpc.ts";
import { preview } from "./_plugin_remote.ts";

// An answer larger than this is refused rather than held in memory.
const MAX_ANSWER_BYTES = 16 * 1024 * 1024;

/** A JSON-RPC 2.0 endpoint; the headers are never shown in errors. */
export class HttpConnection {
  #url: string;
  #headers: Record<string, string>;
  #nextId = 1;
  #closed = new AbortController();

  constructor(url: string, headers: Record<string, string> = {}) {
    this.#url = url;
    this.#headers = headers;
  }

  /** Sends a request and returns its result; rejects when `signal` aborts. */
  async request(method: string, params: unknown, signal: AbortSignal): Promise<unknown> {
    const stop = AbortSignal.any([signal, this.#closed.signal]);
    const id = this.#nextId++;
    let response: Response;
    try {
      response = await fetch(this.#url, {
        method: "POST",
        headers: {
          ...this.#headers,
          "content-type": "application/json",
          accept: "application/json",
        },
        body: rpcRequest(id, method, params),
        signal: stop,
      });
    } catch (error) {
      if (stop.aborted) throw stop.reason;
      throw new Error(`cannot reach the plugin endpoint: ${preview((error as Error).message)}`);
    }
    const bytes = await readBody(response, stop);
    if (!response.ok) {
      throw new Error(`the plugin endpoint answered HTTP ${response.status}`);
    }
    let message: unknown;
    try {
      message = JSON.parse(new TextDecoder().decode(bytes));
    } catch {
      throw new Error(
        `the plugin endpoint answered ${
          JSON.stringify(preview(new TextDecoder().decode(bytes.slice(0, 100))))
        }, which is not JSON`,
      );
    }
    const answer = parseResponse(message);
    if (answer === "other" || answer.id !== id) {
      throw new Error(
        `the plugin endpoint answered ${preview(message)}, not the answer to request ${id}`,
      );
    }
    if (answer.error) throw rpcError(answer.error);
    return answer.result;
  }

  /** Aborts requests in flight; later requests fail. */
  close(): Promise<void> {
    this.#closed.abort(new Error("the plugin is closed"));
    return Promise.resolve();
  }
}

async function readBody(response: Response, signal: AbortSignal): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = response.body?.getReader();
  if (reader === undefined) return new Uint8Array();
  try {
    for (;;) {
      signal.throwIfAborted();
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > MAX_ANSWER_BYTES) {
        throw new Error(`the plugin endpoint answered more than ${MAX_ANSWER_BYTES} bytes`);
      }
      chunks.push(value);
    }
  } catch (error) {
    await reader.cancel().catch(() => {});
    throw signal.aborted ? signal.reason : error;
  } finally {
    reader.releaseLock();
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) bytes.set(chunk, offset), offset += chunk.byteLength;
  return bytes;
}
