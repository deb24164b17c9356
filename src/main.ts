/**
 * Entry point: configuration, then WORKERS service workers listening on one
 * port (each a Web Worker with its own pools, src/worker.ts; the kernel
 * spreads connections over them), the metrics of all of them on
 * METRICS_PORT, and graceful shutdown of all of them.
 * Run with explicit permissions (see deno.json "start"), never -A.
 */
import { type Config, ConfigError, loadConfig } from "./config.ts";
import { log } from "./log.ts";
import { mergeMetrics } from "./metrics.ts";
import { STOP_BOUND_MS } from "./service.ts";
import type { FromWorker, ToWorker } from "./worker.ts";

/**
 * The next message of this type from the worker (that matches, if asked),
 * or undefined once `timeoutMs` has passed without one.
 */
function nextMessage<T extends FromWorker["type"]>(
  worker: Worker,
  type: T,
  options: { matches?: (message: Extract<FromWorker, { type: T }>) => boolean; timeoutMs?: number } = {},
): Promise<Extract<FromWorker, { type: T }> | undefined> {
  return new Promise((resolve) => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const settle = (message: Extract<FromWorker, { type: T }> | undefined) => {
      clearTimeout(timer);
      worker.removeEventListener("message", listener);
      resolve(message);
    };
    const listener = ({ data }: MessageEvent<FromWorker>) => {
      if (data.type !== type) return;
      const message = data as Extract<FromWorker, { type: T }>;
      if (!options.matches || options.matches(message)) settle(message);
    };
    worker.addEventListener("message", listener);
    if (options.timeoutMs !== undefined) timer = setTimeout(() => settle(undefined), options.timeoutMs);
  });
}

// A scrape waits this long for each worker's metrics (a worker busy past it
// is left out of that scrape).
const SCRAPE_TIMEOUT_MS = 2000;

const send = (worker: Worker, message: ToWorker) => worker.postMessage(message);

/** The service's workers, started one after the other on one port. */
class Workers {
  readonly all: Worker[] = [];
  /** Workers that failed: they answer nothing any more. */
  readonly #failedWorkers = new Set<Worker>();
  /** Settles with a reason when a worker fails after starting. */
  readonly failed: Promise<string>;
  #fail!: (reason: string) => void;
  #nextScrape = 1;

  constructor() {
    this.failed = new Promise((resolve) => this.#fail = resolve);
  }

  /**
   * Starts the workers; the first chooses the port when PORT is 0.
   *
   * @returns the port, or why a worker could not listen
   */
  async start(config: Config): Promise<{ port: number } | { addressInUse: boolean; error: string }> {
    let port = config.port;
    for (let index = 0; index < config.workers; index++) {
      const worker = new Worker(new URL("./worker.ts", import.meta.url).href, {
        type: "module",
        name: `service-${index}`,
      });
      worker.addEventListener("error", (event) => {
        event.preventDefault();
        this.#failedWorkers.add(worker);
        log("error", "a service worker failed", { worker: index, error: event.message });
        this.#fail(`worker ${index} failed`);
      });
      this.all.push(worker);
      const listening = nextMessage(worker, "listening");
      const failed = nextMessage(worker, "failed");
      send(worker, {
        type: "start",
        config,
        port,
        // With one worker the port stays its alone, so a second copy of the
        // service is refused it.
        sharedPort: config.workers > 1,
        maintenance: index === 0,
        worker: index,
      });
      const started = await Promise.race([listening, failed, this.failed.then((error) => ({ error }))]);
      if (!started || !("port" in started)) {
        const addressInUse = started !== undefined && "addressInUse" in started && started.addressInUse;
        return { addressInUse, error: started?.error ?? "no answer" };
      }
      port = started.port;
    }
    return { port };
  }

  /** Every running worker's metrics, summed. */
  async metrics(): Promise<string> {
    const running = this.all.filter((worker) => !this.#failedWorkers.has(worker));
    const texts = await Promise.all(running.map((worker) => {
      const id = this.#nextScrape++;
      const answered = nextMessage(worker, "metrics", {
        matches: (message) => message.id === id,
        timeoutMs: SCRAPE_TIMEOUT_MS,
      });
      send(worker, { type: "metrics", id });
      return answered.then((message) => message?.text ?? "");
    }));
    return mergeMetrics(texts);
  }

  /** Stops every worker: each finishes its in-flight requests and closes its pools. */
  async stop(): Promise<void> {
    await Promise.all(this.all.map(async (worker) => {
      if (!this.#failedWorkers.has(worker)) {
        const stopped = nextMessage(worker, "stopped", { timeoutMs: STOP_BOUND_MS });
        send(worker, { type: "stop" });
        await stopped;
      }
      worker.terminate();
    }));
  }
}

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

  // A signal during start-up stops the service once it has started.
  const { promise: signalled, resolve: onSignal } = Promise.withResolvers<null>();
  Deno.addSignalListener("SIGTERM", () => onSignal(null));
  Deno.addSignalListener("SIGINT", () => onSignal(null));

  const workers = new Workers();
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
      async (request) =>
        new URL(request.url).pathname === "/metrics" && request.method === "GET"
          ? new Response(await workers.metrics(), {
            headers: { "content-type": "text/plain; version=0.0.4" },
          })
          : new Response("not found\n", { status: 404 }),
    );
  } catch (error) {
    if (error instanceof Deno.errors.AddrInUse) {
      console.error(
        `error: METRICS_PORT ${config.metricsPort} is already in use; stop the other process or set METRICS_PORT=<port>`,
      );
      return 1;
    }
    throw error;
  }

  const started = await workers.start(config);
  if (!("port" in started)) {
    await workers.stop();
    await metrics?.shutdown();
    if (started.addressInUse) {
      console.error(
        `error: port ${config.port} is already in use; stop the other process or set PORT=<port>`,
      );
    } else {
      console.error(`error: the service did not start (${started.error})`);
    }
    return 1;
  }
  log("info", "service started", { workers: config.workers, port: started.port });

  const failure = await Promise.race([signalled, workers.failed]);
  log(
    failure ? "error" : "info",
    failure ? "stopping: a worker failed" : "shutting down: finishing in-flight requests",
  );
  // The metrics first: a scrape would ask workers that are stopping.
  await metrics?.shutdown();
  await workers.stop();
  log("info", "stopped");
  return failure ? 1 : 0;
}

if (import.meta.main) Deno.exit(await main());
