/**
 * Tenant isolation over HTTP: tenant A's key against every one of tenant B's
 * resources, by every method, must answer as if they did not exist and leave
 * B exactly as it was (checked as the owner, bypassing row-level security).
 */
import assert from "node:assert/strict";
import { allRoutes } from "../src/app.ts";
import type { DbRoute } from "../src/http/router.ts";
import {
  assertProblem,
  expectStatus,
  fieldErrors,
  issueKey,
  listAll,
  send,
  tenantSnapshot,
} from "./assertions.ts";
import { createTenant, SOME_HASH, startServer, type TestServer, type TestTenant } from "./support.ts";

/** A tenant with one row of every kind, and the ids of its rows. */
interface Populated extends TestTenant {
  documentId: string;
  /** The key createTenant issued, the author's key, and one the tenant issued itself. */
  keyIds: string[];
}

async function populate(server: TestServer, name: string): Promise<Populated> {
  const tenant = await createTenant(server, name);
  // Written with a key bound to the tenant's user, so the document and its
  // audit row both carry that user_id: filters by it have rows to find.
  const author = await issueKey(server, tenant.tenantId, {
    permissions: ["documents:write"],
    userId: tenant.userId,
  });
  const document = await expectStatus(201, {
    server,
    method: "POST",
    path: "/v1/documents",
    token: author.key,
    body: {
      user_id: tenant.userId,
      title: `${name} document`,
      content_hash: SOME_HASH,
      metadata: { owner: name },
    },
  });
  const key = await expectStatus(201, {
    server,
    method: "POST",
    path: "/v1/api-keys",
    token: tenant.key,
    body: { name: `${name} reader`, permissions: ["users:read"], user_id: tenant.userId },
  });
  return {
    ...tenant,
    documentId: String(document.body.document_id),
    keyIds: [tenant.keyId, author.keyId, String(key.body.key_id)],
  };
}

Deno.test("tenant A's key gets 404 for each of B's users, documents and API keys by GET, PATCH and DELETE, and B is unchanged", async (t) => {
  const server = await startServer();
  try {
    const a = await populate(server, "Tenant A");
    const b = await populate(server, "Tenant B");
    const before = await tenantSnapshot(server, b.tenantId);
    const token = a.key;

    const attempts: { resource: string; id: string; method: string; body?: unknown }[] = [
      { resource: "users", id: b.userId, method: "GET" },
      { resource: "users", id: b.userId, method: "PATCH", body: { role: "viewer" } },
      { resource: "users", id: b.userId, method: "PATCH", body: { email: "taken-over@example.test" } },
      { resource: "users", id: b.userId, method: "DELETE" },
      { resource: "documents", id: b.documentId, method: "GET" },
      { resource: "documents", id: b.documentId, method: "PATCH", body: { title: "Overwritten by A" } },
      { resource: "documents", id: b.documentId, method: "PATCH", body: { metadata: { owner: "A" } } },
      { resource: "documents", id: b.documentId, method: "DELETE" },
      ...b.keyIds.map((id) => ({ resource: "api-keys", id, method: "DELETE" })),
    ];
    for (const { resource, id, method, body } of attempts) {
      await t.step(`${method} /v1/${resource}/{B's id} ${body ? JSON.stringify(body) : ""}`, async () => {
        assertProblem(await send(server, method, `/v1/${resource}/${id}`, { token, body }), 404);
        assert.deepEqual(await tenantSnapshot(server, b.tenantId), before, "tenant B changed");
      });
    }

    // API keys have no GET or PATCH by id: B's key ids get exactly what A's own get.
    for (const method of ["GET", "PATCH"]) {
      await t.step(`${method} /v1/api-keys/{B's id} answers as for A's own key: 405`, async () => {
        const body = method === "PATCH" ? { name: "renamed" } : undefined;
        const theirs = await send(server, method, `/v1/api-keys/${b.keyIds[1]}`, { token, body });
        const ours = await send(server, method, `/v1/api-keys/${a.keyIds[1]}`, { token, body });
        assertProblem(theirs, 405);
        assert.equal(ours.status, theirs.status);
        assert.equal(ours.headers.get("allow"), theirs.headers.get("allow"));
      });
    }

    await t.step("A's key reaches its own rows by the same routes (the 404s are isolation)", async () => {
      await expectStatus(200, { server, method: "GET", path: `/v1/users/${a.userId}`, token });
      await expectStatus(200, { server, method: "GET", path: `/v1/documents/${a.documentId}`, token });
      await expectStatus(200, {
        server,
        method: "PATCH",
        path: `/v1/documents/${a.documentId}`,
        token,
        body: { title: "A may edit its own" },
      });
    });

    await t.step("B's keys still work and B's rows are as they were", async () => {
      await expectStatus(200, { server, method: "GET", path: "/v1/tenant", token: b.key });
      const read = await expectStatus(200, {
        server,
        method: "GET",
        path: `/v1/documents/${b.documentId}`,
        token: b.key,
      });
      assert.equal(read.body.title, "Tenant B document");
      assert.deepEqual(await tenantSnapshot(server, b.tenantId), before);
    });
  } finally {
    await server.close();
  }
});

Deno.test("tenant A's lists never contain tenant B's rows, whatever the filter", async (t) => {
  const server = await startServer();
  try {
    const a = await populate(server, "Lister A");
    const b = await populate(server, "Lister B");
    const bIds = new Set([b.tenantId, b.userId, b.documentId, ...b.keyIds]);
    const bLogIds = new Set(
      (await server.owner`select log_id from core.audit_logs where tenant_id = ${b.tenantId}`).map((r) =>
        r.log_id
      ),
    );
    assert.ok(bLogIds.size > 0, "tenant B has no audit rows to leak");
    const lists: [string, string][] = [
      ["/v1/users", "select user_id as id from core.users where tenant_id = $1"],
      ["/v1/documents", "select document_id as id from core.documents where tenant_id = $1"],
      ["/v1/api-keys", "select key_id as id from core.tenant_api_keys where tenant_id = $1"],
      ["/v1/audit-logs", "select log_id as id from core.audit_logs where tenant_id = $1"],
    ];
    for (const [path, query] of lists) {
      await t.step(`GET ${path}`, async () => {
        const { items } = await listAll(server, path, { token: a.key, limit: 100 });
        const own = (await server.owner.unsafe(query, [a.tenantId])).map((row) => row.id);
        assert.ok(own.length > 0, "tenant A has no rows here: the check would be vacuous");
        assert.equal(items.length, own.length, "A's list is not exactly A's rows");
        for (const item of items) {
          assert.equal(item.tenant_id, a.tenantId);
          for (const value of Object.values(item)) {
            assert.ok(!bIds.has(String(value)) && !bLogIds.has(String(value)), `B's id ${value} listed to A`);
          }
        }
      });
    }
    const filtered = [
      `/v1/documents?user_id=${b.userId}`,
      `/v1/audit-logs?user_id=${b.userId}`,
      `/v1/audit-logs?resource_type=documents&user_id=${b.userId}`,
    ];
    for (const path of filtered) {
      await t.step(`GET ${path} (B's user) is empty`, async () => {
        // The same filter with B's own key finds B's rows: A's empty answer is RLS at work.
        const own = await expectStatus(200, { server, method: "GET", path, token: b.key });
        assert.ok(
          (own.body.items ?? []).length > 0,
          `B's key finds nothing at ${path}: the check would be vacuous`,
        );
        const reply = await expectStatus(200, { server, method: "GET", path, token: a.key });
        assert.deepEqual(reply.body.items, []);
      });
    }
    await t.step("GET /v1/tenant and /v1/config answer with A's own tenant", async () => {
      const tenant = await expectStatus(200, { server, method: "GET", path: "/v1/tenant", token: a.key });
      assert.equal(tenant.body.tenant_id, a.tenantId);
      const config = await expectStatus(200, { server, method: "GET", path: "/v1/config", token: a.key });
      assert.equal(config.body.tenant_id, a.tenantId);
    });
  } finally {
    await server.close();
  }
});

Deno.test("POST /v1/documents with A's key and B's user_id is 422 and creates nothing in either tenant", async () => {
  const server = await startServer();
  try {
    const a = await populate(server, "Author A");
    const b = await populate(server, "Author B");
    const beforeA = await tenantSnapshot(server, a.tenantId);
    const beforeB = await tenantSnapshot(server, b.tenantId);
    assertProblem(
      await send(server, "POST", "/v1/documents", {
        token: a.key,
        body: { user_id: b.userId, title: "Authored across tenants", content_hash: SOME_HASH },
      }),
      422,
    );
    assertProblem(
      await send(server, "POST", "/v1/api-keys", {
        token: a.key,
        body: { name: "bound across tenants", permissions: ["users:read"], user_id: b.userId },
      }),
      422,
    );
    assertProblem(
      await send(server, "POST", `/v1/admin/tenants/${a.tenantId}/api-keys`, {
        token: server.config.platformAdminToken,
        body: { name: "bound across tenants", permissions: ["users:read"], user_id: b.userId },
      }),
      422,
    );
    assert.deepEqual(await tenantSnapshot(server, a.tenantId), beforeA);
    assert.deepEqual(await tenantSnapshot(server, b.tenantId), beforeB);
    const [{ count }] = await server.owner`
      select count(*)::int as count from core.documents where title = 'Authored across tenants'`;
    assert.equal(count, 0);
  } finally {
    await server.close();
  }
});

Deno.test("a tenant_id in a request body or query is rejected with 400, never obeyed", async (t) => {
  const server = await startServer();
  try {
    const a = await populate(server, "Claimant A");
    const b = await populate(server, "Target B");
    const beforeB = await tenantSnapshot(server, b.tenantId);
    const beforeA = await tenantSnapshot(server, a.tenantId);
    const writes: [string, string, Record<string, unknown>][] = [
      ["POST", "/v1/users", { email: "planted@example.test" }],
      ["PATCH", `/v1/users/${a.userId}`, { role: "viewer" }],
      ["POST", "/v1/documents", { user_id: a.userId, title: "Planted", content_hash: SOME_HASH }],
      ["PATCH", `/v1/documents/${a.documentId}`, { title: "Moved" }],
      ["POST", "/v1/api-keys", { name: "planted", permissions: ["users:read"] }],
      ["PATCH", "/v1/config", { settings: { planted: true } }],
    ];
    const tenantRoutes = allRoutes().filter((r): r is DbRoute => r.access === "tenant" && Boolean(r.body));
    assert.equal(writes.length, tenantRoutes.length, "a tenant route with a body is not covered here");
    for (const [method, path, body] of writes) {
      await t.step(`${method} ${path} with tenant_id`, async () => {
        const reply = await send(server, method, path, {
          token: a.key,
          body: { ...body, tenant_id: b.tenantId },
        });
        assertProblem(reply, 400);
        assert.deepEqual(fieldErrors(reply), ["body:tenant_id"]);
      });
    }
    for (
      const path of [
        "/v1/users",
        "/v1/documents",
        "/v1/api-keys",
        "/v1/audit-logs",
        "/v1/tenant",
        "/v1/config",
      ]
    ) {
      await t.step(`GET ${path}?tenant_id=B`, async () => {
        const reply = await send(server, "GET", `${path}?tenant_id=${b.tenantId}`, { token: a.key });
        assertProblem(reply, 400);
        assert.deepEqual(fieldErrors(reply), ["query:tenant_id"]);
      });
    }
    assert.deepEqual(await tenantSnapshot(server, b.tenantId), beforeB);
    assert.deepEqual(await tenantSnapshot(server, a.tenantId), beforeA);

    await t.step("a tenant_id inside the free-form settings stays a setting of A", async () => {
      const reply = await expectStatus(200, {
        server,
        method: "PATCH",
        path: "/v1/config",
        token: a.key,
        body: { settings: { tenant_id: b.tenantId } },
      });
      assert.equal(reply.body.tenant_id, a.tenantId);
      assert.equal((reply.body.settings as Record<string, unknown>).tenant_id, b.tenantId);
      assert.deepEqual(await tenantSnapshot(server, b.tenantId), beforeB);
    });
  } finally {
    await server.close();
  }
});

Deno.test("the same Idempotency-Key in two tenants creates a row in each and never replays the other's response", async () => {
  const server = await startServer();
  try {
    const a = await createTenant(server, "Idempotent A");
    const b = await createTenant(server, "Idempotent B");
    const headers = { "idempotency-key": `shared-${crypto.randomUUID()}` };
    const body = { email: `same-${crypto.randomUUID().slice(0, 8)}@example.test` };
    const first = await expectStatus(201, {
      server,
      method: "POST",
      path: "/v1/users",
      token: b.key,
      body,
      headers,
    });
    const second = await expectStatus(201, {
      server,
      method: "POST",
      path: "/v1/users",
      token: a.key,
      body,
      headers,
    });
    assert.equal(first.body.tenant_id, b.tenantId);
    assert.equal(second.body.tenant_id, a.tenantId);
    assert.notEqual(second.body.user_id, first.body.user_id);
    assert.equal(second.headers.get("idempotent-replayed"), null);
    const replay = await expectStatus(201, {
      server,
      method: "POST",
      path: "/v1/users",
      token: a.key,
      body,
      headers,
    });
    assert.equal(replay.headers.get("idempotent-replayed"), "true");
    assert.deepEqual(replay.body, second.body);
  } finally {
    await server.close();
  }
});
