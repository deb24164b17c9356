/**
 * Database pools and the one way the HTTP layer runs SQL: a transaction per
 * request on a connection of its own, with BEGIN, the context statement, the
 * route's query and COMMIT pipelined so that a simple request costs one round
 * trip to PostgreSQL. Errors leave here as HttpError, never as driver errors.
 */
import postgres from "postgres";
import type { Config } from "./config.ts";
import { parseJson } from "./http/json.ts";
import { HttpError } from "./http/problem.ts";
import { log } from "./log.ts";
import { recordDatabaseError, recordQuotaRefusal, recordRetry } from "./metrics.ts";

/** A postgres.js client (in a DatabasePool, one holding a single connection). */
export type Sql = postgres.Sql<Record<string, never>>;

/** A query that has been built but not necessarily sent yet. */
export type PendingQuery = postgres.PendingQuery<postgres.Row[]>;

/** Both pools of the service; `admin` is absent when ADMIN_DATABASE_URL is not set. */
export interface Pools {
  app: DatabasePool;
  admin?: DatabasePool;
  config: Config;
}

// PostgreSQL prints timestamptz as "2026-11-24 20:12:11.8275+00" (the session
// runs in UTC). Keeping it a string preserves microseconds, which keyset
// cursors need; JavaScript dates would round them to milliseconds.
function isoTimestamp(value: string): string {
  const iso = value.replace(" ", "T");
  return iso.endsWith("+00") ? `${iso.slice(0, -3)}Z` : iso.replace(/([+-]\d\d)$/, "$1:00");
}

// The text forms the parsers above read. PgBouncer tracks TimeZone and
// DateStyle per client; it refuses IntervalStyle, which no column of the API
// has.
const TEXT_FORMS = { TimeZone: "UTC", DateStyle: "ISO, MDY" };

function clientOptions(config: Config) {
  return {
    max: 1,
    connect_timeout: config.connectTimeoutSeconds,
    idle_timeout: 60,
    // postgres.js would end the connection at its lifetime even between two
    // statements of an open transaction; DatabasePool recycles it on release.
    max_lifetime: null,
    // PgBouncer in transaction mode hands each transaction to any server
    // connection, so statements prepared on one are unknown on the next.
    prepare: !config.pgbouncer,
    onnotice: () => {},
    types: {
      timestamptz: {
        to: 1184,
        from: [1184],
        serialize: (value: unknown) => value instanceof Date ? value.toISOString() : String(value),
        parse: isoTimestamp,
      },
      // jsonb keeps numbers exactly; so does parsing it (see http/json.ts).
      json: {
        to: 3802,
        from: [114, 3802],
        serialize: (value: unknown) => JSON.stringify(value),
        parse: parseJson,
      },
    },
    // PgBouncer refuses startup parameters it does not track, such as
    // statement_timeout; behind it the role's own settings (set by the
    // migrations) apply. Otherwise the service's own limits win over the
    // role's, which anyone holding the role's password could change.
    connection: config.pgbouncer ? { application_name: "tenancy-api", ...TEXT_FORMS } : {
      application_name: "tenancy-api",
      ...TEXT_FORMS,
      IntervalStyle: "postgres",
      statement_timeout: config.statementTimeoutMs,
      lock_timeout: 3000,
      idle_in_transaction_session_timeout: 10_000,
      default_transaction_read_only: false,
    },
  };
}

const MAX_LIFETIME_MS = 30 * 60 * 1000;

/** One connection of a DatabasePool: a single-connection postgres.js client. */
export interface PooledConnection {
  sql: Sql;
  /** The connection is known to be open: it answered and has not closed since. */
  connected: boolean;
  /** When it last connected, for recycling old connections. */
  since: number;
  /** Its connection has closed since it connected: the client is replaced before reuse. */
  closed: boolean;
}

/**
 * A fixed number of connections, each lent to one caller at a time.
 *
 * Why not postgres.js's own pool: in 3.4.9 its reserve() loses connections
 * for good when connections fail (a rejected reservation stays queued and
 * later swallows a healthy connection; porsager/postgres#1195), and a query
 * or release() on a reserved connection whose socket closed crashes the
 * process or corrupts the pool (#1199, #1208). After a database restart under
 * load the service crashed, or answered 503 forever. Here each connection is
 * a postgres.js client of its own (max: 1), lent to one caller at a time and
 * used for one connection only: once that connection failed or closed, the
 * client is replaced by a fresh one.
 */
export class DatabasePool {
  readonly #url: string;
  readonly #config: Config;
  readonly #idle: PooledConnection[];
  readonly #waiters: { resolve: (slot: PooledConnection) => void; reject: (error: Error) => void }[] = [];
  readonly #clients = new Set<Sql>();
  #ended = false;

  /**
   * @param url connection URL (its password never appears in errors or logs)
   * @param config pool size (DB_POOL_MAX), timeouts, PgBouncer mode
   */
  constructor(url: string, config: Config) {
    this.#url = url;
    this.#config = config;
    this.#idle = Array.from({ length: config.poolMax }, () => this.#newConnection());
  }

  #newConnection(): PooledConnection {
    const slot: PooledConnection = {
      sql: undefined as unknown as Sql,
      connected: false,
      since: 0,
      closed: false,
    };
    const sql = postgres(this.#url, {
      ...clientOptions(this.#config),
      onclose: () => {
        if (slot.sql !== sql) return;
        slot.connected = false;
        slot.closed = true;
      },
    }) as unknown as Sql;
    slot.sql = sql;
    this.#clients.add(sql);
    return slot;
  }

  /**
   * Lends a connection, waiting at most `waitMs` for one to be free.
   *
   * @param waitMs longest wait before giving up
   * @returns the connection; give it back with release()
   * @throws HttpError 503 when none is free in time or the pool is closed
   */
  acquire(waitMs: number): Promise<PooledConnection> {
    if (this.#ended) return Promise.reject(new HttpError(503, "The service is shutting down"));
    const slot = this.#idle.pop();
    if (slot) return Promise.resolve(slot.closed ? this.#replace(slot) : slot);
    return new Promise((resolve, reject) => {
      const waiter = {
        resolve: (slot: PooledConnection) => {
          clearTimeout(timer);
          resolve(slot);
        },
        reject: (error: Error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
      const timer = setTimeout(() => {
        this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
        reject(new HttpError(503, "All database connections are busy; retry shortly"));
      }, waitMs);
      this.#waiters.push(waiter);
    });
  }

  /**
   * Takes a connection back. One whose connection failed, or that is older
   * than the lifetime, is replaced by a fresh client.
   *
   * @param slot the connection acquire() lent
   * @param failed true when a connection-level error was seen on it
   */
  release(slot: PooledConnection, failed: boolean): void {
    const old = slot.connected && performance.now() - slot.since > MAX_LIFETIME_MS;
    const next = failed || old || slot.closed ? this.#replace(slot) : slot;
    if (this.#ended) {
      this.#retire(next.sql);
      return;
    }
    const waiter = this.#waiters.shift();
    if (waiter) waiter.resolve(next);
    else this.#idle.push(next);
  }

  // A client is used for one connection only: postgres.js 3.4.9 can leave a
  // client whose connection was reset unable to connect again (its next
  // queries hang until connect_timeout), so a fresh client is cheaper than
  // trusting its reconnect.
  #replace(slot: PooledConnection): PooledConnection {
    this.#retire(slot.sql);
    return this.#newConnection();
  }

  #retire(sql: Sql): void {
    this.#clients.delete(sql);
    sql.end({ timeout: 0 }).catch(() => {});
  }

  /** How many connections the pool has, how many are free, and how many callers wait for one. */
  stats(): { size: number; idle: number; waiting: number } {
    return { size: this.#config.poolMax, idle: this.#idle.length, waiting: this.#waiters.length };
  }

  /**
   * Runs statements on one connection outside any transaction: one statement,
   * or several that are harmless without one.
   *
   * @param fn the statements, given the connection
   * @returns what fn returns
   */
  async withConnection<T>(fn: (sql: Sql) => Promise<T>): Promise<T> {
    const slot = await this.acquire(this.#config.poolWaitMs);
    let failed = false;
    try {
      const value = await fn(slot.sql);
      markConnected(slot);
      return value;
    } catch (error) {
      failed = connectionLost(error);
      throw error;
    } finally {
      this.release(slot, failed);
    }
  }

  /**
   * Closes every connection, letting running queries finish for up to
   * `timeoutSeconds`; later acquire() calls fail with 503.
   *
   * @param timeoutSeconds grace period before connections are cut
   */
  async end(timeoutSeconds: number): Promise<void> {
    this.#ended = true;
    for (const waiter of this.#waiters.splice(0)) {
      waiter.reject(new HttpError(503, "The service is shutting down"));
    }
    await Promise.all([...this.#clients].map((sql) => sql.end({ timeout: timeoutSeconds })));
  }
}

function markConnected(slot: PooledConnection): void {
  if (!slot.connected) slot.since = performance.now();
  slot.connected = true;
}

/**
 * Keeps a connection that dies while it opens from ending the process.
 *
 * postgres.js 3.4.9 sends a query of its own on each new connection (the
 * array types, connection.js fetchArrayTypes) and leaves its promise
 * unobserved: when that query is cancelled or its connection terminated
 * meanwhile (a DBA's, or an attacker's, pg_cancel_backend or
 * pg_terminate_backend; a restart), the rejection reaches the process and
 * Deno exits. Nothing is lost by observing it here: every query of the
 * service's own is awaited, the client reports a closed connection, and
 * DatabasePool replaces it. So an error the server sent (a PostgresError)
 * or a lost connection is logged; any other unhandled rejection still ends
 * the process.
 */
export function survivePostgresTypeFetchFailures(): void {
  if (typeFetchGuardInstalled) return;
  typeFetchGuardInstalled = true;
  globalThis.addEventListener("unhandledrejection", (event) => {
    const fromServer = (event.reason as { name?: string } | null)?.name === "PostgresError";
    if (!fromServer && !isTransientDatabaseError(event.reason)) return;
    event.preventDefault();
    log("warn", "a database connection was lost while it opened", {
      code: (event.reason as { code?: string }).code,
    });
  });
}
let typeFetchGuardInstalled = false;

/**
 * Opens a pool of DB_POOL_MAX connections.
 *
 * @param url connection URL (its password never appears in errors or logs)
 * @param config pool size, timeouts
 * @returns the pool; connections open lazily
 */
export function createPool(url: string, config: Config): DatabasePool {
  return new DatabasePool(url, config);
}

/**
 * Opens the app pool, and the admin pool when configured.
 *
 * @param config service configuration
 * @returns the pools
 */
export function createPools(config: Config): Pools {
  return {
    app: createPool(config.appDatabaseUrl, config),
    admin: config.adminDatabaseUrl ? createPool(config.adminDatabaseUrl, config) : undefined,
    config,
  };
}

/**
 * Closes every pool, letting running queries finish for up to `timeoutSeconds`.
 *
 * @param pools the pools to close
 * @param timeoutSeconds grace period before connections are cut
 */
export async function closePools(pools: Pools, timeoutSeconds = 5): Promise<void> {
  // postgres.js's end() can stay pending after failed connection attempts;
  // never let that hold up a shutdown.
  let timer: ReturnType<typeof setTimeout> | undefined;
  const bound = new Promise((resolve) => timer = setTimeout(resolve, timeoutSeconds * 1000 + 500));
  await Promise.race([
    Promise.all([pools.app.end(timeoutSeconds), pools.admin?.end(timeoutSeconds)]),
    bound,
  ]);
  clearTimeout(timer);
}

/**
 * Opens `count` connections at once and checks each with a query, so a
 * misconfigured URL shows at start-up rather than on the first request.
 *
 * @param pool the pool
 * @param count how many connections to open
 */
export async function warmPool(pool: DatabasePool, count: number): Promise<void> {
  await Promise.all(Array.from({ length: count }, () => pool.withConnection((sql) => sql`select 1`)));
}

const transientCodes = new Set(["53300", "57P01", "57P02", "57P03", "40001", "40P01"]);
const driverConnectionCodes = new Set([
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "CONNECT_TIMEOUT",
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENOTFOUND",
]);

/**
 * Tells whether an error means the database was unreachable or briefly unable
 * to serve, as opposed to a problem with the request.
 *
 * @param error anything thrown by postgres.js
 * @returns true for connection failures, shutdowns, overload, serialization failures
 */
export function isTransientDatabaseError(error: unknown): boolean {
  const code = (error as { code?: unknown })?.code;
  if (typeof code !== "string") {
    return error instanceof Deno.errors.ConnectionRefused || error instanceof Deno.errors.ConnectionReset;
  }
  return code.startsWith("08") || transientCodes.has(code) || driverConnectionCodes.has(code);
}

/**
 * Maps a database error to the HTTP error a client may see.
 *
 * @param error anything thrown while running a request's SQL
 * @returns an HttpError; unknown errors become a bare 500
 */
export function toHttpError(error: unknown): HttpError {
  if (error instanceof HttpError) return error;
  if (isTransientDatabaseError(error)) {
    return new HttpError(503, "The database is unavailable; retry shortly");
  }
  const code = (error as { code?: unknown })?.code;
  const message = String((error as { message?: unknown })?.message ?? "");
  // Class 22 (data exception): a value PostgreSQL cannot take, such as a date
  // it cannot represent. The request is at fault, not the service.
  if (typeof code === "string" && code.startsWith("22")) {
    return new HttpError(400, "A value is out of range or malformed");
  }
  switch (code) {
    case "PT401":
      if (message.startsWith("unknown or revoked operator")) {
        return new HttpError(401, "The operator credential is unknown or revoked");
      }
      if (message.startsWith("a platform change needs")) {
        return new HttpError(401, "A platform change needs a named operator's credential");
      }
      return new HttpError(401, "The API key is unknown, revoked or expired");
    // Our own fixed sentence (the last active operator), safe to show.
    case "PT409":
      return new HttpError(409, `${message.charAt(0).toUpperCase()}${message.slice(1)}`);
    // Our own fixed sentence from api.create_document, safe to show.
    case "PT422":
      return new HttpError(422, `${message.charAt(0).toUpperCase()}${message.slice(1)}`);
    case "PT403":
      // Our own messages from the SQL functions and triggers that guard keys,
      // users and documents ("a key can only ...", "a key bound to a user
      // ..."): fixed sentences, safe to show.
      return new HttpError(
        403,
        message.startsWith("a key ")
          ? `A${message.slice(1)}`
          : "The API key lacks the permission this route needs",
      );
    // Only a caller that skipped api.request_approval (the routes ask it
    // first) meets this: a change the tenant holds for a second person.
    case "PT428":
      return new HttpError(409, "This change needs a second person's approval (require_two_person_approval)");
    case "PTQ09":
    case "PTQ13":
      return quotaError(code, (error as { detail?: unknown }).detail);
    case "23505":
      return new HttpError(409, "A resource with the same unique value already exists");
    case "23503":
      return message.startsWith("update or delete")
        ? new HttpError(409, "The resource is still referenced by other resources")
        : new HttpError(422, "A referenced resource does not exist in this tenant");
    case "23514":
      return new HttpError(400, "A value is out of range or malformed");
    case "P0002":
      return new HttpError(404, "A referenced resource does not exist");
    case "57014":
      return new HttpError(503, "The request took too long; retry shortly");
    // lock_timeout (3 s for app_user): another transaction holds the row; a
    // conflict of the moment, not a fault of the service or the request.
    case "55P03":
      return new HttpError(503, "The resource is busy; retry shortly");
    case "42501":
      return new HttpError(403, "The operation is not permitted");
  }
  return new HttpError(500, "An unexpected error occurred", {
    sqlstate: typeof code === "string" ? code : undefined,
  });
}

const QUOTA_LABELS: Record<string, string> = {
  documents: "documents",
  users: "users",
  api_keys: "API keys that are not revoked",
  metadata_bytes: "bytes of metadata per document",
};

// A plan's limit, refused by core.meter_usage with its own detail (a JSON
// object of quota, limit and usage, nothing else). A count at its limit is a
// 409: the request is fine, the tenant's state is not (deleting frees
// capacity); metadata larger than the plan allows is a 413.
function quotaError(code: "PTQ09" | "PTQ13", detail: unknown): HttpError {
  let quota = { quota: "", limit: 0, usage: 0 };
  try {
    quota = JSON.parse(String(detail));
  } catch {
    // Not ours: say only what kind of refusal it was.
  }
  recordQuotaRefusal(QUOTA_LABELS[quota.quota] ? quota.quota : "unknown");
  const label = QUOTA_LABELS[quota.quota] ?? "the plan's limit";
  const limit = Number(quota.limit).toLocaleString("en-US");
  const usage = Number(quota.usage).toLocaleString("en-US");
  return new HttpError(
    code === "PTQ09" ? 409 : 413,
    code === "PTQ09"
      ? `The plan allows ${limit} ${label}; the tenant has ${usage}`
      : `The plan allows ${limit} ${label}; this one has ${usage}`,
    {
      type: "https://tenancy.dev/problems/quota-exceeded",
      extensions: { quota: quota.quota, limit: quota.limit, usage: quota.usage },
    },
  );
}

// The HTTP error a database error becomes, counted by its class (an error
// the route raised itself, such as a 404, is no database error).
function counted(error: unknown): HttpError {
  const mapped = toHttpError(error);
  if (error instanceof HttpError) return mapped;
  const code = (error as { code?: unknown })?.code;
  recordDatabaseError(
    code === "57014" || code === "55P03"
      ? "timeout"
      : mapped.status === 503
      ? "transient"
      : mapped.status >= 500
      ? "server"
      : "client",
  );
  return mapped;
}

/** What `runTransaction` needs to know about the request. */
export interface TransactionOptions {
  /** The work only reads (its context statement makes the transaction read-only), so a retry is safe. */
  readOnly: boolean;
  /** Statement that sets the context, sent right after BEGIN (e.g. api.begin_request). */
  context: (sql: Sql) => PendingQuery;
  /** Longest wait for a free connection before answering 503. */
  poolWaitMs: number;
  /**
   * The work may run twice without harm even if a COMMIT's outcome is
   * unknown (it is read-only, or guarded by an Idempotency-Key).
   */
  replaySafe?: boolean;
  /** Time after which no further attempt starts (default: 3 s from now). */
  retryBudgetMs?: number;
}

/** Result of a transaction: the context statement's rows and the work's result. */
export interface TransactionResult<T> {
  context: postgres.Row[];
  value: T;
}

/** Attempts per transaction, the first included. */
export const MAX_ATTEMPTS = 4;
const DEFAULT_RETRY_BUDGET_MS = 3000;

function isPendingQuery(value: unknown): value is PendingQuery {
  return typeof (value as PendingQuery)?.execute === "function" &&
    typeof (value as PendingQuery)?.then === "function";
}

/** Exponential backoff with full jitter: 0-25 ms, 0-50 ms, 0-100 ms, ... */
function backoffMs(attempt: number): number {
  return Math.random() * 25 * 2 ** (attempt - 1);
}

// An ERROR from the server reports a statement that failed, so the
// transaction it belonged to did not commit. A FATAL ends the session: it may
// arrive after a COMMIT that landed, so it proves nothing.
function reportedByServer(error: unknown): boolean {
  return (error as { severity?: unknown })?.severity === "ERROR";
}

// The connection itself failed (or the server ended the session): the client
// must not be used again (see DatabasePool), and the server has ended the
// transaction with the session, so no ROLLBACK is sent.
function connectionLost(error: unknown): boolean {
  const { code, severity } = (error ?? {}) as { code?: unknown; severity?: unknown };
  if (severity === "FATAL" || severity === "PANIC") return true;
  if (typeof code !== "string") {
    return error instanceof Deno.errors.ConnectionReset || error instanceof Deno.errors.BrokenPipe;
  }
  return driverConnectionCodes.has(code) || code.startsWith("08");
}

/** Why one attempt failed, and whether anything had been sent by then. */
class AttemptFailure {
  constructor(readonly error: unknown, readonly sent: boolean) {}
}

async function attemptTransaction<T>(
  pool: DatabasePool,
  options: TransactionOptions,
  work: (tx: Sql) => PendingQuery | Promise<T>,
): Promise<TransactionResult<T>> {
  let slot: PooledConnection;
  try {
    slot = await pool.acquire(options.poolWaitMs);
  } catch (error) {
    throw new AttemptFailure(error, false);
  }
  const tx = slot.sql;
  // Every transaction begins read-write: signing the context numbers it
  // (nextval), which a read-only transaction may not. The context statement
  // turns a read-only request's transaction read-only right after. A context
  // is signed and verifies only under READ COMMITTED; saying so here keeps a
  // changed role default (ALTER ROLE ... SET default_transaction_isolation,
  // open to anyone holding the role's password) from refusing every request.
  const beginStatement = "begin isolation level read committed read write";
  let open = false;
  let lost = false;
  try {
    let begin: Promise<unknown>;
    if (slot.connected) {
      begin = tx.unsafe(beginStatement).execute();
    } else {
      // Statements sent while the client is still connecting wait in its
      // queue, and when that connection fails postgres.js sends the next one
      // on a new connection, outside the transaction. So on a connection not
      // known to be open, BEGIN goes alone first.
      try {
        await tx.unsafe(beginStatement);
      } catch (error) {
        lost = connectionLost(error);
        throw new AttemptFailure(error, false);
      }
      markConnected(slot);
      begin = Promise.resolve();
    }
    open = true;
    const context = options.context(tx).execute();
    // Every outcome is read below; these handlers only keep a rejection from
    // counting as unhandled (which ends a Deno process) when `work` throws
    // before they are awaited.
    begin.catch(() => {});
    context.catch(() => {});
    const pending = work(tx);
    if (isPendingQuery(pending)) {
      pending.execute();
      const commit = tx`commit`.execute();
      // Settle in pipeline order so the first failure reported is the real
      // cause (say, PT401), not the "transaction aborted" that follows it.
      const settled = await Promise.allSettled([begin, context, pending, commit]);
      open = false;
      const failure = settled.find((outcome) => outcome.status === "rejected");
      if (failure) throw (failure as PromiseRejectedResult).reason;
      markConnected(slot);
      return {
        context: (settled[1] as PromiseFulfilledResult<postgres.Row[]>).value,
        value: (settled[2] as PromiseFulfilledResult<T>).value,
      };
    }
    // Observed below; without this a failed context statement would leave the
    // work's rejection (transaction aborted) unhandled.
    const result = Promise.resolve(pending);
    result.catch(() => {});
    const [, contextRows] = await Promise.all([begin, context]);
    const value = await result;
    await tx`commit`;
    open = false;
    markConnected(slot);
    return { context: contextRows, value };
  } catch (error) {
    if (error instanceof AttemptFailure) throw error;
    lost = connectionLost(error);
    if (open && !lost) await tx`rollback`.catch(() => {});
    throw new AttemptFailure(error, true);
  } finally {
    pool.release(slot, lost);
  }
}

/**
 * Runs one request's transaction on a connection of its own, retrying
 * transient failures.
 *
 * BEGIN, the context statement and the first query of `work` are sent
 * together. When `work` returns a single unsent query, COMMIT follows it in
 * the same write, so the whole transaction costs one round trip.
 *
 * A failed attempt is retried, with jittered exponential backoff, at most
 * MAX_ATTEMPTS times within the budget, when the failure is transient
 * (connection refused or lost, server shutting down or starting, too many
 * connections, serialization failure, deadlock) and re-running is safe:
 * nothing was sent yet, the server reported the failure (so nothing
 * committed), or the work is replay-safe. A write whose COMMIT may have
 * landed is never blindly re-run.
 *
 * @param pool the pool
 * @param options read-only flag, context statement, pool wait bound, retry policy
 * @param work the route's SQL, given the transaction's connection
 * @returns the context rows and the work's result
 * @throws HttpError mapped from the last database error
 */
export async function runTransaction<T>(
  pool: DatabasePool,
  options: TransactionOptions,
  work: (tx: Sql) => PendingQuery | Promise<T>,
): Promise<TransactionResult<T>> {
  const deadline = performance.now() + (options.retryBudgetMs ?? DEFAULT_RETRY_BUDGET_MS);
  for (let attempt = 1;; attempt++) {
    try {
      return await attemptTransaction(pool, options, work);
    } catch (failure) {
      if (!(failure instanceof AttemptFailure)) throw counted(failure);
      const { error, sent } = failure;
      const safe = !sent || options.readOnly || options.replaySafe || reportedByServer(error);
      const delay = backoffMs(attempt);
      if (
        !safe || !isTransientDatabaseError(error) || attempt >= MAX_ATTEMPTS ||
        performance.now() + delay > deadline
      ) {
        throw counted(error);
      }
      recordRetry();
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}
