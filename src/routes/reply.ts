/**
 * Shapes shared by the resource modules: one row or 404, and pages.
 */
import type postgres from "postgres";
import { HttpError } from "../http/problem.ts";
import { page } from "../http/cursor.ts";

/**
 * The single row a by-id query returned. Another tenant's row is invisible
 * under row-level security, so it is "not found" too: existence never leaks.
 *
 * @param rows rows of the query
 * @param what the resource, for the message
 * @returns the row
 * @throws HttpError 404
 */
export function oneOr404(rows: postgres.Row[], what: string): postgres.Row {
  if (rows.length === 0) throw new HttpError(404, `No ${what} with that id`);
  return rows[0];
}

export { page };
