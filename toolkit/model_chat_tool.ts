/**
 * The `model.chat` built-in tool: one call of an OpenAI-compatible Chat
 * Completions endpoint (OpenAI, Ollama, vLLM, llama.cpp's server, LM Studio,
 * OpenRouter) through the official `openai` client.
 *
 * @module
 */

import { TokaError } from "../runtime/errors.ts";
import { getEnv, isNotCapable } from "../internal/platform.ts";
import { intOption } from "../internal/int_option.ts";
import { type Attributes, inSpan, type Span, SpanKind } from "../internal/tracing.ts";
import { defineTool, type Tool } from "./tool.ts";
import { MODEL_CHAT_INPUT, MODEL_CHAT_OUTPUT } from "./_model_chat_schema.ts";
import {
  badReply,
  type ModelChatOutput,
  type OpenAiClient,
  type OpenAiSdk,
  retryAfterMs,
  serverDetail,
  toOutput,
} from "./_model_chat_reply.ts";

export type { ModelChatOutput, ModelReplyMessage, ModelToolCall } from "./_model_chat_reply.ts";

/** Options of {@linkcode createModelChatTool}. */
export interface ModelChatOptions {
  /** The model to ask, e.g. `"gpt-4o-mini"` or `"llama3.2"`. */
  model: string;
  /**
   * The endpoint's base URL, below which `/chat/completions` is: `"https://api.openai.com/v1"`
   * by default; `"http://localhost:11434/v1"` for Ollama, `"http://localhost:8080/v1"` for
   * llama.cpp's server. No credentials in it: the key comes from `apiKeyEnv`.
   */
  baseUrl?: string;
  /**
   * The environment variable holding the API key (`"OPENAI_API_KEY"`). It is read at each call
   * and sent only as the `Authorization` header: never in an event, a log line or an error.
   * A local server that wants no key accepts any value.
   */
  apiKeyEnv?: string;
  /**
   * Record the whole input (the prompt) in the call's `tool.invoked` event; false by default,
   * when only its digest is recorded.
   */
  recordPrompt?: boolean;
  /** Milliseconds one request may take (60000; at most 3600000). */
  timeoutMs?: number;
  /** How many times a 429 or 5xx answer is retried (2; at most 10). */
  maxRetries?: number;
  /**
   * The longest wait a `Retry-After` may ask for, in milliseconds (60000); a longer one fails
   * the call at once. Without `Retry-After` the waits are 0.5 s, 1 s, 2 s, ... up to 8 s.
   */
  maxRetryAfterMs?: number;
  /** Reads an environment variable; the process environment by default. */
  env?: (name: string) => string | undefined;
  /** Waits between attempts; a timer by default. Rejects when the signal aborts. */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  /** Milliseconds since the epoch, for a `Retry-After` date; `Date.now` by default. */
  clock?: () => number;
}

/** A Chat Completions message, as the API shapes it (`tool_calls`, `tool_call_id`). */
export interface ModelChatMessage {
  /** Who speaks. */
  role: "system" | "developer" | "user" | "assistant" | "tool";
  /** The text (or the API's content parts); null for an assistant that only called tools. */
  content?: string | Record<string, unknown>[] | null;
  /** An optional name of the speaker. */
  name?: string;
  /** An assistant's function calls, as a reply's message has them. */
  tool_calls?: Record<string, unknown>[];
  /** For `role: "tool"`: the id of the call this answers. */
  tool_call_id?: string;
}

/** The input of `model.chat`. */
export interface ModelChatInput {
  /** The conversation, at least one message. */
  messages: ModelChatMessage[];
  /** Functions the model may ask for: `{ type: "function", function: { name, description, parameters } }`. */
  tools?: {
    type: "function";
    function: {
      name: string;
      description?: string;
      parameters?: Record<string, unknown>;
      strict?: boolean;
    };
  }[];
  /** `"none"`, `"auto"`, `"required"` or `{ type: "function", function: { name } }`. */
  toolChoice?: "none" | "auto" | "required" | { type: "function"; function: { name: string } };
  /** Sampling temperature, 0 to 2. */
  temperature?: number;
  /** The most tokens to generate (sent as `max_tokens`). */
  maxTokens?: number;
  /** `{ type: "text" | "json_object" }` or `{ type: "json_schema", json_schema: {...} }`. */
  responseFormat?: { type: "text" | "json_object" | "json_schema"; [key: string]: unknown };
}

const DEFAULT_BASE_URL = "https://api.openai.com/v1";

// The client loads on the first call (about 100 ms): importing the toolkit stays as fast as before.
let sdk: Promise<OpenAiSdk> | undefined;
const loadSdk = () => sdk ??= import("openai") as unknown as Promise<OpenAiSdk>;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const MAX_BACKOFF_MS = 8000;

function defaultSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const done = () => {
      signal.removeEventListener("abort", aborted);
      resolve();
    };
    const timer = setTimeout(done, ms);
    const aborted = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener("abort", aborted, { once: true });
  });
}

/**
 * Creates `model.chat`: sends `messages` (and optional `tools`, `toolChoice`, `temperature`,
 * `maxTokens`, `responseFormat`) to an OpenAI-compatible Chat Completions endpoint and returns
 * `{ id, model, message, finishReason, usage }`. The reply's `message` is a Chat Completions
 * message (`tool_calls` when the model asks for functions), so it goes back into `messages` as
 * it is. Needs `tool:model.chat:invoke`.
 *
 * A 429 or 5xx answer is retried up to `maxRetries` times, after the wait its `Retry-After`
 * asks for, else with exponential backoff. Each request is bounded by `timeoutMs`. Failures are
 * one line naming the endpoint's origin: a missing key, an endpoint that cannot be reached, a
 * non-JSON answer, an error status with what the server said (the key, and anything shaped
 * like one, replaced by `<key>`). The prompt is recorded as a digest unless `recordPrompt`.
 *
 * @param options The model, the endpoint, where the key is and the limits.
 * @returns The tool, ready to register.
 * @throws {TypeError} When `model` is empty, `baseUrl` is not an http(s) URL without
 *   credentials, or `apiKeyEnv` is not a variable name.
 * @throws {RangeError} When a limit is not an integer in range.
 *
 * @example A missing key is one line, and nothing is sent
 * ```ts
 * import { createModelChatTool, ToolRegistry } from "@toka/runtime/toolkit";
 *
 * const tools = new ToolRegistry({
 *   tools: [createModelChatTool({ model: "gpt-4o-mini", env: () => undefined })],
 * });
 * await tools.call("model.chat", { messages: [{ role: "user", content: "Hi" }] })
 *   .catch((error) => console.log(error.message));
 * // Tool "model.chat" failed: No API key for the model: set the environment variable "OPENAI_API_KEY"
 * ```
 */
export function createModelChatTool(
  options: ModelChatOptions,
): Tool<ModelChatInput, ModelChatOutput> {
  if (typeof options !== "object" || options === null) {
    throw new TypeError('Invalid model options: expected e.g. { model: "gpt-4o-mini" }');
  }
  const model = options.model;
  if (typeof model !== "string" || model.trim() === "") {
    throw new TypeError(
      `Invalid model ${JSON.stringify(model ?? null)}: expected a model name, e.g. "gpt-4o-mini"`,
    );
  }
  const baseUrl = checkBaseUrl(options.baseUrl ?? DEFAULT_BASE_URL);
  const origin = new URL(baseUrl).origin;
  const keyEnv = options.apiKeyEnv ?? "OPENAI_API_KEY";
  if (typeof keyEnv !== "string" || !ENV_NAME.test(keyEnv)) {
    throw new TypeError(
      `Invalid apiKeyEnv ${JSON.stringify(keyEnv)}: expected a variable name`,
    );
  }
  const timeoutMs = intOption("timeoutMs", options.timeoutMs, 60_000, 1, 3_600_000);
  const maxRetries = intOption("maxRetries", options.maxRetries, 2, 0, 10);
  const maxRetryAfterMs = intOption(
    "maxRetryAfterMs",
    options.maxRetryAfterMs,
    60_000,
    0,
    3_600_000,
  );
  const env = options.env ?? getEnv;
  const sleep = options.sleep ?? defaultSleep;
  const clock = options.clock ?? Date.now;
  // One client per key value: the key may change between calls (a rotated secret).
  let client: { key: string; openai: OpenAiClient } | undefined;

  const readKey = (): string => {
    let key: string | undefined;
    try {
      key = env(keyEnv);
    } catch (error) {
      if (!isNotCapable(error)) throw error;
      throw new TokaError(
        "model_no_key",
        `Cannot read the model's API key: grant --allow-env=${keyEnv}`,
      );
    }
    if (key === undefined || key.trim() === "") {
      throw new TokaError(
        "model_no_key",
        `No API key for the model: set the environment variable ${JSON.stringify(keyEnv)}`,
      );
    }
    // The client would fail building the header (its error called the reply bad, and
    // fetch's own quotes the value), so a key pasted with a line break is named here.
    if (!/^[\x20-\x7e\t]*$/.test(key.replace(/^[\t\n\r ]+|[\t\n\r ]+$/g, ""))) {
      throw new TokaError(
        "model_bad_key",
        `The API key in ${JSON.stringify(keyEnv)} is not a valid header value: ` +
          "expected printable ASCII",
      );
    }
    return key;
  };
  const clientFor = (api: OpenAiSdk, key: string): OpenAiClient => {
    if (client?.key !== key) {
      client = {
        key,
        openai: new api.OpenAI({
          apiKey: key,
          baseURL: baseUrl,
          // Named so the client reads none of them from the environment.
          organization: null,
          project: null,
          adminAPIKey: null,
          webhookSecret: null,
          // Retries are ours (with the injected sleep); the client logs nothing.
          maxRetries: 0,
          logLevel: "off",
        }),
      };
    }
    return client.openai;
  };

  const attempt = async (
    api: OpenAiSdk,
    input: ModelChatInput,
    key: string,
    signal: AbortSignal,
  ): Promise<ModelChatOutput> => {
    let reply: unknown;
    try {
      reply = await clientFor(api, key).chat.completions.create({
        model,
        messages: input.messages,
        ...(input.tools !== undefined && { tools: input.tools }),
        ...(input.toolChoice !== undefined && { tool_choice: input.toolChoice }),
        ...(input.temperature !== undefined && { temperature: input.temperature }),
        ...(input.maxTokens !== undefined && { max_tokens: input.maxTokens }),
        ...(input.responseFormat !== undefined &&
          { response_format: input.responseFormat }),
      }, { signal, timeout: timeoutMs, maxRetries: 0 });
    } catch (error) {
      if (error instanceof api.APIUserAbortError || signal.aborted) throw signal.reason ?? error;
      if (error instanceof api.APIConnectionTimeoutError) {
        throw new TokaError(
          "model_timeout",
          `The model endpoint ${JSON.stringify(origin)} did not answer within ${timeoutMs} ms`,
        );
      }
      if (error instanceof api.APIError && error.status === undefined) {
        throw new TokaError(
          "model_unreachable",
          `Cannot reach the model endpoint ${JSON.stringify(origin)}: ${reason(error)}`,
        );
      }
      if (error instanceof api.APIError) throw error;
      // The client's JSON.parse of a body the server called JSON.
      throw badReply(origin);
    }
    return toOutput(reply, model, origin);
  };

  // One chat call: the attempts and the waits between them.
  const chat = async (input: ModelChatInput, signal: AbortSignal): Promise<ModelChatOutput> => {
    const key = readKey();
    const api = await loadSdk();
    for (let tries = 0;; tries++) {
      try {
        return await attempt(api, input, key, signal);
      } catch (error) {
        if (!(error instanceof api.APIError) || error.status === undefined) throw error;
        const status = error.status;
        const detail = serverDetail(error, key);
        const said = detail === "" ? "" : `: ${detail}`;
        const where = `The model endpoint ${JSON.stringify(origin)} answered ${status}`;
        if (status !== 429 && status < 500) {
          throw new TokaError("model_refused", `${where}${said}`);
        }
        if (tries >= maxRetries) {
          throw new TokaError(
            "model_unavailable",
            `${where} after ${tries + 1} attempts${said}`,
          );
        }
        const asked = retryAfterMs(error, clock());
        if (asked !== undefined && asked > maxRetryAfterMs) {
          throw new TokaError(
            "model_unavailable",
            `${where} and asked to retry after ${Math.ceil(asked / 1000)} s${said}`,
          );
        }
        await sleep(asked ?? Math.min(500 * 2 ** tries, MAX_BACKOFF_MS), signal);
      }
    }
  };
  const chatAttributes = {
    "gen_ai.operation.name": "chat",
    "gen_ai.request.model": model,
    "server.address": new URL(baseUrl).hostname,
  };

  return defineTool<ModelChatInput, ModelChatOutput>({
    name: "model.chat",
    description:
      "Asks a chat model (an OpenAI-compatible Chat Completions endpoint) for the next message",
    version: "1.0.0",
    inputSchema: MODEL_CHAT_INPUT,
    outputSchema: MODEL_CHAT_OUTPUT,
    // It changes nothing outside (MCP's sense of read-only): its tool.invoked and outcome are
    // recorded in one append once it has answered, one commit per call instead of two.
    annotations: {
      readOnlyHint: true,
      destructiveHint: false,
      idempotentHint: false,
      openWorldHint: true,
    },
    recordInput: options.recordPrompt === true,
    // Every attempt and every wait between them, then a margin: the tool's own messages first.
    timeoutMs: Math.min(
      (maxRetries + 1) * timeoutMs + maxRetries * Math.max(maxRetryAfterMs, MAX_BACKOFF_MS) +
        5000,
      2_147_483_647,
    ),
    // GenAI conventions' chat span: the model, the usage and the finish reason, never the
    // messages, the reply or the key.
    execute: (input, ctx) =>
      inSpan(`chat ${model}`, SpanKind.CLIENT, chatAttributes, undefined, async (span) => {
        const output = await chat(input, ctx.signal);
        if (span !== undefined) setReplyAttributes(span, output);
        return output;
      }),
  });
}

// What a reply adds to its chat span.
function setReplyAttributes(span: Span, output: ModelChatOutput): void {
  const attributes: Attributes = {
    "gen_ai.response.id": output.id,
    "gen_ai.response.model": output.model,
  };
  if (output.finishReason !== null) {
    attributes["gen_ai.response.finish_reasons"] = [output.finishReason];
  }
  if (output.usage !== undefined) {
    attributes["gen_ai.usage.input_tokens"] = output.usage.promptTokens;
    attributes["gen_ai.usage.output_tokens"] = output.usage.completionTokens;
  }
  span.setAttributes(attributes);
}

function checkBaseUrl(value: unknown): string {
  if (typeof value !== "string") {
    throw new TypeError(`Invalid baseUrl ${JSON.stringify(value)}: expected a URL`);
  }
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new TypeError(`Invalid baseUrl ${JSON.stringify(value.slice(0, 100))}: not a URL`);
  }
  if (url.username !== "" || url.password !== "") {
    throw new TypeError("Invalid baseUrl: credentials in the URL are not allowed, use apiKeyEnv");
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new TypeError(
      `Invalid baseUrl ${JSON.stringify(value.slice(0, 100))}: expected an http or https URL`,
    );
  }
  return value;
}

// Why a connection failed, in a few words: the cause's message without the URL it may hold.
function reason(error: Error): string {
  let cause: unknown = error.cause;
  while (cause instanceof Error && cause.cause instanceof Error) cause = cause.cause;
  const text = cause instanceof Error ? cause.message : error.message;
  const short = text.replace(/https?:\/\/\S+/g, "").replace(/\s+/g, " ").trim();
  if (/refused/i.test(short)) return "connection refused";
  return (short || "connection failed").slice(0, 120);
}
