// A fake OpenAI-compatible Chat Completions server on 127.0.0.1, for the tests of model.chat,
// the research agent example and the model bench: it answers POST /v1/chat/completions as a
// script says (plain replies, tool_calls, errors, non-JSON) and counts what it was sent.

/** One scripted answer: a completion body (JSON), or a raw response. */
export type FakeAnswer =
  | { completion: Record<string, unknown> }
  | { status: number; body?: string; headers?: Record<string, string> };

/** A request the server received. */
export interface FakeRequest {
  /** The parsed JSON body. */
  body: Record<string, unknown>;
  /** The Authorization header, as sent. */
  authorization: string | null;
}

/** Decides the answer to a request: by default the queue, then a plain "ok" reply. */
export type FakeResponder = (request: FakeRequest, index: number) => FakeAnswer;

/** A completion whose message is plain text. */
export function textCompletion(content: string, id = "chatcmpl-1"): Record<string, unknown> {
  return {
    id,
    object: "chat.completion",
    created: 1_700_000_000,
    model: "fake-model",
    choices: [{
      index: 0,
      message: { role: "assistant", content, refusal: null },
      finish_reason: "stop",
      logprobs: null,
    }],
    usage: { prompt_tokens: 12, completion_tokens: 3, total_tokens: 15 },
  };
}

/** A completion that asks for one function call. */
export function toolCallCompletion(
  name: string,
  args: Record<string, unknown>,
  callId = "call_1",
): Record<string, unknown> {
  return {
    id: "chatcmpl-2",
    object: "chat.completion",
    created: 1_700_000_000,
    model: "fake-model",
    choices: [{
      index: 0,
      message: {
        role: "assistant",
        content: null,
        tool_calls: [{
          id: callId,
          type: "function",
          function: { name, arguments: JSON.stringify(args) },
        }],
      },
      finish_reason: "tool_calls",
      logprobs: null,
    }],
    usage: { prompt_tokens: 20, completion_tokens: 8, total_tokens: 28 },
  };
}

/** The fake server; `await using` closes it. */
export class FakeModelServer implements AsyncDisposable {
  /** What it received, in order (only chat completion requests). */
  readonly requests: FakeRequest[] = [];
  /** Answers given before the responder's, first in first out. */
  readonly queue: FakeAnswer[] = [];
  /** Decides answers once the queue is empty. */
  responder: FakeResponder = () => ({ completion: textCompletion("ok") });
  readonly #server: Deno.HttpServer<Deno.NetAddr>;
  readonly #latencyMs: number;

  /** `latencyMs`: each request is answered that many milliseconds after it arrived (0). */
  constructor(options: { latencyMs?: number } = {}) {
    this.#latencyMs = options.latencyMs ?? 0;
    if (!(Number.isInteger(this.#latencyMs) && this.#latencyMs >= 0)) {
      throw new RangeError(`Invalid latency ${this.#latencyMs}: expected whole milliseconds ≥ 0`);
    }
    this.#server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen() {} },
      (req) => this.#answer(req),
    );
  }

  /** The base URL to configure: `http://127.0.0.1:<port>/v1`. */
  get baseUrl(): string {
    return `http://127.0.0.1:${this.#server.addr.port}/v1`;
  }

  /** How many chat completion requests it received. */
  get count(): number {
    return this.requests.length;
  }

  async #answer(req: Request): Promise<Response> {
    const url = new URL(req.url);
    if (req.method !== "POST" || url.pathname !== "/v1/chat/completions") {
      return new Response("not found", { status: 404 });
    }
    const request: FakeRequest = {
      body: await req.json(),
      authorization: req.headers.get("authorization"),
    };
    this.requests.push(request);
    // As a model would take its time; the request is counted on arrival.
    if (this.#latencyMs > 0) await new Promise((resolve) => setTimeout(resolve, this.#latencyMs));
    const answer = this.queue.shift() ?? this.responder(request, this.requests.length - 1);
    if ("completion" in answer) return Response.json(answer.completion);
    return new Response(answer.body ?? "", { status: answer.status, headers: answer.headers });
  }

  /** Stops the server. */
  async close(): Promise<void> {
    await this.#server.shutdown();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
