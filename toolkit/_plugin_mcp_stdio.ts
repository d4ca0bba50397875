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
// How long its pipes may stay open after it exited (held by a process that left its group).
const PIPE_GRACE_MS = 1000;

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
  #stopReading?: () => void;

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
    const stdout = child.stdout.getReader();
    const stderr = child.stderr.getReader();
    this.#stopReading = () => {
      stdout.cancel().catch(() => {});
      stderr.cancel().catch(() => {});
    };
    const read = async () => {
      for (;;) {
        const { done, value: chunk } = await stdout.read();
        if (done) return;
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
      const decoder = new TextDecoder();
      for (;;) {
        const { done, value } = await stderr.read();
        if (done) return;
        this.stderr = (this.stderr + decoder.decode(value, { stream: true })).slice(-2048);
      }
    };
    const reading = Promise.all([read(), drain()]);
    reading.catch(() => {}); // awaited below
    this.#done = (async () => {
      try {
        await child.status;
        // What it started goes with it (its process group); a pipe still held open by one that
        // left the group is not waited for past a grace.
        child.kill("SIGKILL");
        let timer: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([
          reading,
          new Promise((resolve) => timer = setTimeout(resolve, PIPE_GRACE_MS)),
        ]);
        clearTimeout(timer);
        this.#stopReading?.();
        await reading;
      } catch (error) {
        this.onerror?.(error as Error);
        child.kill("SIGKILL");
        this.#stopReading?.();
      } finally {
        await this.#writer?.close().catch(() => {});
        this.onclose?.();
      }
    })();
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
        child.kill("SIGKILL"); // its process group
        this.#stopReading?.();
        resolve();
      }, EXIT_GRACE_MS);
    });
    await Promise.race([child.status, killed]);
    clearTimeout(timer);
    await this.#done;
  }
}
