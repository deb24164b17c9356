/**
 * Credentials from the Authorization header. Tenant API keys and operator
 * credentials are checked by the database (api.begin_request,
 * platform.begin_request) from their SHA-256 hash, so the secret itself never
 * leaves this process.
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

const operatorTokenShape = /^tnop_[A-Za-z0-9_-]{20,100}$/;

/**
 * Hash of the request's platform credential, for platform.begin_request: an
 * operator's credential, or the bootstrap token (PLATFORM_ADMIN_TOKEN).
 *
 * @param request the incoming request
 * @param bootstrapDigest sha256Hex of PLATFORM_ADMIN_TOKEN, when it is set
 * @returns the credential's hash, and whether it is the bootstrap token
 * @throws HttpError 401 when there is no credential or it cannot be one
 */
export function operatorCredential(
  request: Request,
  bootstrapDigest: string | undefined,
): { hash: string; bootstrap: boolean } {
  const token = bearerToken(request);
  const hash = sha256Hex(token);
  const bootstrap = bootstrapDigest !== undefined && sameDigest(hash, bootstrapDigest);
  if (!bootstrap && !operatorTokenShape.test(token)) {
    throw new HttpError(401, "The operator credential is unknown or revoked");
  }
  return { hash, bootstrap };
}

// Compares two hex digests of equal length in constant time.
function sameDigest(given: string, wanted: string): boolean {
  let difference = given.length ^ wanted.length;
  for (let i = 0; i < wanted.length; i++) difference |= given.charCodeAt(i) ^ wanted.charCodeAt(i);
  return difference === 0;
}
