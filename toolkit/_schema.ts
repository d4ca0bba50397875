// JSON Schema compilation shared by tool definitions and the registry.
import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import { RE2JS } from "re2js";

// A schema's `pattern` and `patternProperties` run on RE2, in time linear in the input: a
// backtracking pattern such as `^(a+)+$` from a plugin would otherwise freeze the event loop
// on a few dozen characters. RE2 has no lookarounds or backreferences: such a pattern is
// refused when the schema is compiled. JavaScript escapes (`\u0041`) are translated first.
// An unescaped `\k<` (RE2 itself looks, in linear time: the pattern may be long).
const NAMED_BACKREFERENCE = RE2JS.compile(String.raw`(?:^|[^\\])(?:\\\\)*\\k<`);

function linearRegExp(pattern: string): { test(text: string): boolean; toString(): string } {
  let re: RE2JS;
  try {
    // The translation would read a named backreference as the letters "k<name>".
    if (NAMED_BACKREFERENCE.test(pattern)) {
      throw new Error(`invalid named backreference: \`\\k<\``);
    }
    re = RE2JS.compile(RE2JS.translateRegExp(pattern));
  } catch (error) {
    const reason = String((error as Error).message ?? error).replace(/^error parsing regexp: /, "");
    throw new TypeError(
      `unsupported pattern ${
        JSON.stringify(pattern)
      } (${reason}): patterns run in linear time, without lookarounds or backreferences`,
    );
  }
  // Ajv caches compiled patterns by this string.
  return { test: (text) => re.test(text), toString: () => `re2:${pattern}` };
}

// One instance: Ajv caches compiled validators by schema object, so the
// registry re-compiling a schema defineTool already checked costs nothing.
// Strict mode rejects unknown keywords, which catches typos in schemas; its check that no named
// property matches a patternProperties pattern runs the backtracking engine, so it is off.
const ajv = new Ajv({
  logger: false,
  allowMatchingProperties: true,
  code: { regExp: linearRegExp as never },
});

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
