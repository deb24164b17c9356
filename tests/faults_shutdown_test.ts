/**
 * Graceful shutdown of the real server process: SIGTERM lets in-flight
 * requests finish, refuses new connections, and exits with status 0.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { spawnService } from "./cluster.ts";
import { call, createTenant, requireEnv, SOME_HASH, startServer } from "./support.ts";

const IN_FLIGHT = 4;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * One HTTP/1.1 request on a connection of its own, read to the end: a
 * connection closed without a response shows as status 0, where fetch would
 * retry on a new connection.
 */
async function rawRequest(
  port: number,
  method: string,
  path: string,
  options: { token: string; body: unknown },
): Promise<{ status: number; body: Record<string, unknown> }> {
  const connection = await Deno.connect({ hostname: "127.0.0.1", port });
  const body = new TextEncoder().encode(JSON.stringify(options.body));
  const head = [
    `${method} ${path} HTTP/1.1`,
    "host: 127.0.0.1",
    `authorization: Bearer ${options.token}`,
    "content-type: application/json",
    `content-length: ${body.length}`,
    "connection: close",
    "",
    "",
  ].join("\r\n");
  await connection.write(new Uint8Array([...new TextEncoder().encode(head), ...body]));
  const text = new TextDecoder().decode(await new Response(connection.readable).arrayBuffer());
  const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(text)?.[1] ?? 0);
  const json = text.slice(text.indexOf("\r\n\r\n") + 4);
  return { status, body: status ? JSON.parse(json) : {} };
}

async function refusesConnections(port: number): Promise<boolean> {
  try {
    (await Deno.connect({ hostname: "127.0.0.1", port })).close();
    return false;
  } catch (error) {
    if (error instanceof Deno.errors.ConnectionRefused) return true;
    throw error;
  }
}

Deno.test("SIGTERM lets in-flight requests finish with 200, refuses new connections, and exits 0", async () => {
  // Fixtures through an in-process server on the same test database.
  const setup = await startServer();
  let tenantKey: string;
  let documentId: string;
  try {
    const tenant = await createTenant(setup, "shutdown");
    tenantKey = tenant.key;
    const created = await call(setup, "POST", "/v1/documents", {
      token: tenant.key,
      body: { user_id: tenant.userId, title: "before shutdown", content_hash: SOME_HASH },
    });
    documentId = String(created.body.document_id);
  } finally {
    await setup.close();
  }

  const owner = postgres(requireEnv("DATABASE_URL"), { max: 2, onnotice: () => {} });
  const service = await spawnService({});
  const { promise: unlock, resolve: release } = Promise.withResolvers<void>();
  let holder: Promise<unknown> | undefined;
  try {
    // The owner holds the row lock the PATCHes need, so they are still
    // running inside the server when SIGTERM arrives.
    const { promise: locked, resolve: lockTaken } = Promise.withResolvers<void>();
    holder = owner.begin(async (tx) => {
      await tx`select 1 from core.documents where document_id = ${documentId} for update`;
      lockTaken();
      await unlock;
    });
    await locked;
    const inFlight = Array.from(
      { length: IN_FLIGHT },
      (_, i) =>
        rawRequest(service.port, "PATCH", `/v1/documents/${documentId}`, {
          token: tenantKey,
          body: { title: `patched during shutdown ${i}` },
        }),
    );

    const deadline = performance.now() + 5000;
    let waiting = 0;
    while (waiting < IN_FLIGHT && performance.now() < deadline) {
      [{ waiting }] = await owner`
        select count(*)::int as waiting from pg_stat_activity
        where usename = 'app_user' and wait_event_type = 'Lock'`;
      if (waiting < IN_FLIGHT) await sleep(20);
    }
    assert.equal(waiting, IN_FLIGHT, "every PATCH is waiting inside the server before SIGTERM");

    Deno.kill(service.pid, "SIGTERM");
    // Poll rather than sleep a fixed time: the PATCHes wait on a row lock,
    // and app_user's lock_timeout (3 s) must not run out meanwhile.
    let refused = false;
    const refuseBy = performance.now() + 2000;
    while (!refused && performance.now() < refuseBy) {
      refused = await refusesConnections(service.port);
      if (!refused) await sleep(20);
    }
    assert.ok(refused, "a new connection is refused after SIGTERM");

    release();
    await holder;
    const outcomes = await Promise.all(inFlight);
    for (const outcome of outcomes) {
      assert.equal(outcome.status, 200, `an in-flight PATCH answered ${outcome.status || "nothing"}`);
      assert.equal(outcome.body.document_id, documentId);
    }

    let timer: ReturnType<typeof setTimeout> | undefined;
    const status = await Promise.race([
      service.status,
      new Promise<null>((resolve) => timer = setTimeout(() => resolve(null), 10_000)),
    ]);
    clearTimeout(timer);
    assert.ok(status, "the server exits within 10 s of SIGTERM");
    assert.equal(status.code, 0, `the server exited with ${status.code}:\n${service.output()}`);
    assert.ok(await refusesConnections(service.port), "nothing listens after the exit");
  } finally {
    release();
    await holder?.catch(() => {});
    await service.stop();
    await owner.end({ timeout: 1 });
  }
});
