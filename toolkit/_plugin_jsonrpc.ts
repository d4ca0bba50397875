// JSON-RPC 2.0 messages as the stdio and http transports exchange them.
import { isObject, preview } from "./_plugin_remote.ts";

/** A response to one of our requests. */
export type RpcResponse =
  | { id: unknown; result: unknown; error?: undefined }
  | { id: unknown; error: { code: number; message: string } };

/** A request for method `method`. */
export function rpcRequest(id: number, method: string, params?: unknown): string {
  return JSON.stringify({ jsonrpc: "2.0", id, method, ...(params !== undefined && { params }) });
}

/**
 * Reads a JSON-RPC 2.0 response. Returns `"other"` for a request or notification from the
 * plugin (which we ignore) and throws an Error naming the message when it is neither.
 */
export function parseResponse(value: unknown): RpcResponse | "other" {
  if (isObject(value) && value.jsonrpc === "2.0") {
    if (typeof value.method === "string") return "other";
    const { id } = value;
    const idOk = typeof id === "number" || typeof id === "string" || id === null;
    if (idOk && "result" in value && !("error" in value)) return { id, result: value.result };
    const error = value.error;
    if (
      idOk && !("result" in value) && isObject(error) && Number.isInteger(error.code) &&
      typeof error.message === "string"
    ) {
      return { id, error: { code: error.code as number, message: error.message } };
    }
  }
  throw new Error(`answered ${preview(value)}, which is not a JSON-RPC 2.0 response`);
}

/** The Error for a JSON-RPC error answer, e.g. `the plugin answered error -32602: Bad city`. */
export function rpcError(error: { code: number; message: string }): Error {
  return new Error(`the plugin answered error ${error.code}: ${preview(error.message, 300)}`);
}
