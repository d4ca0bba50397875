// `toka events import`: two passes over the input, each in bounded memory. The
// first checks every line (JSON, record shape) before the vault opens, and keeps
// a copy of standard input in an unlinked temporary file; the second stores the records
// from that copy in batches, which the vault group-commits.
import type { EventRecord, ImportResult } from "../runtime/log/event_store.ts";
import { TokaError } from "../runtime/errors.ts";
import { assertRecordShape } from "../internal/event_record.ts";
import { MAX_PAYLOAD_BYTES } from "../runtime/log/event_limits.ts";
import { type CommandContext, withStore } from "./_context.ts";
import { byteLines, type JsonLine, parseJsonLines } from "./_json_lines.ts";
import { abortable, INTERRUPTED, INTERRUPTED_EXIT } from "./_interrupt.ts";
import { progress } from "./_progress.ts";

/**
 * The longest line `events import` reads: an event of the largest payload the
 * vault takes, with room for its other fields and JSON escapes.
 */
export const MAX_LINE_BYTES: number = 2 * MAX_PAYLOAD_BYTES;

// Records per call of the store's importEvents; the next batch is parsed meanwhile.
const BATCH = 2000;

/**
 * Stores the JSON Lines read from standard input, keeping ids, so that
 * importing the same export twice adds nothing. Every line is read and
 * checked (JSON, record shape, at most {@linkcode MAX_LINE_BYTES}) before
 * anything is stored or a vault created: a bad line stores nothing. The
 * input is copied to a temporary file meanwhile, so memory stays flat
 * whatever its size. A record the store itself refuses (a digest that does
 * not match, a domain error) stops the import there; the error names its
 * line and says how many events before it are stored, which a re-run skips.
 * An interrupt (`ctx.io.signal`) stops it between batches, and says so. A
 * write that fails (a full disk) is said as such, never as a bad record.
 *
 * @param ctx The command context.
 * @param options Where the temporary copy goes, for tests.
 * @returns The exit code: 0, or 130 when interrupted.
 * @throws {SyntaxError} When a line is not JSON, naming the line.
 * @throws {TypeError} When a line is not a valid record, naming the line.
 * @throws {RangeError} When a line is longer than {@linkcode MAX_LINE_BYTES}, naming it.
 */
export async function importEvents(
  ctx: CommandContext,
  options: ImportOptions = {},
): Promise<number> {
  const stdin = ctx.io.stdin;
  if (stdin === undefined) throw new Error("No standard input to import from");
  const signal = ctx.io.signal;
  const checking = progress(ctx.io, "checking");
  let records = 0;
  let spool: Spool | undefined;
  try {
    try {
      spool = await (options.spool ?? tempSpool)().catch(spoolFailure);
      const copied = copyTo(abortable(stdin, signal), spool);
      for await (const lines of parseJsonLines(byteLines(copied, MAX_LINE_BYTES))) {
        for (const { line, value } of lines) {
          try {
            assertRecordShape(value, 0);
          } catch (error) {
            throw isInvalidInput(error) ? onLine(error, line) : error;
          }
        }
        records += lines.length;
        checking.advance(lines.length);
      }
    } catch (error) {
      if (error === INTERRUPTED) {
        ctx.io.stderr(`Interrupted while checking the input; nothing was imported\n`);
        return INTERRUPTED_EXIT;
      }
      if (error instanceof Error) error.message += "; nothing was imported";
      throw error;
    } finally {
      checking.done();
    }
    const input = await spool.readBack();
    return await withStore(ctx, async (store) => {
      const total: ImportResult = { imported: 0, skipped: 0 };
      const storing = progress(ctx.io, "importing", { total: records });
      try {
        let done = 0;
        const batches = recordBatches(input);
        for (let next = batches.next(); !signal?.aborted;) {
          const batch = await next;
          if (batch.done) break;
          next = batches.next(); // parsed while this batch is stored
          // Should this batch fail, closing the copy cancels that read: not an error of its own.
          next.catch(() => {});
          const added = await importBatch(store.importEvents.bind(store), batch.value, done);
          total.imported += added.imported;
          total.skipped += added.skipped;
          done += batch.value.length;
          storing.advance(batch.value.length);
        }
        await batches.return(undefined);
      } finally {
        storing.done();
      }
      if (signal?.aborted) {
        ctx.io.stderr(
          `Interrupted: ${stored(total)}; run the same import again to skip ${
            total.imported + total.skipped === 1 ? "it" : "them"
          } and store the rest\n`,
        );
        return INTERRUPTED_EXIT;
      }
      ctx.io.stdout(
        ctx.json
          ? `${JSON.stringify(total)}\n`
          : `Imported ${total.imported} events, skipped ${total.skipped} already stored\n`,
      );
      return 0;
    });
  } finally {
    spool?.[Symbol.dispose]();
  }
}

/** The temporary copy of standard input: written once, then read back from its start. */
export interface Spool extends Disposable {
  /** Writes some of `bytes`; resolves to how many. */
  write(bytes: Uint8Array): Promise<number>;
  /** The copy from its start, to be read once. */
  readBack(): Promise<ReadableStream<Uint8Array>>;
}

/** Options of {@linkcode importEvents}, for tests. */
export interface ImportOptions {
  /** Makes the temporary copy; a file in the system's temporary folder by default. */
  spool?: () => Promise<Spool>;
}

/** A temporary file already removed from its folder, so a killed import leaves nothing behind. */
async function tempSpool(): Promise<Spool> {
  const path = await Deno.makeTempFile({ prefix: "toka-import-", suffix: ".jsonl" });
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true, write: true });
  } catch (error) {
    await Deno.remove(path).catch(() => {});
    throw error;
  }
  // Linux and macOS keep an open file's data until it is closed; Windows cannot
  // remove an open file, so there it goes once closed.
  const removed = await Deno.remove(path).then(() => true, () => false);
  return {
    write: (bytes) => file.write(bytes),
    readBack: async () => {
      await file.seek(0, Deno.SeekMode.Start);
      return file.readable;
    },
    [Symbol.dispose]: () => {
      try {
        file.close();
      } catch {
        // closed by its readable, read to the end
      }
      if (!removed) Deno.remove(path).catch(() => {});
    },
  };
}

function stored(total: ImportResult): string {
  const count = (n: number) => `${n.toLocaleString("en-US")} event${n === 1 ? "" : "s"}`;
  return `${count(total.imported)} stored` +
    (total.skipped === 0 ? "" : ` and ${count(total.skipped)} already stored skipped`);
}

/** Writes each chunk to the spool as it passes through. */
async function* copyTo(
  chunks: AsyncIterable<Uint8Array>,
  spool: Spool,
): AsyncGenerator<Uint8Array> {
  for await (const chunk of chunks) {
    for (let at = 0; at < chunk.length;) {
      at += await spool.write(chunk.subarray(at)).catch(spoolFailure);
    }
    yield chunk;
  }
}

function spoolFailure(error: unknown): never {
  const what = writeFailure(error) ??
    (error instanceof Error ? error.message : String(error)).replace(
      /^\p{Lu}(?!\p{Lu})/u,
      (c) => c.toLowerCase(),
    );
  throw new Error(`Cannot import: ${what} while writing the temporary copy`, { cause: error });
}

/**
 * What a failed write means, in the user's words: Deno's errno codes, and the
 * words of SQLite (under Deno KV), whose errors carry no code.
 *
 * @param error What a write threw.
 * @returns The words, or `undefined` when it is no such failure.
 */
export function writeFailure(error: unknown): string | undefined {
  if (error instanceof TokaError) return undefined;
  const code = (error as { code?: unknown } | null)?.code;
  const message = error instanceof Error ? error.message : "";
  if (code === "ENOSPC" || /disk is full|no space left/i.test(message)) {
    return "no space left on device";
  }
  if (code === "EDQUOT" || /quota exceeded/i.test(message)) return "disk quota exceeded";
  if (code === "EROFS" || /read-only file system|readonly database/i.test(message)) {
    return "the file system is read-only";
  }
  if (code === "EIO" || /disk I\/O error|input\/output error/i.test(message)) {
    return "a disk input/output error";
  }
  return undefined;
}

/** The checked copy's records, a batch at a time. */
async function* recordBatches(bytes: ReadableStream<Uint8Array>): AsyncGenerator<JsonLine[]> {
  let batch: JsonLine[] = [];
  for await (const lines of parseJsonLines(byteLines(bytes, MAX_LINE_BYTES))) {
    for (const line of lines) batch.push(line);
    if (batch.length >= BATCH) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length > 0) yield batch;
}

/**
 * Imports one batch. A refused batch is retried record by record, so whatever
 * the store behind, the records before the refused one are stored and the
 * error names its line.
 */
async function importBatch(
  importEvents: (records: EventRecord[]) => Promise<ImportResult>,
  batch: JsonLine[],
  before: number,
): Promise<ImportResult> {
  try {
    return await importEvents(batch.map((l) => l.value as EventRecord));
  } catch (error) {
    if (!isRefusal(error) && writeFailure(error) === undefined) throw error;
  }
  const total = { imported: 0, skipped: 0 };
  for (const [index, { line, value }] of batch.entries()) {
    try {
      const added = await importEvents([value as EventRecord]);
      total.imported += added.imported;
      total.skipped += added.skipped;
    } catch (error) {
      const failure = writeFailure(error);
      if (!isRefusal(error) && failure === undefined) throw error;
      const count = before + index;
      const message = `${
        failure !== undefined
          ? `Cannot import: ${failure} while storing line ${line}`
          : isInvalidInput(error)
          ? onLine(error, line).message
          : `Refused on line ${line}: ${(error as Error).message}`
      }; ${
        count === 0
          ? "nothing was imported"
          : count === 1
          ? "the 1 event before it is stored, and a re-run skips it"
          : `the ${count} events before it are stored, and a re-run skips them`
      }`;
      throw error instanceof TokaError
        ? new TokaError(error.code, message)
        : new Error(message, { cause: error });
    }
  }
  return total;
}

function isInvalidInput(error: unknown): error is TypeError | RangeError {
  return error instanceof TypeError || error instanceof RangeError;
}

// What a store says when it will not take a record: bad input or a domain condition.
function isRefusal(error: unknown): boolean {
  return isInvalidInput(error) || error instanceof TokaError;
}

// The store numbers the records of one call ("Invalid record 0: ..."); users think in lines.
function onLine(error: Error, line: number): Error {
  return new Error(
    `Invalid record on line ${line}: ${error.message.replace(/^Invalid record 0: /, "")}`,
  );
}
