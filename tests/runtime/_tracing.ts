// A recording OpenTelemetry provider for in-process tests: what Deno's built-in SDK
// (OTEL_DENO=true) or a Node SDK would register, reduced to keeping each span in a list.
// A fake, not a mock: spans get real ids and parents from the active context, which an
// AsyncLocalStorage carries across awaits as the SDKs' context managers do.
import { AsyncLocalStorage } from "node:async_hooks";
import {
  type Attributes,
  type AttributeValue,
  type Context,
  context,
  type ContextManager,
  type Exception,
  ROOT_CONTEXT,
  type Span,
  type SpanContext,
  SpanKind,
  type SpanOptions,
  type SpanStatus,
  SpanStatusCode,
  trace,
  type Tracer,
  type TracerProvider,
} from "@opentelemetry/api";

/** A span as the fake recorded it. */
export interface RecordedSpan {
  name: string;
  kind: SpanKind;
  traceId: string;
  spanId: string;
  parentSpanId: string | undefined;
  attributes: Attributes;
  status: SpanStatus;
  ended: boolean;
}

function hex(bytes: number): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(bytes)))
    .map((b) => b.toString(16).padStart(2, "0")).join("");
}

class RecordingSpan implements Span {
  readonly record: RecordedSpan;
  readonly #context: SpanContext;

  constructor(record: RecordedSpan) {
    this.record = record;
    this.#context = { traceId: record.traceId, spanId: record.spanId, traceFlags: 1 };
  }
  spanContext(): SpanContext {
    return this.#context;
  }
  setAttribute(key: string, value: AttributeValue): this {
    this.record.attributes[key] = value;
    return this;
  }
  setAttributes(attributes: Attributes): this {
    Object.assign(this.record.attributes, attributes);
    return this;
  }
  addEvent(): this {
    return this;
  }
  addLink(): this {
    return this;
  }
  addLinks(): this {
    return this;
  }
  setStatus(status: SpanStatus): this {
    this.record.status = status;
    return this;
  }
  updateName(name: string): this {
    this.record.name = name;
    return this;
  }
  end(): void {
    this.record.ended = true;
  }
  isRecording(): boolean {
    return !this.record.ended;
  }
  recordException(_exception: Exception): void {}
}

class RecordingTracer implements Tracer {
  constructor(readonly spans: RecordedSpan[]) {}

  startSpan(name: string, options: SpanOptions = {}, ctx: Context = context.active()): Span {
    const parent = options.root ? undefined : trace.getSpanContext(ctx);
    const record: RecordedSpan = {
      name,
      kind: options.kind ?? SpanKind.INTERNAL,
      traceId: parent?.traceId ?? hex(16),
      spanId: hex(8),
      parentSpanId: parent?.spanId,
      attributes: { ...options.attributes },
      status: { code: SpanStatusCode.UNSET },
      ended: false,
    };
    this.spans.push(record);
    return new RecordingSpan(record);
  }

  startActiveSpan<F extends (span: Span) => unknown>(
    name: string,
    ...rest: unknown[]
  ): ReturnType<F> {
    const fn = rest[rest.length - 1] as F;
    const options = (rest.length > 1 ? rest[0] : {}) as SpanOptions;
    const ctx = (rest.length > 2 ? rest[1] : context.active()) as Context;
    const span = this.startSpan(name, options, ctx);
    return context.with(trace.setSpan(ctx, span), () => fn(span)) as ReturnType<F>;
  }
}

class StorageContextManager implements ContextManager {
  #storage = new AsyncLocalStorage<Context>();
  active(): Context {
    return this.#storage.getStore() ?? ROOT_CONTEXT;
  }
  with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(
    ctx: Context,
    fn: F,
    thisArg?: ThisParameterType<F>,
    ...args: A
  ): ReturnType<F> {
    return this.#storage.run(ctx, () => fn.apply(thisArg, args));
  }
  bind<T>(_ctx: Context, target: T): T {
    return target;
  }
  enable(): this {
    return this;
  }
  disable(): this {
    this.#storage.disable();
    return this;
  }
}

/** A registered recording provider: its spans so far, and how to unregister it. */
export interface Tracing {
  spans: RecordedSpan[];
  /** The spans named `name`. */
  named(name: string): RecordedSpan[];
  uninstall(): void;
}

/** Registers a recording provider and context manager as the global ones. */
export function installTracing(): Tracing {
  const spans: RecordedSpan[] = [];
  const provider: TracerProvider = { getTracer: () => new RecordingTracer(spans) };
  assert(trace.setGlobalTracerProvider(provider), "a tracer provider was already registered");
  assert(context.setGlobalContextManager(new StorageContextManager()), "a context manager too");
  return {
    spans,
    named: (name) => spans.filter((span) => span.name === name),
    uninstall() {
      trace.disable();
      context.disable();
    },
  };
}

function assert(ok: boolean, message: string): void {
  if (!ok) throw new Error(message);
}
