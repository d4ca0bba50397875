// What model.chat makes of an endpoint's answer: the reply it returns, and one-line errors that
// never hold the API key, whatever the server echoed.
import { TokaError } from "../runtime/errors.ts";
import { redactTokens } from "../internal/redact.ts";

// The part of the openai package model.chat uses, typed here: the package's own types name optional
// Node packages (undici, node-fetch) that documenting the toolkit would try, and fail, to resolve.
/** An error of the openai client: `status` and `headers` when the endpoint answered. */
export interface APIError extends Error {
  /** The HTTP status, or undefined when no answer came (connection error, timeout). */
  status?: number;
  /** The answer's headers. */
  headers?: Headers;
  /** The answer's parsed `error` field. */
  error?: unknown;
}

/** The openai package, as model.chat loads it. */
export interface OpenAiSdk {
  /** The client. */
  OpenAI: new (options: Record<string, unknown>) => OpenAiClient;
  /** The client's error for an answer or a connection failure. */
  APIError: abstract new (...args: never[]) => APIError;
  /** A request that took longer than its timeout. */
  APIConnectionTimeoutError: abstract new (...args: never[]) => Error;
  /** A request aborted by its signal. */
  APIUserAbortError: abstract new (...args: never[]) => Error;
}

/** The client's one method model.chat calls. */
export interface OpenAiClient {
  /** The Chat Completions resource. */
  chat: {
    completions: {
      create(
        body: Record<string, unknown>,
        options: { signal: AbortSignal; timeout: number; maxRetries: number },
      ): Promise<unknown>;
    };
  };
}

/** A function call the model asks for, as the Chat Completions API shapes it. */
export interface ModelToolCall {
  /** The call's id; the tool's answer names it as `tool_call_id`. */
  id: string;
  /** Always `"function"`. */
  type: "function";
  /** The function's wire name and its arguments, a JSON text. */
  function: { name: string; arguments: string };
}

/** The assistant message of a reply, ready to go back into `messages` as it is. */
export interface ModelReplyMessage {
  /** Always `"assistant"`. */
  role: "assistant";
  /** The text, or null when the model only asks for tool calls. */
  content: string | null;
  /** Why the model refused, when it did. */
  refusal?: string;
  /** The function calls the model asks for. */
  tool_calls?: ModelToolCall[];
}

/** The output of `model.chat`. */
export interface ModelChatOutput {
  /** The completion's id, as the endpoint gave it. */
  id: string;
  /** The model that answered. */
  model: string;
  /** The assistant's message. */
  message: ModelReplyMessage;
  /** Why the model stopped: `"stop"`, `"length"`, `"tool_calls"`, ... (null when not said). */
  finishReason: string | null;
  /** Tokens counted by the endpoint, when it says. */
  usage?: { promptTokens: number; completionTokens: number; totalTokens: number };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The error for an answer that is not a chat completion. */
export function badReply(origin: string): TokaError {
  return new TokaError(
    "model_bad_reply",
    `The model endpoint ${JSON.stringify(origin)} sent a reply that is not a chat completion`,
  );
}

/**
 * The output for an endpoint's parsed answer.
 *
 * @throws {TokaError} `model_bad_reply` when it is not a chat completion with a message.
 */
export function toOutput(reply: unknown, model: string, origin: string): ModelChatOutput {
  if (!isObject(reply) || !Array.isArray(reply.choices)) throw badReply(origin);
  const choice = reply.choices[0];
  const message = isObject(choice) ? choice.message : undefined;
  if (!isObject(message)) throw badReply(origin);
  const out: ModelReplyMessage = {
    role: "assistant",
    content: typeof message.content === "string" ? message.content : null,
  };
  if (typeof message.refusal === "string") out.refusal = message.refusal;
  if (Array.isArray(message.tool_calls) && message.tool_calls.length > 0) {
    out.tool_calls = message.tool_calls.map((call: unknown, index: number) => {
      const fn = isObject(call) ? call.function : undefined;
      if (!isObject(fn) || typeof fn.name !== "string") throw badReply(origin);
      // Some servers send the arguments as an object rather than JSON text.
      const args = typeof fn.arguments === "string"
        ? fn.arguments
        : JSON.stringify(fn.arguments ?? {});
      const id = isObject(call) && typeof call.id === "string" ? call.id : `call_${index}`;
      return { id, type: "function" as const, function: { name: fn.name, arguments: args } };
    });
  }
  const output: ModelChatOutput = {
    id: typeof reply.id === "string" ? reply.id : "",
    model: typeof reply.model === "string" ? reply.model : model,
    message: out,
    finishReason: isObject(choice) && typeof choice.finish_reason === "string"
      ? choice.finish_reason
      : null,
  };
  const usage = reply.usage;
  if (isObject(usage)) {
    const count = (value: unknown) => Number.isSafeInteger(value) ? value as number : 0;
    output.usage = {
      promptTokens: count(usage.prompt_tokens),
      completionTokens: count(usage.completion_tokens),
      totalTokens: count(usage.total_tokens),
    };
  }
  return output;
}

/**
 * What the server said about an error, on one line, at most 200 characters, with the key and
 * anything shaped like a key or token replaced.
 */
export function serverDetail(error: APIError, key: string): string {
  const said = isObject(error.error) && typeof error.error.message === "string"
    ? error.error.message
    : error.message.replace(/^\d{3} /, "").replace(/^status code \(no body\)$/, "");
  let text = key === "" ? said : said.replaceAll(key, "<key>");
  text = redactTokens(text.replace(/\bsk-[A-Za-z0-9_*.-]{6,}/g, "<key>"))
    .replace(/\s+/g, " ").trim();
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
}

/**
 * The delay a 429 or 5xx answer asks for, in milliseconds: `retry-after-ms`, else `Retry-After`
 * in seconds or as an HTTP date; undefined when it asks for none.
 */
export function retryAfterMs(error: APIError, now: number): number | undefined {
  const ms = Number(error.headers?.get("retry-after-ms") ?? NaN);
  if (Number.isFinite(ms) && ms >= 0) return ms;
  const after = error.headers?.get("retry-after");
  if (after === null || after === undefined || after.trim() === "") return undefined;
  const seconds = Number(after);
  if (Number.isFinite(seconds)) return seconds >= 0 ? Math.ceil(seconds * 1000) : undefined;
  const date = Date.parse(after);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}
