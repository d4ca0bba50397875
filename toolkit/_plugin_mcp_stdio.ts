// An MCP client transport over a child's stdio, through spawnPlugin: the SDK's own
// StdioClientTransport (node:child_process) leaves a 2 s timer behind each close, which
// outlives the plugin host. Messages are framed by the SDK's ReadBuffer and serializeMessage.
import { ReadBuffer, serializeMessage } from "@modelcontextprotocol/sdk/shared/stdio.js";
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js";
import { Buffer } from "node:buffer";
import { spawnPlugin } from "./_plugin_stdio.ts";
import type { PipedChild } from "../internal/platform.ts";

// How long a server may take to exit after its stdin closes, before it is killed.
const EXIT_GRACE_MS = 1000;

/** Starts `command` and exchanges MCP messages with it, one per line. */
export class DenoStdioTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage) => void;
  /** The end of what the server wrote to stderr. */
  stderr = "";
  #options: { command: string; args?: string[]; env?: Record<string, string>; cwd?: string };
  #child?: PipedChild;
  #writer?: WritableStreamDefaultWriter<Uint8Array>;
  #done?: Promise<void>;

  constructor(
    options: { command: string; args?: string[]; env?: Record<string, string>; cwd?: string },
  ) {
    this.#options = options;
  }

  start(): Promise<void> {
    const child = spawnPlugin(this.#options);
    this.#child = child;
    this.#writer = child.stdin.getWriter();
    const buffer = new ReadBuffer();
    const read = async () => {
      for await (const chunk of child.stdout) {
        buffer.append(Buffer.from(chunk));
        for (;;) {
          let message: JSONRPCMessage | null;
          try {
            message = buffer.readMessage();
          } catch (error) {
            this.onerror?.(error as Error);
            continue;
          }
          if (message === null) break;
          this.onmessage?.(message);
        }
      }
    };
    // Drained so a chatty server never blocks on a full pipe; its end is kept for errors.
    const drain = async () => {
      for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
        this.stderr = (this.stderr + chunk).slice(-2048);
      }
    };
    this.#done = Promise.all([child.status, read(), drain()]).then(async () => {
      await this.#writer?.close().catch(() => {});
      this.onclose?.();
    });
    return Promise.resolve();
  }

  async send(message: JSONRPCMessage): Promise<void> {
    if (this.#writer === undefined) throw new Error("Not connected");
    await this.#writer.write(new TextEncoder().encode(serializeMessage(message)));
  }

  async close(): Promise<void> {
    const child = this.#child;
    if (child === undefined) return;
    await this.#writer?.close().catch(() => {});
    let timer: ReturnType<typeof setTimeout> | undefined;
    const killed = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch {
          // Already exited.
        }
        resolve();
      }, EXIT_GRACE_MS);
    });
    await Promise.race([child.status, killed]);
    clearTimeout(timer);
    await this.#done;
  }
}
