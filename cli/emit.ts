/**
 * `toka emit <kind>`: appends one event to the log by the rules of
 * `runtime.emit` (the stream `runtime` unless `--stream` names one), so that
 * agents hosted by `toka run`, in this or another process, handle it.
 *
 * @module
 */
import { type Command, InvalidArgumentError } from "commander";
import { EventBus } from "../runtime/mod.ts";
import type { EventRecord, JsonValue } from "../runtime/mod.ts";
import { canonicalPayload } from "../runtime/log/event_rules.ts";
import { assertKind, assertStream } from "../internal/ids.ts";
import { TokaError } from "../runtime/errors.ts";
import { type CommandContext, type RunCommand, withStore, writes } from "./_context.ts";
import { UsageError } from "./_usage_error.ts";

/** Where the payload of {@linkcode emitEvent} comes from. */
export interface EmitOptions {
  /** The stream; the runtime's default stream (`runtime`) when omitted. */
  stream?: string;
  /** The payload as JSON text (`--payload`). */
  payload?: string;
  /** A file holding the payload as JSON (`--payload-file`). */
  payloadFile?: string;
  /** True to read the payload as JSON from standard input (`-`). */
  stdin?: boolean;
  /** Why the event was emitted, stored as its `intent`. */
  intent?: string;
}

/**
 * Appends one event and prints its id, or the stored record with `--json`.
 * The payload is read and checked before the vault is opened: bad input
 * creates no vault.
 *
 * @param ctx The command context.
 * @param kind The event's kind, e.g. `task.created`.
 * @param options The stream and where the payload comes from.
 * @returns 0 once the event is stored.
 * @throws {UsageError} When two payload sources are given or `--payload` is not JSON.
 * @throws {TokaError} When the payload file or standard input cannot be read or is not JSON.
 */
export async function emitEvent(
  ctx: CommandContext,
  kind: string,
  options: EmitOptions,
): Promise<number> {
  const payload = await readPayload(ctx, options);
  const record = await withStore(ctx, async (store): Promise<EventRecord> => {
    // The runtime's own emit path, so the defaults and checks are the same.
    const bus = new EventBus({ store });
    try {
      return await bus.emit({ kind, payload, stream: options.stream, intent: options.intent });
    } finally {
      await bus.close();
    }
  });
  ctx.io.stdout(ctx.json ? `${JSON.stringify(record)}\n` : `${record.id}\n`);
  return 0;
}

async function readPayload(ctx: CommandContext, options: EmitOptions): Promise<JsonValue> {
  const sources = [
    options.payload !== undefined && "--payload",
    options.payloadFile !== undefined && "--payload-file",
    options.stdin === true && "-",
  ].filter((source) => source !== false);
  if (sources.length > 1) {
    throw new UsageError(`Give the payload once: ${sources.join(" and ")} were both given`);
  }
  let text: string;
  let source: string;
  if (options.payload !== undefined) {
    text = options.payload;
    source = "--payload";
  } else if (options.payloadFile !== undefined) {
    source = `payload file "${options.payloadFile}"`;
    try {
      text = await Deno.readTextFile(options.payloadFile);
    } catch (error) {
      throw new TokaError(
        "payload_unreadable",
        `Cannot read ${source}: ${(error as Error).message}`,
      );
    }
  } else if (options.stdin === true) {
    source = "standard input";
    if (ctx.io.stdin === undefined) throw new TokaError("payload_unreadable", "No standard input");
    text = await new Response(ctx.io.stdin).text();
  } else {
    return null;
  }
  let payload: JsonValue;
  try {
    payload = JSON.parse(text);
  } catch (error) {
    const message = `Invalid JSON in ${source}: ${(error as Error).message}`;
    throw source === "--payload"
      ? new UsageError(message)
      : new TokaError("payload_invalid", message);
  }
  // The vault's rules, checked before the vault is opened (and perhaps created).
  try {
    canonicalPayload(payload, `in ${source}`);
  } catch (error) {
    if (!(error instanceof TypeError || error instanceof RangeError)) throw error;
    throw source === "--payload" ? new UsageError(error.message) : new TokaError(
      error instanceof RangeError ? "payload_too_large" : "payload_invalid",
      error.message,
    );
  }
  return payload;
}

/**
 * Registers `toka emit` on the program.
 *
 * @param program The `toka` command.
 * @param run Runs the command's task with its context.
 */
export function registerEmitCommand(program: Command, run: RunCommand): void {
  writes(
    program.command("emit")
      .description("append one event to the log, as runtime.emit does, and print its id")
      .argument("<kind>", "the event's kind, e.g. task.created", checked(assertKind))
      .argument("[-]", 'read the payload as JSON from standard input ("-")', (value) => {
        if (value !== "-") throw new InvalidArgumentError('Expected "-" (the payload on stdin)');
        return true;
      })
      .option("--payload <json>", "the payload as JSON text (default: null)")
      .option("--payload-file <file>", "read the payload from a JSON file")
      .option("--stream <stream>", 'the stream (default: "runtime")', checked(assertStream))
      .option("--intent <text>", "why the event is emitted, stored with it", (value) => {
        if (value.length > MAX_INTENT_LENGTH) {
          throw new InvalidArgumentError(`Expected at most ${MAX_INTENT_LENGTH} characters`);
        }
        return value;
      })
      .addHelpText(
        "after",
        `
Examples:
  toka emit task.created --payload '{"id": 1}'
  echo '{"id": 2}' | toka emit task.created - --stream tasks/2`,
      ),
  ).action(
    (kind: string, stdin: boolean | undefined, options: EmitOptions, command: Command) =>
      run(command, (ctx) => emitEvent(ctx, kind, { ...options, stdin: stdin === true })),
  );
}

// The vault's limit on an intent, checked before the vault is opened.
const MAX_INTENT_LENGTH = 1024;

function checked(assert: (value: string) => void): (value: string) => string {
  return (value) => {
    try {
      assert(value);
    } catch (error) {
      throw new InvalidArgumentError((error as Error).message);
    }
    return value;
  };
}
