/**
 * Service configuration, read once from the environment and validated with zod
 * so that a bad variable stops start-up with a message naming it.
 */
import { z } from "zod";

const postgresUrl = z.string().refine((value) => /^postgres(ql)?:\/\//.test(value), {
  message: "must be a postgres:// or postgresql:// URL",
});

// An optional variable set to the empty string counts as not set.
const unsetWhenEmpty = <T extends z.ZodType>(schema: T) =>
  z.preprocess((value) => (value === "" ? undefined : value), schema);

const positiveInt = (fallback: number, max: number) =>
  z.coerce.number().int().min(1).max(max).default(fallback);

const envSchema = z.object({
  APP_DATABASE_URL: postgresUrl,
  ADMIN_DATABASE_URL: unsetWhenEmpty(postgresUrl.optional()),
  PLATFORM_ADMIN_TOKEN: unsetWhenEmpty(z.string().min(24, "must be at least 24 characters").optional()),
  PORT: z.coerce.number().int().min(0).max(65535).default(8000),
  HOSTNAME: z.string().min(1).default("127.0.0.1"),
  METRICS_PORT: unsetWhenEmpty(z.coerce.number().int().min(0).max(65535).optional()),
  METRICS_HOSTNAME: z.string().min(1).default("127.0.0.1"),
  DB_POOL_MAX: positiveInt(10, 1000),
  DB_POOL_MIN: z.coerce.number().int().min(0).max(1000).default(2),
  DB_POOL_WAIT_MS: positiveInt(2000, 60_000),
  DB_CONNECT_TIMEOUT_S: positiveInt(3, 60),
  DB_STATEMENT_TIMEOUT_MS: positiveInt(5000, 600_000),
  BODY_LIMIT_BYTES: positiveInt(1_048_576, 100 * 1_048_576),
  LOG_REQUESTS: z.enum(["true", "false"]).default("true"),
  DB_PGBOUNCER: z.enum(["true", "false"]).default("false"),
  RATE_LIMITS: z.enum(["true", "false"]).default("true"),
  WORKERS: positiveInt(navigator.hardwareConcurrency, 256),
}).refine((env) => env.DB_POOL_MIN <= env.DB_POOL_MAX, {
  message: "must not exceed DB_POOL_MAX",
  path: ["DB_POOL_MIN"],
});

/** Validated service configuration. */
export interface Config {
  appDatabaseUrl: string;
  adminDatabaseUrl?: string;
  platformAdminToken?: string;
  port: number;
  hostname: string;
  /** Port of the metrics endpoint (GET /metrics, Prometheus text); none: not served. */
  metricsPort?: number;
  metricsHostname: string;
  poolMax: number;
  poolMin: number;
  poolWaitMs: number;
  connectTimeoutSeconds: number;
  statementTimeoutMs: number;
  bodyLimitBytes: number;
  logRequests: boolean;
  /** Behind PgBouncer in transaction mode: no prepared statements, no session startup options. */
  pgbouncer: boolean;
  /** Service workers on the one port, each with its own pools (default: one per core). */
  workers: number;
  /** Tenant requests are limited to their plan's requests per minute (RATE_LIMITS=false: not at all). */
  rateLimits: boolean;
}

/** Thrown when the environment does not describe a runnable service. */
export class ConfigError extends Error {
  /**
   * @param problems one line per bad variable, e.g. "PORT: must be at most 65535"
   */
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join("\n  ")}`);
    this.name = "ConfigError";
  }
}

/**
 * Parses the service configuration from environment variables.
 *
 * @param env variables to read, e.g. `Deno.env.toObject()`
 * @returns the validated configuration
 * @throws ConfigError listing every bad variable
 */
export function loadConfig(env: Record<string, string | undefined>): Config {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((issue) => `${issue.path.join(".") || "environment"}: ${issue.message}`),
    );
  }
  const e = parsed.data;
  return {
    appDatabaseUrl: e.APP_DATABASE_URL,
    adminDatabaseUrl: e.ADMIN_DATABASE_URL,
    platformAdminToken: e.PLATFORM_ADMIN_TOKEN,
    port: e.PORT,
    hostname: e.HOSTNAME,
    metricsPort: e.METRICS_PORT,
    metricsHostname: e.METRICS_HOSTNAME,
    poolMax: e.DB_POOL_MAX,
    poolMin: e.DB_POOL_MIN,
    poolWaitMs: e.DB_POOL_WAIT_MS,
    connectTimeoutSeconds: e.DB_CONNECT_TIMEOUT_S,
    statementTimeoutMs: e.DB_STATEMENT_TIMEOUT_MS,
    bodyLimitBytes: e.BODY_LIMIT_BYTES,
    logRequests: e.LOG_REQUESTS === "true",
    pgbouncer: e.DB_PGBOUNCER === "true",
    rateLimits: e.RATE_LIMITS === "true",
    workers: e.WORKERS,
  };
}
