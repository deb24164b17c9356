/**
 * Reading a request safely: its ids, its JSON body within a size limit, and
 * zod validation of path, query and body with errors listed per field.
 */
import { z } from "zod";
import { parseJson } from "./json.ts";
import { type FieldError, HttpError } from "./problem.ts";

const wellFormedRequestId = /^[A-Za-z0-9._:-]{1,128}$/;

/** The ids of one request: the service's own, and the caller's if it sent one. */
export interface RequestIds {
  /** Assigned here (a UUID); the one the audit trail trusts. */
  server: string;
  /** The caller's well-formed x-request-id, kept beside it; null when absent or malformed. */
  client: string | null;
  /** What the response's x-request-id and problem bodies carry: the caller's id, else the server's. */
  echoed: string;
}

/**
 * Assigns the request its id and keeps the caller's x-request-id when it is well formed.
 *
 * @param request the incoming request
 * @returns the server's id, the caller's, and the one to echo
 */
export function requestIdsOf(request: Request): RequestIds {
  const given = request.headers.get("x-request-id");
  const server = crypto.randomUUID();
  const client = given && wellFormedRequestId.test(given) ? given : null;
  return { server, client, echoed: client ?? server };
}

/**
 * Validates a value with a zod schema, turning issues into a 400 listing each field.
 *
 * @param schema the zod schema
 * @param value the raw value
 * @param location where in the request the value came from
 * @returns the parsed value
 * @throws HttpError 400
 */
export function validate<T>(schema: z.ZodType<T>, value: unknown, location: FieldError["location"]): T {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const errors = parsed.error.issues.map((issue): FieldError => ({
    location,
    field: fieldOf(issue),
    message: issue.message,
  }));
  throw new HttpError(400, `The request ${location} is invalid`, { errors });
}

function fieldOf(issue: z.core.$ZodIssue): string {
  const path = issue.path.map(String);
  if (issue.code === "unrecognized_keys") path.push(...issue.keys);
  return path.join(".") || "(root)";
}

/**
 * Turns a query string into an object, refusing repeated parameters.
 *
 * @param url the request URL
 * @returns one string per parameter name
 * @throws HttpError 400 when a parameter is repeated
 */
export function queryOf(url: URL): Record<string, string> {
  // A Map, not an object: a parameter named constructor or __proto__ is a
  // name like any other, not a member every object already has.
  const query = new Map<string, string>();
  for (const [name, value] of url.searchParams) {
    if (query.has(name)) {
      throw new HttpError(400, "The request query is invalid", {
        errors: [{ location: "query", field: name, message: "Must be given at most once" }],
      });
    }
    query.set(name, value);
  }
  return Object.fromEntries(query);
}

/**
 * Reads a JSON body, enforcing the content type and the size limit while
 * streaming, so an oversized body is refused without being buffered whole.
 *
 * @param request the incoming request
 * @param limitBytes largest accepted body
 * @returns the parsed JSON value
 * @throws HttpError 415, 413 or 400
 */
export async function readJsonBody(request: Request, limitBytes: number): Promise<unknown> {
  const contentType = request.headers.get("content-type")?.split(";")[0].trim().toLowerCase();
  if (contentType !== "application/json" && contentType !== "application/merge-patch+json") {
    throw new HttpError(415, "The request body must be JSON (content-type: application/json)");
  }
  const declared = Number(request.headers.get("content-length") ?? "0");
  if (declared > limitBytes) throw tooLarge(limitBytes);
  if (!request.body) throw new HttpError(400, "The request body is empty; send a JSON object");

  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = request.body.getReader();
  while (true) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limitBytes) {
      await reader.cancel().catch(() => {});
      throw tooLarge(limitBytes);
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new HttpError(400, "The request body is not valid UTF-8");
  }
  if (text.trim() === "") throw new HttpError(400, "The request body is empty; send a JSON object");
  try {
    return parseJson(text);
  } catch {
    throw new HttpError(400, "The request body is not valid JSON");
  }
}

function tooLarge(limitBytes: number): HttpError {
  return new HttpError(413, `The request body exceeds the limit of ${limitBytes} bytes`);
}
