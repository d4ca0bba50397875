/**
 * The event payload's canonical JSON (RFC 8785): Toka's one-pass check and
 * encoder (internal/canonical_json.ts, which also refuses non-JSON values,
 * lone surrogates and nesting past 256) against the `canonicalize` package
 * (encoding only), on the same values in one process.
 *
 *   deno run -A bench/canonical_json_ratios.ts [--rounds R]
 *
 * One sample encodes a payload 1,000 times; the two alternate round by round
 * (the order flips each round) and the medians are compared. The ratio is
 * canonicalize's time / Toka's: above 1 Toka is faster.
 */
import canonicalize from "npm:canonicalize@5.1.0";
import { canonicalJson } from "../internal/canonical_json.ts";
import { BATCH, interleaved, median, range } from "./_interleaved.ts";

const args = Deno.args;
const rounds = Number(args[args.indexOf("--rounds") + 1] || 11);

const small = { tool: "fs.read", callId: "01M8E4YQ9Q0000000001TBXYTG", durationMs: 12 };
const medium = {
  title: "Plan the week",
  tags: ["planning", "weekly", "team"],
  owner: { id: 42, name: "Ada Lovelace", email: "ada@example.com" },
  steps: Array.from({ length: 12 }, (_, i) => ({
    n: i,
    text: `Step ${i}: café, naïve, 日本語 and "quotes"`,
    done: i % 3 === 0,
    weight: i / 7,
  })),
  meta: { created: 1_767_225_600_000, version: 3, ratio: 0.125, empty: null },
};
const large = {
  rows: Array.from({ length: 400 }, (_, i) => ({
    id: `row-${i}`,
    values: [i, i * 1.5, -i, 1e21 + i, 5e-7 * i],
    label: `Row ${i} \u{1F600}\n`,
    nested: { a: { b: { c: [true, false, null] } } },
  })),
};

const payloads: [string, unknown][] = [["small", small], ["medium", medium], ["large", large]];
let sink = 0;
for (const [name, payload] of payloads) {
  if (canonicalJson(payload, 256) !== canonicalize(payload)) throw new Error(`${name} differs`);
  const bytes = canonicalJson(payload, 256).length;
  const samples = bytes > 10_000 ? 5 : bytes > 1_000 ? 20 : 100;
  const result = await interleaved(
    () => {
      for (let i = 0; i < BATCH; i++) sink += canonicalize(payload)!.length;
      return Promise.resolve();
    },
    () => {
      for (let i = 0; i < BATCH; i++) sink += canonicalJson(payload, 256).length;
      return Promise.resolve();
    },
    rounds,
    samples,
  );
  console.log(
    `${name} (${bytes} bytes): canonicalJson ${median(result.candidateNs).toFixed(0)} ns, ` +
      `canonicalize ${median(result.baselineNs).toFixed(0)} ns = ${
        median(result.ratios).toFixed(2)
      }x (rounds ${range(result.ratios, 2)}, ${rounds} rounds, medians)`,
  );
}
if (sink === 0) console.log("(nothing encoded)");
