// The server-sent event streams of `toka ui`: live events from the vault's subscription,
// resuming after `Last-Event-ID` (the position of the last event sent) with no gap, and the
// progress and result of `verify`. Both are pulled: an event is read from the store only when
// the connection has taken the one before, so a slow client costs no memory.
import { isSnapshot } from "../vault/open_vault.ts";
import { ApiError, filtersOf } from "./_ui_api.ts";
import { eventStream, type UiContext } from "./_ui_http.ts";

const encoder = new TextEncoder();
// The browser's reconnection delay after a dropped stream.
const RETRY_MS = 1000;
// A comment line this often keeps idle connections open through proxies and shows a dead one.
const KEEPALIVE_MS = 15_000;

/**
 * Follows the log: every event after `Last-Event-ID` (or the `after` parameter, or the head),
 * then each new one, filtered by `stream`, `kind` and `correlation`.
 *
 * @param request The request.
 * @param url Its URL.
 * @param ctx The server's context.
 * @returns The `text/event-stream` response.
 * @throws {ApiError} For a bad parameter, or a store that cannot show later events.
 */
export async function liveEvents(request: Request, url: URL, ctx: UiContext): Promise<Response> {
  const filters = filtersOf(url.searchParams);
  const resume = request.headers.get("last-event-id") ?? url.searchParams.get("after");
  if (resume !== null && !/^\d{1,16}$/.test(resume)) {
    throw new ApiError(400, "bad_request", "Invalid Last-Event-ID: expected a position");
  }
  if (isSnapshot(ctx.store)) {
    throw new ApiError(
      409,
      "not_live",
      "This vault is read from a snapshot (this process may not write its file): no live updates",
    );
  }
  const after = resume === null
    ? (await ctx.store.head())?.position ?? "0000000000000000"
    : resume.padStart(16, "0");
  const stop = new AbortController();
  const signal = AbortSignal.any([stop.signal, ctx.stopping]);
  const events = ctx.store.subscribe({ after, kinds: filters.kinds, signal })[
    Symbol.asyncIterator
  ]();
  let keepalive: ReturnType<typeof setInterval> | undefined;
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(encoder.encode(`retry: ${RETRY_MS}\n\n`));
      keepalive = setInterval(() => {
        try {
          controller.enqueue(encoder.encode(": keepalive\n\n"));
        } catch {
          clearInterval(keepalive);
        }
      }, KEEPALIVE_MS);
    },
    async pull(controller) {
      for (;;) {
        const next = await events.next();
        if (next.done) {
          clearInterval(keepalive);
          controller.close();
          return;
        }
        const event = next.value;
        if (filters.stream !== undefined && event.stream !== filters.stream) continue;
        if (
          filters.correlation !== undefined && event.meta.correlationId !== filters.correlation &&
          event.id !== filters.correlation
        ) continue;
        controller.enqueue(
          encoder.encode(
            `id: ${event.position}\nevent: append\ndata: ${JSON.stringify(event)}\n\n`,
          ),
        );
        return;
      }
    },
    async cancel() {
      clearInterval(keepalive);
      stop.abort();
      await events.return?.();
    },
  }, { highWaterMark: 0 });
  return eventStream(body);
}

/**
 * Runs `verify` and streams its progress (`event: progress`, `{ checked, total }`), then its
 * report and the head read before it began (`event: done`, `{ report, head }`): a head the
 * report covers, to keep. Closing the connection stops the verification.
 *
 * @param ctx The server's context.
 * @returns The `text/event-stream` response.
 */
export function verifyProgress(ctx: UiContext): Response {
  const stop = new AbortController();
  const signal = AbortSignal.any([stop.signal, ctx.stopping]);
  const body = new ReadableStream<Uint8Array>({
    async start(controller) {
      const send = (event: string, data: unknown) => {
        try {
          controller.enqueue(encoder.encode(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`));
        } catch {
          stop.abort();
        }
      };
      try {
        const head = await ctx.store.head();
        const total = head === null ? 0 : Number(head.position);
        send("progress", { checked: 0, total });
        const report = await ctx.store.verify({
          signal,
          onProgress: (checked) => send("progress", { checked, total }),
        });
        send("done", { report, head });
      } catch (error) {
        if (!signal.aborted) {
          send("failed", {
            error: {
              code: "error",
              message: error instanceof Error ? error.message : String(error),
            },
          });
        }
      }
      try {
        controller.close();
      } catch {
        // Already cancelled by the client.
      }
    },
    cancel() {
      stop.abort();
    },
  });
  return eventStream(body);
}
