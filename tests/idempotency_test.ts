/**
 * Idempotency-Key on POST routes: a retry returns the original response and
 * creates nothing, the same key with another body is refused, a new API key is
 * never replayed, and a malformed header is a 400.
 */
import assert from "node:assert/strict";
import { assertProblem, expectStatus, send } from "./assertions.ts";
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
