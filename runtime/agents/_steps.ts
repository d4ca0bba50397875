// The records of the step journal: what `step.completed`, `step.failed` and a
// journaled `tool.completed` hold, the check that a result can be recorded,
// and what a recorded step is called in a NonDeterminismError.
import type { EventRecord } from "../log/event_store.ts";
import { canonicalJson, canonicalPayload, sha256Hex } from "../log/event_rules.ts";

/** The payload of `step.completed` (`result` absent when the step returned undefined). */
export interface StepPayload {
  name: string;
  index: number;
  result?: unknown;
}

/** The payload of a journaled `tool.completed`. */
export interface ToolPayload {
  tool: string;
  inputDigest?: string;
  output?: unknown;
}

/** Which step of which handling, for records and errors. */
export interface StepAt {
  event: EventRecord;
  index: number;
}

/**
 * Checks that `payload` can be recorded: JSON within the payload limit.
 *
 * @throws {TypeError} When it holds a value that is not JSON, naming its path.
 * @throws {RangeError} When it is over the payload limit, saying where a big result goes.
 */
export function checkRecordable(payload: unknown, what: string): void {
  try {
    canonicalPayload(payload, `of ${what}`);
  } catch (error) {
    if (!(error instanceof RangeError)) throw error;
    throw new RangeError(
      `${error.message}: put a big result in storage("vault") and return its key`,
    );
  }
}

/** `"sha256:<hex>"` of an input's canonical JSON, as `tool.invoked` records it; undefined when not JSON. */
export function inputDigest(input: unknown): string | undefined {
  try {
    return `sha256:${sha256Hex(canonicalJson(input))}`;
  } catch {
    return undefined;
  }
}

/** A step as a NonDeterminismError names it. */
export function describeStep(name: string): string {
  return `step ${JSON.stringify(name)}`;
}

/** A tool call as a NonDeterminismError names it: the tool and the start of its input digest. */
export function describeCall(tool: string, digest: string | undefined): string {
  const input = digest === undefined
    ? "an input that is not JSON"
    : `input ${digest.slice(0, 23)}…`;
  return `tool ${JSON.stringify(tool)} with ${input}`;
}

/** What a recorded completion was, for a NonDeterminismError. */
export function describeRecord(record: EventRecord): string {
  if (record.kind === "step.completed") return describeStep((record.payload as StepPayload).name);
  const { tool, inputDigest } = record.payload as ToolPayload;
  return describeCall(tool, inputDigest);
}
