/**
 * Opaque keyset cursors: the sort key and id of the last row of a page,
 * base64url-encoded. A cursor that does not decode to exactly that shape is
 * rejected with 400 by query validation, so a tampered cursor never reaches SQL.
 */
import { z } from "zod";

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
 * Decodes a cursor from a query string, once, during query validation.
 *
 * @param cursor the opaque cursor
 * @returns the position, or null when it is not a cursor this API issued
 */
export function parseCursor(cursor: string): Cursor | null {
  try {
    const json = atob(cursor.replaceAll("-", "+").replaceAll("_", "/"));
    const [after, id] = cursorShape.parse(JSON.parse(json));
    return { after, id };
  } catch {
    return null;
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
