// An OTLP/HTTP receiver, as any OpenTelemetry backend would run one: it keeps the spans
// POSTed to /v1/traces in the JSON protocol (OTEL_EXPORTER_OTLP_PROTOCOL=http/json), keeps
// protobuf bodies (Deno's default protocol) as they came, and answers everything else (logs,
// metrics) with an empty success.

/** A span as exported, reduced to what the tests check. */
export interface ReceivedSpan {
  scope: string;
  name: string;
  kind: number;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  attributes: Record<string, string | number | boolean>;
  status: { code?: number; message?: string };
}

/** OTLP span kinds, as numbers in the JSON encoding. */
export const KIND = { internal: 1, producer: 4, consumer: 5 } as const;

interface AnyValue {
  stringValue?: string;
  intValue?: string | number;
  boolValue?: boolean;
  doubleValue?: number;
}

interface JsonSpan {
  name: string;
  kind: number;
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  attributes?: { key: string; value: AnyValue }[];
  status?: { code?: number; message?: string };
}

/** A log record as exported, reduced to what the tests check. */
export interface ReceivedLog {
  body: string;
  traceId: string;
  spanId: string;
}

interface LogsRequest {
  resourceLogs?: {
    scopeLogs?: {
      logRecords?: { body?: AnyValue; traceId?: string; spanId?: string }[];
    }[];
  }[];
}

interface TracesRequest {
  resourceSpans?: { scopeSpans?: { scope?: { name?: string }; spans?: JsonSpan[] }[] }[];
}

function valueOf(value: AnyValue): string | number | boolean {
  if (value.stringValue !== undefined) return value.stringValue;
  if (value.intValue !== undefined) return Number(value.intValue);
  if (value.boolValue !== undefined) return value.boolValue;
  return value.doubleValue ?? "";
}

/** A receiver listening on 127.0.0.1 at a free port. */
export class OtlpReceiver {
  readonly spans: ReceivedSpan[] = [];
  /** Log records POSTed to /v1/logs in JSON. */
  readonly logs: ReceivedLog[] = [];
  /** The bodies of /v1/traces requests in protobuf, as received. */
  readonly protobuf: Uint8Array[] = [];
  /** Requests that were not OTLP JSON: a test fails on any. */
  readonly problems: string[] = [];
  readonly #server: Deno.HttpServer<Deno.NetAddr>;

  constructor() {
    this.#server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      async (request) => {
        const body = new Uint8Array(await request.arrayBuffer());
        const type = request.headers.get("content-type") ?? "";
        const path = new URL(request.url).pathname;
        if (path === "/v1/logs" && type.includes("json")) {
          this.#takeLogs(JSON.parse(new TextDecoder().decode(body)) as LogsRequest);
        } else if (path === "/v1/traces" && type.includes("protobuf")) {
          this.protobuf.push(body);
        } else if (path === "/v1/traces") {
          try {
            this.#take(JSON.parse(new TextDecoder().decode(body)) as TracesRequest);
          } catch (error) {
            this.problems.push(`${type}: ${error}`);
          }
        }
        return Response.json({});
      },
    );
  }

  /** The endpoint to give as OTEL_EXPORTER_OTLP_ENDPOINT. */
  get endpoint(): string {
    return `http://127.0.0.1:${this.#server.addr.port}`;
  }

  /** The environment that turns Deno's built-in OpenTelemetry on, exporting here. */
  get env(): Record<string, string> {
    return {
      OTEL_DENO: "true",
      OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
      OTEL_EXPORTER_OTLP_ENDPOINT: this.endpoint,
    };
  }

  #takeLogs(request: LogsRequest): void {
    for (const resource of request.resourceLogs ?? []) {
      for (const scope of resource.scopeLogs ?? []) {
        for (const record of scope.logRecords ?? []) {
          this.logs.push({
            body: String(valueOf(record.body ?? {})),
            traceId: record.traceId ?? "",
            spanId: record.spanId ?? "",
          });
        }
      }
    }
  }

  #take(request: TracesRequest): void {
    for (const resource of request.resourceSpans ?? []) {
      for (const scope of resource.scopeSpans ?? []) {
        for (const span of scope.spans ?? []) {
          this.spans.push({
            scope: scope.scope?.name ?? "",
            name: span.name,
            kind: span.kind,
            traceId: span.traceId,
            spanId: span.spanId,
            parentSpanId: span.parentSpanId ?? "",
            attributes: Object.fromEntries(
              (span.attributes ?? []).map(({ key, value }) => [key, valueOf(value)]),
            ),
            status: span.status ?? {},
          });
        }
      }
    }
  }

  /** Stops listening. */
  async close(): Promise<void> {
    await this.#server.shutdown();
  }
}
