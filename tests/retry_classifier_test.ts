/**
 * The retry classifier over real errors: each case makes postgres.js fail
 * against the live test server (or a closed or silent port) and checks
 * whether isTransientDatabaseError calls it transient, which decides whether
 * runTransaction retries it, and which HTTP status toHttpError gives it.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { isTransientDatabaseError, type Sql, toHttpError } from "../src/db.ts";
import { freePort } from "./cluster.ts";
import { requireEnv } from "./support.ts";

interface Case {
  name: string;
  /** The SQLSTATE or driver code the error carries. */
  codes: string[];
  transient: boolean;
  status: number;
  /** Makes postgres.js fail; resolving is a test failure. */
  produce: () => Promise<unknown>;
}

/** The URL with some of its parts changed. */
function changed(
  url: string,
  parts: { user?: string; password?: string; port?: number; database?: string },
): string {
  const parsed = new URL(url);
  if (parts.user) parsed.username = parts.user;
  if (parts.password) parsed.password = parts.password;
  if (parts.port) parsed.port = String(parts.port);
  if (parts.database) parsed.pathname = `/${parts.database}`;
  return parsed.toString();
}

/** Creates or drops a login role named by a value, never by SQL text. */
async function manageRole(owner: postgres.Sql, action: "create" | "drop", role: string, password = "") {
  await owner.begin(async (tx) => {
    await tx`select set_config('classifier.role', ${role}, true),
                    set_config('classifier.password', ${password}, true)`;
    if (action === "create") {
      await tx`do $$ begin
        execute format('create role %I login password %L connection limit 0',
          current_setting('classifier.role'), current_setting('classifier.password'));
      end $$`;
    } else {
      await tx`do $$ begin
        execute format('drop role if exists %I', current_setting('classifier.role'));
      end $$`;
    }
  });
}

/** Runs `fn` on a fresh single-connection client, then closes it within a bound. */
async function onFreshClient(url: string, fn: (sql: Sql) => Promise<unknown>): Promise<unknown> {
  const sql = postgres(url, { max: 1, connect_timeout: 1, onnotice: () => {} }) as unknown as Sql;
  try {
    return await fn(sql);
  } finally {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      sql.end({ timeout: 0 }),
      new Promise((resolve) => timer = setTimeout(resolve, 1000)),
    ]);
    clearTimeout(timer);
  }
}

async function caughtError(produce: () => Promise<unknown>): Promise<unknown> {
  try {
    await produce();
  } catch (error) {
    return error;
  }
  assert.fail("the statement succeeded; the case needs a failure");
}

Deno.test("isTransientDatabaseError and toHttpError classify real postgres.js errors", async (t) => {
  const ownerUrl = requireEnv("DATABASE_URL");
  const appUrl = requireEnv("APP_DATABASE_URL");
  const owner = postgres(ownerUrl, { max: 2, onnotice: () => {} });
  const role = `classifier_probe_${crypto.randomUUID().slice(0, 8)}`;
  const rolePassword = crypto.randomUUID();
  // Accepts TCP connections and never answers, like a hung server.
  const silent = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const connection of silent) accepted.push(connection);
  })();
  try {
    // A role that may hold no connection at all, for "too many connections".
    await manageRole(owner, "create", role, rolePassword);

    const cases: Case[] = [
      {
        name: "connection refused on a closed port",
        codes: ["ECONNREFUSED"],
        transient: true,
        status: 503,
        produce: () => onFreshClient(changed(appUrl, { port: freePort() }), (sql) => sql`select 1`),
      },
      {
        name: "connect timeout on a port that never answers",
        codes: ["CONNECT_TIMEOUT"],
        transient: true,
        status: 503,
        produce: () => {
          const { port } = silent.addr as Deno.NetAddr;
          return onFreshClient(
            `postgres://app_user:x@127.0.0.1:${port}/none?sslmode=disable`,
            (sql) => sql`select 1`,
          );
        },
      },
      {
        name: "serialization failure (40001) raised in a DO block",
        codes: ["40001"],
        transient: true,
        status: 503,
        produce: () =>
          onFreshClient(appUrl, (sql) => sql`do $$ begin raise exception using errcode = '40001'; end $$`),
      },
      {
        name: "deadlock (40P01) raised in a DO block",
        codes: ["40P01"],
        transient: true,
        status: 503,
        produce: () =>
          onFreshClient(appUrl, (sql) => sql`do $$ begin raise exception using errcode = '40P01'; end $$`),
      },
      {
        name: "admin shutdown (57P01) raised in a DO block",
        codes: ["57P01"],
        transient: true,
        status: 503,
        produce: () =>
          onFreshClient(appUrl, (sql) => sql`do $$ begin raise exception using errcode = '57P01'; end $$`),
      },
      {
        // postgres.js drops the server's FATAL 57P01 when the socket closes
        // under a running query and reports the socket error instead.
        name: "pg_terminate_backend of a connection running a query",
        codes: ["CONNECTION_CLOSED", "ECONNRESET", "EPIPE"],
        transient: true,
        status: 503,
        produce: () =>
          onFreshClient(appUrl, async (sql) => {
            const [{ pid }] = await sql`select pg_backend_pid() as pid`;
            // Queries are sent when executed; read the outcome at once so the
            // rejection is never unhandled.
            const outcome = sql`select pg_sleep(5)`.execute().then(
              () => undefined,
              (error: unknown) => error,
            );
            // Terminate only once the backend is really running the sleep.
            for (let poll = 0; poll < 250; poll++) {
              const [{ running }] = await owner`
                select exists (select from pg_stat_activity where pid = ${pid} and state = 'active') as running`;
              if (running) break;
              await new Promise((resolve) => setTimeout(resolve, 20));
            }
            await owner`select pg_terminate_backend(${pid})`;
            const error = await outcome;
            if (error) throw error;
          }),
      },
      {
        name: "too many connections (53300) for a role's connection limit",
        codes: ["53300"],
        transient: true,
        status: 503,
        produce: () =>
          onFreshClient(changed(appUrl, { user: role, password: rolePassword }), (sql) => sql`select 1`),
      },
      {
        name: "statement timeout (57014)",
        codes: ["57014"],
        transient: false,
        status: 503,
        produce: () =>
          onFreshClient(appUrl, (sql) =>
            sql.begin(async (tx) => {
              await tx`set local statement_timeout = '50ms'`;
              await tx`select pg_sleep(1)`;
            })),
      },
      {
        name: "lock timeout (55P03) on a row another transaction holds",
        codes: ["55P03"],
        transient: false,
        status: 503,
        produce: () =>
          owner.begin(async (holder) => {
            await holder`select 1 from core.tenants order by tenant_id limit 1 for update`;
            await onFreshClient(ownerUrl, (sql) =>
              sql.begin(async (tx) => {
                await tx`set local lock_timeout = '50ms'`;
                await tx`select 1 from core.tenants order by tenant_id limit 1 for update`;
              }));
          }),
      },
      {
        name: "unique violation (23505)",
        codes: ["23505"],
        transient: false,
        status: 409,
        produce: () =>
          onFreshClient(ownerUrl, (sql) =>
            sql.begin(async (tx) => {
              await tx`create temporary table probe (id int primary key) on commit drop`;
              await tx`insert into probe values (1), (1)`;
            })),
      },
      {
        name: "insufficient privilege (42501) of app_user",
        codes: ["42501"],
        transient: false,
        status: 403,
        produce: () => onFreshClient(appUrl, (sql) => sql`truncate core.documents`),
      },
      {
        name: "invalid text representation (22P02)",
        codes: ["22P02"],
        transient: false,
        status: 400,
        produce: () => onFreshClient(appUrl, (sql) => sql`select 'not a uuid'::uuid`),
      },
      {
        name: "unknown API key (PT401) from api.begin_request",
        codes: ["PT401"],
        transient: false,
        status: 401,
        produce: () =>
          onFreshClient(
            appUrl,
            (sql) => sql`select * from api.begin_request(${"0".repeat(64)}, null, ${crypto.randomUUID()})`,
          ),
      },
      {
        name: "wrong password (28P01)",
        codes: ["28P01"],
        transient: false,
        status: 500,
        produce: () => onFreshClient(changed(appUrl, { password: "wrong-password" }), (sql) => sql`select 1`),
      },
      {
        name: "database does not exist (3D000)",
        codes: ["3D000"],
        transient: false,
        status: 500,
        produce: () =>
          onFreshClient(changed(ownerUrl, { database: "no_such_database" }), (sql) => sql`select 1`),
      },
    ];

    for (const testCase of cases) {
      await t.step(
        `${testCase.name}: ${testCase.transient ? "transient" : "not transient"}, HTTP ${testCase.status}`,
        async () => {
          const error = await caughtError(testCase.produce);
          const code = String((error as { code?: unknown }).code);
          assert.ok(
            testCase.codes.includes(code),
            `expected ${testCase.codes.join(" or ")}, got ${code}: ${error}`,
          );
          assert.equal(isTransientDatabaseError(error), testCase.transient);
          assert.equal(toHttpError(error).status, testCase.status);
        },
      );
    }
  } finally {
    silent.close();
    await accepting.catch(() => {});
    accepted.forEach((connection) => connection.close());
    await manageRole(owner, "drop", role).catch(() => {});
    await owner.end({ timeout: 1 });
  }
});
