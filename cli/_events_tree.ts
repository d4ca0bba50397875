// `toka events tree ID`: an event's parents, then everything it caused, as a tree.
import { findEvent, readDescendants, readParents } from "./_event_queries.ts";
import { type CommandContext, withStore } from "./_context.ts";
import { formatEventLine } from "./_format.ts";

/**
 * Prints an event's parents (marked `↑`), then the event and, indented below it, every event
 * it caused, directly or not. With `--json`, one line:
 * `{ "parents": [EventRecord], "tree": { "event": EventRecord, "children": [tree] } }`.
 * The log after the event is read once, to the head.
 *
 * @param ctx The command context.
 * @param idOrPosition The event id (any case) or its position.
 * @returns The exit code.
 * @throws {TokaError} `"event_not_found"` when no event has this id or position.
 */
export function eventTree(ctx: CommandContext, idOrPosition: string): Promise<number> {
  return withStore(ctx, async (store) => {
    const event = await findEvent(store, idOrPosition);
    const [parents, { tree }] = await Promise.all([
      readParents(store, event),
      readDescendants(store, event, { scanLimit: Infinity }),
    ]);
    if (ctx.json) {
      ctx.io.stdout(`${JSON.stringify({ parents, tree })}\n`);
      return 0;
    }
    const lines = parents.map((parent) => `↑ ${formatEventLine(parent)}`);
    lines.push(formatEventLine(event));
    // Depth-first with an explicit stack: a long causal chain is deep.
    const stack = tree.children.map((node, i, all) => ({
      node,
      indent: "",
      last: i === all.length - 1,
    })).reverse();
    for (let top = stack.pop(); top !== undefined; top = stack.pop()) {
      const { node, indent, last } = top;
      lines.push(`${indent}${last ? "└─ " : "├─ "}${formatEventLine(node.event)}`);
      const below = `${indent}${last ? "   " : "│  "}`;
      for (let i = node.children.length - 1; i >= 0; i--) {
        stack.push({ node: node.children[i], indent: below, last: i === node.children.length - 1 });
      }
    }
    ctx.io.stdout(`${lines.join("\n")}\n`);
    return 0;
  });
}
