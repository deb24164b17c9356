/**
 * /metrics from an operator's side: requests by route and status, latency
 * histograms whose buckets add up, database errors by class and the pools'
 * connections, served on METRICS_PORT only and never on the API's port.
 */
import assert from "node:assert/strict";
import { metricsText } from "../src/metrics.ts";
import { freePort, spawnService } from "./cluster.ts";
import { call, createTenant, startServer } from "./support.ts";

function sample(text: string, line: string): number {
  const found = text.split("\n").find((candidate) => candidate.startsWith(`${line} `));
  assert.ok(found, `no sample ${line} in:\n${text.slice(0, 2000)}`);
  return Number(found.slice(line.length + 1));
}

Deno.test("the metrics count requests by route and status, their latency, database errors by class and the pools", async () => {
  const server = await startServer();
  try {
    const tenant = await createTenant(server, "metrics-reader");
    const before = metricsText(server.pools);
    const seen = (text: string) =>
      text.includes('tenancy_http_requests_total{route="GET /v1/tenant",status="200"}')
        ? sample(text, 'tenancy_http_requests_total{route="GET /v1/tenant",status="200"}')
        : 0;
    const clientErrors = sample(before, 'tenancy_database_errors_total{class="client"}');
    for (let i = 0; i < 3; i++) {
      assert.equal((await call(server, "GET", "/v1/tenant", { token: tenant.key })).status, 200);
    }
    assert.equal((await call(server, "GET", "/no/such/route")).status, 404);
    // A document for a user the tenant does not have: the foreign key refuses it (a client error).
    const refused = await call(server, "POST", "/v1/documents", {
      token: tenant.key,
      body: { user_id: crypto.randomUUID(), title: "Orphan", content_hash: "a".repeat(64) },
    });
    assert.equal(refused.status, 422);

    const after = metricsText(server.pools);
    assert.equal(seen(after) - seen(before), 3);
    assert.ok(sample(after, 'tenancy_http_requests_total{route="unmatched",status="404"}') >= 1);
    assert.ok(sample(after, 'tenancy_database_errors_total{class="client"}') > clientErrors);
    // A histogram's buckets are cumulative and end at its count.
    const route = 'route="GET /v1/tenant"';
    const buckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, "+Inf"].map((le) =>
      sample(after, `tenancy_http_request_duration_seconds_bucket{${route},le="${le}"}`)
    );
    for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i] >= buckets[i - 1], JSON.stringify(buckets));
    assert.equal(buckets.at(-1), sample(after, `tenancy_http_request_duration_seconds_count{${route}}`));
    const inUse = sample(after, 'tenancy_pool_connections{pool="app",state="in_use"}');
    const idle = sample(after, 'tenancy_pool_connections{pool="app",state="idle"}');
    assert.equal(inUse + idle, server.config.poolMax);
    assert.equal(sample(after, 'tenancy_pool_connections{pool="app",state="waiting"}'), 0);
    assert.match(after, /^# TYPE tenancy_http_request_duration_seconds histogram$/m);
  } finally {
    await server.close();
  }
});

Deno.test("the metrics are served on METRICS_PORT alone, not on the API's port", async () => {
  const metricsPort = freePort();
  const service = await spawnService({ METRICS_PORT: String(metricsPort) });
  try {
    const scraped = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
    assert.equal(scraped.status, 200);
    assert.equal(scraped.headers.get("content-type"), "text/plain; version=0.0.4");
    assert.match(
      await scraped.text(),
      /^tenancy_http_requests_total\{route="GET \/health",status="200"\} \d+$/m,
    );
    const onApi = await fetch(`${service.url}/metrics`);
    await onApi.body?.cancel();
    assert.equal(onApi.status, 404);
  } finally {
    await service.stop();
  }
});
