// Resolving a plugin spec's relative paths, shared by manifests and loadPlugins.
import { isAbsolute, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import type { PluginSpec } from "./plugin_manifest.ts";

/**
 * Resolves relative paths in a spec against `base`: module paths become URLs, `cwd`s absolute
 * paths (the base itself by default for commands).
 */
export function resolveSpec(spec: PluginSpec, base: string): PluginSpec {
  const transport = { ...spec.transport };
  if (transport.type === "module") {
    transport.module = /^[a-z][a-z0-9+.-]*:/i.test(transport.module)
      ? transport.module
      : pathToFileURL(resolve(base, transport.module)).href;
  } else if (transport.type === "stdio" || (transport.type === "mcp" && transport.command)) {
    transport.cwd = transport.cwd === undefined
      ? base
      : isAbsolute(transport.cwd)
      ? transport.cwd
      : resolve(base, transport.cwd);
  }
  return { ...spec, transport };
}
