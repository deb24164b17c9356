/**
 * Opaque keyset cursors: the sort key and id of the last row of a page,
 * base64url-encoded. A cursor that does not decode to exactly that shape is
 * rejected with 400, so a tampered cursor never reaches SQL.
 */
import { z } from "zod";
import { HttpError } from "./problem.ts";

// Year 0000 passes ISO 8601 but not PostgreSQL; such a cursor is tampered.
const cursorShape = z.tuple([
  z.iso.datetime({ offset: true }).refine((value) => !value.startsWith("0000")),
  z.guid(),
]);

/** Position after which the next page starts. */
export interface Cursor {
  after: string;
  id: string;
}

/**
 * Encodes the position after a row.
 *
 * @param after the row's sort timestamp, as an ISO string with microseconds
 * @param id the row's id
 * @returns the opaque cursor
 */
export function encodeCursor(after: string, id: string): string {
  const json = JSON.stringify([after, id]);
  return btoa(json).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

/**
 * Tells whether a string is a cursor this API issued, so that query
 * validation refuses any other before a transaction starts.
 *
 * @param cursor the opaque cursor
 * @returns true when it decodes to a position
 */
export function isCursor(cursor: string): boolean {
  try {
    decodeCursor(cursor);
    return true;
  } catch {
    return false;
  }
}

/**
 * Decodes a cursor from a query string.
 *
 * @param cursor the opaque cursor, or undefined for the first page
 * @returns the position, or nulls for the first page
 * @throws HttpError 400 when the cursor is not one we issued
 */
export function decodeCursor(cursor: string | undefined): { after: string | null; id: string | null } {
  if (cursor === undefined) return { after: null, id: null };
  try {
    const json = atob(cursor.replaceAll("-", "+").replaceAll("_", "/"));
    const [after, id] = cursorShape.parse(JSON.parse(json));
    return { after, id };
  } catch {
    throw new HttpError(400, "The cursor is invalid; use next_cursor from a previous page", {
      errors: [{ location: "query", field: "cursor", message: "Not a cursor issued by this API" }],
    });
  }
}

/**
 * Builds a page: the rows, and a cursor when the page is full.
 *
 * @param rows rows of this page
 * @param limit page size asked for
 * @param keys names of the sort column and the id column
 * @returns the list response body
 */
export function page(
  rows: Record<string, unknown>[],
  limit: number,
  keys: { after: string; id: string },
): { items: Record<string, unknown>[]; next_cursor: string | null } {
  const last = rows.at(-1);
  const nextCursor = last && rows.length >= limit
    ? encodeCursor(String(last[keys.after]), String(last[keys.id]))
    : null;
  return { items: rows, next_cursor: nextCursor };
}
