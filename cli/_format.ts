// Human-readable renderings of events, stats and verify reports.
import type { EventRecord, StoreStats, VerifyReport } from "../runtime/log/event_store.ts";

const PAYLOAD_WIDTH = 80;
// What a terminal may act on: C0 and C1 controls (newlines, escape sequences, CSI) and the
// line and paragraph separators.
const CONTROLS = /[\p{Cc}\u2028\u2029]/gu;

/**
 * Escapes the characters a terminal would act on as `\uXXXX`, so that stored
 * or echoed text can neither forge lines nor send escape sequences.
 *
 * @param text Text from the vault, a plugin or the user.
 * @returns The text with every control character escaped.
 */
export function escapeControls(text: string): string {
  return text.replace(CONTROLS, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/**
 * One line per event: position, id, time, stream#version, kind and the
 * payload, truncated so a line stays readable.
 *
 * @param event The event.
 * @returns The line, without a newline.
 */
export function formatEventLine(event: EventRecord): string {
  // JSON escapes C0 controls but not C1 ones nor U+2028/2029.
  let payload = escapeControls(JSON.stringify(event.payload) ?? "null");
  if (payload.length > PAYLOAD_WIDTH) payload = `${payload.slice(0, PAYLOAD_WIDTH - 1)}…`;
  return [
    event.position,
    event.id,
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
  // The only raw newlines of JSON are its indentation's.
  const payload = (JSON.stringify(event.payload, null, 2) ?? "null").split("\n")
    .map(escapeControls).join("\n  ");
  return rows.map(([key, value]) =>
    `${escapeControls(key).padEnd(width)}${escapeControls(value)}\n`
  )
    .join("") +
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
