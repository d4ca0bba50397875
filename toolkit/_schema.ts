// JSON Schema compilation shared by tool definitions and the registry.
import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";

// One instance: Ajv caches compiled validators by schema object, so the
// registry re-compiling a schema defineTool already checked costs nothing.
// Strict mode rejects unknown keywords, which catches typos in schemas.
const ajv = new Ajv({ logger: false });

/** Compiles a JSON Schema; throws a TypeError naming `what` when it is invalid. */
export function compileSchema(schema: Record<string, unknown>, what: string): ValidateFunction {
  try {
    return ajv.compile(schema);
  } catch (error) {
    throw new TypeError(`Invalid ${what}: ${(error as Error).message}`, { cause: error });
  }
}

/** Describes the first validation problem in one line, e.g. `/text must be string`. */
export function firstProblem(errors: ErrorObject[] | null | undefined): string {
  const error = errors?.[0];
  if (error === undefined) return "/ is not valid";
  // Keys come from the caller's input: JSON escapes keep a control character out of the message.
  const extra = error.keyword === "additionalProperties"
    ? ` ${JSON.stringify(String(error.params.additionalProperty))}`
    : "";
  const path = JSON.stringify(error.instancePath || "/").slice(1, -1);
  return `${path} ${error.message ?? "is not valid"}${extra}`;
}
