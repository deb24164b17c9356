/**
 * JSON that never changes a number. JavaScript's numbers are doubles, so
 * JSON.parse would turn 12345678901234567891 into 12345678901234567000 and
 * 1e400 into Infinity. Here a number whose text a double would not reproduce
 * is kept as its source text (JSON.rawJSON), which JSON.stringify writes back
 * verbatim: into PostgreSQL's jsonb, which keeps numbers exactly, and from it
 * into responses.
 */

// JSON.rawJSON and JSON.isRawJSON (ES2025, in V8 and so in Deno) are not yet
// in TypeScript's lib.
const rawJson = JSON as unknown as {
  rawJSON(text: string): unknown;
  isRawJSON(value: unknown): boolean;
};

function keepExactNumbers(_key: string, value: unknown, context?: { source?: string }): unknown {
  if (typeof value === "number" && context?.source !== undefined && context.source !== String(value)) {
    return rawJson.rawJSON(context.source);
  }
  return value;
}

/**
 * Parses JSON, keeping every number exactly as written.
 *
 * @param text JSON text
 * @returns the value; numbers a double cannot hold exactly are raw JSON
 * @throws SyntaxError when the text is not JSON
 */
export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text, keepExactNumbers as (key: string, value: unknown) => unknown);
  } catch (error) {
    // A reviver walks the value recursively, and nesting thousands of levels
    // deep exhausts the stack; JSON.parse alone does not. Such a value is far
    // deeper than any schema here accepts, so its numbers never matter.
    if (error instanceof RangeError) return JSON.parse(text);
    throw error;
  }
}

/**
 * Tells whether a value is a number kept as its source text by parseJson.
 *
 * @param value any parsed value
 * @returns true for raw JSON numbers
 */
export function isRawNumber(value: unknown): boolean {
  return rawJson.isRawJSON(value);
}
