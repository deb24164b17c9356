/**
 * Liveness, readiness and the API's own documentation.
 */
import { runTransaction } from "../db.ts";
import type { Pools } from "../db.ts";
import { DOCS_ASSET_NAMES, docsAsset, docsPage } from "../docs.ts";
import { HttpError, RETRY_AFTER_SECONDS } from "../http/problem.ts";
import type { Route } from "../http/router.ts";
import { openApiDocument } from "../openapi.ts";
import { EXPECTED_SCHEMA_VERSION } from "../schema_version.ts";
import { z } from "zod";

const READY_TIMEOUT_MS = 2000;

function json(body: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

async function readiness(pools: Pools): Promise<Response> {
  const check = runTransaction(pools.app, {
    readOnly: true,
    poolWaitMs: READY_TIMEOUT_MS,
    // A database made from a template or restored from a dump does not keep
    // the migrations' revoke of TEMPORARY: say so rather than serve. Nor does
    // row-level security hold for a runtime role that can get around it: one
    // that is, or may SET ROLE to, a superuser or a BYPASSRLS role (such as
    // uber_admin), or that owns tables of the project and so may lift FORCE.
    context: (tx) =>
      tx`select api.schema_version() as version,
                has_database_privilege(current_database(), 'TEMPORARY') as may_create_temporary,
                exists (select from pg_catalog.pg_roles r
                        where (r.rolsuper or r.rolbypassrls)
                          and (pg_catalog.pg_has_role(current_user, r.oid, 'MEMBER')
                               or pg_catalog.pg_has_role(session_user, r.oid, 'MEMBER')))
                  or exists (select from pg_catalog.pg_class c
                             where c.relnamespace in ('core'::regnamespace, 'api'::regnamespace,
                                                      'platform'::regnamespace)
                               and pg_catalog.pg_has_role(current_user, c.relowner, 'MEMBER'))
                  as bypasses_rls`,
  }, (tx) => tx`select 1`);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<null>((resolve) => timer = setTimeout(() => resolve(null), READY_TIMEOUT_MS));
  try {
    const result = await Promise.race([check, timeout]);
    if (!result) return notReady("The database did not answer in time");
    const version = String(result.context[0]?.version ?? "");
    if (version < EXPECTED_SCHEMA_VERSION) {
      return notReady(`The database schema is at ${version || "no migration"}; run dbmate up`, version);
    }
    if (result.context[0]?.bypasses_rls) {
      return notReady(
        "APP_DATABASE_URL connects as a role that can bypass row-level security (a superuser, a BYPASSRLS " +
          "role, a member of either, or an owner of the tables); connect as app_user",
        version,
      );
    }
    if (result.context[0]?.may_create_temporary) {
      return notReady(
        "The runtime role may create temporary objects in this database; " +
          "run: revoke temporary on database <name> from public",
        version,
      );
    }
    return json({
      status: "ready",
      schema_version: version,
      expected_schema_version: EXPECTED_SCHEMA_VERSION,
    });
  } catch (error) {
    return (error as HttpError).status === 503
      ? notReady("The database is unreachable")
      : notReady("The database schema is not what this service expects; run dbmate up");
  } finally {
    clearTimeout(timer);
    check.catch(() => {});
  }
}

function notReady(reason: string, version?: string): Response {
  return json(
    {
      status: "unavailable",
      reason,
      schema_version: version ?? null,
      expected_schema_version: EXPECTED_SCHEMA_VERSION,
    },
    503,
    { "retry-after": String(RETRY_AFTER_SECONDS) },
  );
}

/**
 * Routes that need no tenant: health, readiness, OpenAPI and docs.
 *
 * @param documented the routes the OpenAPI document describes
 * @returns the system routes
 */
export function systemRoutes(documented: () => Route[]): Route[] {
  let document: Record<string, unknown> | undefined;
  const openApi = () => document ??= openApiDocument(documented());
  return [
    {
      method: "GET",
      path: "/health",
      tag: "System",
      summary: "The process is up (does not touch the database)",
      access: "public",
      response: z.object({ status: z.literal("ok") }),
      serve: () => json({ status: "ok" }),
    },
    {
      method: "GET",
      path: "/ready",
      tag: "System",
      summary: "The database answers within 2 s and its schema is at the expected migration (else 503)",
      access: "public",
      response: z.object({
        status: z.string(),
        schema_version: z.string(),
        expected_schema_version: z.string(),
      }),
      serve: (_request, pools) => readiness(pools),
    },
    {
      method: "GET",
      path: "/openapi.json",
      tag: "System",
      summary: "This API's OpenAPI 3.1 document",
      access: "public",
      serve: () => json(openApi()),
    },
    {
      method: "GET",
      path: "/docs",
      tag: "System",
      summary: "This API's reference as a web page (Swagger UI), where each call can be tried",
      access: "public",
      serve: () => docsPage(),
    },
    {
      method: "GET",
      path: "/docs/assets/:file",
      tag: "System",
      summary: "A script or style of the reference page",
      access: "public",
      params: z.object({ file: z.enum(DOCS_ASSET_NAMES) }),
      serve: async (request) => {
        const name = new URL(request.url).pathname.slice("/docs/assets/".length);
        const response = await docsAsset(name, request.headers.get("accept-encoding") ?? "");
        if (!response) throw new HttpError(404, "No such asset of the reference page");
        return response;
      },
    },
  ];
}
