/**
 * What an operator scrapes, in the Prometheus text format (0.0.4): requests
 * by route and status, latency by route, database errors by class, retries,
 * rate-limit and quota refusals, and each pool's connections in use, idle and waited for.
 * main.ts serves it on METRICS_PORT alone, never on the API's port, so no
 * tenant key ever reaches it. Routes are the route table's patterns, so the
 * label sets stay bounded whatever paths clients send.
 */
import type { Pools } from "./db.ts";

/** Latency buckets, in seconds. */
const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/** Class of a database error as an operator tells them apart. */
export type DatabaseErrorClass = "transient" | "timeout" | "client" | "server";

const requests = new Map<string, number>();
const latencies = new Map<string, { buckets: number[]; sum: number; count: number }>();
const databaseErrors = new Map<DatabaseErrorClass, number>();
const quotaRefusals = new Map<string, number>();
let retries = 0;
let rateLimited = 0;

function increment<K>(map: Map<K, number>, key: K): void {
  map.set(key, (map.get(key) ?? 0) + 1);
}

/**
 * Counts one answered request.
 *
 * @param route the route's pattern, e.g. "GET /v1/users/:user_id" (or "unmatched")
 * @param status the response's status
 * @param seconds how long it took
 */
export function recordRequest(route: string, status: number, seconds: number): void {
  increment(requests, `${route}\u0000${status}`);
  let latency = latencies.get(route);
  if (!latency) latencies.set(route, latency = { buckets: BUCKETS.map(() => 0), sum: 0, count: 0 });
  BUCKETS.forEach((bound, i) => {
    if (seconds <= bound) latency.buckets[i]++;
  });
  latency.sum += seconds;
  latency.count++;
}

/** Counts a request's database error, by class. */
export function recordDatabaseError(errorClass: DatabaseErrorClass): void {
  increment(databaseErrors, errorClass);
}

/** Counts a transaction retried after a transient failure. */
export function recordRetry(): void {
  retries++;
}

/** Counts a request refused because its tenant's requests per minute were spent. */
export function recordRateLimited(): void {
  rateLimited++;
}

/** Counts a write refused by a plan's limit. */
export function recordQuotaRefusal(quota: string): void {
  increment(quotaRefusals, quota);
}

// Label values are our own route patterns and names, but escape anyway.
function label(value: string): string {
  return value.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n");
}

/**
 * The metrics, as the body of a scrape.
 *
 * @param pools the service's pools, whose connections are reported
 * @returns text/plain; version=0.0.4
 */
export function metricsText(pools: Pools): string {
  const lines: string[] = [];
  const family = (name: string, type: string, help: string) =>
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);

  family("tenancy_http_requests_total", "counter", "Requests answered, by route and status");
  for (const [key, count] of [...requests].sort()) {
    const [route, status] = key.split("\u0000");
    lines.push(`tenancy_http_requests_total{route="${label(route)}",status="${status}"} ${count}`);
  }
  family("tenancy_http_request_duration_seconds", "histogram", "Time to answer a request, by route");
  for (const [route, latency] of [...latencies].sort(([a], [b]) => a < b ? -1 : 1)) {
    const name = label(route);
    BUCKETS.forEach((bound, i) => {
      lines.push(
        `tenancy_http_request_duration_seconds_bucket{route="${name}",le="${bound}"} ${latency.buckets[i]}`,
      );
    });
    lines.push(`tenancy_http_request_duration_seconds_bucket{route="${name}",le="+Inf"} ${latency.count}`);
    lines.push(`tenancy_http_request_duration_seconds_sum{route="${name}"} ${latency.sum}`);
    lines.push(`tenancy_http_request_duration_seconds_count{route="${name}"} ${latency.count}`);
  }
  family("tenancy_database_errors_total", "counter", "Database errors that reached a response, by class");
  for (const errorClass of ["client", "server", "timeout", "transient"] as DatabaseErrorClass[]) {
    lines.push(`tenancy_database_errors_total{class="${errorClass}"} ${databaseErrors.get(errorClass) ?? 0}`);
  }
  family("tenancy_database_retries_total", "counter", "Transactions retried after a transient failure");
  lines.push(`tenancy_database_retries_total ${retries}`);
  family(
    "tenancy_rate_limited_total",
    "counter",
    "Requests refused because their tenant's minute was spent (429)",
  );
  lines.push(`tenancy_rate_limited_total ${rateLimited}`);
  family("tenancy_quota_refusals_total", "counter", "Writes refused by a plan's limit, by quota");
  for (const [quota, count] of [...quotaRefusals].sort()) {
    lines.push(`tenancy_quota_refusals_total{quota="${label(quota)}"} ${count}`);
  }
  family(
    "tenancy_pool_connections",
    "gauge",
    "Connections of each pool, by state (in_use, idle) and requests waiting",
  );
  for (const [name, pool] of Object.entries({ app: pools.app, admin: pools.admin })) {
    if (!pool) continue;
    const { size, idle, waiting } = pool.stats();
    lines.push(`tenancy_pool_connections{pool="${name}",state="in_use"} ${size - idle}`);
    lines.push(`tenancy_pool_connections{pool="${name}",state="idle"} ${idle}`);
    lines.push(`tenancy_pool_connections{pool="${name}",state="waiting"} ${waiting}`);
  }
  return lines.join("\n") + "\n";
}

/**
 * Sums the metrics of several workers into one scrape: every family once,
 * each sample the sum of the workers' (counters, histogram buckets and the
 * pools' connection counts all add up).
 *
 * @param texts each worker's metricsText
 * @returns one text in the same format
 */
export function mergeMetrics(texts: string[]): string {
  const families = new Map<string, { header: string[]; samples: Map<string, number> }>();
  for (const text of texts) {
    let family: { header: string[]; samples: Map<string, number> } | undefined;
    for (const line of text.split("\n")) {
      if (line === "") continue;
      if (line.startsWith("# HELP ")) {
        const name = line.split(" ")[2];
        family = families.get(name);
        if (!family) families.set(name, family = { header: [line], samples: new Map() });
      } else if (line.startsWith("# ")) {
        if (family && family.header.length < 2) family.header.push(line);
      } else if (family) {
        const space = line.lastIndexOf(" ");
        const key = line.slice(0, space);
        family.samples.set(key, (family.samples.get(key) ?? 0) + Number(line.slice(space + 1)));
      }
    }
  }
  const lines: string[] = [];
  for (const { header, samples } of families.values()) {
    lines.push(...header);
    for (const [key, value] of samples) lines.push(`${key} ${value}`);
  }
  return lines.join("\n") + "\n";
}
