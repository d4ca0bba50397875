// The chained digest is sha256 over the RFC 8785 canonical JSON of the whole
// record: the hand-built string of recordDigest must be exactly that.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import canonicalize from "npm:canonicalize@5.1.0";
import { canonicalJson, recordDigest } from "../../runtime/log/event_rules.ts";

interface Case {
  id: string;
  position: number;
  stream: string;
  version: number;
  kind: string;
  intent?: string;
  payload: unknown;
  parents: string[];
  parentDigests: string[];
  meta: Record<string, string>;
  timestamp: number;
  prev: string | null;
}

const cases: Case[] = [
  {
    id: "01M8E4YQ9Q0000000001TBXYTG",
    position: 1,
    stream: "orders/1",
    version: 1,
    kind: "order.placed",
    payload: { total: 12, items: ["a", "é"], nested: { z: 1, a: null } },
    parents: [],
    parentDigests: [],
    meta: {},
    timestamp: 1_767_225_600_000,
    prev: null,
  },
  {
    id: "01M8E4YQ9Q0000000002TBXYTG",
    position: 2,
    stream: 'odd "stream"\\',
    version: 7,
    kind: "a.b_c-d",
    intent: "why \u2028 \n\t",
    payload: "text",
    parents: ["01M8E4YQ9Q0000000001TBXYTG", "01M8E4YQ9Q0000000000TBXYTG"],
    parentDigests: [`sha256:${"b".repeat(64)}`, `sha256:${"a".repeat(64)}`],
    meta: { zeta: "1", Alpha: "2", "a.b": "\u00e9" },
    timestamp: 0.5,
    prev: `sha256:${"c".repeat(64)}`,
  },
];

Deno.test("recordDigest is sha256 over the canonical JSON of the whole record", () => {
  for (const c of cases) {
    const { payload, parentDigests, prev, ...rest } = c;
    const canonical = canonicalize({
      ...rest,
      payload,
      parentDigests: [...parentDigests].sort(),
      prev,
    }) as string;
    const expected = `sha256:${createHash("sha256").update(canonical).digest("hex")}`;
    const actual = recordDigest(
      { ...rest, canonicalPayload: canonicalJson(payload) },
      parentDigests,
      prev,
    );
    assert.equal(actual, expected, c.id);
    // Parent digests are sorted: their order does not matter; parent ids' order does.
    assert.equal(
      recordDigest(
        { ...rest, canonicalPayload: canonicalJson(payload) },
        [...parentDigests].reverse(),
        prev,
      ),
      expected,
    );
  }
});
