/**
 * The request pipeline: request id -> route -> credentials -> validation ->
 * one transaction with the tenant context (a streamed route: one per page) ->
 * JSON, NDJSON or problem+json -> one log line. Every route, whatever it
 * does, passes through here.
 */
import type postgres from "postgres";
import { z } from "zod";
import {
  type DatabasePool,
  type Pools,
  runTransaction,
  type Sql,
  toHttpError,
  type TransactionResult,
} from "./db.ts";
import { apiKeyHash, operatorCredential, sha256Hex } from "./http/auth.ts";
import { ndjsonResponse } from "./http/ndjson.ts";
import { HttpError, problemResponse } from "./http/problem.ts";
import { queryOf, readJsonBody, type RequestIds, requestIdsOf, validate } from "./http/request.ts";
import { Accepted, type DbRoute, type Route, Router } from "./http/router.ts";
import { log } from "./log.ts";
import { recordRateLimited, recordRequest } from "./metrics.ts";
import { type Admission, type LeaseRequests, RateLimiter } from "./rate_limit.ts";
import { adminRoutes } from "./routes/admin.ts";
import { apiKeyRoutes } from "./routes/api_keys.ts";
import { approvalRoutes } from "./routes/approvals.ts";
import { auditChainRoutes } from "./routes/audit_chain.ts";
import { auditLogRoutes } from "./routes/audit_logs.ts";
import { documentRoutes } from "./routes/documents.ts";
import { systemRoutes } from "./routes/system.ts";
import { tenantRoutes } from "./routes/tenant.ts";
import { userRoutes } from "./routes/users.ts";

/** Every route of the service, in documentation order. */
export function allRoutes(): Route[] {
  const routes: Route[] = [
    ...systemRoutes(() => routes),
    ...tenantRoutes,
    ...userRoutes,
    ...documentRoutes,
    ...apiKeyRoutes,
    ...approvalRoutes,
    ...auditLogRoutes,
    ...auditChainRoutes,
    ...adminRoutes,
  ];
  return routes;
}

// last_used_at is recorded at most once a minute per key, after the response.
const TOUCH_INTERVAL_MS = 60_000;

interface Outcome {
  response: Response;
  tenantId: string | null;
}

/** What the pipeline knows about a request before its route runs. */
interface RequestContext {
  url: URL;
  pathParams: Record<string, string>;
  ids: RequestIds;
  pools: Pools;
  /** sha256Hex of PLATFORM_ADMIN_TOKEN, the bootstrap credential; absent when it is not set. */
  bootstrapDigest?: string;
  /** Creates the bootstrap operator, once per process, when no operator is active. */
  bootstrap: (hash: string) => Promise<void>;
  /** Spends tenant requests of their plan's requests per minute; absent with RATE_LIMITS=false. */
  limiter?: RateLimiter;
  /** The request as the limiter let it through, once it has. */
  admission?: Admission;
  /** Headers every response to the request carries, whatever its status (the rate limit's). */
  headers: Record<string, string>;
}

async function serveDbRoute(route: DbRoute, request: Request, context: RequestContext): Promise<Outcome> {
  const { url, pathParams, ids, pools, bootstrapDigest } = context;
  const { config } = pools;
  let pool: DatabasePool;
  let setContext: (tx: Sql) => postgres.PendingQuery<postgres.Row[]>;
  let keyHash: string | undefined;
  // A GET changes nothing: its transaction turns read-only once the context is signed.
  const readOnly = route.method === "GET";
  if (route.access === "admin") {
    if (!pools.admin) throw new HttpError(503, "Platform routes are disabled: ADMIN_DATABASE_URL is not set");
    const credential = operatorCredential(request, bootstrapDigest);
    if (credential.bootstrap) await context.bootstrap(credential.hash);
    pool = pools.admin;
    setContext = (tx) =>
      tx`select operator_id from platform.begin_request(${credential.hash}, ${ids.server}, ${ids.client}, ${readOnly})`;
  } else {
    const hash = keyHash = apiKeyHash(request);
    pool = pools.app;
    setContext = (tx) =>
      tx`select tenant_id, key_id, last_used_at from api.begin_request(${hash}, ${
        route.permission ?? null
      }, ${ids.server}, ${ids.client}, ${readOnly})`;
  }

  const params = route.params ? validate(route.params, pathParams, "path") : {};
  // A route without query parameters and a URL without any skip the parser.
  const query = route.query || url.search ? validate(route.query ?? noQuery, queryOf(url), "query") : {};
  const body = route.body
    ? validate(route.body, await readJsonBody(request, config.bodyLimitBytes), "body")
    : undefined;

  // A request that reaches the database spends one of its tenant's minute.
  if (keyHash && context.limiter) {
    context.admission = await context.limiter.admit(keyHash);
    Object.assign(context.headers, context.admission.headers);
  }

  const input = { params, query, body };
  const status = route.status ?? 200;
  const options = { readOnly, poolWaitMs: config.poolWaitMs, context: setContext };
  const idempotencyKey = route.method === "POST" ? idempotencyKeyOf(request) : null;
  let result: TransactionResult<unknown>;
  let reply: { status: number; body: unknown; replayed: boolean };
  if (idempotencyKey) {
    const requestHash = sha256Hex(`${request.method} ${url.pathname}\n${JSON.stringify(body)}`);
    // A tenant's Idempotency-Keys are its API key's; the platform's are its own.
    const store = route.access === "admin" ? platformIdempotency : tenantIdempotency;
    result = await runTransaction(pool, { ...options, replaySafe: true }, async (tx) => {
      const [claim] = await store.claim(tx, idempotencyKey, requestHash);
      if (!claim.claimed) return replayOf(claim, requestHash, route.oneTimeSecret);
      const replied = statusOf(route.reply(await route.run({ ...input, tx }), { ...input, tx }), status);
      await store.save(tx, idempotencyKey, replied.status, withoutSecret(replied.body, route.oneTimeSecret));
      return { ...replied, replayed: false };
    });
    reply = result.value as typeof reply;
  } else {
    let used: Sql | undefined;
    result = await runTransaction(pool, options, (tx) => route.run({ ...input, tx: used = tx }));
    reply = {
      // A stream's pages become lines as the client reads them.
      ...(route.ndjson
        ? { status, body: null }
        : statusOf(route.reply(result.value as postgres.Row[], { ...input, tx: used! }), status)),
      replayed: false,
    };
  }

  const contextRow = result.context[0];
  if (keyHash && contextRow && isStale(contextRow.last_used_at)) touchKey(pools.app, keyHash);
  const tenantId = (contextRow?.tenant_id as string | undefined) ?? null;

  if (route.ndjson) {
    const response = ndjsonResponse(
      route.ndjson,
      result.value as postgres.Row[],
      query,
      (rows, pageQuery) =>
        route.reply(rows, { ...input, query: pageQuery, tx: undefined as never }) as unknown[],
      async (pageQuery) =>
        (await runTransaction(pool, options, (tx) => route.run({ ...input, query: pageQuery, tx })))
          .value as postgres.Row[],
    );
    return { response, tenantId };
  }

  const headers = new Headers({ "content-type": "application/json" });
  if (reply.replayed) headers.set("idempotent-replayed", "true");
  // A response that may carry a secret shown once is kept by no cache.
  if (route.oneTimeSecret) headers.set("cache-control", "no-store");
  const response = reply.status === 204
    ? new Response(null, { status: reply.status })
    : new Response(JSON.stringify(reply.body), { status: reply.status, headers });
  return { response, tenantId };
}

/** Where the Idempotency-Keys of a request are claimed and its response stored. */
interface IdempotencyStore {
  claim(tx: Sql, key: string, requestHash: string): Promise<postgres.Row[]>;
  save(tx: Sql, key: string, status: number, body: unknown): Promise<unknown>;
}

const tenantIdempotency: IdempotencyStore = {
  claim: (tx, key, requestHash) => tx`select * from api.claim_idempotency_key(${key}, ${requestHash})`,
  save: (tx, key, status, body) =>
    tx`select api.save_idempotent_response(${key}, ${status}, ${tx.json(body as never)})`,
};

const platformIdempotency: IdempotencyStore = {
  claim: (tx, key, requestHash) => tx`select * from platform.claim_idempotency_key(${key}, ${requestHash})`,
  save: (tx, key, status, body) =>
    tx`select platform.save_idempotent_response(${key}, ${status}, ${tx.json(body as never)})`,
};

// Routes without a query schema accept no query parameters at all.
const noQuery = z.strictObject({});

const wellFormedIdempotencyKey = /^[\x21-\x7e]{1,255}$/;

function idempotencyKeyOf(request: Request): string | null {
  const key = request.headers.get("idempotency-key");
  if (key === null) return null;
  if (!wellFormedIdempotencyKey.test(key)) {
    throw new HttpError(400, "The Idempotency-Key header is invalid", {
      errors: [{
        location: "header",
        field: "idempotency-key",
        message: "Must be 1-255 visible ASCII characters",
      }],
    });
  }
  return key;
}

// A reply accepted for later (Accepted) is a 202; any other has the route's status.
function statusOf(replied: unknown, status: number): { status: number; body: unknown } {
  return replied instanceof Accepted ? { status: 202, body: replied.body } : { status, body: replied };
}

// A secret shown once (a new API key) is never stored for replays.
function withoutSecret(body: unknown, secret: string | undefined): unknown {
  if (!secret || typeof body !== "object" || body === null) return body;
  const { [secret]: _shownOnce, ...rest } = body as Record<string, unknown>;
  return rest;
}

// What an earlier request with the same Idempotency-Key answered.
function replayOf(claim: postgres.Row, requestHash: string, secret: string | undefined) {
  if (claim.request_hash !== requestHash) {
    throw new HttpError(422, "This Idempotency-Key was already used for a different request");
  }
  if (claim.response_status === null) {
    throw new HttpError(409, "A request with this Idempotency-Key is still in progress; retry shortly");
  }
  const status = Number(claim.response_status);
  if (secret && status < 300) {
    const body = claim.response_body as Record<string, unknown> | null;
    // A key issued (201) names its key_id; one waiting for approval (202) its request.
    const named = body?.key_id
      ? ` (key_id ${body.key_id}); revoke it and issue a new one if it was lost`
      : body?.approval_id
      ? ` (approval request ${body.approval_id}); reject it and ask again if it was lost`
      : "";
    throw new HttpError(
      409,
      `The ${secret} was shown only to the first request with this Idempotency-Key${named}`,
    );
  }
  return { status, body: claim.response_body, replayed: true };
}

// While no operator is active, the bootstrap token (PLATFORM_ADMIN_TOKEN)
// creates the operator "bootstrap" whose credential it is. Asked once per
// process; a failed attempt is asked again by the next request.
function bootstrapOnce(pools: Pools): (hash: string) => Promise<void> {
  let done: Promise<void> | undefined;
  return (hash) => {
    done ??= pools.admin!.withConnection(async (sql) => {
      await sql`select platform.bootstrap_operator(${hash})`;
    }).catch((error) => {
      done = undefined;
      throw toHttpError(error);
    });
    return done;
  };
}

// A slice of the key's tenant's requests per minute, in a transaction of its
// own, authenticated as every tenant request is.
function leaseFrom(pools: Pools): LeaseRequests {
  return async (keyHash, most) => {
    const { value } = await runTransaction(
      pools.app,
      {
        readOnly: false,
        // Running a lease twice leases twice: less for this minute, never more.
        replaySafe: true,
        poolWaitMs: pools.config.poolWaitMs,
        context: (tx) =>
          tx`select tenant_id from api.begin_request(${keyHash}, null, ${crypto.randomUUID()}, null, false)`,
      },
      (tx) =>
        tx`select tenant_id, granted, request_limit, remaining, resets_in_ms from api.lease_requests(${most})`,
    );
    const [lease] = value as postgres.Row[];
    return {
      tenantId: lease.tenant_id,
      granted: lease.granted,
      limit: lease.request_limit,
      remaining: lease.remaining,
      resetsInMs: lease.resets_in_ms,
    };
  };
}

function isStale(lastUsedAt: unknown): boolean {
  return !lastUsedAt || Date.now() - Date.parse(String(lastUsedAt)) > TOUCH_INTERVAL_MS;
}

function touchKey(pool: DatabasePool, keyHash: string): void {
  pool.withConnection((sql) => sql`select api.touch_api_key(${keyHash})`).catch((error) =>
    log("warn", "could not record API key use", { code: (error as { code?: string }).code })
  );
}

/**
 * Builds the service's request handler.
 *
 * @param pools database pools and configuration
 * @returns a handler for Deno.serve
 */
export function createHandler(pools: Pools): (request: Request) => Promise<Response> {
  const router = new Router(allRoutes());
  const token = pools.config.platformAdminToken;
  const bootstrapDigest = token ? sha256Hex(token) : undefined;
  const bootstrap = bootstrapOnce(pools);
  const limiter = pools.config.rateLimits ? new RateLimiter(leaseFrom(pools)) : undefined;
  return async function handle(request: Request): Promise<Response> {
    const started = performance.now();
    const ids = requestIdsOf(request);
    const url = new URL(request.url);
    const headers: Record<string, string> = {};
    let context: RequestContext | undefined;
    let routeName = "unmatched";
    let tenantId: string | null = null;
    let response: Response;
    try {
      const match = router.match(request.method, url.pathname);
      if (match.kind === "not_found") throw new HttpError(404, "No such route; see /docs");
      if (match.kind === "method_not_allowed") {
        throw new HttpError(405, `Use ${match.allow.join(", ")} on this path`, {
          headers: { allow: match.allow.join(", ") },
        });
      }
      const { route, params } = match;
      routeName = `${route.method} ${route.path}`;
      if (route.access === "public") {
        response = await route.serve(request, pools);
      } else {
        context = { url, pathParams: params, ids, pools, bootstrapDigest, bootstrap, limiter, headers };
        ({ response, tenantId } = await serveDbRoute(route, request, context));
      }
    } catch (error) {
      // A key the limiter knew that is no longer valid spends nothing, and
      // its answer says nothing of its tenant's minute.
      if (error instanceof HttpError && error.status === 401 && context?.admission) {
        context.admission.unauthorized();
        for (const name of Object.keys(context.admission.headers)) delete headers[name];
      }
      if (!(error instanceof HttpError)) {
        log("error", "unhandled error", { request_id: ids.server, error: String((error as Error)?.name) });
      } else if (error.status === 500) {
        log("error", "database error", { request_id: ids.server, sqlstate: error.options.sqlstate });
      } else if (error.status === 429) {
        recordRateLimited();
      }
      response = problemResponse(
        error instanceof HttpError ? error : new HttpError(500, "An unexpected error occurred"),
        ids.echoed,
      );
    }
    for (const [name, value] of Object.entries(headers)) response.headers.set(name, value);
    response.headers.set("x-request-id", ids.echoed);
    recordRequest(routeName, response.status, (performance.now() - started) / 1000);
    if (pools.config.logRequests) {
      log("info", "request", {
        method: request.method,
        route: routeName,
        status: response.status,
        duration_ms: Math.round((performance.now() - started) * 100) / 100,
        request_id: ids.server,
        client_request_id: ids.client,
        tenant_id: tenantId,
      });
    }
    return response;
  };
}
