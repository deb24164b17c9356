/**
 * Entry point: configuration, pools, HTTP server, metrics, the audit
 * trail's maintenance, graceful shutdown.
 * Run with explicit permissions (see deno.json "start"), never -A.
 */
import { createHandler } from "./app.ts";
import { ConfigError, loadConfig } from "./config.ts";
import { closePools, createPools, survivePostgresTypeFetchFailures, warmPool } from "./db.ts";
import { log } from "./log.ts";
import { scheduleAuditMaintenance } from "./maintenance.ts";
import { metricsText } from "./metrics.ts";

const SHUTDOWN_GRACE_MS = 10_000;

async function main(): Promise<number> {
  let config;
  try {
    config = loadConfig(Deno.env.toObject());
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
      return 2;
    }
    throw error;
  }
  survivePostgresTypeFetchFailures();
  const pools = createPools(config);
  try {
    await warmPool(pools.app, config.poolMin);
    log("info", "database pool ready", { connections: config.poolMin });
  } catch (error) {
    // Start anyway: /ready reports 503 until the database answers.
    log("warn", "database not reachable at start-up; serving 503 until it is", {
      code: (error as { code?: string }).code ?? (error as Error).name,
    });
  }

  let server: Deno.HttpServer;
  try {
    server = Deno.serve({
      hostname: config.hostname,
      port: config.port,
      onListen: ({ hostname, port }) => log("info", "listening", { url: `http://${hostname}:${port}` }),
    }, createHandler(pools));
  } catch (error) {
    await closePools(pools, 0);
    if (error instanceof Deno.errors.AddrInUse) {
      console.error(
        `error: port ${config.port} is already in use; stop the other process or set PORT=<port>`,
      );
      return 1;
    }
    throw error;
  }

  const stopAuditMaintenance = scheduleAuditMaintenance(pools.app);
  // Metrics on a port of their own: nothing on the API's port, where tenant
  // keys are, shows them.
  let metrics: Deno.HttpServer | undefined;
  try {
    metrics = config.metricsPort === undefined ? undefined : Deno.serve(
      {
        hostname: config.metricsHostname,
        port: config.metricsPort,
        onListen: ({ hostname, port }) =>
          log("info", "metrics listening", { url: `http://${hostname}:${port}/metrics` }),
      },
      (request) =>
        new URL(request.url).pathname === "/metrics" && request.method === "GET"
          ? new Response(metricsText(pools), { headers: { "content-type": "text/plain; version=0.0.4" } })
          : new Response("not found\n", { status: 404 }),
    );
  } catch (error) {
    stopAuditMaintenance();
    await server.shutdown();
    await closePools(pools, 0);
    if (error instanceof Deno.errors.AddrInUse) {
      console.error(
        `error: METRICS_PORT ${config.metricsPort} is already in use; stop the other process or set METRICS_PORT=<port>`,
      );
      return 1;
    }
    throw error;
  }

  // server.shutdown() stops accepting connections at once and lets in-flight
  // requests finish; aborting the server's signal instead would cut their
  // connections without a response.
  const { promise: graceOver, resolve: endGrace } = Promise.withResolvers<void>();
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    log("info", "shutting down: finishing in-flight requests");
    server.shutdown().catch(() => {});
    setTimeout(endGrace, SHUTDOWN_GRACE_MS);
  };
  Deno.addSignalListener("SIGTERM", stop);
  Deno.addSignalListener("SIGINT", stop);

  await Promise.race([server.finished, graceOver]);
  stopAuditMaintenance();
  await metrics?.shutdown();
  await closePools(pools);
  log("info", "stopped");
  return 0;
}

if (import.meta.main) Deno.exit(await main());
