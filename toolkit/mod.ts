/**
 * The toolkit: define tools with JSON Schemas, register them, and call them
 * with capability checks, input and output validation, timeouts, abort and
 * `tool.*` events. Without it the runtime uses {@linkcode NoopToolRegistry}.
 *
 * @example Register echo and call it
 * ```ts
 * import { echoTool, ToolRegistry } from "@toka/runtime/toolkit";
 *
 * const events: { kind: string }[] = [];
 * const tools = new ToolRegistry({ record: (event) => events.push(event) });
 * tools.register(echoTool);
 * console.log(await tools.call("echo", { text: "hello" })); // { text: "hello" }
 * console.log(events.map((event) => event.kind)); // ["tool.invoked", "tool.completed"]
 * ```
 *
 * @module
 */

export { defineTool, type Tool, type ToolContext } from "./tool.ts";
export {
  type ToolEvent,
  type ToolEventPayload,
  ToolRegistry,
  type ToolRegistryOptions,
} from "./registry.ts";
export { wireName } from "./wire_name.ts";
export { ToolExecutionError, ToolInputError, ToolOutputError, ToolTimeoutError } from "./errors.ts";
export {
  builtinTools,
  createNowTool,
  echoTool,
  hashTool,
  type NowOutput,
} from "./builtin_tools.ts";
export {
  createFsTools,
  type FsDeleteInput,
  type FsDeleteOutput,
  type FsListInput,
  type FsListOutput,
  type FsReadInput,
  type FsReadOutput,
  type FsToolsOptions,
  type FsWriteInput,
  type FsWriteOutput,
} from "./fs_tools.ts";
export {
  createHttpFetchTool,
  type HttpFetchInput,
  type HttpFetchOptions,
  type HttpFetchOutput,
} from "./http_fetch_tool.ts";
export {
  createModelChatTool,
  type ModelChatInput,
  type ModelChatMessage,
  type ModelChatOptions,
  type ModelChatOutput,
  type ModelReplyMessage,
  type ModelToolCall,
} from "./model_chat_tool.ts";
export {
  type ScheduleCancelInput,
  type ScheduleCancelOutput,
  type ScheduledTimer,
  type ScheduleInput,
  type ScheduleListOutput,
  Scheduler,
  type SchedulerOptions,
} from "./schedule_tools.ts";
export {
  type HttpTransport,
  type McpTransport,
  type ModuleTransport,
  parsePluginManifest,
  type PluginSpec,
  type PluginTransport,
  readPluginManifest,
  type StdioTransport,
} from "./plugin_manifest.ts";
export {
  type LoadedPlugin,
  loadPlugins,
  type LoadPluginsOptions,
  type PluginHost,
  PluginLoadError,
} from "./plugin_host.ts";
export {
  NoopToolRegistry,
  type ToolAnnotations,
  type ToolCallOptions,
  type ToolInfo,
  type ToolInvocation,
  ToolNotFoundError,
  type ToolOutcome,
  type ToolRegistry as ToolRegistryContract,
} from "../runtime/tool_registry.ts";
// Shared contracts the toolkit's API refers to, so this entry point documents itself.
export { CapabilityDeniedError, TokaError } from "../runtime/errors.ts";
export {
  AllowAllAuthority,
  type IssueRequest,
  type TokenAuthority,
  type TokenClaims,
} from "../runtime/token_authority.ts";
