/// <reference lib="deno.worker" />
/**
 * A service worker: a Web Worker that main.ts starts, running one instance
 * of the service (src/service.ts) on the port all workers share. It answers
 * main.ts's messages: start, metrics, stop.
 */
import type { Config } from "./config.ts";
import { type RunningService, startService } from "./service.ts";

/** What main.ts asks of a worker. */
export type ToWorker =
  | { type: "start"; config: Config; port: number; sharedPort: boolean; maintenance: boolean; worker: number }
  | { type: "metrics"; id: number }
  | { type: "stop" };

/** What a worker answers. */
export type FromWorker =
  | { type: "listening"; port: number }
  | { type: "failed"; addressInUse: boolean; error: string }
  | { type: "metrics"; id: number; text: string }
  | { type: "stopped" };

let service: RunningService | undefined;
const answer = (message: FromWorker) => self.postMessage(message);

self.onmessage = async ({ data }: MessageEvent<ToWorker>) => {
  if (data.type === "start") {
    try {
      service = await startService(data.config, data);
      answer({ type: "listening", port: service.port });
    } catch (error) {
      answer({
        type: "failed",
        addressInUse: error instanceof Deno.errors.AddrInUse,
        error: `${(error as Error).name}: ${(error as Error).message}`,
      });
    }
  } else if (data.type === "metrics") {
    answer({ type: "metrics", id: data.id, text: service?.metrics() ?? "" });
  } else if (data.type === "stop") {
    try {
      await service?.stop();
    } finally {
      answer({ type: "stopped" });
      self.close();
    }
  }
};
