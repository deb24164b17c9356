/**
 * The floor of the benchmark: the transaction GET /v1/documents/{id} runs
 * (BEGIN, api.begin_request turning it read-only, the select, COMMIT, pipelined on one
 * connection), served by Deno.serve and postgres.js and nothing else. There
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

Deno.serve(
  { hostname: "127.0.0.1", port: Number(Deno.env.get("PORT")), onListen: () => {} },
  async (request) => {
    const documentId = new URL(request.url).pathname.split("/")[3];
    if (!documentId) return new Response("ready"); // scripts/bench polls /ready
    const key = (request.headers.get("authorization") ?? "").slice("Bearer ".length);
    const keyHash = createHash("sha256").update(key).digest("hex");
    const sql = await acquire();
    try {
      const [, , rows] = await Promise.all([
        sql.unsafe("begin").execute(),
        sql`select tenant_id, key_id, last_used_at
            from api.begin_request(${keyHash}, 'documents:read', ${crypto.randomUUID()}, null, true)`
          .execute(),
        sql`select * from api.documents where document_id = ${documentId}`.execute(),
        sql`commit`.execute(),
      ]);
      return rows.length ? Response.json(rows[0]) : new Response(null, { status: 404 });
    } finally {
      release(sql);
    }
  },
);
