/**
 * Structured logs: one JSON object per line on stdout. Never keys, tokens,
 * bodies or SQL parameters.
 */

/** Fields of the per-request log line. */
export interface RequestLog {
  method: string;
  route: string;
  status: number;
  duration_ms: number;
  request_id: string;
  client_request_id: string | null;
  tenant_id: string | null;
}

/**
 * Writes one log line.
 *
 * @param level severity
 * @param message what happened, in a few words
 * @param fields structured context
 */
export function log(
  level: "info" | "warn" | "error",
  message: string,
  fields: Record<string, unknown> = {},
): void {
  console.log(JSON.stringify({ time: new Date().toISOString(), level, message, ...fields }));
}
