/**
 * The route model: each route declares its method, path, access, permission
 * and zod schemas once; the same declaration drives validation, dispatch and
 * the OpenAPI document.
 */
import type { z } from "zod";
import type { PendingQuery, Pools, Sql } from "../db.ts";
import type postgres from "postgres";

/** HTTP methods the API uses. */
export type Method = "GET" | "POST" | "PATCH" | "DELETE";

/** Permissions an API key can hold; `*` holds them all. */
export const PERMISSIONS = [
  "users:read",
  "users:write",
  "documents:read",
  "documents:write",
  "keys:read",
  "keys:write",
  "audit:read",
  "config:read",
  "config:write",
  "*",
] as const;

/** One permission an API key can hold. */
export type Permission = (typeof PERMISSIONS)[number];

/**
 * What a route's reply returns instead of its body when the request was
 * accepted but not carried out yet (a change waiting for a second person's
 * approval): answered 202 with this body.
 */
export class Accepted {
  /** @param body the response body, e.g. the pending approval request */
  constructor(readonly body: unknown) {}
}

/** Validated input of a database route. */
export interface RouteInput<P, Q, B> {
  tx: Sql;
  params: P;
  query: Q;
  body: B;
}

interface RouteDocs {
  method: Method;
  /** URLPattern pathname, e.g. `/v1/users/:user_id`. */
  path: string;
  tag: string;
  summary: string;
  params?: z.ZodType;
  query?: z.ZodType;
  body?: z.ZodType;
  response?: z.ZodType;
  /** Status of a successful response (200 unless stated). */
  status?: number;
}

/** A route that needs no database transaction (health, docs). */
export interface PublicRoute extends RouteDocs {
  access: "public";
  serve(request: Request, pools: Pools): Response | Promise<Response>;
}

/** A route that runs one transaction as app_user (tenant) or uber_admin (admin). */
export interface DbRoute extends RouteDocs {
  access: "tenant" | "admin";
  /** Permission a tenant key needs; none means any valid key. */
  permission?: Permission;
  /**
   * Response field shown only once (a new API key). It is never stored for
   * Idempotency-Key replays; a retry is told the secret cannot be shown again.
   */
  oneTimeSecret?: string;
  /** An NDJSON stream of pages, each page a transaction of its own (see NdjsonPages). */
  ndjson?: NdjsonPages<unknown>;
  run(input: RouteInput<unknown, unknown, unknown>): PendingQuery | Promise<postgres.Row[]>;
  reply(rows: postgres.Row[], input: RouteInput<unknown, unknown, unknown>): unknown;
}

/**
 * How a streamed route reads on: the route's `reply` turns a page's rows
 * into lines, `next` names the query of the page after them and whether
 * there is one, `resume` what the end line says. Each page runs in a transaction of its own, authenticated again, so a
 * stream holds one page in memory and no transaction open while the client
 * reads, and a key revoked meanwhile ends it.
 */
export interface NdjsonPages<Q> {
  /** The query of the page after these rows, and whether there is one. */
  next(rows: postgres.Row[], query: Q): { query: Q; more: boolean };
  /** Trailer fields saying where a stream that ends at this query resumes. */
  resume(query: Q): Record<string, unknown>;
}

/** Any route of the table. */
export type Route = PublicRoute | DbRoute;

/** Declaration of a database route with typed input. */
export interface DbRouteSpec<P, Q, B> extends RouteDocs {
  access: "tenant" | "admin";
  permission?: Permission;
  oneTimeSecret?: string;
  ndjson?: NdjsonPages<Q>;
  params?: z.ZodType<P>;
  query?: z.ZodType<Q>;
  body?: z.ZodType<B>;
  run(input: RouteInput<P, Q, B>): PendingQuery | Promise<postgres.Row[]>;
  reply(rows: postgres.Row[], input: RouteInput<P, Q, B>): unknown;
}

/**
 * Declares a database route; the generics type the handler's input from the
 * schemas, then are erased so routes of every shape share one table.
 *
 * @param spec the route
 * @returns the route for the table
 */
export function dbRoute<P = Record<string, never>, Q = Record<string, never>, B = undefined>(
  spec: DbRouteSpec<P, Q, B>,
): DbRoute {
  return spec as unknown as DbRoute;
}

/** A route with its compiled pattern. */
interface CompiledRoute {
  route: Route;
  pattern: URLPattern;
  /** Path up to the first parameter, and its number of segments. */
  prefix: string;
  segments: number;
}

function segmentCount(path: string): number {
  return path.split("/").length;
}

/** Outcome of matching a request against the table. */
export type Match =
  | { kind: "found"; route: Route; params: Record<string, string> }
  | { kind: "method_not_allowed"; allow: Method[] }
  | { kind: "not_found" };

/** Matches requests to routes by path, then method. */
export class Router {
  readonly #compiled: CompiledRoute[];

  /**
   * @param routes the route table
   */
  constructor(readonly routes: Route[]) {
    this.#compiled = routes.map((route) => ({
      route,
      pattern: new URLPattern({ pathname: route.path }),
      prefix: route.path.split(":")[0],
      segments: segmentCount(route.path),
    }));
  }

  /**
   * Finds the route for a method and path.
   *
   * @param method the request method
   * @param pathname the request path
   * @returns the route and its path parameters, or why there is none
   */
  match(method: string, pathname: string): Match {
    const allow: Method[] = [];
    const segments = segmentCount(pathname);
    for (const { route, pattern, prefix, segments: expected } of this.#compiled) {
      // URLPattern.exec costs microseconds; skip routes that cannot match.
      if (segments !== expected || !pathname.startsWith(prefix)) continue;
      const result = pattern.exec({ pathname });
      if (!result) continue;
      if (route.method === method) {
        return { kind: "found", route, params: result.pathname.groups as Record<string, string> };
      }
      allow.push(route.method);
    }
    return allow.length ? { kind: "method_not_allowed", allow } : { kind: "not_found" };
  }
}
