// The JSON Schemas of model.chat's input and output: a Chat Completions request's messages,
// tools and options (camelCase at the top, the API's own shape inside each message and tool).

const MESSAGE = {
  type: "object",
  properties: {
    role: { type: "string", enum: ["system", "developer", "user", "assistant", "tool"] },
    content: {
      anyOf: [
        { type: "string" },
        { type: "array", items: { type: "object" } },
        { type: "null" },
      ],
    },
    name: { type: "string" },
    tool_calls: { type: "array", items: { type: "object" } },
    tool_call_id: { type: "string" },
  },
  required: ["role"],
};

// The names the Chat Completions API accepts for a function.
const FUNCTION_NAME = { type: "string", pattern: "^[a-zA-Z0-9_-]{1,64}$" };

/** The input schema of `model.chat`. */
export const MODEL_CHAT_INPUT: Record<string, unknown> = {
  type: "object",
  properties: {
    messages: { type: "array", items: MESSAGE, minItems: 1, maxItems: 10_000 },
    tools: {
      type: "array",
      maxItems: 128,
      items: {
        type: "object",
        properties: {
          type: { const: "function" },
          function: {
            type: "object",
            properties: {
              name: FUNCTION_NAME,
              description: { type: "string" },
              parameters: { type: "object" },
              strict: { type: "boolean" },
            },
            required: ["name"],
            additionalProperties: false,
          },
        },
        required: ["type", "function"],
        additionalProperties: false,
      },
    },
    toolChoice: {
      anyOf: [
        { type: "string", enum: ["none", "auto", "required"] },
        {
          type: "object",
          properties: {
            type: { const: "function" },
            function: {
              type: "object",
              properties: { name: FUNCTION_NAME },
              required: ["name"],
            },
          },
          required: ["type", "function"],
        },
      ],
    },
    temperature: { type: "number", minimum: 0, maximum: 2 },
    maxTokens: { type: "integer", minimum: 1, maximum: 10_000_000 },
    responseFormat: {
      type: "object",
      properties: { type: { type: "string", enum: ["text", "json_object", "json_schema"] } },
      required: ["type"],
    },
  },
  required: ["messages"],
  additionalProperties: false,
};

/** The output schema of `model.chat`. */
export const MODEL_CHAT_OUTPUT: Record<string, unknown> = {
  type: "object",
  properties: {
    id: { type: "string" },
    model: { type: "string" },
    message: {
      type: "object",
      properties: {
        role: { const: "assistant" },
        content: { type: ["string", "null"] },
        refusal: { type: "string" },
        tool_calls: {
          type: "array",
          items: {
            type: "object",
            properties: {
              id: { type: "string" },
              type: { const: "function" },
              function: {
                type: "object",
                properties: { name: { type: "string" }, arguments: { type: "string" } },
                required: ["name", "arguments"],
              },
            },
            required: ["id", "type", "function"],
          },
        },
      },
      required: ["role", "content"],
    },
    finishReason: { type: ["string", "null"] },
    usage: {
      type: "object",
      properties: {
        promptTokens: { type: "integer" },
        completionTokens: { type: "integer" },
        totalTokens: { type: "integer" },
      },
      required: ["promptTokens", "completionTokens", "totalTokens"],
    },
  },
  required: ["id", "model", "message", "finishReason"],
};
