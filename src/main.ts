/**
 * Entry point: configuration, pools, HTTP server, graceful shutdown.
 * Run with explicit permissions (see deno.json "start"), never -A.
 */
import { createHandler } from "./app.ts";
import { ConfigError, loadConfig } from "./config.ts";
import { closePools, createPools, warmPool } from "./db.ts";
import { log } from "./log.ts";

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

  const controller = new AbortController();
  let server: Deno.HttpServer;
  try {
    server = Deno.serve({
      hostname: config.hostname,
      port: config.port,
      signal: controller.signal,
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

  const stop = () => {
    log("info", "shutting down: finishing in-flight requests");
    controller.abort();
  };
  Deno.addSignalListener("SIGTERM", stop);
  Deno.addSignalListener("SIGINT", stop);

  await Promise.race([
    server.finished,
    new Promise((resolve) =>
      controller.signal.addEventListener("abort", () => setTimeout(resolve, SHUTDOWN_GRACE_MS))
    ),
  ]);
  await closePools(pools);
  log("info", "stopped");
  return 0;
}

if (import.meta.main) Deno.exit(await main());
