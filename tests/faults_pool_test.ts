/**
 * The connection pool under pressure: a pooled connection never carries one
 * tenant's context into another's request, directly or through PgBouncer in
 * transaction mode, and when every connection is busy the excess requests get
 * a quick 503 instead of queueing without bound.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import type { DatabasePool } from "../src/db.ts";
import { startCluster, startPgBouncer, type TestCluster } from "./cluster.ts";
import { call, createTenant, SOME_HASH, startServer, type TestServer, type TestTenant } from "./support.ts";

const TENANTS = 10;
const DOCUMENTS_PER_TENANT = 3;
const REQUESTS = 2000;
const CONCURRENCY = 16;
const LOAD_TIME_LIMIT_MS = 30_000;

interface Fixture {
  tenant: TestTenant;
  documentIds: string[];
}

async function seedTenants(server: TestServer): Promise<Fixture[]> {
  const fixtures: Fixture[] = [];
  for (let i = 0; i < TENANTS; i++) {
    const tenant = await createTenant(server, `leak-${i}`);
    const documentIds: string[] = [];
    for (let d = 0; d < DOCUMENTS_PER_TENANT; d++) {
      const created = await call(server, "POST", "/v1/documents", {
        token: tenant.key,
        body: { user_id: tenant.userId, title: `tenant ${i} document ${d}`, content_hash: SOME_HASH },
      });
      assert.equal(created.status, 201);
      documentIds.push(String(created.body.document_id));
    }
    fixtures.push({ tenant, documentIds });
  }
  return fixtures;
}

/**
 * One request of the interleaved load, checked against what the tenant owns.
 * Failing requests (404, 401, 422) are mixed in so that error paths return
 * connections to the pool too.
 */
async function checkedRequest(server: TestServer, fixtures: Fixture[], i: number): Promise<void> {
  const own = fixtures[(i * 7) % fixtures.length];
  const other = fixtures[(i * 7 + 3) % fixtures.length];
  const { tenant } = own;
  const token = tenant.key;
  const where = `request ${i} as tenant ${tenant.tenantId}`;
  switch (i % 6) {
    case 0: {
      const list = await call(server, "GET", "/v1/documents?limit=50", { token });
      assert.equal(list.status, 200, where);
      assert.deepEqual(
        list.body.items!.map((item) => item.document_id).sort(),
        [...own.documentIds].sort(),
        where,
      );
      for (const item of list.body.items!) assert.equal(item.tenant_id, tenant.tenantId, where);
      return;
    }
    case 1: {
      const id = own.documentIds[i % DOCUMENTS_PER_TENANT];
      const document = await call(server, "GET", `/v1/documents/${id}`, { token });
      assert.equal(document.status, 200, where);
      assert.equal(document.body.tenant_id, tenant.tenantId, where);
      return;
    }
    case 2: {
      const id = other.documentIds[i % DOCUMENTS_PER_TENANT];
      assert.equal((await call(server, "GET", `/v1/documents/${id}`, { token })).status, 404, where);
      return;
    }
    case 3: {
      const users = await call(server, "GET", "/v1/users", { token });
      assert.equal(users.status, 200, where);
      assert.deepEqual(users.body.items!.map((item) => item.user_id), [tenant.userId], where);
      return;
    }
    case 4: {
      // Fails inside the transaction: another tenant's user is no author here.
      const refused = await call(server, "POST", "/v1/documents", {
        token,
        body: { user_id: other.tenant.userId, title: "never stored", content_hash: SOME_HASH },
      });
      assert.equal(refused.status, 422, where);
      return;
    }
    default: {
      // Fails in the context statement itself.
      const unknown = await call(server, "GET", "/v1/tenant", { token: `${token}x` });
      assert.equal(unknown.status, 401, where);
      const mine = await call(server, "GET", "/v1/tenant", { token });
      assert.equal(mine.status, 200, where);
      assert.equal(mine.body.tenant_id, tenant.tenantId, where);
    }
  }
}

async function interleavedLoad(server: TestServer, fixtures: Fixture[]): Promise<number> {
  let next = 0;
  const deadline = performance.now() + LOAD_TIME_LIMIT_MS;
  async function worker() {
    while (next < REQUESTS && performance.now() < deadline) await checkedRequest(server, fixtures, next++);
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return next;
}

/** Reads the session context on every connection of the pool at once. */
async function contextOnEveryConnection(pool: DatabasePool, connections: number) {
  const { promise: allHeld, resolve } = Promise.withResolvers<void>();
  let held = 0;
  return await Promise.all(Array.from({ length: connections }, () =>
    pool.withConnection(async (sql) => {
      // Hold this connection until every other one is held too, so each
      // reading comes from a different connection.
      if (++held === connections) resolve();
      await allHeld;
      const [row] = await sql`
        select current_setting('app.context', true) as context,
               (select count(*)::int from core.request_context) as verified_contexts,
               (select count(*)::int from api.documents) as visible_documents`;
      return row;
    })));
}

async function assertNoContextLeak(cluster: TestCluster, overrides: Record<string, string>) {
  const server = await startServer({ ADMIN_DATABASE_URL: cluster.adminUrl, DB_POOL_MAX: "2", ...overrides });
  try {
    const fixtures = await seedTenants(server);
    const sent = await interleavedLoad(server, fixtures);
    assert.equal(sent, REQUESTS, `only ${sent} requests ran within ${LOAD_TIME_LIMIT_MS} ms`);
    for (const row of await contextOnEveryConnection(server.pools.app, 2)) {
      assert.ok(!row.context, "a pooled connection still carries app.context");
      assert.equal(row.verified_contexts, 0, "a pooled connection still has a verified request context");
      assert.equal(row.visible_documents, 0, "a pooled connection without context sees documents");
    }
  } finally {
    await server.close();
  }
}

Deno.test("2000 interleaved requests of 10 tenants over 2 pooled connections never see another tenant's rows or context", async (t) => {
  const cluster = await startCluster();
  try {
    await t.step(
      "directly to PostgreSQL",
      () => assertNoContextLeak(cluster, { APP_DATABASE_URL: cluster.appUrl }),
    );
    await t.step("through PgBouncer in transaction mode", async () => {
      const bouncer = await startPgBouncer(cluster, { poolSize: 1 });
      try {
        await assertNoContextLeak(cluster, { APP_DATABASE_URL: bouncer.appUrl, DB_PGBOUNCER: "true" });
      } finally {
        await bouncer.stop();
      }
    });
  } finally {
    await cluster.destroy();
  }
});

Deno.test("with every connection busy, the excess requests get 503 within DB_POOL_WAIT_MS and the rest succeed", async () => {
  const poolMax = 2;
  const waitMs = 500;
  const requests = 6;
  const server = await startServer({ DB_POOL_MAX: String(poolMax), DB_POOL_WAIT_MS: String(waitMs) });
  const owner = postgres(Deno.env.get("DATABASE_URL")!, { max: 1, onnotice: () => {} });
  try {
    const tenant = await createTenant(server, "exhaustion");
    const created = await call(server, "POST", "/v1/documents", {
      token: tenant.key,
      body: { user_id: tenant.userId, title: "contended", content_hash: SOME_HASH },
    });
    const documentId = String(created.body.document_id);

    // The owner holds the row lock every PATCH needs, so the first requests
    // keep their connections while they wait for it (well under the role's
    // 3 s lock_timeout) and the rest find none free.
    const { promise: unlock, resolve: release } = Promise.withResolvers<void>();
    const { promise: locked, resolve: lockTaken } = Promise.withResolvers<void>();
    const holder = owner.begin(async (tx) => {
      await tx`select 1 from core.documents where tenant_id = ${tenant.tenantId} and document_id = ${documentId} for update`;
      lockTaken();
      await unlock;
    });
    let patches: Promise<{ status: number; retryAfter: string | null; took: number }>[] = [];
    const healthTimes: number[] = [];
    try {
      await locked;
      patches = Array.from({ length: requests }, async (_, i) => {
        const started = performance.now();
        const response = await call(server, "PATCH", `/v1/documents/${documentId}`, {
          token: tenant.key,
          body: { title: `patch ${i}` },
        });
        return {
          status: response.status,
          retryAfter: response.headers.get("retry-after"),
          took: performance.now() - started,
        };
      });
      const until = performance.now() + waitMs + 500;
      while (performance.now() < until) {
        const started = performance.now();
        assert.equal((await call(server, "GET", "/health")).status, 200);
        healthTimes.push(performance.now() - started);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    } finally {
      release();
      await holder;
    }
    const outcomes = await Promise.all(patches);

    const ok = outcomes.filter((outcome) => outcome.status === 200);
    const busy = outcomes.filter((outcome) => outcome.status === 503);
    assert.equal(ok.length, poolMax, `statuses: ${outcomes.map((outcome) => outcome.status)}`);
    assert.equal(busy.length, requests - poolMax, `statuses: ${outcomes.map((outcome) => outcome.status)}`);
    for (const outcome of busy) {
      assert.equal(outcome.retryAfter, "1");
      assert.ok(
        outcome.took >= waitMs - 20,
        `a 503 came after ${Math.round(outcome.took)} ms, before the wait bound`,
      );
      // Generous margin: the machine is shared; what matters is that the
      // wait is bounded, not its exact length.
      assert.ok(outcome.took < waitMs + 2000, `a 503 took ${Math.round(outcome.took)} ms`);
    }
    assert.ok(healthTimes.length >= 5, "GET /health was polled while the pool was exhausted");
    assert.ok(
      Math.max(...healthTimes) < 1000,
      `GET /health took up to ${Math.round(Math.max(...healthTimes))} ms`,
    );

    // Nothing leaked: both connections serve requests again.
    for (let i = 0; i < 2 * poolMax; i++) {
      assert.equal(
        (await call(server, "GET", `/v1/documents/${documentId}`, { token: tenant.key })).status,
        200,
      );
    }
  } finally {
    await owner.end({ timeout: 1 });
    await server.close();
  }
});

/**
 * Waits until `count` app_user sessions are blocked on a lock, within a bound.
 * On Citus the lock is on a worker: the coordinator's session waits for its
 * answer, and citus_lock_waits names it by its global process id.
 */
async function waitForBlocked(owner: postgres.Sql, count: number): Promise<number[]> {
  const deadline = performance.now() + 5000;
  const distributed = (await owner`select core.on_citus() as citus`)[0].citus;
  let pids: number[] = [];
  while (performance.now() < deadline) {
    pids = (distributed
      ? await owner`
        select distinct a.pid from citus_lock_waits w
        join pg_stat_activity a on a.pid = (w.waiting_gpid % 10000000000)::integer
        where a.usename = 'app_user' and w.waiting_nodeid = (select nodeid from pg_dist_node where groupid = 0)`
      : await owner`
        select pid from pg_stat_activity where usename = 'app_user' and wait_event_type = 'Lock'`)
      .map((row) => row.pid);
    if (pids.length >= count) return pids;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert.fail(`only ${pids.length} of ${count} requests were blocked on the lock`);
}

Deno.test("requests whose database sessions are terminated get 503 or succeed on retry, and the pool recovers", async () => {
  const server = await startServer({ DB_POOL_MAX: "2" });
  const owner = postgres(Deno.env.get("DATABASE_URL")!, { max: 2, onnotice: () => {} });
  try {
    const tenant = await createTenant(server, "terminated");
    const created = await call(server, "POST", "/v1/documents", {
      token: tenant.key,
      body: { user_id: tenant.userId, title: "contended", content_hash: SOME_HASH },
    });
    const documentId = String(created.body.document_id);
    const key = `terminated-${crypto.randomUUID()}`;
    const body = { user_id: tenant.userId, title: "idempotent", content_hash: SOME_HASH };

    // One PATCH (BEGIN to COMMIT in one write) waits on the document's row
    // lock; one idempotent POST (statement by statement) waits on its
    // Idempotency-Key, which an owner transaction has claimed first.
    const { promise: unlock, resolve: release } = Promise.withResolvers<void>();
    const { promise: locked, resolve: lockTaken } = Promise.withResolvers<void>();
    const holder = owner.begin(async (tx) => {
      await tx`select 1 from core.documents where tenant_id = ${tenant.tenantId} and document_id = ${documentId} for update`;
      await tx`insert into core.idempotency_keys (tenant_id, api_key_id, idempotency_key, request_hash)
               values (${tenant.tenantId}, ${tenant.keyId}, ${key}, ${"0".repeat(64)})`;
      lockTaken();
      await unlock;
      // Roll back, so the POST's retry can claim the key.
      throw new Error("release the idempotency key");
    }).catch(() => {});
    try {
      await locked;
      const patch = call(server, "PATCH", `/v1/documents/${documentId}`, {
        token: tenant.key,
        body: { title: "patched" },
      });
      const post = call(server, "POST", "/v1/documents", {
        token: tenant.key,
        body,
        headers: { "idempotency-key": key },
      });
      const pids = await waitForBlocked(owner, 2);
      await owner`select pg_terminate_backend(pid) from unnest(${pids}::int[]) as pid`;
      const patched = await patch;
      // A write whose COMMIT may have landed is not re-run: 503, retry later.
      assert.equal(patched.status, 503, JSON.stringify(patched.body));
      assert.equal(patched.headers.get("content-type"), "application/problem+json");
      release();
      await holder;
      // The idempotent POST may run again: it succeeds once the key is free.
      const posted = await post;
      assert.ok([201, 503].includes(posted.status), `the idempotent POST answered ${posted.status}`);
    } finally {
      release();
      await holder;
    }

    // Both connections were replaced: the next requests go through at once.
    for (let i = 0; i < 6; i++) {
      const started = performance.now();
      const reply = await call(server, "PATCH", `/v1/documents/${documentId}`, {
        token: tenant.key,
        body: { title: `after ${i}` },
      });
      assert.equal(reply.status, 200);
      assert.ok(
        performance.now() - started < 3000,
        "a request after the terminations waited on a dead connection",
      );
    }
    const replay = await call(server, "POST", "/v1/documents", {
      token: tenant.key,
      body,
      headers: { "idempotency-key": key },
    });
    assert.equal(replay.status, 201);
    const [{ count }] = await owner`
      select count(*)::int as count from core.documents
      where tenant_id = ${tenant.tenantId} and title = 'idempotent'`;
    assert.equal(count, 1, "the idempotent POST created its document exactly once");
  } finally {
    await owner.end({ timeout: 1 });
    await server.close();
  }
});
