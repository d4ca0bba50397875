// The events the import and fork benches work on: appended to a vault, exported as JSON Lines,
// and `toka` run in-process on them.
import { parseArgs } from "node:util";
import { main } from "../cli.ts";
import type { EventStore } from "../runtime/log/event_store.ts";

/**
 * Appends `total` events of kind bench.event with `payload` to `store`: `writers` concurrent
 * appenders (stream `writer-<w>`), 100 events an append, the vault's fastest way in.
 */
export async function appendBatches(
  store: EventStore,
  total: number,
  payload: string,
  writers = 64,
): Promise<void> {
  for (let n = 0; n < total;) {
    const appends = [];
    for (let w = 0; w < writers && n < total; w++) {
      const count = Math.min(100, total - n);
      n += count;
      appends.push(store.append(
        `writer-${w}`,
        Array.from({ length: count }, () => ({ kind: "bench.event", payload })),
      ));
    }
    await Promise.all(appends);
  }
}

/** Writes every event of `store` to the file at `path` as JSON Lines, as `events export` does. */
export async function exportJsonLines(store: EventStore, path: string): Promise<void> {
  using out = await Deno.open(path, { write: true, create: true, truncate: true });
  const encoder = new TextEncoder();
  let buffer = "";
  for await (const event of store.read()) {
    buffer += `${JSON.stringify(event)}\n`;
    if (buffer.length > 1 << 20) {
      await out.write(encoder.encode(buffer));
      buffer = "";
    }
  }
  await out.write(encoder.encode(buffer));
}

/** Runs `toka <args>` in-process with no output and no environment; throws if it fails. */
export async function tokaQuiet(args: string[], stdin?: ReadableStream<Uint8Array>): Promise<void> {
  const err: string[] = [];
  const code = await main(args, {
    stdout: () => {},
    stderr: (text) => err.push(text),
    stdin,
    env: () => undefined,
  });
  if (code !== 0) throw new Error(`toka ${args.join(" ")} failed: ${err.join("")}`);
}

/**
 * The bench's `--events N` (100,000 by default, at least 64) and `--rounds R` (3 by default,
 * at least 1) from `args`.
 *
 * @throws {TypeError} When either is not a whole number in its range.
 */
export function eventsAndRounds(args: string[]): { total: number; rounds: number } {
  const { values } = parseArgs({
    args,
    options: { events: { type: "string" }, rounds: { type: "string" } },
  });
  const total = Number(values.events ?? 100_000);
  const rounds = Number(values.rounds ?? 3);
  if (
    !(Number.isSafeInteger(total) && total >= 64 && Number.isSafeInteger(rounds) && rounds >= 1)
  ) {
    throw new TypeError("--events expects a whole number ≥ 64, --rounds one ≥ 1");
  }
  return { total, rounds };
}
