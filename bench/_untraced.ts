// internal/tracing.ts with every hook a pass-through, for bench/traces_ratios.ts: copied over
// the real one in a copy of the library, it gives the same code with no provider check, no
// span code reachable and plain loggers, i.e. the library as it was without tracing. Its
// exports must match internal/tracing.ts's (a missing one fails the import at once).
import type { Logger } from "@logtape/logtape";

export { SpanKind } from "@opentelemetry/api";
export type { Attributes, Span } from "@opentelemetry/api";

export const tracer = (): undefined => undefined;
export const traceparent = (): undefined => undefined;
export const remoteContext = (): undefined => undefined;
export function parentContext(): never {
  throw new Error("Unreachable without a tracer");
}
export function setEventAttributes(): void {}
export function setFailed(): void {}
export const inSpan = <T>(
  _name: unknown,
  _kind: unknown,
  _attributes: unknown,
  _parent: unknown,
  fn: (span: undefined) => Promise<T>,
): Promise<T> => fn(undefined);
export const traceHandling = (
  _event: unknown,
  _agent: unknown,
  handle: () => Promise<void>,
): Promise<void> => handle();
export const traceStep = <T>(
  _name: unknown,
  _index: unknown,
  _eventId: unknown,
  _agent: unknown,
  run: () => Promise<T>,
): Promise<T> => run();
export function markReplayed(): void {}
export const withTraceIds = (logger: Logger): Logger => logger;
