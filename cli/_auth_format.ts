// How `toka auth` prints: the secret pool's status and label/value tables.
import type { PoolStatus } from "../auth/mod.ts";

/** The pool's status as JSON, with times as ISO strings. */
export function statusJson(status: PoolStatus): Record<string, unknown> {
  return {
    ...status,
    secrets: status.secrets.map((s) => ({
      kid: s.kid,
      state: s.state,
      createdAt: iso(s.createdAt),
      ...(s.retiredAt === undefined ? {} : { retiredAt: iso(s.retiredAt) }),
      ...(s.validUntil === undefined ? {} : { validUntil: iso(s.validUntil) }),
    })),
  };
}

/** The pool's status as text: a label table, then one row per secret. */
export function formatStatus(status: PoolStatus, keyEnv: string, locked: boolean): string {
  const head = table([
    ["vault", status.vault],
    ["active", status.activeKid],
    [
      "wrapped",
      !status.wrapped
        ? "no"
        : locked
        ? `yes (locked: ${keyEnv} is missing or wrong)`
        : `yes (${keyEnv})`,
    ],
    ["retired ttl", `${status.retiredTtlSecs} s`],
    ["revoked", String(status.revoked)],
  ]);
  const rows = [
    ["KID", "STATE", "CREATED", "RETIRED", "VALID UNTIL"],
    ...status.secrets.map((s) => [
      s.kid,
      s.state,
      iso(s.createdAt),
      s.retiredAt === undefined ? "-" : iso(s.retiredAt),
      s.validUntil === undefined ? "-" : iso(s.validUntil),
    ]),
  ];
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  const lines = rows.map((r) => r.map((cell, i) => cell.padEnd(widths[i])).join("  ").trimEnd());
  return `${head}\n${lines.join("\n")}\n`;
}

/** Rows of label and value, the labels padded to one width. */
export function table(rows: [string, string][]): string {
  const width = Math.max(...rows.map(([label]) => label.length));
  return rows.map(([label, value]) => `${label.padEnd(width)}  ${value}\n`).join("");
}

/** Milliseconds since the epoch as an ISO 8601 string. */
export function iso(ms: number): string {
  return new Date(ms).toISOString();
}
