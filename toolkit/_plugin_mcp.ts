// The mcp transport: every tool of an MCP server, through the official SDK's client, over stdio
// (a command we start) or Streamable HTTP. A lost connection is re-made, with backoff, by the
// next call; a call that times out drops the connection (the server is stuck or lost).
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { McpError } from "@modelcontextprotocol/sdk/types.js";
import type { McpTransport } from "./plugin_manifest.ts";
import type { Tool, ToolContext } from "./tool.ts";
import {
  deadline,
  isObject,
  preview,
  remoteTools,
  stderrHint,
  timedOut,
} from "./_plugin_remote.ts";
import { Backoff } from "./_plugin_stdio.ts";
import { DenoStdioTransport } from "./_plugin_mcp_stdio.ts";
import { deferred } from "../internal/deferred.ts";

const CLIENT_INFO = { name: "toka", version: "0.1.0" };

class McpConnection {
  #transport: McpTransport;
  #timeoutMs: number;
  #backoff: Backoff;
  #client?: Client;
  #connecting?: Promise<Client>;
  #clients = new Set<Client>();
  #closed = new AbortController();

  constructor(
    transport: McpTransport,
    timeoutMs: number,
    restart: { restartDelayMs: number; maxRestartDelayMs: number },
  ) {
    this.#transport = transport;
    this.#timeoutMs = timeoutMs;
    this.#backoff = new Backoff(restart);
  }

  /** The connected client, connecting (after the backoff delay) when there is none. */
  async client(signal: AbortSignal): Promise<Client> {
    const stop = AbortSignal.any([signal, this.#closed.signal]);
    stop.throwIfAborted();
    if (this.#client !== undefined) return this.#client;
    this.#connecting ??= this.#connect().finally(() => this.#connecting = undefined);
    const aborted = deferred<never>();
    const onAbort = () => aborted.reject(stop.reason);
    stop.addEventListener("abort", onAbort, { once: true });
    try {
      return await Promise.race([this.#connecting, aborted.promise]);
    } finally {
      stop.removeEventListener("abort", onAbort);
    }
  }

  async #connect(): Promise<Client> {
    await this.#backoff.wait(this.#closed.signal);
    const { command, args, env, cwd, url, headers } = this.#transport;
    const transport = command !== undefined
      ? new DenoStdioTransport({ command, args, env, cwd })
      : new StreamableHTTPClientTransport(new URL(url!), { requestInit: { headers } });
    const client = new Client(CLIENT_INFO);
    this.#clients.add(client);
    client.onclose = () => {
      this.#clients.delete(client);
      if (this.#client !== client) return;
      this.#client = undefined;
      if (!this.#closed.signal.aborted) this.#backoff.failed();
    };
    const time = deadline(this.#timeoutMs);
    try {
      const signal = AbortSignal.any([this.#closed.signal, time.signal]);
      await client.connect(transport, { signal, timeout: this.#timeoutMs });
    } catch (error) {
      this.#backoff.failed();
      await client.close().catch(() => {});
      this.#clients.delete(client);
      if (this.#closed.signal.aborted) throw this.#closed.signal.reason;
      const reason = error instanceof Error && error.name === "TimeoutError"
        ? `no answer within ${this.#timeoutMs} ms`
        : preview((error as Error)?.message ?? error, 200);
      const hint = transport instanceof DenoStdioTransport ? stderrHint(transport.stderr) : "";
      throw new Error(`cannot connect to the MCP server: ${reason}${hint}`, { cause: error });
    } finally {
      time.clear();
    }
    if (this.#closed.signal.aborted) {
      await client.close();
      throw this.#closed.signal.reason;
    }
    this.#client = client;
    return client;
  }

  /** Drops a connection that is stuck; the next call makes a new one. */
  drop(client: Client): void {
    if (this.#client === client) {
      this.#client = undefined;
      this.#backoff.failed();
    }
    client.close().catch(() => {});
  }

  /** Closes every connection (stopping a stdio server); later calls fail. */
  async close(): Promise<void> {
    this.#closed.abort(new Error("the plugin is closed"));
    await this.#connecting?.catch(() => {});
    await Promise.all([...this.#clients].map((client) => client.close().catch(() => {})));
  }
}

/**
 * Connects to an MCP server and lists its tools (every page). A tool with an `outputSchema`
 * returns its `structuredContent`; one without returns `{ content, structuredContent? }`. A result
 * with `isError` rejects with its text.
 */
export async function openMcp(
  transport: McpTransport,
  restart: { restartDelayMs: number; maxRestartDelayMs: number },
  signal: AbortSignal,
  timeoutMs: number,
): Promise<{ tools: Tool[]; close(): Promise<void> }> {
  const connection = new McpConnection(transport, timeoutMs, restart);
  try {
    const client = await connection.client(signal);
    const listed: unknown[] = [];
    let cursor: string | undefined;
    do {
      const page = await client.listTools(cursor === undefined ? undefined : { cursor }, {
        signal,
        timeout: timeoutMs,
      });
      listed.push(...page.tools);
      cursor = page.nextCursor;
    } while (cursor !== undefined);
    const structured = new Set(
      listed.filter((tool) => isObject(tool) && tool.outputSchema !== undefined)
        .map((tool) => (tool as { name: string }).name),
    );
    const call = async (remote: string, input: unknown, ctx: ToolContext) => {
      const client = await connection.client(ctx.signal);
      let result;
      try {
        result = await client.callTool(
          { name: remote, arguments: input as Record<string, unknown> },
          undefined,
          { signal: ctx.signal, timeout: 2_147_483_647 },
        );
      } catch (error) {
        // A timeout, or a failure below MCP (the network, an unknown session after the server
        // restarted): the next call starts over with a new connection.
        const aborted = ctx.signal.aborted;
        if (timedOut(ctx.signal) || (!aborted && !(error instanceof McpError))) {
          connection.drop(client);
        }
        throw ctx.signal.aborted ? ctx.signal.reason : error;
      }
      if (result.isError) {
        const text = (Array.isArray(result.content) ? result.content : [])
          .map((part: { type?: string; text?: string }) => part?.type === "text" ? part.text : "")
          .join(" ").trim();
        throw new Error(`the MCP tool answered an error: ${preview(text || result.content)}`);
      }
      if (structured.has(remote)) return result.structuredContent;
      return {
        content: result.content,
        ...(result.structuredContent !== undefined &&
          { structuredContent: result.structuredContent }),
      };
    };
    const version = client.getServerVersion()?.version;
    return {
      tools: remoteTools({ tools: listed }, call, version),
      close: () => connection.close(),
    };
  } catch (error) {
    await connection.close();
    throw error;
  }
}
