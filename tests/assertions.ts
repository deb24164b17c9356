/**
 * What the HTTP suites share beyond tests/support.ts: the contract every
 * response must meet (x-request-id always; problem+json for every error,
 * without SQL text or stack traces), paging through a list, issuing keys with
 * chosen permissions, snapshots of a tenant's rows taken as the owner, and a
 * seeded random number generator for reproducible fuzzing.
 */
import assert from "node:assert/strict";
import { call, type TestServer } from "./support.ts";
import type { Permission } from "../src/http/router.ts";

/** What call() answers: status, headers and parsed body. */
export type Reply = Awaited<ReturnType<typeof call>>;

/** Options call() accepts: token, JSON or raw body, content type, headers. */
export type CallOptions = NonNullable<Parameters<typeof call>[3]>;

// What a database error or a stack trace would look like if one escaped into
// a response: SQL keywords, PostgreSQL vocabulary, schema names, file:line.
const leakPatterns = [
  /\b(select|insert into|update \w+ set|delete from)\b/i,
  /violates|constraint|relation "|syntax error|sqlstate|duplicate key|foreign key/i,
  /\b(core|api|platform|pg_catalog|information_schema)\.\w+/i,
  /postgres|PT40[13]|\b[0-9A-Z]{2}[0-9]{3}\b/,
  /\bat .+:\d+:\d+|\.ts:\d+|Error:|stack/,
];

/**
 * Asserts that a response body carries nothing from a database error or a stack trace.
 *
 * @param text the raw or re-serialised body
 * @param what the request, for the failure message
 */
export function assertNoLeak(text: string, what = "response"): void {
  for (const pattern of leakPatterns) {
    assert.doesNotMatch(text, pattern, `${what} leaks internals: ${text.slice(0, 300)}`);
  }
}

/**
 * Asserts the problem+json contract of an error response: content type,
 * type/title/status/detail, the request id, and no leaked internals.
 *
 * @param reply the response
 * @param status the status expected
 */
export function assertProblem(reply: Reply, status: number): void {
  const { request_id: _echoed, ...rest } = reply.body;
  const text = JSON.stringify(rest);
  assert.equal(reply.status, status, `expected ${status}, got ${reply.status}: ${text.slice(0, 500)}`);
  assert.equal(reply.headers.get("content-type"), "application/problem+json");
  assert.match(String(reply.body.type), /^https:\/\/\S+$/);
  assert.equal(typeof reply.body.title, "string");
  assert.ok((reply.body.title as string).length > 0, "title is empty");
  assert.equal(reply.body.status, status);
  assert.equal(typeof reply.body.detail, "string");
  assert.ok((reply.body.detail as string).length > 0, "detail is empty");
  assert.equal(reply.body.request_id, reply.headers.get("x-request-id"));
  assertNoLeak(text);
}

/**
 * Sends a request through call() and checks what every response must carry:
 * an x-request-id, and for an error the problem+json contract.
 *
 * @param server the running service
 * @param method HTTP method
 * @param path path and query
 * @param options token, body, content type, headers
 * @returns the response
 */
export async function send(
  server: TestServer,
  method: string,
  path: string,
  options: CallOptions = {},
): Promise<Reply> {
  const reply = await call(server, method, path, options);
  assert.ok(reply.headers.get("x-request-id"), `${method} ${path} answered without x-request-id`);
  if (reply.status >= 400) assertProblem(reply, reply.status);
  return reply;
}

/**
 * Sends a request and asserts its status, with the body in the failure message.
 *
 * @param status the status expected
 * @param request method, path and options as for send()
 * @returns the response
 */
export async function expectStatus(
  status: number,
  request: { server: TestServer; method: string; path: string } & CallOptions,
): Promise<Reply> {
  const { server, method, path, ...options } = request;
  const reply = await send(server, method, path, options);
  assert.equal(
    reply.status,
    status,
    `${method} ${path}: expected ${status}, got ${reply.status} ${JSON.stringify(reply.body).slice(0, 400)}`,
  );
  return reply;
}

/**
 * The fields a 400 names, as "location:field", sorted.
 *
 * @param reply a 400 response
 * @returns e.g. ["body:email", "body:role"]
 */
export function fieldErrors(reply: Reply): string[] {
  const errors = (reply.body.errors ?? []) as { location: string; field: string; message: string }[];
  for (const error of errors) assert.ok(error.message, `no message for ${error.field}`);
  return [...new Set(errors.map((error) => `${error.location}:${error.field}`))].sort();
}

/**
 * Issues a key for a tenant through the platform API.
 *
 * @param server the running service
 * @param tenantId the tenant
 * @param options permissions (default every one), a user to bind, an expiry
 * @returns the plain key and its id
 */
export async function issueKey(
  server: TestServer,
  tenantId: string,
  options: { permissions?: Permission[]; userId?: string; expiresAt?: string } = {},
): Promise<{ key: string; keyId: string }> {
  const reply = await expectStatus(201, {
    server,
    method: "POST",
    path: `/v1/admin/tenants/${tenantId}/api-keys`,
    token: server.config.platformAdminToken,
    body: {
      name: "issued by a test",
      permissions: options.permissions ?? ["*"],
      ...(options.userId ? { user_id: options.userId } : {}),
      ...(options.expiresAt ? { expires_at: options.expiresAt } : {}),
    },
  });
  return { key: String(reply.body.key), keyId: String(reply.body.key_id) };
}

/**
 * Pages through a list with the given page size, checking the envelope of
 * every page, until next_cursor is null.
 *
 * @param server the running service
 * @param path list path, with or without a query
 * @param options bearer token and page size (default 2)
 * @returns every item in the order served, and the number of pages
 */
export async function listAll(
  server: TestServer,
  path: string,
  options: { token?: string; limit?: number },
): Promise<{ items: Record<string, unknown>[]; pages: number }> {
  const limit = options.limit ?? 2;
  const items: Record<string, unknown>[] = [];
  let cursor: string | null = null;
  let pages = 0;
  const separator = path.includes("?") ? "&" : "?";
  do {
    const query: string = `${separator}limit=${limit}` +
      (cursor ? `&cursor=${encodeURIComponent(cursor)}` : "");
    const reply = await expectStatus(200, {
      server,
      method: "GET",
      path: path + query,
      token: options.token,
    });
    assert.deepEqual(Object.keys(reply.body).sort(), ["items", "next_cursor"]);
    const page = reply.body.items ?? [];
    assert.ok(page.length <= limit, `a page of ${page.length} items exceeds limit ${limit}`);
    items.push(...page);
    cursor = reply.body.next_cursor as string | null;
    pages++;
    assert.ok(pages < 10_000, "paging never ended");
  } while (cursor !== null);
  return { items, pages };
}

/**
 * Every row of one tenant in every core table with a tenant_id column, read
 * as the owner (bypassing row-level security). The table list comes from the
 * catalog, so a table added later is covered too. What any request uses up,
 * whether or not it changes anything, is left out: last_used_at (of
 * core.api_key_usage), written after the response, off the request path;
 * and the minute's requests leased to the service (window_start and leased,
 * of core.request_windows), which a refused request spends too
 * (tests/rate_limits_test.ts). Neither is audited.
 *
 * @param server the running service (its owner connection is used)
 * @param tenantId the tenant
 * @returns table name -> rows as JSON text, sorted
 */
export async function tenantSnapshot(
  server: TestServer,
  tenantId: string,
): Promise<Record<string, string[]>> {
  const sql = server.owner;
  const tables = await sql<{ table_name: string }[]>`
    select table_name from information_schema.columns
    where table_schema = 'core' and column_name = 'tenant_id'
    order by table_name`;
  assert.ok(tables.length >= 5, "the catalog query found too few tenant tables to be trusted");
  const snapshot: Record<string, string[]> = {};
  for (const { table_name } of tables) {
    const rows = await sql<{ row: string }[]>`
      select (to_jsonb(t) - 'last_used_at' - 'window_start' - 'leased')::text as row
      from ${sql("core")}.${sql(table_name)} t
      where t.tenant_id = ${tenantId}
      order by 1`;
    snapshot[table_name] = rows.map((r) => r.row);
  }
  return snapshot;
}

/**
 * A deterministic pseudo-random generator (mulberry32), so a fuzz run can be
 * replayed exactly from its seed.
 *
 * @param seed any 32-bit integer
 * @returns a function giving the next number in [0, 1)
 */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return function next(): number {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A string with the shape of an API key that no tenant holds.
 *
 * @returns tnk_ followed by 43 random base64url characters
 */
export function unknownKey(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return "tnk_" +
    btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

/**
 * Replaces every :param of a route path.
 *
 * @param path route path, e.g. /v1/users/:user_id
 * @param value what to put in place of each parameter
 * @returns the concrete path
 */
export function fillPath(path: string, value: string | ((name: string) => string)): string {
  return path.replace(/:([a-z_]+)/g, (_, name: string) => typeof value === "string" ? value : value(name));
}

/**
 * Runs fn with a tier's plan changed through the platform route, and puts
 * the limits changed back as they were afterwards, whatever fn did.
 *
 * @param server the running service (with PLATFORM_ADMIN_TOKEN)
 * @param tier free, pro or enterprise
 * @param limits the limits to change, e.g. { requests_per_minute: 40 }
 * @param fn the test, given the plan's path
 */
export async function withPlan(
  server: TestServer,
  tier: string,
  limits: Record<string, number>,
  fn: (planPath: string) => Promise<void>,
): Promise<void> {
  const admin = server.config.platformAdminToken!;
  const plans = await expectStatus(200, { server, method: "GET", path: "/v1/admin/plans", token: admin });
  const plan = plans.body.items!.find((item) => item.tier === tier)!;
  const saved = Object.fromEntries(Object.keys(limits).map((name) => [name, plan[name]]));
  const path = `/v1/admin/plans/${plan.plan_id}`;
  await expectStatus(200, { server, method: "PATCH", path, token: admin, body: limits });
  try {
    await fn(path);
  } finally {
    await expectStatus(200, { server, method: "PATCH", path, token: admin, body: saved });
  }
}
