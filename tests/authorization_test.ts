/**
 * Authorization inside a tenant over HTTP, from the attacker's side: a key
 * holding keys:write, documents:write and users:write but bound to a viewer,
 * a member's key, and an audit:read key try what such keys once managed.
 * Each attempt is refused (403, or 404 where the id is not the key's to see)
 * and the tenant is exactly as it was afterwards.
 */
import assert from "node:assert/strict";
import { assertProblem, expectStatus, issueKey, send, tenantSnapshot } from "./assertions.ts";
import { createTenant, SOME_HASH, startServer, type TestServer, type TestTenant } from "./support.ts";

interface Cast {
  tenant: TestTenant;
  viewerId: string;
  memberId: string;
  /** keys:write, documents:write, users:write, bound to the viewer. */
  viewerKey: string;
  memberKey: string;
  auditKey: string;
  adminDocumentId: string;
}

async function cast(server: TestServer): Promise<Cast> {
  const tenant = await createTenant(server, "Inside a tenant");
  const user = async (role: string) =>
    String(
      (await expectStatus(201, {
        server,
        method: "POST",
        path: "/v1/users",
        token: tenant.key,
        body: { email: `${role}-${crypto.randomUUID().slice(0, 8)}@example.test`, role },
      })).body.user_id,
    );
  const viewerId = await user("viewer");
  const memberId = await user("member");
  const viewerKey = (await issueKey(server, tenant.tenantId, {
    permissions: ["keys:write", "documents:write", "users:write"],
    userId: viewerId,
  })).key;
  const memberKey = (await issueKey(server, tenant.tenantId, { permissions: ["*"], userId: memberId })).key;
  const auditKey = (await issueKey(server, tenant.tenantId, { permissions: ["audit:read"] })).key;
  const adminDocument = await expectStatus(201, {
    server,
    method: "POST",
    path: "/v1/documents",
    token: tenant.key,
    body: {
      user_id: tenant.userId,
      title: "Board minutes",
      content_hash: SOME_HASH,
      metadata: { deal: "secret" },
    },
  });
  return {
    tenant,
    viewerId,
    memberId,
    viewerKey,
    memberKey,
    auditKey,
    adminDocumentId: String(adminDocument.body.document_id),
  };
}

Deno.test("a viewer's key holding write permissions changes nothing: keys, roles, users, documents", async (t) => {
  const server = await startServer();
  try {
    const c = await cast(server);
    const before = await tenantSnapshot(server, c.tenant.tenantId);
    const attempts: [string, string, string, unknown][] = [
      ["revokes the tenant's * key", "DELETE", `/v1/api-keys/${c.tenant.keyId}`, undefined],
      ["promotes its own user to tenant_admin", "PATCH", `/v1/users/${c.viewerId}`, { role: "tenant_admin" }],
      ["deletes another user (and so their keys)", "DELETE", `/v1/users/${c.memberId}`, undefined],
      ["creates a document authored by the tenant_admin", "POST", "/v1/documents", {
        user_id: c.tenant.userId,
        title: "Forged",
        content_hash: SOME_HASH,
      }],
      ["issues itself a key", "POST", "/v1/api-keys", { name: "escape", permissions: ["users:read"] }],
    ];
    for (const [label, method, path, body] of attempts) {
      await t.step(label, async () => {
        assertProblem(await send(server, method, path, { token: c.viewerKey, body }), 403);
      });
    }
    await expectStatus(200, { server, method: "GET", path: "/v1/tenant", token: c.tenant.key });
    assert.deepEqual(
      await tenantSnapshot(server, c.tenant.tenantId),
      before,
      "a refused request changed the tenant",
    );
  } finally {
    await server.close();
  }
});

Deno.test("a member's key authors only as its user and changes only its own documents", async () => {
  const server = await startServer();
  try {
    const c = await cast(server);
    const own = await expectStatus(201, {
      server,
      method: "POST",
      path: "/v1/documents",
      token: c.memberKey,
      body: { title: "Mine", content_hash: SOME_HASH },
    });
    assert.equal(own.body.user_id, c.memberId, "a document of a member's key is authored by that member");
    const before = await tenantSnapshot(server, c.tenant.tenantId);
    assertProblem(
      await send(server, "POST", "/v1/documents", {
        token: c.memberKey,
        body: { user_id: c.tenant.userId, title: "As the admin", content_hash: SOME_HASH },
      }),
      403,
    );
    assertProblem(
      await send(server, "PATCH", `/v1/documents/${c.adminDocumentId}`, {
        token: c.memberKey,
        body: { title: "Defaced" },
      }),
      403,
    );
    assertProblem(
      await send(server, "DELETE", `/v1/documents/${c.adminDocumentId}`, { token: c.memberKey }),
      403,
    );
    assertProblem(
      await send(server, "PATCH", `/v1/users/${c.memberId}`, {
        token: c.memberKey,
        body: { role: "tenant_admin" },
      }),
      403,
    );
    assert.deepEqual(await tenantSnapshot(server, c.tenant.tenantId), before);
    await expectStatus(200, {
      server,
      method: "PATCH",
      path: `/v1/documents/${own.body.document_id}`,
      token: c.memberKey,
      body: { title: "Mine, edited" },
    });
  } finally {
    await server.close();
  }
});

Deno.test("an audit:read key sees who did what to which id, but no values of what it may not read", async () => {
  const server = await startServer();
  try {
    const c = await cast(server);
    await expectStatus(200, {
      server,
      method: "PATCH",
      path: "/v1/config",
      token: c.tenant.key,
      body: { settings: { iban: "DE89370400440532013000" } },
    });
    const reply = await expectStatus(200, {
      server,
      method: "GET",
      path: "/v1/audit-logs?limit=100",
      token: c.auditKey,
    });
    const items = reply.body.items ?? [];
    const kinds = new Set(items.map((item) => item.resource_type));
    for (const kind of ["documents", "users", "tenant_configs", "tenant_api_keys"]) {
      assert.ok(kinds.has(kind), `no ${kind} entry to look at: the check would be vacuous`);
    }
    for (const item of items.filter((item) => item.resource_type !== "tenants")) {
      const details = item.details as Record<string, unknown>;
      assert.ok(
        !("old" in details) && !("new" in details),
        `${item.resource_type} values shown to audit:read`,
      );
      assert.ok(Array.isArray(details.changed), "the changed columns are still shown");
    }
    const text = JSON.stringify(items);
    for (const secret of ["Board minutes", "secret", "DE89370400440532013000", "@example.test"]) {
      assert.ok(!text.includes(secret), `the trail shows "${secret}" to an audit:read key`);
    }
    // The * key, which may read all of it, sees the values.
    const full = await expectStatus(200, {
      server,
      method: "GET",
      path: "/v1/audit-logs?limit=100",
      token: c.tenant.key,
    });
    assert.ok(JSON.stringify(full.body.items).includes("DE89370400440532013000"));
  } finally {
    await server.close();
  }
});

Deno.test("revoking a key revokes the keys it issued, and theirs, at once", async () => {
  const server = await startServer();
  try {
    const tenant = await createTenant(server, "Provenance");
    const issuer = await issueKey(server, tenant.tenantId, { permissions: ["keys:write", "users:read"] });
    const child = await expectStatus(201, {
      server,
      method: "POST",
      path: "/v1/api-keys",
      token: issuer.key,
      body: { name: "child", permissions: ["keys:write", "users:read"] },
    });
    assert.equal(child.body.issued_by_key_id, issuer.keyId);
    const grandchild = await expectStatus(201, {
      server,
      method: "POST",
      path: "/v1/api-keys",
      token: String(child.body.key),
      body: { name: "grandchild", permissions: ["users:read"] },
    });
    await expectStatus(200, { server, method: "GET", path: "/v1/users", token: String(grandchild.body.key) });
    await expectStatus(204, {
      server,
      method: "DELETE",
      path: `/v1/api-keys/${issuer.keyId}`,
      token: tenant.key,
    });
    for (const key of [issuer.key, String(child.body.key), String(grandchild.body.key)]) {
      assertProblem(await send(server, "GET", "/v1/users", { token: key }), 401);
    }
    await expectStatus(200, { server, method: "GET", path: "/v1/users", token: tenant.key });
  } finally {
    await server.close();
  }
});
