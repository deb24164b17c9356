/**
 * The floor of the benchmark: the transaction each GET route of the
 * benchmark runs (BEGIN, api.begin_request turning it read-only, the
 * select, COMMIT, pipelined on one connection; GET /v1/documents/{id}, the
 * documents list, the audit list), with the rows serialised the plain way
 * (Response.json), served by Deno.serve and postgres.js and nothing else. There
 * is no routing, validation, retry, problem+json or logging, and no handling
 * of a database that goes away. scripts/bench drives it with the same wrk
 * load as the service. The rate it reaches is what this runtime and driver
 * allow on this machine; the service's distance from it is the service's own
 * overhead.
 *
 * Not a service: it trusts its input. Environment, as for the service:
 * APP_DATABASE_URL, PORT, DB_POOL_MAX.
 */
import { createHash } from "node:crypto";
import postgres from "postgres";

const url = Deno.env.get("APP_DATABASE_URL")!;
const connections = Number(Deno.env.get("DB_POOL_MAX"));
const idle = Array.from({ length: connections }, () => postgres(url, { max: 1, onnotice: () => {} }));
const waiting: ((sql: postgres.Sql) => void)[] = [];

function acquire(): Promise<postgres.Sql> {
  const sql = idle.pop();
  return sql ? Promise.resolve(sql) : new Promise((resolve) => waiting.push(resolve));
}

function release(sql: postgres.Sql): void {
  const next = waiting.shift();
  if (next) next(sql);
  else idle.push(sql);
}

interface FloorRoute {
  permission: string;
  query(sql: postgres.Sql): postgres.PendingQuery<postgres.Row[]>;
  reply(rows: postgres.Row[]): Response;
}

// A page and its cursor, as plainly as a client library would write them.
function page(rows: postgres.Row[], limit: number, after: string, id: string): Response {
  const last = rows.at(-1);
  const nextCursor = last && rows.length >= limit ? btoa(JSON.stringify([last[after], last[id]])) : null;
  return Response.json({ items: rows, next_cursor: nextCursor });
}

function routeOf(url: URL): FloorRoute | undefined {
  const [, , resource, documentId] = url.pathname.split("/");
  if (resource === "documents" && documentId) {
    return {
      permission: "documents:read",
      query: (sql) => sql`select * from api.documents where document_id = ${documentId}`,
      reply: (rows) => rows.length ? Response.json(rows[0]) : new Response(null, { status: 404 }),
    };
  }
  const limit = Number(url.searchParams.get("limit"));
  if (resource === "documents") {
    return {
      permission: "documents:read",
      query: (sql) => sql`select * from api.list_documents(${limit})`,
      reply: (rows) => page(rows, limit, "created_at", "document_id"),
    };
  }
  if (resource === "audit-logs") {
    return {
      permission: "audit:read",
      query: (sql) => sql`select * from api.list_audit_logs(${limit})`,
      reply: (rows) => page(rows, limit, "timestamp", "log_id"),
    };
  }
  return undefined;
}

Deno.serve(
  { hostname: "127.0.0.1", port: Number(Deno.env.get("PORT")), onListen: () => {} },
  async (request) => {
    const url = new URL(request.url);
    const route = routeOf(url);
    if (!route) return new Response("ready"); // scripts/bench polls /ready
    const key = (request.headers.get("authorization") ?? "").slice("Bearer ".length);
    const keyHash = createHash("sha256").update(key).digest("hex");
    const sql = await acquire();
    try {
      const [, , rows] = await Promise.all([
        sql.unsafe("begin").execute(),
        sql`select tenant_id, key_id, last_used_at
            from api.begin_request(${keyHash}, ${route.permission}, ${crypto.randomUUID()}, null, true)`
          .execute(),
        route.query(sql).execute(),
        sql`commit`.execute(),
      ]);
      return route.reply(rows);
    } finally {
      release(sql);
    }
  },
);
