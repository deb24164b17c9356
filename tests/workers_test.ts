/**
 * WORKERS: several service workers on one port, each with its own pools.
 * The real process is started as README says; its metrics are the sum over
 * the workers, every connection is answered, and SIGTERM stops them all.
 */
import assert from "node:assert/strict";
import { mergeMetrics } from "../src/metrics.ts";
import { freePort, spawnService } from "./cluster.ts";

Deno.test("WORKERS=3 serves one port from three workers with pools of their own, sums their metrics, and stops them all on SIGTERM", async () => {
  const metricsPort = freePort();
  const service = await spawnService({
    WORKERS: "3",
    DB_POOL_MAX: "2",
    DB_POOL_MIN: "0",
    METRICS_PORT: String(metricsPort),
    LOG_REQUESTS: "false",
  });
  let stopped = false;
  try {
    const listening = service.output().split("\n").filter((line) => line.includes('"message":"listening"'));
    assert.deepEqual(
      listening.map((line) => JSON.parse(line).worker).sort(),
      [0, 1, 2],
      "each worker listens on the service's port",
    );
    assert.ok(listening.every((line) => JSON.parse(line).url === service.url));
    // A connection of its own for each request, so the kernel spreads them.
    const statuses = await Promise.all(Array.from({ length: 60 }, async () => {
      const response = await fetch(`${service.url}/ready`, { headers: { connection: "close" } });
      await response.body?.cancel();
      return response.status;
    }));
    assert.deepEqual([...new Set(statuses)], [200]);
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    assert.match(metrics, /^tenancy_http_requests_total\{route="GET \/ready",status="200"\} 60$/m);
    const idle = Number(/^tenancy_pool_connections\{pool="app",state="idle"\} (\d+)$/m.exec(metrics)?.[1]);
    const inUse = Number(/^tenancy_pool_connections\{pool="app",state="in_use"\} (\d+)$/m.exec(metrics)?.[1]);
    assert.equal(idle + inUse, 6, "three app pools of DB_POOL_MAX=2");
    assert.equal(
      metrics.split("\n").filter((line) => line === "# TYPE tenancy_pool_connections gauge").length,
      1,
    );
    const status = await service.stop();
    stopped = true;
    assert.equal(status.code, 0, service.output());
    assert.match(service.output(), /"message":"stopped"/);
  } finally {
    if (!stopped) await service.stop();
  }
});

Deno.test("mergeMetrics sums each sample over the workers and keeps each family together", () => {
  const one = [
    "# HELP a_total A",
    "# TYPE a_total counter",
    'a_total{route="x"} 2',
    "# HELP b Gauge",
    "# TYPE b gauge",
    "b 1",
    "",
  ].join("\n");
  const two = [
    "# HELP a_total A",
    "# TYPE a_total counter",
    'a_total{route="x"} 3',
    'a_total{route="y"} 1',
    "# HELP b Gauge",
    "# TYPE b gauge",
    "b 4",
    "",
  ].join("\n");
  assert.equal(
    mergeMetrics([one, two]),
    [
      "# HELP a_total A",
      "# TYPE a_total counter",
      'a_total{route="x"} 5',
      'a_total{route="y"} 1',
      "# HELP b Gauge",
      "# TYPE b gauge",
      "b 5",
      "",
    ].join("\n"),
  );
  assert.equal(mergeMetrics([one]), one);
});
