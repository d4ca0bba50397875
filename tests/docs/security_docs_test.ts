// docs/security.md names the built-in tools whose outputs the tool journal keeps in the log: the
// list must be every built-in that does not opt out with `journal: false`.
import assert from "node:assert/strict";
import {
  builtinTools,
  createFsTools,
  createHttpFetchTool,
  createModelChatTool,
  Scheduler,
  type Tool,
} from "../../toolkit/mod.ts";

Deno.test("docs/security.md lists the journaled built-in tools", async () => {
  const text = await Deno.readTextFile(new URL("../../docs/security.md", import.meta.url));
  const listed = text.replace(/\s+/g, " ").match(/Every built-in is journaled \(([^)]*)\)/);
  assert.ok(listed, "the sentence 'Every built-in is journaled (...)'");
  const names = [...listed[1].matchAll(/`([^`]+)`/g)].flatMap(([, name]) => {
    const [prefix, rest] = name.split(".");
    return rest === undefined ? [name] : rest.split("|").map((part) => `${prefix}.${part}`);
  });
  const tools: Tool[] = [
    ...builtinTools(),
    ...createFsTools({ root: "." }),
    createHttpFetchTool() as Tool,
    createModelChatTool({ model: "m" }) as Tool,
    ...new Scheduler({ emit: () => Promise.resolve() }).tools,
  ];
  const journaled = tools.filter((tool) => tool.journal !== false).map((tool) => tool.name);
  assert.deepEqual(names.sort(), journaled.sort());
});
