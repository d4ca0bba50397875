// An MCP stdio transport over the CLI's io, so `toka mcp serve` runs in-process in
// tests as well as on the real stdin/stdout. The SDK's StdioServerTransport reads
// node streams and never notices the end of stdin, which is how a client closes the
// connection: this one reads the web stream and closes at its end.
import { Buffer } from "node:buffer";
import { ReadBuffer, serializeMessage } from "@modelcontextprotocol/sdk/shared/stdio.js";
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js";

/** Newline-delimited JSON-RPC over a byte stream in and a text writer out. */
export class LineTransport implements Transport {
  /** Called once, when the input ends or {@linkcode LineTransport.close} is called. */
  onclose?: () => void;
  /** Called for a line that is not a JSON-RPC message, or a read error. */
  onerror?: (error: Error) => void;
  /** Called for each message read. */
  onmessage?: (message: JSONRPCMessage) => void;
  #input: ReadableStream<Uint8Array>;
  #write: (text: string) => void;
  #reader?: ReadableStreamDefaultReader<Uint8Array>;
  #buffer = new ReadBuffer();
  #closed = false;
  #reading?: Promise<void>;

  /**
   * @param input The bytes the client sends (standard input).
   * @param write Writes text for the client (standard output); nothing else may write there.
   */
  constructor(input: ReadableStream<Uint8Array>, write: (text: string) => void) {
    this.#input = input;
    this.#write = write;
  }

  /** Starts reading; messages arrive through `onmessage`. */
  start(): Promise<void> {
    this.#reader = this.#input.getReader();
    this.#reading = this.#read(this.#reader);
    return Promise.resolve();
  }

  async #read(reader: ReadableStreamDefaultReader<Uint8Array>): Promise<void> {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done || this.#closed) break;
        this.#buffer.append(Buffer.from(value));
        for (;;) {
          let message: JSONRPCMessage | null;
          try {
            message = this.#buffer.readMessage();
          } catch (error) {
            // The bad line is consumed: report it and read on.
            this.onerror?.(error as Error);
            continue;
          }
          if (message === null) break;
          this.onmessage?.(message);
        }
      }
    } catch (error) {
      if (!this.#closed) this.onerror?.(error as Error);
    } finally {
      reader.releaseLock();
      await this.close();
    }
  }

  /**
   * Writes one message as a line.
   *
   * @param message The message.
   */
  send(message: JSONRPCMessage): Promise<void> {
    if (this.#closed) return Promise.reject(new Error("The MCP connection is closed"));
    this.#write(serializeMessage(message));
    return Promise.resolve();
  }

  /** Stops reading and calls `onclose` once. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#buffer.clear();
    await this.#reader?.cancel().catch(() => {});
    this.onclose?.();
  }

  /** Resolves once the reading loop has ended. */
  get done(): Promise<void> {
    return this.#reading ?? Promise.resolve();
  }
}
