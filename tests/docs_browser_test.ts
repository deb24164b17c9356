/**
 * The reference page in a real browser: headless Chromium (Debian's
 * `chromium`, which scripts/test installs), driven over the DevTools
 * protocol. The page lists every route of the route table, shows a curl
 * example, sends a request from "Try it out" with a tenant's key and shows
 * its answer, and loads nothing from anywhere but the service.
 */
import assert from "node:assert/strict";
import { allRoutes } from "../src/app.ts";
import { runningAsRoot } from "./cluster.ts";
import { createTenant, startServer } from "./support.ts";

// Chromium's profile goes under .local/, which the tests may write.
const LOCAL_DIR = new URL("../.local", import.meta.url).pathname;

/** A DevTools protocol session on one page. */
class DevTools {
  readonly events: { method: string; params: Record<string, unknown> }[] = [];
  readonly #socket: WebSocket;
  readonly #pending = new Map<
    number,
    { resolve: (value: unknown) => void; reject: (error: Error) => void }
  >();
  #next = 1;

  private constructor(socket: WebSocket) {
    this.#socket = socket;
    socket.onclose = () => {
      for (const waiting of this.#pending.values()) {
        waiting.reject(new Error("the DevTools connection closed"));
      }
      this.#pending.clear();
    };
    socket.onmessage = (message) => {
      const data = JSON.parse(String(message.data));
      if (data.id === undefined) {
        this.events.push(data);
        return;
      }
      const waiting = this.#pending.get(data.id);
      this.#pending.delete(data.id);
      if (data.error) waiting?.reject(new Error(`${data.error.message} (${JSON.stringify(data.error)})`));
      else waiting?.resolve(data.result);
    };
  }

  static async connect(url: string): Promise<DevTools> {
    const socket = new WebSocket(url);
    await new Promise((resolve, reject) => {
      socket.onopen = resolve;
      socket.onerror = () => reject(new Error(`cannot connect to ${url}`));
    });
    return new DevTools(socket);
  }

  /** Sends a command; its answer, or an error when none comes within 30 s or the browser goes away. */
  send(method: string, params: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
    const id = this.#next++;
    this.#socket.send(JSON.stringify({ id, method, params }));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`chromium did not answer ${method} within 30 s`));
      }, 30_000);
      this.#pending.set(id, {
        resolve: (value) => {
          clearTimeout(timer);
          resolve(value as Record<string, unknown>);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
    });
  }

  /** Evaluates an expression in the page and returns its value (awaiting a promise). */
  async evaluate<T>(expression: string): Promise<T> {
    const result = await this.send("Runtime.evaluate", {
      expression,
      returnByValue: true,
      awaitPromise: true,
    });
    if (result.exceptionDetails) throw new Error(`in the page: ${JSON.stringify(result.exceptionDetails)}`);
    return (result.result as { value: T }).value;
  }

  /** Evaluates the expression until it is truthy, and returns that value. */
  async until<T>(expression: string, what: string, timeoutMs = 30_000): Promise<T> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const value = await this.evaluate<T>(expression);
      if (value) return value;
      if (performance.now() > deadline) {
        throw new Error(`the page did not show ${what} within ${timeoutMs} ms`);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  close(): void {
    this.#socket.close();
  }
}

/** Starts headless Chromium with a profile of its own; the caller stops it by its pid. */
async function startChromium(profile: string): Promise<{ child: Deno.ChildProcess; pageUrl: string }> {
  const root = await runningAsRoot();
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command("chromium", {
      args: [
        "--headless=new",
        "--disable-gpu",
        "--no-first-run",
        "--no-default-browser-check",
        "--remote-debugging-address=127.0.0.1",
        "--remote-debugging-port=0",
        `--user-data-dir=${profile}`,
        // Chromium's sandbox cannot start as root.
        ...(root ? ["--no-sandbox"] : []),
        "about:blank",
      ],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new Error("chromium is not installed: ./scripts/test installs it (apt-get install chromium)");
    }
    throw error;
  }
  // Chromium writes the port it chose into the profile.
  const deadline = performance.now() + 30_000;
  for (;;) {
    try {
      const [port] = (await Deno.readTextFile(`${profile}/DevToolsActivePort`)).split("\n");
      const targets = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
      const page = targets.find((target: { type: string }) => target.type === "page");
      if (page) return { child, pageUrl: page.webSocketDebuggerUrl };
    } catch {
      // Not up yet.
    }
    if (performance.now() > deadline) {
      child.kill("SIGKILL");
      await child.status;
      throw new Error("chromium did not open its DevTools port within 30 s");
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

Deno.test("/docs in headless Chromium lists every route, shows curl, and sends a request with a key from Try it out, loading nothing from elsewhere", async () => {
  const server = await startServer();
  const profile = await Deno.makeTempDir({ dir: LOCAL_DIR, prefix: "chromium-" });
  let chromium: Deno.ChildProcess | undefined;
  let page: DevTools | undefined;
  try {
    const tenant = await createTenant(server, "Docs reader");
    const browser = await startChromium(profile);
    chromium = browser.child;
    page = await DevTools.connect(browser.pageUrl);
    await page.send("Network.enable");
    await page.send("Runtime.enable");
    await page.send("Log.enable");
    await page.send("Page.enable");
    await page.send("Page.navigate", { url: `${server.url}/docs` });

    // Every route of the route table, as the page lists it.
    const routes = allRoutes().map((route) => `${route.method} ${route.path.replace(/:([a-z_]+)/g, "{$1}")}`)
      .sort();
    await page.until(
      `document.querySelectorAll(".opblock").length >= ${routes.length}`,
      `${routes.length} operations`,
    );
    const listed = await page.evaluate<string[]>(
      `[...document.querySelectorAll(".opblock")].map((block) =>
         block.querySelector(".opblock-summary-method").textContent + " " +
         block.querySelector(".opblock-summary-path").dataset.path)`,
    );
    assert.deepEqual(listed.sort(), routes);

    // Authorize with the tenant's key, open GET /v1/tenant, and execute it.
    await page.evaluate(`void ui.authActions.authorize({
      apiKey: { name: "apiKey", schema: { type: "http", scheme: "bearer" }, value: ${
      JSON.stringify(tenant.key)
    } },
    })`);
    const block = `[...document.querySelectorAll(".opblock")].find((block) =>
      block.querySelector(".opblock-summary-method").textContent === "GET" &&
      block.querySelector(".opblock-summary-path").dataset.path === "/v1/tenant")`;
    await page.evaluate(`${block}.querySelector(".opblock-summary-control").click()`);
    await page.until(`!!${block}.querySelector(".execute")`, "an Execute button");
    // The description (Markdown) renders after the block opens.
    const description = await page.until<string>(
      `${block}.querySelector(".opblock-description-wrapper")?.innerText`,
      "the operation's description",
    );
    assert.match(description, /curl -X GET "\$BASE_URL\/v1\/tenant"/);
    await page.evaluate(`${block}.querySelector(".execute").click()`);
    const status = await page.until<string>(
      `${block}.querySelector(".live-responses-table tr.response .response-col_status")?.textContent.trim()`,
      "the response's status",
    );
    assert.equal(status, "200");
    const answer = await page.evaluate<string>(`${block}.querySelector(".live-responses-table").innerText`);
    assert.ok(answer.includes(tenant.tenantId), "the page shows the tenant the key belongs to");

    // Everything the page loaded or called came from the service.
    const urls = page.events
      .filter((event) => event.method === "Network.requestWillBeSent")
      .map((event) => String((event.params.request as { url: string }).url))
      .filter((url) => !url.startsWith("data:"));
    assert.ok(urls.includes(`${server.url}/v1/tenant`), `the request was sent: ${urls.join(", ")}`);
    assert.deepEqual(urls.filter((url) => !url.startsWith(`${server.url}/`)), [], "nothing from elsewhere");
    const errors = page.events
      .filter((event) =>
        event.method === "Runtime.exceptionThrown" ||
        (event.method === "Log.entryAdded" && (event.params.entry as { level: string }).level === "error")
      )
      .map((event) => JSON.stringify(event.params).slice(0, 300));
    assert.deepEqual(errors, [], "no script error and no Content-Security-Policy refusal");
  } finally {
    page?.close();
    if (chromium) {
      try {
        Deno.kill(chromium.pid, "SIGTERM");
      } catch {
        // Already gone.
      }
      await chromium.status;
    }
    await Deno.remove(profile, { recursive: true }).catch(() => {});
    await server.close();
  }
});
