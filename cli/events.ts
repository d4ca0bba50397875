/**
 * `toka events ...`: list, follow, inspect, verify, export and import the
 * event log of the store named by `--db`.
 *
 * @module
 */
import { type Command, InvalidArgumentError } from "commander";
import { compileKindFilter } from "../runtime/log/kind_pattern.ts";
import { assertStream } from "../internal/ids.ts";
import { isSnapshot } from "../vault/open_vault.ts";
import type { EventRecord, EventStore, LogHead } from "../runtime/log/event_store.ts";
import { type CommandContext, type RunCommand, withStore, writes } from "./_context.ts";
import { formatEventDetail, formatEventLine, formatStats, formatVerifyReport } from "./_format.ts";
import { importEvents } from "./_events_import.ts";
import { diffEvents, forkEvents, type ForkOptions } from "./_events_fork.ts";
import { INTERRUPTED_EXIT } from "./_interrupt.ts";
import { progress } from "./_progress.ts";
import { correlatedEvents, findEvent, isEventRef } from "./_event_queries.ts";
import { eventTree } from "./_events_tree.ts";

// Batches small writes; a live tail flushes after every event.
const FLUSH_BYTES = 64 * 1024;

/** Filters shared by `events list` and `events tail`. */
export interface EventFilterOptions {
  /** Only events of this stream. */
  stream?: string;
  /** Only events whose kind matches one of these patterns; all when empty. */
  kind?: string[];
}

/** Options of {@linkcode listEvents}. */
export interface ListOptions extends EventFilterOptions {
  /** First position to show. */
  from?: string;
  /** At most this many events. */
  limit?: number;
  /**
   * Only the events of this correlation: those whose `meta.correlationId` it is, and the event
   * whose id it is (the one that began it).
   */
  correlation?: string;
}

/** Options of {@linkcode tailEvents}. */
export interface TailOptions extends EventFilterOptions {
  /** How many of the last events to show first. */
  lines: number;
  /** Keep printing new events until `io.signal` aborts. */
  follow?: boolean;
}

/**
 * Prints the events matching the filters, oldest first.
 *
 * @param ctx The command context.
 * @param options The filters.
 * @returns The exit code.
 */
export function listEvents(ctx: CommandContext, options: ListOptions): Promise<number> {
  return withStore(ctx, async (store) => {
    const out = output(ctx);
    const filters = { stream: options.stream, kinds: kinds(options), from: options.from };
    if (options.correlation === undefined) {
      for await (const event of store.read({ ...filters, limit: options.limit })) out.event(event);
    } else if (options.limit !== 0) {
      let left = options.limit ?? Infinity;
      for await (const event of correlatedEvents(store, options.correlation, filters)) {
        out.event(event);
        if (--left === 0) break;
      }
    }
    out.flush();
    return 0;
  });
}

/**
 * Prints the last events, then with `follow` every new one, including those
 * other processes append, until `ctx.io.signal` aborts.
 *
 * @param ctx The command context.
 * @param options How many, which, and whether to follow.
 * @returns The exit code.
 */
export function tailEvents(ctx: CommandContext, options: TailOptions): Promise<number> {
  return withStore(ctx, async (store) => {
    if (options.follow && isSnapshot(store)) {
      throw new Error(
        `Cannot follow "${ctx.dbLocation}": this process may not write it, so it is read from ` +
          `a snapshot that shows no later events; run without --follow`,
      );
    }
    const out = output(ctx);
    const head = (await store.head())?.position ?? null;
    const last: EventRecord[] = [];
    if (head !== null && options.lines > 0) {
      for await (
        const event of store.read({
          from: head,
          direction: "backward",
          limit: options.lines,
          stream: options.stream,
          kinds: kinds(options),
        })
      ) last.push(event);
    }
    for (const event of last.reverse()) out.event(event);
    out.flush();
    const signal = ctx.io.signal;
    if (!options.follow || signal?.aborted) return 0;
    for await (
      const event of store.subscribe({ after: head ?? undefined, kinds: kinds(options), signal })
    ) {
      if (options.stream !== undefined && event.stream !== options.stream) continue;
      out.event(event);
      out.flush();
    }
    return 0;
  });
}

/**
 * Prints one event in full, found by its id or by its global position (as
 * `events list` prints it, leading zeros optional).
 *
 * @param ctx The command context.
 * @param idOrPosition The event id, in any case (`O` reads as `0`, `I` and `L` as `1`), or a
 *   position of up to 16 digits.
 * @returns The exit code.
 * @throws {TokaError} `"event_not_found"` when no event has this id or position.
 */
export function showEvent(ctx: CommandContext, idOrPosition: string): Promise<number> {
  return withStore(ctx, async (store) => {
    const event = await findEvent(store, idOrPosition);
    ctx.io.stdout(ctx.json ? `${JSON.stringify(event)}\n` : formatEventDetail(event));
    return 0;
  });
}

/**
 * Prints how many events, streams and kinds the store holds.
 *
 * @param ctx The command context.
 * @returns The exit code.
 */
export function eventStats(ctx: CommandContext): Promise<number> {
  return withStore(ctx, async (store) => {
    const stats = await store.stats();
    ctx.io.stdout(ctx.json ? `${JSON.stringify(stats)}\n` : formatStats(stats));
    return 0;
  });
}

/**
 * Prints the position and chain digest of the last event as one value
 * (`<position>@sha256:<hex>`, or JSON with `--json`), to keep and later pass
 * to `events verify --expect-head`.
 *
 * @param ctx The command context.
 * @returns The exit code.
 */
export function eventHead(ctx: CommandContext): Promise<number> {
  return withStore(ctx, async (store) => {
    const head = await store.head();
    if (ctx.json) ctx.io.stdout(`${JSON.stringify(head)}\n`);
    else ctx.io.stdout(head === null ? "The log is empty\n" : `${formatHead(head)}\n`);
    return 0;
  });
}

/** Options of {@linkcode verifyEvents}. */
export interface VerifyEventsOptions {
  /** A head printed earlier by `events head`: the log must still hold it. */
  expectHead?: LogHead;
}

/**
 * Recomputes the digest chain and every parent link and lists the events at
 * fault; with an expected head, also proves nothing before it changed.
 * Shows progress on a terminal; an interrupt (`ctx.io.signal`) stops it.
 *
 * @param ctx The command context.
 * @param options The expected head, if any.
 * @returns 0 when the log is intact, 1 when a problem was found, 130 when interrupted.
 */
export function verifyEvents(
  ctx: CommandContext,
  options: VerifyEventsOptions = {},
): Promise<number> {
  return withStore(ctx, async (store) => {
    const signal = ctx.io.signal;
    const bar = progress(ctx.io, "verifying", { total: await eventCount(store) });
    let checked = 0;
    let report;
    try {
      report = await store.verify({
        ...(options.expectHead === undefined ? {} : { expectHead: options.expectHead }),
        signal,
        onProgress: (n) => {
          bar.advance(n - checked);
          checked = n;
        },
      });
    } catch (error) {
      if (signal?.aborted !== true) throw error;
      ctx.io.stderr(
        `Interrupted after checking ${count(checked)}; nothing was changed, and no problem ` +
          `was reported\n`,
      );
      return INTERRUPTED_EXIT;
    } finally {
      bar.done();
    }
    ctx.io.stdout(ctx.json ? `${JSON.stringify(report)}\n` : formatVerifyReport(report));
    return report.ok ? 0 : 1;
  });
}

/**
 * Writes every event as JSON Lines, oldest first, for `events import`. An
 * interrupt (`ctx.io.signal`) stops it after a whole line, and says so.
 *
 * @param ctx The command context.
 * @returns The exit code: 0, or 130 when interrupted.
 */
export function exportEvents(ctx: CommandContext): Promise<number> {
  return withStore(ctx, async (store) => {
    const signal = ctx.io.signal;
    const total = await eventCount(store);
    const bar = progress(ctx.io, "exporting", { total });
    const out = output({ ...ctx, json: true });
    let exported = 0;
    try {
      for await (const event of store.read()) {
        if (signal?.aborted) break;
        out.event(event);
        exported++;
        bar.advance(1);
      }
      out.flush();
    } finally {
      bar.done();
    }
    if (signal?.aborted) {
      ctx.io.stderr(
        `Interrupted after exporting ${count(exported)} of ${
          total.toLocaleString("en-US")
        }; the output is incomplete\n`,
      );
      return INTERRUPTED_EXIT;
    }
    return 0;
  });
}

// The number of events, from the head: positions have no gaps.
async function eventCount(store: EventStore): Promise<number> {
  const head = await store.head();
  return head === null ? 0 : Number(head.position);
}

function count(n: number): string {
  return `${n.toLocaleString("en-US")} event${n === 1 ? "" : "s"}`;
}

/**
 * Adds `events` and its subcommands to the program.
 *
 * @param program The root command.
 * @param run Runs a task with the context of the global options.
 * @returns The `events` command.
 */
export function registerEventsCommands(program: Command, run: RunCommand): Command {
  const events = program.command("events").description("inspect and move the event log");
  const filters = (command: Command) =>
    command
      .option("--stream <name>", "only events of this stream", parseStreamArg)
      .option(
        "--kind <pattern>",
        "only events of this kind; * matches any run of characters, dots included; repeatable",
        (value: string, previous: string[] = []) => [...previous, parseKindArg(value)],
      );

  filters(events.command("list").description("print events, oldest first"))
    .option("--from <position>", "start at this global position", parsePositionArg)
    .option("--limit <n>", "print at most n events", parseCountArg)
    .option(
      "--correlation <id>",
      "only the events of this run: its correlation id, or the id of the event that began it",
      parseCorrelationArg,
    )
    .action((options: ListOptions, command: Command) =>
      run(command, (ctx) => listEvents(ctx, options))
    );

  filters(events.command("tail").description("print the last events, and new ones with --follow"))
    .option("-n, --lines <n>", "how many of the last events to print", parseCountArg, 10)
    .option("-f, --follow", "keep printing new events, also those of other processes")
    .action((options: TailOptions, command: Command) =>
      run(command, (ctx) => tailEvents(ctx, options))
    );

  events.command("show").description("print one event in full")
    .argument("<id>", "the event id (any case), or its position as list prints it", parseEventIdArg)
    .action((id: string, _options: unknown, command: Command) =>
      run(command, (ctx) => showEvent(ctx, id))
    );

  events.command("tree")
    .description("print an event's parents, then everything it caused, as a tree")
    .argument("<id>", "the event id (any case), or its position as list prints it", parseEventIdArg)
    .action((id: string, _options: unknown, command: Command) =>
      run(command, (ctx) => eventTree(ctx, id))
    );

  events.command("stats").description("count events, streams and kinds")
    .action((_options: unknown, command: Command) => run(command, eventStats));

  events.command("verify")
    .description("check the digest chain, parent links and index; exit 1 on a problem")
    .option(
      "--expect-head <head>",
      "a head printed earlier by `events head`: fail unless the log still holds it",
      parseHeadArg,
    )
    .action((options: VerifyEventsOptions, command: Command) =>
      run(command, (ctx) => verifyEvents(ctx, options))
    );

  events.command("head")
    .description("print the position and chain digest of the last event, to keep")
    .action((_options: unknown, command: Command) => run(command, eventHead));

  events.command("export")
    .description(
      "write every event to stdout as JSON Lines (events only: no checkpoints, secret pool or revocations)",
    )
    .action((_options: unknown, command: Command) => run(command, exportEvents));

  writes(events.command("import"))
    .description(
      "store events read from stdin as JSON Lines (idempotent; every line is checked before any is stored)",
    )
    .action((_options: unknown, command: Command) => run(command, importEvents));

  events.command("fork")
    .description(
      "write a new vault with the events up to a position, ids, positions and digests kept " +
        "(and agents' checkpoints as of there; not the secret pool)",
    )
    .requiredOption("--at <position>", "the position of the fork's last event", parseForkPoint)
    .requiredOption(
      "--into <path>",
      "a new vault file (never overwritten), or an empty remote vault's URL",
      parseLocationArg,
    )
    .action((options: ForkOptions, command: Command) =>
      run(command, (ctx) => forkEvents(ctx, options))
    );

  events.command("diff")
    .description(
      "the last position two vaults share and what follows on each side, by kind; exit 1 when they differ",
    )
    .argument("<a>", "a vault: a file path or an http(s) URL", parseLocationArg)
    .argument("<b>", "another vault", parseLocationArg)
    .action((a: string, b: string, _options: unknown, command: Command) =>
      run(command, (ctx) => diffEvents(ctx, a, b))
    );

  return events;
}

function parseLocationArg(value: string): string {
  if (value.trim() === "") throw new InvalidArgumentError("Expected a file path or an http(s) URL");
  return value;
}

function kinds(options: EventFilterOptions): string[] | undefined {
  return options.kind === undefined || options.kind.length === 0 ? undefined : options.kind;
}

function output(ctx: CommandContext): { event(event: EventRecord): void; flush(): void } {
  let buffer = "";
  const flush = () => {
    if (buffer !== "") ctx.io.stdout(buffer);
    buffer = "";
  };
  return {
    event(event) {
      buffer += `${ctx.json ? JSON.stringify(event) : formatEventLine(event)}\n`;
      if (buffer.length >= FLUSH_BYTES) flush();
    },
    flush,
  };
}

function parseCountArg(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n)) {
    throw new InvalidArgumentError("Expected a whole number ≥ 0");
  }
  return n;
}

function parseKindArg(value: string): string {
  try {
    compileKindFilter([value]);
  } catch {
    throw new InvalidArgumentError(
      "Expected dotted segments of letters, digits, _ or - and * wildcards",
    );
  }
  return value;
}

function parseStreamArg(value: string): string {
  try {
    assertStream(value);
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message);
  }
  return value;
}

function parseCorrelationArg(value: string): string {
  if (value.trim() === "" || value.length > 256) {
    throw new InvalidArgumentError("Expected a correlation id of 1 to 256 characters");
  }
  return value;
}

function parseEventIdArg(value: string): string {
  if (!isEventRef(value)) {
    throw new InvalidArgumentError(
      "Expected an event id (26 characters of Crockford base32) or a position (up to 16 digits)",
    );
  }
  return value;
}

function parsePositionArg(value: string): string {
  if (!/^\d{1,16}$/.test(value)) throw new InvalidArgumentError("Expected up to 16 digits");
  return value.padStart(16, "0");
}

// No event is at position 0: a fork there is a bad value, whatever the vault holds. Kept as
// typed, so that a refusal quotes what the user wrote.
function parseForkPoint(value: string): string {
  if (Number(parsePositionArg(value)) === 0) {
    throw new InvalidArgumentError("Expected a position from 1");
  }
  return value;
}

function formatHead(head: LogHead): string {
  return `${head.position}@${head.digest}`;
}

/** `<position>@sha256:<hex>` as `events head` prints it, or its `--json` form. */
function parseHeadArg(value: string): LogHead {
  const text = /^\s*\{/.test(value) ? undefined : value.match(/^(\d{1,16})@(sha256:[0-9a-f]{64})$/);
  if (text) return { position: text[1].padStart(16, "0"), digest: text[2] };
  if (text === undefined) {
    try {
      const head = JSON.parse(value);
      if (
        typeof head?.position === "string" && /^\d{1,16}$/.test(head.position) &&
        typeof head.digest === "string" && /^sha256:[0-9a-f]{64}$/.test(head.digest)
      ) return { position: head.position.padStart(16, "0"), digest: head.digest };
    } catch {
      // refused below
    }
  }
  throw new InvalidArgumentError(
    "Expected <position>@sha256:<64 hex digits>, as printed by `toka events head`",
  );
}
