/**
 * PostgreSQL restarts while the service is under load, or is down when the
 * service starts: the service keeps answering, says 503 (with Retry-After)
 * quickly while the database is away, recovers without intervention, and
 * loses or duplicates no acknowledged write.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { spawnService, startCluster, type TestCluster } from "./cluster.ts";
import { call, createTenant, SOME_HASH, startServer, type TestServer, type TestTenant } from "./support.ts";

const WORKERS = 6;
const MAX_REQUESTS = 5000;
/** Pause between a worker's requests, so the load is steady rather than flat out. */
const THINK_MS = 15;
const OUTAGE_ANSWER_MS = 2000;
const RECOVERY_MS = 5000;
const OBSERVE_AFTER_RECOVERY_MS = 6500;

interface Sample {
  kind: "read" | "write";
  tenant: TestTenant;
  started: number;
  finished: number;
  status: number;
  contentType: string | null;
  retryAfter: string | null;
  detail?: string;
  /** Writes only: Idempotency-Key, request body and the created document's id. */
  key?: string;
  body?: Record<string, unknown>;
  documentId?: string;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Reads and idempotent writes from several workers across the tenants until
 * `stop()` says so, bounded in count and time whatever happens.
 */
async function runLoad(
  server: TestServer,
  tenants: TestTenant[],
  options: { label: string; stop: () => boolean; maxMs: number },
): Promise<Sample[]> {
  const samples: Sample[] = [];
  const hardDeadline = performance.now() + options.maxMs;
  async function worker(id: number) {
    for (
      let i = 0;
      samples.length < MAX_REQUESTS && performance.now() < hardDeadline && !options.stop();
      i++
    ) {
      const tenant = tenants[(id + i) % tenants.length];
      const write = i % 2 === 1;
      const key = `${options.label}-${id}-${i}`;
      const body = { user_id: tenant.userId, title: key, content_hash: SOME_HASH, metadata: { key } };
      const started = performance.now();
      let sample: Sample;
      try {
        const response = write
          ? await call(server, "POST", "/v1/documents", {
            token: tenant.key,
            body,
            headers: { "idempotency-key": key },
          })
          : await call(server, "GET", "/v1/documents?limit=5", { token: tenant.key });
        sample = {
          kind: write ? "write" : "read",
          tenant,
          started,
          finished: performance.now(),
          status: response.status,
          contentType: response.headers.get("content-type"),
          retryAfter: response.headers.get("retry-after"),
          detail: String(response.body.detail ?? ""),
          documentId: write && response.status === 201 ? String(response.body.document_id) : undefined,
        };
      } catch {
        // No HTTP answer at all: the server died or dropped the connection.
        sample = {
          kind: write ? "write" : "read",
          tenant,
          started,
          finished: performance.now(),
          status: 0,
          contentType: null,
          retryAfter: null,
        };
      }
      if (write) Object.assign(sample, { key, body });
      samples.push(sample);
      await sleep(THINK_MS);
    }
  }
  await Promise.all(Array.from({ length: WORKERS }, (_, id) => worker(id)));
  return samples;
}

/** How PostgreSQL goes away and comes back; resolves once it accepts connections. */
interface Outage {
  label: string;
  run: (cluster: TestCluster) => Promise<void>;
  /** Long enough that retries cannot hide it: some requests must get 503. */
  expect503: boolean;
}

async function outageUnderLoad(
  server: TestServer,
  cluster: TestCluster,
  tenants: TestTenant[],
  outage: Outage,
): Promise<void> {
  let stopped = false;
  const load = runLoad(server, tenants, { label: outage.label, stop: () => stopped, maxMs: 20_000 });
  let outageStart = 0;
  let outageEnd = 0;
  try {
    await sleep(500);
    outageStart = performance.now();
    await outage.run(cluster);
    outageEnd = performance.now();
    await sleep(OBSERVE_AFTER_RECOVERY_MS);
  } finally {
    stopped = true;
  }
  const samples = await load;

  const unanswered = samples.filter((sample) => sample.status === 0);
  assert.equal(unanswered.length, 0, `${unanswered.length} requests got no HTTP answer`);
  assert.equal((await call(server, "GET", "/health")).status, 200, "the server is still up");

  const during = samples.filter((sample) => sample.started >= outageStart && sample.started <= outageEnd);
  assert.ok(during.length > 0, "some requests were sent while PostgreSQL was away");
  if (outage.expect503) {
    assert.ok(samples.some((sample) => sample.status === 503), "some requests were answered 503");
  }
  for (const sample of samples) {
    if (sample.status >= 200 && sample.status < 300) continue;
    assert.equal(
      sample.status,
      503,
      `a ${sample.kind} answered ${sample.status} (${sample.detail}) instead of 2xx or 503`,
    );
    assert.equal(sample.contentType, "application/problem+json");
    assert.equal(sample.retryAfter, "1");
    const took = sample.finished - sample.started;
    assert.ok(took < OUTAGE_ANSWER_MS, `a 503 took ${Math.round(took)} ms`);
  }
  for (const sample of during) {
    const took = sample.finished - sample.started;
    assert.ok(took < OUTAGE_ANSWER_MS, `a ${sample.kind} sent during the outage took ${Math.round(took)} ms`);
  }

  const recovered = samples.filter((sample) => sample.started >= outageEnd + RECOVERY_MS);
  assert.ok(recovered.length >= 20, `only ${recovered.length} requests were sent after recovery`);
  const failedAfterRecovery = recovered.filter((sample) => sample.status < 200 || sample.status >= 300);
  assert.equal(
    failedAfterRecovery.length,
    0,
    `${failedAfterRecovery.length} of ${recovered.length} requests failed ${RECOVERY_MS} ms after PostgreSQL was back`,
  );

  const writes = samples.filter((sample) => sample.kind === "write");
  const acknowledged = writes.filter((sample) => sample.status === 201);
  const owner = postgres(cluster.ownerUrl, { max: 1, onnotice: () => {} });
  try {
    const ids = acknowledged.map((sample) => sample.documentId!);
    const [{ count: landed }] = await owner`
      select count(*)::int as count from core.documents where document_id in ${owner(ids)}`;
    assert.equal(landed, ids.length, "every write acknowledged with 201 is in the database");

    // Replay every write, acknowledged or not, as a client retrying would.
    for (const sample of writes) {
      const replay = await call(server, "POST", "/v1/documents", {
        token: sample.tenant.key,
        body: sample.body,
        headers: { "idempotency-key": sample.key! },
      });
      assert.equal(replay.status, 201, `replaying ${sample.key} answered ${replay.status}`);
      if (sample.status === 201) {
        assert.equal(replay.headers.get("idempotent-replayed"), "true");
        assert.equal(replay.body.document_id, sample.documentId);
      }
    }
    const keys = writes.map((sample) => sample.key!);
    const rows = await owner`
      select title, count(*)::int as count from core.documents where title in ${owner(keys)} group by title`;
    const duplicated = rows.filter((row) => row.count !== 1);
    assert.deepEqual(duplicated, [], "no Idempotency-Key created more than one document");
    assert.equal(rows.length, keys.length, "every write exists exactly once after the replay");
  } finally {
    await owner.end({ timeout: 1 });
  }
  console.log(
    `${outage.label}: ${samples.length} requests, ${during.length} during the ${
      Math.round(outageEnd - outageStart)
    } ms outage, ${
      samples.filter((sample) => sample.status === 503).length
    } answered 503, ${acknowledged.length} of ${writes.length} writes acknowledged`,
  );
}

Deno.test("PostgreSQL restarts (fast, immediate) and a 1.5 s stop under load: quick 503s, full recovery, no lost or duplicated writes", async (t) => {
  const cluster = await startCluster();
  let server: TestServer | undefined;
  try {
    server = await startServer({
      APP_DATABASE_URL: cluster.appUrl,
      ADMIN_DATABASE_URL: cluster.adminUrl,
      DB_POOL_MAX: "6",
    });
    const tenants: TestTenant[] = [];
    for (const name of ["restart-a", "restart-b", "restart-c", "restart-d"]) {
      tenants.push(await createTenant(server, name));
    }
    const outages: Outage[] = [
      { label: "restart-fast", run: (db) => db.restart("fast"), expect503: false },
      { label: "restart-immediate", run: (db) => db.restart("immediate"), expect503: false },
      {
        label: "down-1500ms",
        run: async (db) => {
          await db.stop("fast");
          await sleep(1500);
          await db.start();
        },
        expect503: true,
      },
    ];
    for (const outage of outages) {
      await t.step(outage.label, () => outageUnderLoad(server!, cluster, tenants, outage));
    }
  } finally {
    await server?.close();
    await cluster.destroy();
  }
});

Deno.test("a server started while PostgreSQL is down answers /ready 503, then 200 once the database is up", async () => {
  const cluster = await startCluster();
  let service: Awaited<ReturnType<typeof spawnService>> | undefined;
  try {
    await cluster.stop();
    service = await spawnService({ APP_DATABASE_URL: cluster.appUrl, ADMIN_DATABASE_URL: cluster.adminUrl });

    const started = performance.now();
    const down = await fetch(`${service.url}/ready`);
    assert.equal(down.status, 503);
    assert.equal(down.headers.get("retry-after"), "1");
    assert.equal((await down.json()).status, "unavailable");
    assert.ok(
      performance.now() - started < OUTAGE_ANSWER_MS,
      "/ready answers quickly while the database is down",
    );
    const tenantRoute = await fetch(`${service.url}/v1/documents`, {
      headers: { authorization: "Bearer tnk_not-checked-while-the-database-is-down" },
    });
    assert.equal(
      tenantRoute.status,
      503,
      "a tenant route answers 503, not 401, while keys cannot be checked",
    );
    assert.equal(tenantRoute.headers.get("content-type"), "application/problem+json");
    await tenantRoute.body?.cancel();

    await cluster.start();
    const up = performance.now();
    let ready = 0;
    while (performance.now() - up < RECOVERY_MS) {
      const response = await fetch(`${service.url}/ready`);
      await response.body?.cancel();
      ready = response.status;
      if (ready === 200) break;
      await sleep(100);
    }
    assert.equal(ready, 200, `/ready is not 200 ${RECOVERY_MS} ms after PostgreSQL started`);

    const status = await service.stop();
    assert.equal(status.code, 0, `the server exited with ${status.code}:\n${service.output()}`);
  } finally {
    await service?.stop();
    await cluster.destroy();
  }
});
