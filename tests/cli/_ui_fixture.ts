// What the `toka ui` tests share: a seeded run in a vault (a task handled by an agent that calls
// a tool), a server on it, raw HTTP for headers fetch will not send, and an SSE reader.
import type { EventRecord, EventStore } from "../../runtime/log/event_store.ts";
import { startUiServer, type UiServer } from "../../cli/_ui_server.ts";

/** The events of one seeded run, by role. */
export interface SeededRun {
  created: EventRecord;
  invoked: EventRecord;
  completed: EventRecord;
  done: EventRecord;
}

/**
 * Appends a run as the runtime records it: `task.created`, then agent/worker's handling of it
 * (a tool call recorded in "toolkit" and a `task.done` emit), caused by and correlated with it.
 */
export async function seedRun(store: EventStore, label = "t1"): Promise<SeededRun> {
  const [created] = (await store.append("tasks", [{
    kind: "task.created",
    payload: { label },
  }])).events;
  const caused = { correlationId: created.id, causationId: created.id };
  const callId = crypto.randomUUID();
  const [invoked, completed] = (await store.append("toolkit", [
    {
      kind: "tool.invoked",
      payload: { tool: "echo", callId },
      parents: [created.id],
      meta: caused,
    },
    {
      kind: "tool.completed",
      payload: { tool: "echo", callId, durationMs: 3 },
      parents: [created.id],
      meta: caused,
    },
  ])).events;
  const [done] = (await store.append("agent/worker", [{
    kind: "task.done",
    payload: { label },
    parents: [created.id],
    meta: { ...caused, actor: "agent/worker" },
  }])).events;
  return { created, invoked, completed, done };
}

/** Starts a server on the store; the test shuts it down. */
export function serve(store: EventStore, token = "test-token-0123456789"): Promise<UiServer> {
  return startUiServer({ store, token, location: "test.kv" });
}

/** A raw HTTP/1.1 GET with exactly these headers, for a Host that fetch would not send. */
export async function rawGet(
  port: number,
  path: string,
  headers: Record<string, string>,
): Promise<{ status: number; text: string }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const lines = [
      `GET ${path} HTTP/1.1`,
      ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
    ];
    await conn.write(
      new TextEncoder().encode(`${lines.join("\r\n")}\r\nconnection: close\r\n\r\n`),
    );
    const chunks: Uint8Array[] = [];
    const buffer = new Uint8Array(16 * 1024);
    for (;;) {
      const n = await conn.read(buffer);
      if (n === null) break;
      chunks.push(buffer.slice(0, n));
    }
    const text = new TextDecoder().decode(
      chunks.reduce((all, c) => new Uint8Array([...all, ...c]), new Uint8Array()),
    );
    return { status: Number(text.split(" ")[1]), text };
  } finally {
    conn.close();
  }
}

/** One server-sent event. */
export interface SseMessage {
  id?: string;
  event: string;
  data: string;
}

/** Reads server-sent events from a response until `count` messages (not comments) arrived. */
export async function readSse(response: Response, count: number): Promise<SseMessage[]> {
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  const messages: SseMessage[] = [];
  let buffer = "";
  try {
    while (messages.length < count) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) !== -1 && messages.length < count) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const message: SseMessage = { event: "message", data: "" };
        let fields = 0;
        for (const line of block.split("\n")) {
          const [field, ...rest] = line.split(":");
          const value = rest.join(":").replace(/^ /, "");
          if (field === "id") message.id = value;
          else if (field === "event") message.event = value;
          else if (field === "data") message.data += value;
          else continue;
          fields++;
        }
        if (fields > 0 && message.data !== "") messages.push(message);
      }
    }
  } finally {
    await reader.cancel();
  }
  return messages;
}
