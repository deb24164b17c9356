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
import { SHUTDOWN_GRACE_MS } from "./service.ts";
import type { FromWorker, ToWorker } from "./worker.ts";

/** The next message of this type from the worker (that matches, if asked). */
function nextMessage<T extends FromWorker["type"]>(
  worker: Worker,
  type: T,
  matches: (message: Extract<FromWorker, { type: T }>) => boolean = () => true,
): Promise<Extract<FromWorker, { type: T }>> {
  return new Promise((resolve) => {
    const listener = ({ data }: MessageEvent<FromWorker>) => {
      if (data.type !== type || !matches(data as Extract<FromWorker, { type: T }>)) return;
      worker.removeEventListener("message", listener);
      resolve(data as Extract<FromWorker, { type: T }>);
    };
    worker.addEventListener("message", listener);
  });
}

const send = (worker: Worker, message: ToWorker) => worker.postMessage(message);

/** The service's workers, started one after the other on one port. */
class Workers {
  readonly all: Worker[] = [];
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
      if (!("port" in started)) {
        return { addressInUse: "addressInUse" in started && started.addressInUse, ...started };
      }
      port = started.port;
    }
    return { port };
  }

  /** Every worker's metrics, summed. */
  async metrics(): Promise<string> {
    const texts = await Promise.all(this.all.map((worker) => {
      const id = this.#nextScrape++;
      const answered = nextMessage(worker, "metrics", (message) => message.id === id);
      send(worker, { type: "metrics", id });
      return answered.then((message) => message.text);
    }));
    return mergeMetrics(texts);
  }

  /** Stops every worker: each finishes its in-flight requests and closes its pools. */
  async stop(): Promise<void> {
    await Promise.all(this.all.map(async (worker) => {
      const stopped = nextMessage(worker, "stopped");
      send(worker, { type: "stop" });
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        stopped,
        new Promise((resolve) => timer = setTimeout(resolve, SHUTDOWN_GRACE_MS + 7000)),
      ]);
      clearTimeout(timer);
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
  await workers.stop();
  await metrics?.shutdown();
  log("info", "stopped");
  return failure ? 1 : 0;
}

if (import.meta.main) Deno.exit(await main());
