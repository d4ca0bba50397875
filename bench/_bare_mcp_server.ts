// The baseline of bench/mcp_round_trip.ts: an MCP server on stdio made with the SDK
// alone, with one echo tool and nothing else (no validation, token or record).
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import {
  type CallToolRequest,
  CallToolRequestSchema,
  ListToolsRequestSchema,
} from "@modelcontextprotocol/sdk/types.js";

const server = new Server({ name: "bare", version: "1.0.0" }, { capabilities: { tools: {} } });
server.setRequestHandler(ListToolsRequestSchema, () => ({
  tools: [{
    name: "echo",
    description: "Returns the text it is given",
    inputSchema: { type: "object", properties: { text: { type: "string" } }, required: ["text"] },
  }],
}));
server.setRequestHandler(CallToolRequestSchema, (request: CallToolRequest) => ({
  content: [{ type: "text", text: JSON.stringify(request.params.arguments) }],
  structuredContent: request.params.arguments,
}));
await server.connect(new StdioServerTransport());
