/**
 * Idempotency-Key on POST routes: a retry returns the original response and
 * creates nothing, the same key with another body is refused, a new API key is
 * never replayed, and a malformed header is a 400.
 */
import assert from "node:assert/strict";
import { assertProblem, expectStatus, issueKey, send } from "./assertions.ts";
import { createTenant, SOME_HASH, startServer } from "./support.ts";

Deno.test("a POST retried with its Idempotency-Key returns the original response and creates nothing", async () => {
  const server = await startServer();
  try {
    const tenant = await createTenant(server, "Idempotent retries");
    const request = {
      server,
      method: "POST",
      path: "/v1/documents",
      token: tenant.key,
      headers: { "idempotency-key": "invoice-2026-0001" },
      body: { user_id: tenant.userId, title: "Invoice 1", content_hash: SOME_HASH },
    };
    const first = await expectStatus(201, request);
    assert.equal(first.headers.get("idempotent-replayed"), null);
    const retry = await expectStatus(201, request);
    assert.equal(retry.headers.get("idempotent-replayed"), "true");
    assert.deepEqual(retry.body, first.body);
    const [{ count }] = await server.owner`
      select count(*)::int as count from core.documents where tenant_id = ${tenant.tenantId}`;
    assert.equal(count, 1, "the retry created a second document");
  } finally {
    await server.close();
  }
});

Deno.test("the same Idempotency-Key with a different body answers 422 and creates nothing", async () => {
  const server = await startServer();
  try {
    const tenant = await createTenant(server, "Idempotent conflicts");
    const headers = { "idempotency-key": "invoice-2026-0002" };
    await expectStatus(201, {
      server,
      method: "POST",
      path: "/v1/documents",
      token: tenant.key,
      headers,
      body: { user_id: tenant.userId, title: "Invoice 2", content_hash: SOME_HASH },
    });
    const changed = await send(server, "POST", "/v1/documents", {
      token: tenant.key,
      headers,
      body: { user_id: tenant.userId, title: "Invoice 2, amended", content_hash: SOME_HASH },
    });
    assertProblem(changed, 422);
    const [{ count }] = await server.owner`
      select count(*)::int as count from core.documents where tenant_id = ${tenant.tenantId}`;
    assert.equal(count, 1);
  } finally {
    await server.close();
  }
});

Deno.test("a retried POST /v1/api-keys answers 409 naming the issued key_id and never shows the key again", async () => {
  const server = await startServer();
  try {
    const tenant = await createTenant(server, "Idempotent key issuing");
    const request = {
      token: tenant.key,
      headers: { "idempotency-key": "issue-reporting-key" },
      body: { name: "reporting", permissions: ["documents:read"] },
    };
    const first = await expectStatus(201, { server, method: "POST", path: "/v1/api-keys", ...request });
    const retry = await send(server, "POST", "/v1/api-keys", request);
    assertProblem(retry, 409);
    assert.match(String(retry.body.detail), new RegExp(String(first.body.key_id)));
    assert.doesNotMatch(JSON.stringify(retry.body), new RegExp(String(first.body.key)));
    const [{ count }] = await server.owner`
      select count(*)::int as count from core.tenant_api_keys where tenant_id = ${tenant.tenantId} and name = 'reporting'`;
    assert.equal(count, 1, "the retry issued a second key");
  } finally {
    await server.close();
  }
});

Deno.test("a malformed Idempotency-Key header answers 400 naming the header", async (t) => {
  const server = await startServer();
  try {
    const tenant = await createTenant(server, "Idempotency header");
    for (const [label, value] of [["a space", "two words"], ["256 characters", "k".repeat(256)]]) {
      await t.step(label, async () => {
        const reply = await send(server, "POST", "/v1/documents", {
          token: tenant.key,
          headers: { "idempotency-key": value },
          body: { user_id: tenant.userId, title: "x", content_hash: SOME_HASH },
        });
        assertProblem(reply, 400);
        assert.deepEqual(
          (reply.body.errors as { location: string; field: string }[]).map((e) => `${e.location}:${e.field}`),
          ["header:idempotency-key"],
        );
      });
    }
  } finally {
    await server.close();
  }
});

Deno.test("an Idempotency-Key belongs to the API key that used it: another key of the tenant gets no replay", async () => {
  const server = await startServer();
  try {
    const tenant = await createTenant(server, "Two callers");
    const other = await issueKey(server, tenant.tenantId, { permissions: ["documents:write"] });
    const headers = { "idempotency-key": "shared-header-value" };
    const body = { user_id: tenant.userId, title: "Same header", content_hash: SOME_HASH };
    const first = await expectStatus(201, {
      server,
      method: "POST",
      path: "/v1/documents",
      token: tenant.key,
      headers,
      body,
    });
    const second = await expectStatus(201, {
      server,
      method: "POST",
      path: "/v1/documents",
      token: other.key,
      headers,
      body,
    });
    assert.equal(
      second.headers.get("idempotent-replayed"),
      null,
      "another key was replayed the first key's response",
    );
    assert.notEqual(second.body.document_id, first.body.document_id);
    const retry = await expectStatus(201, {
      server,
      method: "POST",
      path: "/v1/documents",
      token: tenant.key,
      headers,
      body,
    });
    assert.equal(retry.headers.get("idempotent-replayed"), "true");
    assert.equal(retry.body.document_id, first.body.document_id);
  } finally {
    await server.close();
  }
});

Deno.test("platform POSTs honour Idempotency-Key: a retried tenant creation creates one tenant", async () => {
  const server = await startServer();
  try {
    const token = server.config.platformAdminToken!;
    const name = `Provisioned once ${crypto.randomUUID()}`;
    const request = {
      server,
      method: "POST",
      path: "/v1/admin/tenants",
      token,
      headers: { "idempotency-key": `provision-${crypto.randomUUID()}` },
      body: { name, template_name: "Fintech Template" },
    };
    const first = await expectStatus(201, request);
    const retry = await expectStatus(201, request);
    assert.equal(retry.headers.get("idempotent-replayed"), "true");
    assert.equal(retry.body.tenant_id, first.body.tenant_id);
    const [{ count }] = await server
      .owner`select count(*)::int as count from core.tenants where name = ${name}`;
    assert.equal(count, 1, "the retry provisioned a second tenant");
    assertProblem(
      await send(server, "POST", "/v1/admin/tenants", { ...request, body: { name: "Another" } }),
      422,
    );

    // A key issued by the platform is shown once: the retry is told its id, never the key.
    const keyRequest = {
      server,
      method: "POST",
      path: `/v1/admin/tenants/${first.body.tenant_id}/api-keys`,
      token,
      headers: { "idempotency-key": `issue-${crypto.randomUUID()}` },
      body: { name: "first key", permissions: ["*"] },
    };
    const issued = await expectStatus(201, keyRequest);
    const again = await send(server, "POST", keyRequest.path, keyRequest);
    assertProblem(again, 409);
    assert.match(String(again.body.detail), new RegExp(String(issued.body.key_id)));
    const stored = await server.owner`select response_body::text as body from core.platform_idempotency_keys`;
    for (const { body } of stored) {
      assert.ok(!String(body).includes(String(issued.body.key)), "a platform response stored the key itself");
    }
  } finally {
    await server.close();
  }
});
