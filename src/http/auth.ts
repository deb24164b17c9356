/**
 * Credentials from the Authorization header. Tenant API keys are checked by
 * the database (api.begin_request) from their SHA-256 hash, so the key itself
 * never leaves this process; the platform admin token is compared here.
 */
import { createHash } from "node:crypto";
import { HttpError } from "./problem.ts";

const apiKeyShape = /^tnk_[A-Za-z0-9_-]{20,100}$/;

/**
 * Extracts the bearer token.
 *
 * @param request the incoming request
 * @returns the token
 * @throws HttpError 401 when the header is missing or not a bearer token
 */
export function bearerToken(request: Request): string {
  const header = request.headers.get("authorization") ?? "";
  const match = /^Bearer ([^\s]+)$/i.exec(header.trim());
  if (!match) throw new HttpError(401, "Send an API key as Authorization: Bearer <key>");
  return match[1];
}

/**
 * Hex SHA-256 of a string, the form in which API keys are stored.
 *
 * @param value the string to hash
 * @returns 64 lower-case hex digits
 */
export function sha256Hex(value: string): string {
  return createHash("sha256").update(value, "utf8").digest("hex");
}

/**
 * Hash of the request's API key, for api.begin_request.
 *
 * @param request the incoming request
 * @returns the key's hash
 * @throws HttpError 401 when there is no key or it cannot be one of ours
 */
export function apiKeyHash(request: Request): string {
  const token = bearerToken(request);
  if (!apiKeyShape.test(token)) throw new HttpError(401, "The API key is unknown, revoked or expired");
  return sha256Hex(token);
}

/**
 * Checks the platform admin token in constant time (comparing digests).
 *
 * @param request the incoming request
 * @param wanted sha256Hex of PLATFORM_ADMIN_TOKEN, computed once at start-up
 * @throws HttpError 401 when the token is missing or wrong
 */
export function requireAdminToken(request: Request, wanted: string): void {
  const given = sha256Hex(bearerToken(request));
  let difference = 0;
  for (let i = 0; i < wanted.length; i++) difference |= given.charCodeAt(i) ^ wanted.charCodeAt(i);
  if (difference !== 0) throw new HttpError(401, "The platform admin token is wrong");
}
