/**
 * One instance of the service, as each worker runs it: its pools, its HTTP
 * server and, in one worker only, the audit trail's maintenance. main.ts
 * starts WORKERS of these, each in a Web Worker of its own, on one port.
 */
import { createHandler } from "./app.ts";
import type { Config } from "./config.ts";
import { closePools, createPools, survivePostgresTypeFetchFailures, warmPool } from "./db.ts";
import { log } from "./log.ts";
import { scheduleAuditMaintenance } from "./maintenance.ts";
import { metricsText } from "./metrics.ts";

/** How long in-flight requests may take to finish after a stop. */
export const SHUTDOWN_GRACE_MS = 10_000;
/** The longest a stop takes: the grace, then closing the pools (closePools gives up after 5.5 s). */
export const STOP_BOUND_MS = SHUTDOWN_GRACE_MS + 6_000;

/** A running instance. */
export interface RunningService {
  /** The port it listens on (the one asked for, or the one chosen for PORT=0). */
  port: number;
  /** This instance's metrics, in the Prometheus text format. */
  metrics(): string;
  /** Stops accepting connections, lets in-flight requests finish (at most SHUTDOWN_GRACE_MS), closes the pools. */
  stop(): Promise<void>;
}

/**
 * Starts one instance.
 *
 * @param config the service's configuration
 * @param options port to listen on; whether the port is shared with other
 *   instances (SO_REUSEPORT); whether this one runs the audit maintenance;
 *   its number, for the logs
 * @returns the running instance
 * @throws Deno.errors.AddrInUse when the port is taken
 */
export async function startService(
  config: Config,
  options: { port: number; sharedPort: boolean; maintenance: boolean; worker: number },
): Promise<RunningService> {
  survivePostgresTypeFetchFailures();
  const pools = createPools(config);
  try {
    await warmPool(pools.app, config.poolMin);
    log("info", "database pool ready", { connections: config.poolMin, worker: options.worker });
  } catch (error) {
    // Start anyway: /ready reports 503 until the database answers.
    log("warn", "database not reachable at start-up; serving 503 until it is", {
      code: (error as { code?: string }).code ?? (error as Error).name,
      worker: options.worker,
    });
  }

  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({
      hostname: config.hostname,
      port: options.port,
      reusePort: options.sharedPort,
      onListen: ({ hostname, port }) =>
        log("info", "listening", { url: `http://${hostname}:${port}`, worker: options.worker }),
    }, createHandler(pools));
  } catch (error) {
    await closePools(pools, 0);
    throw error;
  }
  const stopAuditMaintenance = options.maintenance ? scheduleAuditMaintenance(pools.app) : () => {};

  return {
    port: server.addr.port,
    metrics: () => metricsText(pools),
    async stop() {
      // server.shutdown() stops accepting connections at once and lets
      // in-flight requests finish; aborting the server's signal instead
      // would cut their connections without a response.
      let timer: ReturnType<typeof setTimeout> | undefined;
      const graceOver = new Promise<void>((resolve) => timer = setTimeout(resolve, SHUTDOWN_GRACE_MS));
      server.shutdown().catch(() => {});
      await Promise.race([server.finished, graceOver]);
      clearTimeout(timer);
      stopAuditMaintenance();
      await closePools(pools);
    },
  };
}
