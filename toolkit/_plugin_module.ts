// The module transport: a TS/JS module whose exports are tools made with defineTool.
import type { Tool } from "./tool.ts";
import { preview } from "./_plugin_remote.ts";

function isTool(value: unknown): value is Tool {
  const tool = value as Tool | null;
  return typeof tool === "object" && tool !== null && typeof tool.name === "string" &&
    typeof tool.execute === "function";
}

/** Imports a module and returns the tools it exports (directly or in an exported array). */
export async function moduleTools(url: string): Promise<Tool[]> {
  let exports: Record<string, unknown>;
  try {
    // A user's module, resolved at run time (deno publish warns that it cannot analyse it).
    exports = await import(url);
  } catch (error) {
    const first = String((error as Error)?.message ?? error).split("\n")[0];
    throw new Error(`cannot import ${JSON.stringify(url)}: ${preview(first).slice(0, 200)}`, {
      cause: error,
    });
  }
  const tools = Object.values(exports).flatMap((value) =>
    (Array.isArray(value) ? value : [value]).filter(isTool)
  );
  if (tools.length === 0) {
    throw new Error(`${JSON.stringify(url)} exports no tool made with defineTool`);
  }
  return tools;
}
