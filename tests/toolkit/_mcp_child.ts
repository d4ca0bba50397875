// An MCP server that misbehaves on request, for the failure tests: tool "act" with
// { do: "answer" | "exit" | "hang" | "lie" | "error" } answers { pid }, exits mid-call, never
// answers, answers structured content that breaks its outputSchema, or answers isError.
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import {
  type CallToolRequest,
  CallToolRequestSchema,
  type CallToolResult,
  ListToolsRequestSchema,
} from "@modelcontextprotocol/sdk/types.js";

const server = new Server({ name: "moody", version: "0.1.0" }, { capabilities: { tools: {} } });
server.setRequestHandler(ListToolsRequestSchema, () => ({
  tools: [{
    name: "act",
    description: "Does what it is told",
    inputSchema: {
      type: "object",
      properties: { do: { enum: ["answer", "exit", "hang", "lie", "error"] } },
      required: ["do"],
    },
    outputSchema: { type: "object", properties: { pid: { type: "integer" } }, required: ["pid"] },
  }],
}));
server.setRequestHandler(
  CallToolRequestSchema,
  async (request: CallToolRequest): Promise<CallToolResult> => {
    const action = (request.params.arguments as { do: string }).do;
    if (action === "exit") Deno.exit(4);
    if (action === "hang") await new Promise(() => {});
    if (action === "error") return { content: [{ type: "text", text: "No luck" }], isError: true };
    const result = action === "lie" ? { pid: "many" } : { pid: Deno.pid };
    return { content: [{ type: "text", text: JSON.stringify(result) }], structuredContent: result };
  },
);
await server.connect(new StdioServerTransport());
