/**
 * An `mcp` plugin: an MCP server made with the official SDK, with two tools. Run over stdio
 * (`deno run notes_mcp.ts`) by
 * `"notes": { "transport": { "type": "mcp", "command": "deno", "args": ["run", "notes_mcp.ts"] } }`;
 * the test also serves `createServer()` over Streamable HTTP.
 *
 * @module
 */
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import {
  type CallToolRequest,
  CallToolRequestSchema,
  type CallToolResult,
  ListToolsRequestSchema,
} from "@modelcontextprotocol/sdk/types.js";

/** Makes the server: `add_note` keeps a note in memory, `count_words` counts words. */
export function createServer(): Server {
  const notes: string[] = [];
  const server = new Server({ name: "notes", version: "1.2.0" }, {
    capabilities: { tools: {} },
  });
  server.setRequestHandler(ListToolsRequestSchema, () => ({
    tools: [{
      name: "addNote",
      description: "Keeps a note; returns how many notes there are",
      inputSchema: {
        type: "object",
        properties: { text: { type: "string", minLength: 1 } },
        required: ["text"],
      },
      outputSchema: {
        type: "object",
        properties: { count: { type: "integer" } },
        required: ["count"],
      },
    }, {
      name: "count_words",
      description: "Counts the words of a text",
      inputSchema: { type: "object", properties: { text: { type: "string" } } },
      annotations: { readOnlyHint: true },
    }],
  }));
  server.setRequestHandler(CallToolRequestSchema, (request: CallToolRequest): CallToolResult => {
    const args = (request.params.arguments ?? {}) as { text?: string };
    if (request.params.name === "addNote") {
      notes.push(args.text ?? "");
      const result = { count: notes.length };
      return {
        content: [{ type: "text", text: JSON.stringify(result) }],
        structuredContent: result,
      };
    }
    if (request.params.name === "count_words") {
      const words = (args.text ?? "").split(/\s+/).filter(Boolean).length;
      return { content: [{ type: "text", text: String(words) }] };
    }
    return { content: [{ type: "text", text: "No such tool" }], isError: true };
  });
  return server;
}

if (import.meta.main) {
  await createServer().connect(new StdioServerTransport());
}
