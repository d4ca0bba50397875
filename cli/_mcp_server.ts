// `toka mcp serve`: the CLI's tool registry as an MCP server on stdio, loaded only
// when the command runs (the SDK is large).
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import {
  type CallToolRequest,
  CallToolRequestSchema,
  type CallToolResult,
  ErrorCode,
  ListToolsRequestSchema,
  McpError,
  type Tool as McpTool,
} from "@modelcontextprotocol/sdk/types.js";
import { getLogger } from "@logtape/logtape";
import denoJson from "../deno.json" with { type: "json" };
import { permits } from "../auth/mod.ts";
import type { TokenAuthority, TokenClaims } from "../runtime/token_authority.ts";
import { type ToolInfo, ToolNotFoundError } from "../runtime/tool_registry.ts";
import { type ToolRegistry, wireName } from "../toolkit/mod.ts";
import { TokaError } from "../runtime/errors.ts";
import { redactTokens } from "../internal/redact.ts";
import type { CommandContext } from "./_context.ts";
import { buildCliTools, storeRecorders } from "./_tool_registry.ts";
import { LineTransport } from "./_mcp_transport.ts";
import { withExistingAuthority } from "./auth.ts";
import { noSecretPool, TOKEN_ENV } from "./tool.ts";
import { openTokenFile, TOKEN_FILE_ENV, type TokenFileReader } from "./_token_file.ts";

const logger = getLogger(["toka", "mcp"]);

/**
 * Serves the CLI's tools over MCP on the io's stdin and stdout until the input
 * ends or the io's signal aborts. The token in `TOKA_TOKEN` is verified first
 * (a missing or invalid one is an error before anything is served); each
 * listing shows only the tools it grants, and each call goes through the
 * registry with it, recorded in the vault.
 *
 * @param ctx The command context.
 * @returns The exit code.
 * @throws {TokaError} When there is no token, no secret pool, or the token is invalid.
 */
export async function serveMcp(ctx: CommandContext, tokenFile?: string): Promise<number> {
  const readToken = await tokenReader(ctx, tokenFile || ctx.io.env(TOKEN_FILE_ENV) || undefined);
  const stdin = ctx.io.stdin;
  if (stdin === undefined) throw new Error("No standard input to read MCP messages from");
  return await withExistingAuthority(ctx, async (authority, store) => {
    if (authority === undefined) throw noSecretPool(ctx);
    const claims = await authority.verify(await readToken());
    await using tools = await buildCliTools(ctx.toolSettings, {
      warn: (line) => ctx.io.stderr(line),
      authority,
      ...storeRecorders(store, "mcp"),
    });
    const server = createMcpServer(tools.registry, authority, readToken);
    const transport = new LineTransport(stdin, (text) => ctx.io.stdout(text));
    const closed = new Promise<void>((resolve) => transport.onclose = resolve);
    transport.onerror = (error) => logger.warn("Unreadable MCP message: {message}", error);
    const stop = () => void transport.close();
    ctx.io.signal?.addEventListener("abort", stop, { once: true });
    try {
      await server.connect(transport);
      // An interrupt while the vault and the plugins were opening.
      if (ctx.io.signal?.aborted) stop();
      logger.info("Serving {count} tools over MCP for {sub}", {
        count: tools.registry.list().filter((info) => grants(claims, info)).length,
        sub: claims.sub,
      });
      await closed;
      await transport.done;
    } finally {
      ctx.io.signal?.removeEventListener("abort", stop);
      await server.close();
    }
    return 0;
  });
}

/**
 * An MCP server (not yet connected) whose tools are the registry's that the
 * token grants, and whose calls go through the registry with the token. Tools
 * go by their wire names (`fs_read`, which MCP clients can hand to model APIs),
 * with their Toka names (`fs.read`) as titles.
 *
 * @param registry The tools.
 * @param authority Verifies the token at each listing.
 * @param readToken The capability token of each request, asked for anew each time.
 * @returns The server; connect it to a transport.
 */
function createMcpServer(
  registry: ToolRegistry,
  authority: TokenAuthority,
  readToken: TokenFileReader,
): Server {
  const server = new Server(
    { name: "toka", version: denoJson.version },
    {
      capabilities: { tools: {} },
      instructions: "Toka's tools; each call is checked against a capability token and recorded",
    },
  );
  server.setRequestHandler(ListToolsRequestSchema, async () => {
    // A token revoked or expired since the start lists nothing: the error says why.
    const claims = await readToken().then((token) => authority.verify(token)).catch((error) => {
      throw new McpError(ErrorCode.InvalidRequest, message(error));
    });
    return { tools: registry.list().filter((info) => grants(claims, info)).map(toMcpTool) };
  });
  server.setRequestHandler(
    CallToolRequestSchema,
    async (request: CallToolRequest, extra: { signal: AbortSignal }) => {
      const { name: wire, arguments: input } = request.params;
      const name = registry.fromWireName(wire);
      if (name === undefined) {
        // A Toka name is not a wire name; say which one the tool goes by here.
        const text = registry.get(wire) === undefined
          ? new ToolNotFoundError(wire).message
          : `No tool named "${wire}" is listed: its name on MCP is "${wireName(wire)}"`;
        throw new McpError(ErrorCode.InvalidParams, text);
      }
      try {
        const token = await readToken();
        const output = await registry.call(name, input ?? {}, { token, signal: extra.signal });
        return toResult(registry.get(name)!, output);
      } catch (error) {
        // Refusals and failures are tool errors the model can read, not protocol errors.
        return { isError: true, content: [{ type: "text", text: message(error) }] };
      }
    },
  );
  return server;
}

// The token of `--token-file`/`TOKA_TOKEN_FILE` (re-read when the file changes), else `TOKA_TOKEN`.
async function tokenReader(ctx: CommandContext, file?: string): Promise<TokenFileReader> {
  if (file !== undefined) return await openTokenFile(file, (line) => ctx.io.stderr(`${line}\n`));
  const token = ctx.io.env(TOKEN_ENV) || undefined;
  if (token === undefined) {
    throw new TokaError(
      "missing_token",
      `Missing token: set ${TOKEN_ENV} to a capability token ("toka auth issue" makes one)` +
        ` or ${TOKEN_FILE_ENV} to a file holding one`,
    );
  }
  return () => Promise.resolve(token);
}

function grants(claims: TokenClaims, info: ToolInfo): boolean {
  return info.permissions.every((permission) => permits(claims.permissions, permission));
}

function toMcpTool(info: ToolInfo): McpTool {
  return {
    name: wireName(info.name),
    title: info.name,
    description: info.description,
    inputSchema: info.inputSchema as McpTool["inputSchema"],
    // MCP's structured output is an object: other output schemas are not advertised.
    ...(info.outputSchema?.type === "object" &&
      { outputSchema: info.outputSchema as McpTool["outputSchema"] }),
    ...(info.annotations && { annotations: { ...info.annotations } }),
  };
}

function toResult(info: ToolInfo, output: unknown): CallToolResult {
  const text = JSON.stringify(output ?? null);
  const structured = info.outputSchema?.type === "object" && isObject(output);
  return {
    content: [{ type: "text", text }],
    ...(structured && { structuredContent: output }),
  };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

// One line, never a token.
function message(error: unknown): string {
  const text = error instanceof Error ? error.message || error.name : String(error);
  return redactTokens(text.replace(/\s*\n\s*/g, " "));
}
