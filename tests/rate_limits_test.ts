/**
 * Rate limits over HTTP: a tenant's plan's requests per minute, spent
 * through the service in-process and through two service processes
 * sharing the database. Once the minute is spent every key of the tenant
 * gets a 429 with Retry-After and the RateLimit headers, other tenants are
 * served as before, the two processes (two workers each) together never
 * serve more than the limit and at most a slice per other worker less, and
 * after Retry-After the tenant is served again. The tests lower the
 * enterprise plan's limit, put their tenants on it, and put the plan back
 * as they found it.
 */
import assert from "node:assert/strict";
import { assertProblem, expectStatus, issueKey, withPlan } from "./assertions.ts";
import { spawnService } from "./cluster.ts";
import { call, createTenant, requireEnv, startServer, type TestServer } from "./support.ts";
import { metricsText } from "../src/metrics.ts";

const LIMIT = 40;
// What api.lease_requests leases at most at once: a twentieth of the limit.
const SLICE = Math.ceil(LIMIT / 20);
const RATE_LIMITED = "https://tenancy.dev/problems/rate-limited";
// Each spawned process runs two workers, and each worker leases for itself:
// four spenders of one minute, so up to three slices may be left unspent.
const WORKERS_EACH = 2;
const SPENDERS = 2 * WORKERS_EACH;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** GET /v1/tenant with a key, against any service's base URL (a spawned process's too). */
function getTenant(url: string, key: string) {
  return call({ url } as TestServer, "GET", "/v1/tenant", { token: key });
}

/** The RateLimit header's members, e.g. {r: 12, t: 40}. */
function rateLimitOf(headers: Headers): { r: number; t: number } {
  const value = headers.get("ratelimit") ?? "";
  const match = /^"tenant";r=(\d+);t=(\d+)$/.exec(value);
  assert.ok(match, `RateLimit header: ${JSON.stringify(value)}`);
  return { r: Number(match[1]), t: Number(match[2]) };
}

Deno.test("a tenant's minute, once spent, is a 429 with Retry-After and RateLimit headers for every key, within the limit across two processes, and served again after Retry-After", async () => {
  // Fixtures through a server of their own, so that the servers under test
  // hold no slice of these tenants' minutes.
  const setup = await startServer();
  const server = await startServer();
  const processes: Awaited<ReturnType<typeof spawnService>>[] = [];
  try {
    await withPlan(setup, "enterprise", { requests_per_minute: LIMIT }, async () => {
      const onPlan = async (name: string) => {
        const tenant = await createTenant(setup, name);
        await expectStatus(200, {
          server: setup,
          method: "PATCH",
          path: `/v1/admin/tenants/${tenant.tenantId}`,
          token: setup.config.platformAdminToken!,
          body: { subscription_tier: "enterprise" },
        });
        return tenant;
      };
      const single = await onPlan("Rate single");
      const shared = await onPlan("Rate shared");
      const bystander = await createTenant(setup, "Rate bystander");
      const secondKey = await issueKey(setup, single.tenantId, { permissions: ["users:read"] });
      for (let i = 0; i < 2; i++) {
        processes.push(
          await spawnService({
            APP_DATABASE_URL: requireEnv("APP_DATABASE_URL"),
            ADMIN_DATABASE_URL: "",
            DB_POOL_MIN: "0",
            WORKERS: String(WORKERS_EACH),
          }),
        );
      }

      // A minute with at least 30 s left, so that every request below falls
      // in it, and the two tenants' budgets whole in it: the fixtures'
      // requests were leased by the setup server.
      const probe = await getTenant(server.url, bystander.key);
      assert.equal(probe.status, 200);
      assert.equal(probe.headers.get("ratelimit-policy"), '"tenant";q=6000;w=60', "the free plan's policy");
      const { t } = rateLimitOf(probe.headers);
      if (t < 30) await sleep(t * 1000 + 500);
      await server.owner`
        update core.request_windows set window_start = '-infinity', leased = 0
        where tenant_id in (${single.tenantId}, ${shared.tenantId})`;

      // One process: exactly the limit, then 429s for every key of the tenant.
      const replies = [];
      for (let i = 0; i < LIMIT + 5; i++) replies.push(await getTenant(server.url, single.key));
      assert.deepEqual(
        replies.map((reply) => reply.status),
        [...Array(LIMIT).fill(200), ...Array(5).fill(429)],
        "the limit is served, and nothing more",
      );
      assert.equal(replies[0].headers.get("ratelimit-policy"), `"tenant";q=${LIMIT};w=60`);
      const remainingSeen = replies.slice(0, LIMIT).map((reply) => rateLimitOf(reply.headers).r);
      assert.deepEqual(
        remainingSeen,
        Array.from({ length: LIMIT }, (_, i) => LIMIT - 1 - i),
        "what is left counts down",
      );
      const last = replies.at(-1)!;
      assertProblem(last, 429);
      assert.equal(last.body.type, RATE_LIMITED);
      assert.equal(last.body.limit, LIMIT);
      const retryAfter = Number(last.headers.get("retry-after"));
      assert.ok(
        Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60,
        `Retry-After: ${retryAfter}`,
      );
      assert.equal(last.headers.get("ratelimit-policy"), `"tenant";q=${LIMIT};w=60`);
      assert.deepEqual(rateLimitOf(last.headers), { r: 0, t: retryAfter });
      assert.equal(
        (await getTenant(server.url, secondKey.key)).status,
        429,
        "the tenant's other key shares its minute",
      );
      assert.equal(
        (await getTenant(server.url, bystander.key)).status,
        200,
        "another tenant is served as before",
      );
      assert.match(metricsText(server.pools), /^tenancy_rate_limited_total [1-9]\d*$/m);

      // Two processes, the requests spread unevenly between them, five at a time.
      const statuses: number[] = [];
      for (let round = 0; round < 15; round++) {
        const batch = Array.from(
          { length: 5 },
          (_, i) => processes[(i < 4) === (round % 3 === 0) ? 1 : 0].url,
        );
        statuses.push(
          ...(await Promise.all(batch.map(async (url) => (await getTenant(url, shared.key)).status))),
        );
      }
      const accepted = statuses.filter((status) => status === 200).length;
      assert.deepEqual([...new Set(statuses)].sort(), [200, 429], `answers: ${statuses.join(",")}`);
      assert.ok(
        accepted <= LIMIT && accepted >= LIMIT - (SPENDERS - 1) * SLICE,
        `two processes served ${accepted} of ${LIMIT}; at most a slice (${SLICE}) may be left in each other worker`,
      );
      const [{ leased }] = await server.owner`
        select leased from core.request_windows where tenant_id = ${shared.tenantId}`;
      assert.equal(leased, LIMIT, "the database leased the whole minute, and no more");

      // After Retry-After, a new minute: served again, by either process.
      await sleep(retryAfter * 1000 + 500);
      assert.equal((await getTenant(server.url, single.key)).status, 200, "served again after Retry-After");
      assert.equal((await getTenant(processes[1].url, shared.key)).status, 200);
    });
  } finally {
    for (const process of processes) await process.stop();
    await server.close();
    await setup.close();
  }
});

Deno.test("a key revoked after the limiter saw it spends nothing of its tenant's minute and hears nothing of it", async () => {
  const server = await startServer();
  try {
    const tenant = await createTenant(server, "Revoked spender");
    const victim = await issueKey(server, tenant.tenantId, { permissions: ["users:read"] });
    // A minute with at least 20 s left, so that the requests below share it.
    const probe = await getTenant(server.url, tenant.key);
    if (rateLimitOf(probe.headers).t < 20) await sleep(rateLimitOf(probe.headers).t * 1000 + 500);
    const used = await getTenant(server.url, victim.key);
    assert.equal(used.status, 200);
    const before = rateLimitOf(used.headers).r;
    await expectStatus(204, {
      server,
      method: "DELETE",
      path: `/v1/admin/tenants/${tenant.tenantId}/api-keys/${victim.keyId}`,
      token: server.config.platformAdminToken!,
    });
    for (let i = 0; i < 10; i++) {
      const refused = await getTenant(server.url, victim.key);
      assert.equal(refused.status, 401);
      assert.equal(
        refused.headers.get("ratelimit"),
        null,
        "a revoked key learns nothing of its tenant's minute",
      );
      assert.equal(refused.headers.get("ratelimit-policy"), null);
    }
    const after = await getTenant(server.url, tenant.key);
    assert.equal(after.status, 200);
    assert.equal(rateLimitOf(after.headers).r, before - 1, "only the valid key's request was spent");
  } finally {
    await server.close();
  }
});

Deno.test("RATE_LIMITS=false serves a tenant past its plan's minute, without RateLimit headers", async () => {
  const server: TestServer = await startServer({ RATE_LIMITS: "false" });
  try {
    await withPlan(server, "enterprise", { requests_per_minute: 2 }, async () => {
      const tenant = await createTenant(server, "Unlimited");
      await expectStatus(200, {
        server,
        method: "PATCH",
        path: `/v1/admin/tenants/${tenant.tenantId}`,
        token: server.config.platformAdminToken!,
        body: { subscription_tier: "enterprise" },
      });
      const replies = await Promise.all(Array.from({ length: 5 }, () => getTenant(server.url, tenant.key)));
      assert.deepEqual(replies.map((reply) => reply.status), [200, 200, 200, 200, 200]);
      assert.equal(replies[0].headers.get("ratelimit"), null);
    });
  } finally {
    await server.close();
  }
});
