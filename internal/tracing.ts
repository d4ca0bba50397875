// OpenTelemetry spans through `@opentelemetry/api` alone: the SDK is whatever the
// host registered (Deno's built-in one with OTEL_DENO=true, or a Node SDK). With
// none, `tracer()` is undefined after one cheap check, so every hot path skips
// tracing entirely instead of making no-op spans.
import { lazy, type Logger } from "@logtape/logtape";
import {
  type Attributes,
  type Context,
  context,
  isSpanContextValid,
  ProxyTracerProvider,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
  type Tracer,
  type TracerProvider,
} from "@opentelemetry/api";

export { SpanKind };
export type { Attributes, Span };

// The provider the API falls back to when none is registered.
const NOOP_PROVIDER = new ProxyTracerProvider().getDelegate();
let provider: TracerProvider | undefined;
let cached: Tracer | undefined;

/** Toka's tracer when a provider is registered, else undefined (tracing is off). */
export function tracer(): Tracer | undefined {
  let current: TracerProvider = trace.getTracerProvider();
  if (current instanceof ProxyTracerProvider) {
    current = current.getDelegate();
    if (current === NOOP_PROVIDER) return undefined;
  }
  // Asked again only when the provider changed: a tracer per span costs.
  if (current !== provider) {
    provider = current;
    cached = current.getTracer("toka");
  }
  return cached;
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
const INVALID_TRACE = "0".repeat(32);
const INVALID_SPAN = "0".repeat(16);

/** The W3C `traceparent` of a span, or undefined when its context is not valid. */
export function traceparent(span: Span): string | undefined {
  const spanContext = span.spanContext();
  if (!isSpanContextValid(spanContext)) return undefined;
  const { traceId, spanId, traceFlags } = spanContext;
  return `00-${traceId}-${spanId}-${(traceFlags & 0xff).toString(16).padStart(2, "0")}`;
}

/** The remote span a W3C `traceparent` names, as a context to start a child in. */
export function remoteContext(traceparent: string | undefined): Context | undefined {
  const match = traceparent === undefined ? null : TRACEPARENT.exec(traceparent);
  if (match === null || match[1] === INVALID_TRACE || match[2] === INVALID_SPAN) return undefined;
  return trace.setSpanContext(ROOT_CONTEXT, {
    traceId: match[1],
    spanId: match[2],
    traceFlags: parseInt(match[3], 16) & 1,
    isRemote: true,
  });
}

/**
 * The context to start a span in: the active one when it holds a span (the
 * handling in progress), else the remote parent a `traceparent` names, else the root.
 */
export function parentContext(traceparent: string | undefined): Context {
  const active = context.active();
  if (trace.getSpan(active) !== undefined) return active;
  return remoteContext(traceparent) ?? active;
}

/** The parts of an event a span names, without its payload. */
export interface TracedEvent {
  id: string;
  position: string;
  stream: string;
}

/** Sets the attributes that name an event. */
export function setEventAttributes(span: Span, event: TracedEvent): void {
  span.setAttributes({
    "toka.event.id": event.id,
    "toka.event.position": event.position,
    "toka.stream": event.stream,
  });
}

/**
 * Marks a span failed: its status and `error.type` name the error's code (a
 * `TokaError`'s, say) or class, never its message (messages may quote inputs,
 * prompts or paths).
 */
export function setFailed(span: Span, error: unknown): void {
  const code = (error as { code?: unknown } | null)?.code;
  const type = !(error instanceof Error)
    ? "unknown"
    : typeof code === "string" && /^[\w.-]{1,64}$/.test(code)
    ? code
    : error.name;
  span.setAttribute("error.type", type);
  span.setStatus({ code: SpanStatusCode.ERROR, message: type });
}

/**
 * Runs `fn` inside a new active span, ending it when `fn` settles and marking
 * it failed when `fn` throws. With tracing off, just runs `fn`.
 */
export function inSpan<T>(
  name: string,
  kind: SpanKind,
  attributes: Attributes,
  parent: Context | undefined,
  fn: (span: Span | undefined) => Promise<T>,
): Promise<T> {
  const active = tracer();
  if (active === undefined) return fn(undefined);
  const from = parent ?? context.active();
  const span = active.startSpan(name, { kind, attributes }, from);
  return context.with(trace.setSpan(from, span), async () => {
    try {
      return await fn(span);
    } catch (error) {
      setFailed(span, error);
      throw error;
    } finally {
      span.end();
    }
  });
}

/** An event as a handling's span sees it. */
export interface HandledEvent extends TracedEvent {
  kind: string;
  meta: Readonly<Record<string, string>>;
}

/**
 * Runs an agent's handling of an event in its consumer span, `handle <kind>`,
 * whose parent is the producer span the event's `traceparent` names, in this
 * process or another (a new trace when it has none).
 */
export function traceHandling(
  event: HandledEvent,
  agent: string,
  handle: () => Promise<void>,
): Promise<void> {
  if (tracer() === undefined) return handle();
  const attributes = {
    "toka.agent": agent,
    "toka.event.id": event.id,
    "toka.event.position": event.position,
    "toka.stream": event.stream,
  };
  const parent = remoteContext(event.meta.traceparent) ?? ROOT_CONTEXT;
  return inSpan(`handle ${event.kind}`, SpanKind.CONSUMER, attributes, parent, handle);
}

/**
 * Runs a step of a handling (`ctx.step`) in its span, `step <name>`, a child
 * of the handling's; what the step records and calls are children of it.
 */
export function traceStep<T>(
  name: string,
  index: number,
  eventId: string,
  agent: string,
  run: () => Promise<T>,
): Promise<T> {
  if (tracer() === undefined) return run();
  const attributes = {
    "toka.step.name": name,
    "toka.step.index": index,
    "toka.event.id": eventId,
    "toka.agent": agent,
  };
  return inSpan(`step ${name}`, SpanKind.INTERNAL, attributes, undefined, run);
}

/** Notes on the active step's span that its result was served from the log, not run again. */
export function markReplayed(): void {
  if (tracer() !== undefined) trace.getActiveSpan()?.setAttribute("toka.step.replayed", true);
}

/**
 * The logger, whose records made inside a span carry its `traceId` and
 * `spanId` properties (read when a record is made, so a record the level
 * drops costs nothing).
 */
export function withTraceIds(logger: Logger): Logger {
  return logger.with({
    traceId: lazy(() => activeSpanId()?.traceId),
    spanId: lazy(() => activeSpanId()?.spanId),
  });
}

function activeSpanId(): { traceId: string; spanId: string } | undefined {
  const span = trace.getActiveSpan();
  if (span === undefined) return undefined;
  const ids = span.spanContext();
  return ids.traceId === INVALID_TRACE ? undefined : ids;
}
