// Human-readable renderings of events, stats and verify reports.
import type { EventRecord, StoreStats, VerifyReport } from "../runtime/log/event_store.ts";

const PAYLOAD_WIDTH = 80;

/**
 * One line per event: position, time, stream#version, kind and the payload,
 * truncated so a line stays readable.
 *
 * @param event The event.
 * @returns The line, without a newline.
 */
export function formatEventLine(event: EventRecord): string {
  let payload = JSON.stringify(event.payload) ?? "null";
  if (payload.length > PAYLOAD_WIDTH) payload = `${payload.slice(0, PAYLOAD_WIDTH - 1)}…`;
  return [
    event.position,
    new Date(event.timestamp).toISOString(),
    `${event.stream}#${event.version}`,
    event.kind,
    payload,
  ].join("  ");
}

/**
 * Every field of an event, one per line, with the payload indented.
 *
 * @param event The event.
 * @returns The lines, each ending with a newline.
 */
export function formatEventDetail(event: EventRecord): string {
  const rows: [string, string][] = [
    ["id", event.id],
    ["position", event.position],
    ["stream", `${event.stream}#${event.version}`],
    ["kind", event.kind],
    ["time", new Date(event.timestamp).toISOString()],
    ["digest", event.digest],
    ["parents", event.parents.join(", ") || "-"],
  ];
  if (event.intent !== undefined) rows.push(["intent", event.intent]);
  for (const [key, value] of Object.entries(event.meta)) rows.push([`meta.${key}`, value]);
  const width = Math.max(...rows.map(([key]) => key.length)) + 2;
  const payload = JSON.stringify(event.payload, null, 2).replaceAll("\n", "\n  ");
  return rows.map(([key, value]) => `${key.padEnd(width)}${value}\n`).join("") +
    `payload\n  ${payload}\n`;
}

/**
 * The store's counts, then the number of events per kind.
 *
 * @param stats What `stats()` returned.
 * @returns The lines, each ending with a newline.
 */
export function formatStats(stats: StoreStats): string {
  const time = (t: number | null) => (t === null ? "-" : new Date(t).toISOString());
  const lines = [
    `events   ${stats.events}`,
    `streams  ${stats.streams}`,
    `head     ${stats.head ?? "-"}`,
    `first    ${time(stats.firstTimestamp)}`,
    `last     ${time(stats.lastTimestamp)}`,
  ];
  const kinds = Object.entries(stats.kinds).sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0);
  if (kinds.length > 0) lines.push("kinds");
  for (const [kind, count] of kinds) lines.push(`  ${kind}  ${count}`);
  return lines.map((line) => `${line}\n`).join("");
}

/**
 * A one-line verdict, then one line per problem: id, position and reason.
 *
 * @param report What `verify()` returned.
 * @returns The lines, each ending with a newline.
 */
export function formatVerifyReport(report: VerifyReport): string {
  if (report.ok) return `OK: ${report.checked} events verified, no problem found\n`;
  const count = report.problems.length;
  return `FAILED: ${count} problem${count === 1 ? "" : "s"} in ${report.checked} events\n` +
    report.problems.map((p) => `${p.id ?? "-"}  ${p.position}  ${p.reason}\n`).join("");
}
