/**
 * Errors the HTTP layer can answer with, and the one place that turns any
 * error into an RFC 9457 application/problem+json response. Nothing from a
 * database error (SQL text, detail, values) ever reaches a client.
 */

/** One invalid field of a request, listed in a 400 response. */
export interface FieldError {
  location: "body" | "query" | "path" | "header";
  field: string;
  message: string;
}

/** An error with an HTTP status and a message safe to show to the client. */
export class HttpError extends Error {
  /**
   * @param status HTTP status code
   * @param detail sentence-case explanation for the client
   * @param options extra headers, validation errors, a problem type and its members, and the SQLSTATE
   *   behind a 500 (logged, never sent)
   */
  constructor(
    readonly status: number,
    detail: string,
    readonly options: {
      errors?: FieldError[];
      headers?: Record<string, string>;
      sqlstate?: string;
      /** A problem type of its own (a URI), instead of the status's. */
      type?: string;
      /** Members added to the problem object (RFC 9457 extensions), e.g. a quota's limit. */
      extensions?: Record<string, unknown>;
    } = {},
  ) {
    super(detail);
    this.name = "HttpError";
  }
}

const titles: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  409: "Conflict",
  413: "Content Too Large",
  415: "Unsupported Media Type",
  422: "Unprocessable Content",
  429: "Too Many Requests",
  500: "Internal Server Error",
  503: "Service Unavailable",
};

/** Seconds a client should wait before retrying after a 503. */
export const RETRY_AFTER_SECONDS = 1;

/**
 * Builds a problem+json response.
 *
 * @param error the error to describe
 * @param requestId echoed in the body so a client can quote it to support
 * @returns the response
 */
export function problemResponse(error: HttpError, requestId: string): Response {
  const body: Record<string, unknown> = {
    ...error.options.extensions,
    type: error.options.type ?? `https://tenancy.dev/problems/${error.status}`,
    title: titles[error.status] ?? "Error",
    status: error.status,
    detail: error.message,
    request_id: requestId,
  };
  if (error.options.errors) body.errors = error.options.errors;
  const headers = new Headers({ "content-type": "application/problem+json", ...error.options.headers });
  if (error.status === 503 && !headers.has("retry-after")) {
    headers.set("retry-after", String(RETRY_AFTER_SECONDS));
  }
  if (error.status === 401) headers.set("www-authenticate", 'Bearer realm="tenancy"');
  return new Response(JSON.stringify(body), { status: error.status, headers });
}
