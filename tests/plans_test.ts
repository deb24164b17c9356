/**
 * Plans and quotas over HTTP, from a tenant's and an operator's side: the
 * tenant sees its plan, its limits and its usage; a write past a limit is a
 * 409 (413 for metadata) of its own problem type naming the limit and the
 * usage, concurrent writers of one tenant never pass it, deleting frees
 * room, and operators change a tier's limits for its tenants' next request.
 * The tests change the pro plan and put their own tenants on it, and put the
 * plan back as they found it.
 */
import assert from "node:assert/strict";
import { assertProblem, expectStatus, fieldErrors, send, withPlan } from "./assertions.ts";
import { createTenant, SOME_HASH, startServer, type TestServer } from "./support.ts";

const QUOTA = "https://tenancy.dev/problems/quota-exceeded";

/** A tenant of the pro tier with one user and a key holding every permission. */
async function proTenant(server: TestServer, name: string) {
  const tenant = await createTenant(server, name);
  await expectStatus(200, {
    server,
    method: "PATCH",
    path: `/v1/admin/tenants/${tenant.tenantId}`,
    token: server.config.platformAdminToken!,
    body: { subscription_tier: "pro" },
  });
  return tenant;
}

Deno.test("GET /v1/tenant shows the plan's limits and the tenant's usage of them", async () => {
  const server = await startServer();
  try {
    const tenant = await proTenant(server, "plan-shown");
    const reply = await expectStatus(200, { server, method: "GET", path: "/v1/tenant", token: tenant.key });
    const plan = reply.body.plan as Record<string, Record<string, number>>;
    assert.equal(plan.tier as unknown, "pro");
    assert.deepEqual(plan.usage, { documents: 0, users: 1, api_keys: 1 });
    assert.deepEqual(Object.keys(plan.limits).sort(), [
      "api_keys",
      "documents",
      "metadata_bytes",
      "requests_per_minute",
      "users",
    ]);
  } finally {
    await server.close();
  }
});

Deno.test("concurrent writers of one tenant never pass its document limit; the rest get a quota problem", async () => {
  const server = await startServer();
  try {
    const tenant = await proTenant(server, "plan-concurrent");
    await withPlan(server, "pro", { max_documents: 5 }, async () => {
      const replies = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          send(server, "POST", "/v1/documents", {
            token: tenant.key,
            body: { user_id: tenant.userId, title: `Race ${i}`, content_hash: SOME_HASH },
          })),
      );
      const statuses = replies.map((reply) => reply.status).sort();
      assert.deepEqual(statuses, [...Array(5).fill(201), ...Array(15).fill(409)]);
      for (const reply of replies.filter((reply) => reply.status === 409)) {
        assertProblem(reply, 409);
        assert.equal(reply.body.type, QUOTA);
        assert.deepEqual([reply.body.quota, reply.body.limit, reply.body.usage], ["documents", 5, 5]);
        assert.equal(reply.body.detail, "The plan allows 5 documents; the tenant has 5");
      }
      const [{ count }] = await server.owner`
        select count(*)::int as count from core.documents where tenant_id = ${tenant.tenantId}`;
      assert.equal(count, 5);
      // Deleting one frees room for exactly one more.
      const first = replies.find((reply) => reply.status === 201)!;
      await expectStatus(204, {
        server,
        method: "DELETE",
        path: `/v1/documents/${first.body.document_id}`,
        token: tenant.key,
      });
      await expectStatus(201, {
        server,
        method: "POST",
        path: "/v1/documents",
        token: tenant.key,
        body: { user_id: tenant.userId, title: "After delete", content_hash: SOME_HASH },
      });
      const usage = await expectStatus(200, { server, method: "GET", path: "/v1/tenant", token: tenant.key });
      assert.equal((usage.body.plan as { usage: { documents: number } }).usage.documents, 5);
    });
  } finally {
    await server.close();
  }
});

Deno.test("metadata larger than the plan allows is a 413 quota problem; a tier's new limits apply to the next request", async () => {
  const server = await startServer();
  try {
    const tenant = await proTenant(server, "plan-metadata");
    await withPlan(server, "pro", { max_metadata_bytes: 30 }, async (planPath) => {
      const body = {
        user_id: tenant.userId,
        title: "Big",
        content_hash: SOME_HASH,
        metadata: { note: "x".repeat(40) },
      };
      const refused = await send(server, "POST", "/v1/documents", { token: tenant.key, body });
      assertProblem(refused, 413);
      assert.equal(refused.body.type, QUOTA);
      assert.deepEqual([refused.body.quota, refused.body.limit], ["metadata_bytes", 30]);
      await expectStatus(200, {
        server,
        method: "PATCH",
        path: planPath,
        token: server.config.platformAdminToken!,
        body: { max_metadata_bytes: 100 },
      });
      await expectStatus(201, { server, method: "POST", path: "/v1/documents", token: tenant.key, body });
    });
  } finally {
    await server.close();
  }
});

Deno.test("plan routes: operators only, known tiers, bounded limits", async () => {
  const server = await startServer();
  try {
    const tenant = await createTenant(server, "plan-routes");
    const admin = server.config.platformAdminToken!;
    const plans = await expectStatus(200, { server, method: "GET", path: "/v1/admin/plans", token: admin });
    assert.deepEqual(plans.body.items!.map((plan) => plan.tier).sort(), ["enterprise", "free", "pro"]);
    await expectStatus(401, { server, method: "GET", path: "/v1/admin/plans", token: tenant.key });
    const pro = plans.body.items!.find((plan) => plan.tier === "pro")!;
    await expectStatus(404, {
      server,
      method: "PATCH",
      path: `/v1/admin/plans/${crypto.randomUUID()}`,
      token: admin,
      body: { max_users: 1 },
    });
    const path = `/v1/admin/plans/${pro.plan_id}`;
    await expectStatus(400, { server, method: "PATCH", path, token: admin, body: {} });
    const bounded = await expectStatus(400, {
      server,
      method: "PATCH",
      path,
      token: admin,
      body: { requests_per_minute: 0, max_users: -1 },
    });
    assert.deepEqual(fieldErrors(bounded), ["body:max_users", "body:requests_per_minute"]);
  } finally {
    await server.close();
  }
});

Deno.test("PATCH /v1/config: a setting the database acts on with the wrong type is a 400 naming it", async () => {
  const server = await startServer();
  try {
    const tenant = await createTenant(server, "settings-checked");
    for (
      const [name, value] of [
        ["audit_retention_days", "2555"],
        ["audit_retention_days", 364],
        ["require_two_person_approval", "yes"],
        ["currency", "euro"],
        ["data_residency", "EU"],
      ]
    ) {
      const reply = await expectStatus(400, {
        server,
        method: "PATCH",
        path: "/v1/config",
        token: tenant.key,
        body: { settings: { [name as string]: value } },
      });
      assert.ok(
        fieldErrors(reply).some((field) => field.includes(name as string)),
        JSON.stringify(reply.body),
      );
    }
    const kept = await expectStatus(200, {
      server,
      method: "PATCH",
      path: "/v1/config",
      token: tenant.key,
      body: { settings: { audit_retention_days: 3650, favourite_colour: "teal" } },
    });
    assert.equal((kept.body.settings as Record<string, unknown>).audit_retention_days, 3650);
    assert.equal((kept.body.settings as Record<string, unknown>).favourite_colour, "teal");
  } finally {
    await server.close();
  }
});
