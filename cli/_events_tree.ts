// `toka events tree ID`: an event's parents, then everything it caused, as a tree.
import { type EventTree, findEvent, readDescendants, readParents } from "./_event_queries.ts";
import { type CommandContext, withStore } from "./_context.ts";
import { formatEventLine } from "./_format.ts";

/** Levels of indentation shown; deeper lines say their depth instead. */
const MAX_INDENT = 32;

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
      ctx.io.stdout(`{"parents":${JSON.stringify(parents)},"tree":${treeJson(tree)}}\n`);
      return 0;
    }
    const lines = parents.map((parent) => `↑ ${formatEventLine(parent)}`);
    lines.push(formatEventLine(event));
    // Depth-first with an explicit stack: a long causal chain is deep.
    const stack = tree.children.map((node, i, all) => ({
      node,
      indent: "",
      depth: 1,
      last: i === all.length - 1,
    })).reverse();
    for (let top = stack.pop(); top !== undefined; top = stack.pop()) {
      const { node, indent, depth, last } = top;
      // Past MAX_INDENT levels the indent stops growing (else the output grows with the
      // square of the depth) and the line says its depth.
      const deep = depth > MAX_INDENT ? `(depth ${depth}) ` : "";
      lines.push(`${indent}${last ? "└─ " : "├─ "}${deep}${formatEventLine(node.event)}`);
      const below = depth >= MAX_INDENT ? indent : `${indent}${last ? "   " : "│  "}`;
      for (let i = node.children.length - 1; i >= 0; i--) {
        stack.push({
          node: node.children[i],
          indent: below,
          depth: depth + 1,
          last: i === node.children.length - 1,
        });
      }
    }
    ctx.io.stdout(`${lines.join("\n")}\n`);
    return 0;
  });
}

// JSON.stringify of the tree, without recursion: a causal chain may be deeper than the stack.
function treeJson(root: EventTree): string {
  const out: string[] = [];
  const stack: { node: EventTree; next: number }[] = [{ node: root, next: -1 }];
  while (stack.length > 0) {
    const top = stack[stack.length - 1];
    if (top.next === -1) {
      out.push(`{"event":${JSON.stringify(top.node.event)},"children":[`);
      top.next = 0;
    }
    if (top.next < top.node.children.length) {
      if (top.next > 0) out.push(",");
      stack.push({ node: top.node.children[top.next++], next: -1 });
    } else {
      out.push("]}");
      stack.pop();
    }
  }
  return out.join("");
}
