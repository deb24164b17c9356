/**
 * The audit trail over HTTP: each mutating request leaves exactly one row per
 * row it changed, carrying the id the service assigned to the request, the
 * client's x-request-id beside it, and the id of the key that made it;
 * GET /v1/audit-logs shows them, its filters work, and another tenant's rows
 * never appear.
 */
import assert from "node:assert/strict";
import { sha256Hex } from "../src/http/auth.ts";
import { assertProblem, expectStatus, issueKey, listAll, send } from "./assertions.ts";
import { createTenant, SOME_HASH, startServer, type TestServer } from "./support.ts";

interface AuditRow {
  log_id: string;
  tenant_id: string;
  user_id: string | null;
  api_key_id: string | null;
  action: string;
  resource_type: string;
  resource_id: string;
  details: { changed: string[]; old?: Record<string, unknown>; new?: Record<string, unknown> };
  request_id: string | null;
  client_request_id: string | null;
  operator_id: string | null;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/**
 * The rows written by the requests that sent this x-request-id. Each carries
 * it as client_request_id, and the server's own id as request_id: a UUID,
 * never the client's value.
 */
async function auditRowsOf(server: TestServer, clientRequestId: string): Promise<AuditRow[]> {
  const rows = await server.owner`
    select log_id, tenant_id, user_id, api_key_id, action, resource_type, resource_id, details, request_id,
           client_request_id, operator_id
    from core.audit_logs where client_request_id = ${clientRequestId}
    order by resource_type, action, resource_id`;
  for (const row of rows) assert.match(String(row.request_id), UUID, "request_id is not the server's UUID");
  return rows.map((row) => ({ ...row }) as AuditRow);
}

function newRequestId(): string {
  return `audit-${crypto.randomUUID()}`;
}

function summary(rows: AuditRow[]): string[] {
  return rows.map((row) => `${row.action} ${row.resource_type} ${row.resource_id}`).sort();
}

Deno.test("each mutating tenant request leaves one audit row per changed row, with its x-request-id and key", async (t) => {
  const server = await startServer();
  try {
    const tenant = await createTenant(server, "Audited tenant");
    const { key, keyId } = await issueKey(server, tenant.tenantId, { permissions: ["*"] });
    const state: Record<string, string> = {};

    /** Sends one request with a fresh request id and returns it with the response. */
    const act = async (method: string, path: string, body?: unknown, status = 200) => {
      const requestId = newRequestId();
      const reply = await expectStatus(status, {
        server,
        method,
        path,
        token: key,
        body,
        headers: { "x-request-id": requestId },
      });
      assert.equal(reply.headers.get("x-request-id"), requestId);
      const rows = await auditRowsOf(server, requestId);
      assert.ok(
        new Set(rows.map((row) => row.request_id)).size <= 1,
        "one request wrote rows under two server ids",
      );
      return { reply, rows };
    };
    const assertAttribution = (rows: AuditRow[], userId: string | null = null) => {
      for (const row of rows) {
        assert.equal(row.tenant_id, tenant.tenantId);
        assert.equal(row.api_key_id, keyId, "the audit row names another key");
        assert.equal(row.user_id, userId);
        assert.ok(!("key_hash" in (row.details.new ?? {})) && !("key_hash" in (row.details.old ?? {})));
      }
    };

    await t.step("POST /v1/users: one insert", async () => {
      const { reply, rows } = await act("POST", "/v1/users", { email: "audited@example.test" }, 201);
      state.userId = String(reply.body.user_id);
      assert.deepEqual(summary(rows), [`insert users ${state.userId}`]);
      assert.equal(rows[0].details.new?.email, "audited@example.test");
      assertAttribution(rows);
    });
    await t.step("PATCH /v1/users/{id}: one update naming the changed column", async () => {
      const { rows } = await act("PATCH", `/v1/users/${state.userId}`, { role: "viewer" });
      assert.deepEqual(summary(rows), [`update users ${state.userId}`]);
      assert.deepEqual(rows[0].details.changed, ["role"]);
      assert.deepEqual(rows[0].details.old, { role: "member" });
      assert.deepEqual(rows[0].details.new, { role: "viewer" });
      assertAttribution(rows);
    });
    await t.step("PATCH /v1/users/{id} that changes nothing: no row", async () => {
      const { rows } = await act("PATCH", `/v1/users/${state.userId}`, { role: "viewer" });
      assert.deepEqual(rows, []);
    });
    await t.step("POST /v1/documents: one insert", async () => {
      const { reply, rows } = await act(
        "POST",
        "/v1/documents",
        { user_id: state.userId, title: "Audited", content_hash: SOME_HASH },
        201,
      );
      state.documentId = String(reply.body.document_id);
      assert.deepEqual(summary(rows), [`insert documents ${state.documentId}`]);
      assertAttribution(rows);
    });
    await t.step("PATCH /v1/documents/{id}: one update", async () => {
      const { rows } = await act("PATCH", `/v1/documents/${state.documentId}`, { title: "Audited twice" });
      assert.deepEqual(summary(rows), [`update documents ${state.documentId}`]);
      assert.deepEqual(rows[0].details.changed, ["title"]);
      assertAttribution(rows);
    });
    await t.step("DELETE /v1/documents/{id}: one delete", async () => {
      const { rows } = await act("DELETE", `/v1/documents/${state.documentId}`, undefined, 204);
      assert.deepEqual(summary(rows), [`delete documents ${state.documentId}`]);
      assert.equal(rows[0].details.old?.title, "Audited twice");
      assertAttribution(rows);
    });
    await t.step("POST /v1/api-keys: one insert that holds neither the key nor its hash", async () => {
      const { reply, rows } = await act(
        "POST",
        "/v1/api-keys",
        { name: "audited key", permissions: ["users:read"], user_id: state.userId },
        201,
      );
      state.keyId = String(reply.body.key_id);
      assert.deepEqual(summary(rows), [`insert tenant_api_keys ${state.keyId}`]);
      const details = JSON.stringify(rows[0].details);
      assert.ok(!details.includes(String(reply.body.key)), "the audit row holds the key");
      assert.ok(
        !details.includes(sha256Hex(String(reply.body.key))),
        "the audit row holds the key's hash",
      );
      assertAttribution(rows);
    });
    await t.step("DELETE /v1/api-keys/{id}: one update setting revoked_at", async () => {
      const { rows } = await act("DELETE", `/v1/api-keys/${state.keyId}`, undefined, 204);
      assert.deepEqual(summary(rows), [`update tenant_api_keys ${state.keyId}`]);
      assert.deepEqual(rows[0].details.changed, ["revoked_at"]);
      assertAttribution(rows);
    });
    await t.step("PATCH /v1/config: one update", async () => {
      const { rows } = await act("PATCH", "/v1/config", { settings: { audited: true } });
      assert.deepEqual(summary(rows), [`update tenant_configs ${tenant.tenantId}`]);
      assert.deepEqual(rows[0].details.changed, ["settings"]);
      assertAttribution(rows);
    });
    await t.step(
      "DELETE /v1/users/{id}: one delete for the user; its keys revoked (unless already) and unbound, each audited",
      async () => {
        const bound = await issueKey(server, tenant.tenantId, {
          permissions: ["users:read"],
          userId: state.userId,
        });
        const { rows } = await act("DELETE", `/v1/users/${state.userId}`, undefined, 204);
        const changes = rows.map((row) =>
          `${row.action} ${row.resource_type} ${row.resource_id} ${row.details.changed.join(",")}`
        ).sort();
        assert.deepEqual(
          changes,
          [
            `delete users ${state.userId} email,role,tenant_id,user_id`,
            `update tenant_api_keys ${bound.keyId} revoked_at`,
            `update tenant_api_keys ${bound.keyId} user_id`,
            // Revoked by the step above already: only unbound now.
            `update tenant_api_keys ${state.keyId} user_id`,
          ].sort(),
        );
        assertAttribution(rows);
      },
    );
    await t.step(
      "a conflict, an unknown id, a foreign author, a bad body and reads leave no row",
      async () => {
        // The first, accepted, request is the control: the same check sees its row.
        const refused: [string, string, unknown, number][] = [
          ["POST", "/v1/users", { email: "again@example.test" }, 201],
          ["POST", "/v1/users", { email: "AGAIN@example.test" }, 409],
          ["PATCH", `/v1/users/${crypto.randomUUID()}`, { role: "viewer" }, 404],
          [
            "POST",
            "/v1/documents",
            { user_id: crypto.randomUUID(), title: "x", content_hash: SOME_HASH },
            422,
          ],
          ["POST", "/v1/documents", { title: "" }, 400],
          ["GET", "/v1/users", undefined, 200],
          ["GET", "/v1/audit-logs", undefined, 200],
        ];
        for (const [method, path, body, status] of refused) {
          const { rows } = await act(method, path, body, status);
          assert.equal(rows.length, status === 201 ? 1 : 0, `${method} ${path} -> ${status}`);
        }
      },
    );
  } finally {
    await server.close();
  }
});

Deno.test("audit rows of a key bound to a user name that user", async () => {
  const server = await startServer();
  try {
    const tenant = await createTenant(server, "Bound actor");
    const bound = await issueKey(server, tenant.tenantId, {
      permissions: ["documents:write"],
      userId: tenant.userId,
    });
    const requestId = newRequestId();
    const reply = await expectStatus(201, {
      server,
      method: "POST",
      path: "/v1/documents",
      token: bound.key,
      headers: { "x-request-id": requestId },
      body: { user_id: tenant.userId, title: "By a bound key", content_hash: SOME_HASH },
    });
    const rows = await auditRowsOf(server, requestId);
    assert.deepEqual(summary(rows), [`insert documents ${reply.body.document_id}`]);
    assert.equal(rows[0].user_id, tenant.userId);
    assert.equal(rows[0].api_key_id, bound.keyId);
  } finally {
    await server.close();
  }
});

Deno.test("a POST replayed through its Idempotency-Key writes no second audit row", async () => {
  const server = await startServer();
  try {
    const tenant = await createTenant(server, "Replayed writes");
    const headers = { "idempotency-key": `once-${crypto.randomUUID()}` };
    const body = { email: "replayed@example.test" };
    const first = await expectStatus(201, {
      server,
      method: "POST",
      path: "/v1/users",
      token: tenant.key,
      body,
      headers,
    });
    const replayId = newRequestId();
    const again = await expectStatus(201, {
      server,
      method: "POST",
      path: "/v1/users",
      token: tenant.key,
      body,
      headers: { ...headers, "x-request-id": replayId },
    });
    assert.equal(again.body.user_id, first.body.user_id);
    assert.deepEqual(await auditRowsOf(server, replayId), []);
    const [{ count }] = await server.owner`
      select count(*)::int as count from core.audit_logs
      where resource_id = ${String(first.body.user_id)} and action = 'insert'`;
    assert.equal(count, 1);
  } finally {
    await server.close();
  }
});

Deno.test("platform mutations are audited with their x-request-id, their operator and no API key", async () => {
  const server = await startServer();
  try {
    const token = server.config.platformAdminToken!;
    const act = async (method: string, path: string, body?: unknown, status = 200) => {
      const requestId = newRequestId();
      const reply = await expectStatus(status, {
        server,
        method,
        path,
        token,
        body,
        headers: { "x-request-id": requestId },
      });
      return { reply, rows: await auditRowsOf(server, requestId) };
    };
    const created = await act("POST", "/v1/admin/tenants", {
      name: "Platform audited",
      template_name: "Fintech Template",
    }, 201);
    const tenantId = String(created.reply.body.tenant_id);
    assert.deepEqual(summary(created.rows), [
      `insert tenant_configs ${tenantId}`,
      `insert tenants ${tenantId}`,
    ]);

    const patched = await act("PATCH", `/v1/admin/tenants/${tenantId}`, { subscription_tier: "pro" });
    assert.deepEqual(summary(patched.rows), [`update tenants ${tenantId}`]);

    const key = await act(
      "POST",
      `/v1/admin/tenants/${tenantId}/api-keys`,
      { name: "k", permissions: ["*"] },
      201,
    );
    assert.deepEqual(summary(key.rows), [`insert tenant_api_keys ${key.reply.body.key_id}`]);

    const revoked = await act(
      "DELETE",
      `/v1/admin/tenants/${tenantId}/api-keys/${key.reply.body.key_id}`,
      undefined,
      204,
    );
    assert.deepEqual(summary(revoked.rows), [`update tenant_api_keys ${key.reply.body.key_id}`]);
    assert.deepEqual(revoked.rows[0].details.changed, ["revoked_at"]);
    assertProblem(await send(server, "GET", "/v1/tenant", { token: String(key.reply.body.key) }), 401);
    const again = await act(
      "DELETE",
      `/v1/admin/tenants/${tenantId}/api-keys/${key.reply.body.key_id}`,
      undefined,
      204,
    );
    assert.deepEqual(again.rows, [], "revoking a revoked key again changed it");

    const deactivated = await act("DELETE", `/v1/admin/tenants/${tenantId}`);
    assert.deepEqual(summary(deactivated.rows), [`update tenants ${tenantId}`]);
    assert.deepEqual(deactivated.rows[0].details.changed, ["deactivated_at"]);

    // The bootstrap token acts as the operator it created, "bootstrap".
    const [operator] = await server.owner`
      select operator_id from core.platform_operators where token_hash = ${sha256Hex(token)}`;
    assert.ok(operator, "the bootstrap token is an operator's credential");
    for (const row of [...created.rows, ...patched.rows, ...key.rows, ...revoked.rows, ...deactivated.rows]) {
      assert.equal(row.tenant_id, tenantId);
      assert.equal(row.api_key_id, null);
      assert.equal(row.user_id, null);
      assert.equal(row.operator_id, operator.operator_id, "each platform change names its operator");
    }
  } finally {
    await server.close();
  }
});

Deno.test("GET /v1/audit-logs shows the rows requests wrote, and each filter selects exactly its rows", async (t) => {
  const server = await startServer();
  try {
    const tenant = await createTenant(server, "Filtered trail");
    const bound = await issueKey(server, tenant.tenantId, { permissions: ["*"], userId: tenant.userId });
    for (let i = 0; i < 3; i++) {
      const doc = await expectStatus(201, {
        server,
        method: "POST",
        path: "/v1/documents",
        token: i % 2 ? bound.key : tenant.key,
        body: { user_id: tenant.userId, title: `Doc ${i}`, content_hash: SOME_HASH },
      });
      await expectStatus(200, {
        server,
        method: "PATCH",
        path: `/v1/documents/${doc.body.document_id}`,
        token: bound.key,
        body: { title: `Doc ${i} v2` },
      });
      if (i === 1) {
        await expectStatus(204, {
          server,
          method: "DELETE",
          path: `/v1/documents/${doc.body.document_id}`,
          token: tenant.key,
        });
      }
    }
    const { items: all } = await listAll(server, "/v1/audit-logs", { token: tenant.key, limit: 100 });
    const stored = await server.owner`
      select log_id from core.audit_logs where tenant_id = ${tenant.tenantId} order by "timestamp" desc, log_id desc`;
    assert.deepEqual(all.map((item) => item.log_id), stored.map((row) => row.log_id));
    assert.ok(all.length >= 10, `only ${all.length} rows`);

    const middle = String(all[Math.floor(all.length / 2)].timestamp);
    const filters: [string, (item: Record<string, unknown>) => boolean][] = [
      ["action=insert", (item) => item.action === "insert"],
      ["action=update", (item) => item.action === "update"],
      ["action=delete", (item) => item.action === "delete"],
      ["resource_type=documents", (item) => item.resource_type === "documents"],
      ["resource_type=users", (item) => item.resource_type === "users"],
      [`user_id=${tenant.userId}`, (item) => item.user_id === tenant.userId],
      [
        `since=${encodeURIComponent(middle)}`,
        (item) => Date.parse(String(item.timestamp)) >= Date.parse(middle),
      ],
      [
        `until=${encodeURIComponent(middle)}`,
        (item) => Date.parse(String(item.timestamp)) < Date.parse(middle),
      ],
      [
        `action=update&resource_type=documents&user_id=${tenant.userId}`,
        (item) =>
          item.action === "update" && item.resource_type === "documents" && item.user_id === tenant.userId,
      ],
    ];
    for (const [query, keep] of filters) {
      await t.step(query, async () => {
        const { items } = await listAll(server, `/v1/audit-logs?${query}`, { token: tenant.key, limit: 2 });
        const expected = all.filter(keep).map((item) => item.log_id);
        assert.ok(expected.length > 0, "the filter has nothing to select: the check would be vacuous");
        assert.ok(expected.length < all.length, "the filter selects everything: the check would be vacuous");
        assert.deepEqual(items.map((item) => item.log_id), expected);
      });
    }
  } finally {
    await server.close();
  }
});

Deno.test("another tenant's audit rows never appear in GET /v1/audit-logs, even under the same x-request-id", async (t) => {
  const server = await startServer();
  try {
    const a = await createTenant(server, "Auditor A");
    const b = await createTenant(server, "Auditor B");
    const shared = newRequestId();
    // Each tenant writes with a key bound to its user, so its audit rows carry
    // that user_id and the user_id filter below has rows of B's to leak.
    for (const tenant of [a, b]) {
      const author = await issueKey(server, tenant.tenantId, { permissions: ["*"], userId: tenant.userId });
      await expectStatus(201, {
        server,
        method: "POST",
        path: "/v1/documents",
        token: author.key,
        headers: { "x-request-id": shared },
        body: { user_id: tenant.userId, title: "Same request id", content_hash: SOME_HASH },
      });
    }
    const [{ count: bByUser }] = await server.owner`
      select count(*)::int as count from core.audit_logs where tenant_id = ${b.tenantId} and user_id = ${b.userId}`;
    assert.ok(bByUser > 0, "no audit row of B carries B's user: the user_id filter check would be vacuous");
    const sharedRows = await auditRowsOf(server, shared);
    assert.deepEqual(sharedRows.map((row) => row.tenant_id).sort(), [a.tenantId, b.tenantId].sort());
    const bLogIds = new Set(
      (await server.owner`select log_id from core.audit_logs where tenant_id = ${b.tenantId}`).map((r) =>
        r.log_id
      ),
    );
    const queries = [
      "",
      "action=insert",
      "resource_type=documents",
      "resource_type=users",
      `user_id=${b.userId}`,
      "since=2000-01-01T00:00:00Z",
      "until=2999-01-01T00:00:00Z",
    ];
    for (const query of queries) {
      await t.step(`GET /v1/audit-logs?${query}`, async () => {
        const { items } = await listAll(server, `/v1/audit-logs?${query}`, { token: a.key, limit: 3 });
        for (const item of items) {
          assert.equal(item.tenant_id, a.tenantId);
          assert.ok(!bLogIds.has(item.log_id), `B's audit row ${item.log_id} shown to A`);
        }
      });
    }
    await t.step("B's key sees only B's row of the shared request", async () => {
      const { items } = await listAll(server, "/v1/audit-logs?resource_type=documents", {
        token: b.key,
        limit: 100,
      });
      const ofShared = items.filter((item) => item.client_request_id === shared);
      assert.deepEqual(ofShared.map((item) => item.tenant_id), [b.tenantId]);
    });
    await t.step("a key without audit:read gets 403", async () => {
      const reader = await issueKey(server, a.tenantId, { permissions: ["users:read", "documents:read"] });
      assertProblem(await send(server, "GET", "/v1/audit-logs", { token: reader.key }), 403);
    });
  } finally {
    await server.close();
  }
});
