/**
 * Streamed responses: newline-delimited JSON, read a page at a time as the
 * client reads, ending with a trailer line that says whether the stream is
 * complete and where to resume it.
 */
import type postgres from "postgres";
import type { NdjsonPages } from "./router.ts";
import { HttpError } from "./problem.ts";

/** A page's rows turned into the lines of the stream. */
export type PageLines = (rows: postgres.Row[], query: unknown) => unknown[];

/**
 * The stream of a route whose first page has been read.
 *
 * @param pages how the route reads on
 * @param first rows of the first page, read with the request's own transaction
 * @param query the query of the first page
 * @param linesOf turns a page's rows into lines
 * @param readPage reads the page of a query, in a transaction of its own
 * @returns a 200 response whose body pulls one page at a time
 */
export function ndjsonResponse(
  pages: NdjsonPages<unknown>,
  first: postgres.Row[],
  query: unknown,
  linesOf: PageLines,
  readPage: (query: unknown) => Promise<postgres.Row[]>,
): Response {
  const encoder = new TextEncoder();
  const line = (value: unknown) => encoder.encode(`${JSON.stringify(value)}\n`);
  let rows: postgres.Row[] | null = first;
  let current = query;
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        rows ??= await readPage(current);
        const next = pages.next(rows, current);
        // A line at a time: a page is never one string, and the resume point
        // moves past a page only once all of it is queued.
        for (const value of linesOf(rows, current)) controller.enqueue(line(value));
        rows = null;
        current = next.query;
        if (next.more) return;
        controller.enqueue(line({ end: "complete", ...pages.resume(current) }));
        controller.close();
      } catch (error) {
        // The status line is long sent: the trailer tells the client it
        // stopped short, and from where to go on.
        const problem = error instanceof HttpError
          ? error
          : new HttpError(500, "An unexpected error occurred");
        controller.enqueue(line({
          end: "interrupted",
          status: problem.status,
          detail: problem.message,
          ...pages.resume(current),
        }));
        controller.close();
      }
    },
  });
  return new Response(body, { status: 200, headers: { "content-type": "application/x-ndjson" } });
}
