/**
 * Named platform operators over HTTP: PLATFORM_ADMIN_TOKEN bootstraps the
 * first operator, each operator's credential is shown once, every platform
 * change names its operator in the trail, and a revoked credential gets 401
 * at once.
 */
import assert from "node:assert/strict";
import { assertProblem, expectStatus, send } from "./assertions.ts";
import postgres from "postgres";
import { requireEnv, startServer, type TestServer } from "./support.ts";

async function createOperator(server: TestServer, token: string, name: string) {
  const reply = await expectStatus(201, {
    server,
    method: "POST",
    path: "/v1/admin/operators",
    token,
    body: { name },
  });
  return { id: String(reply.body.operator_id), token: String(reply.body.token), reply };
}

Deno.test("platform changes by two named operators are told apart in the trail", async () => {
  const server = await startServer();
  try {
    const bootstrap = server.config.platformAdminToken!;
    const suffix = crypto.randomUUID().slice(0, 8);
    const alice = await createOperator(server, bootstrap, `alice-${suffix}@ops.example`);
    const bob = await createOperator(server, bootstrap, `bob-${suffix}@ops.example`);
    assert.match(alice.token, /^tnop_[A-Za-z0-9_-]{43}$/);
    assert.equal(alice.reply.headers.get("cache-control"), "no-store");
    assert.deepEqual(
      Object.keys(alice.reply.body).sort(),
      [
        "created_at",
        "created_by",
        "name",
        "operator_id",
        "revoked_at",
        "revoked_by",
        "token",
        "token_prefix",
      ],
    );

    const created = await expectStatus(201, {
      server,
      method: "POST",
      path: "/v1/admin/tenants",
      token: alice.token,
      body: { name: "Created by Alice" },
    });
    const tenantId = String(created.body.tenant_id);
    await expectStatus(200, {
      server,
      method: "PATCH",
      path: `/v1/admin/tenants/${tenantId}`,
      token: bob.token,
      body: { subscription_tier: "enterprise" },
    });
    const trail = await expectStatus(200, {
      server,
      method: "GET",
      path: `/v1/admin/audit-logs?tenant_id=${tenantId}`,
      token: bob.token,
    });
    const byAction = Object.fromEntries(
      trail.body.items!.filter((row) => row.resource_type === "tenants").map((
        row,
      ) => [row.action, row.operator_id]),
    );
    assert.deepEqual(byAction, { insert: alice.id, update: bob.id });

    // The operators' own creation is in the Platform tenant's trail.
    const [{ count }] = await server.owner`
      select count(*)::int from core.audit_logs
      where tenant_id = '00000000-0000-0000-0000-000000000000' and resource_type = 'platform_operators'
        and resource_id in (${alice.id}, ${bob.id}) and operator_id is not null
        and details::text not like '%token_hash%'`;
    assert.equal(count, 2);

    const listed = await expectStatus(200, {
      server,
      method: "GET",
      path: "/v1/admin/operators",
      token: bob.token,
    });
    const names = listed.body.items!.map((operator) => operator.name);
    assert.ok(names.includes(`alice-${suffix}@ops.example`) && names.includes(`bob-${suffix}@ops.example`));
    assert.ok(listed.body.items!.every((operator) => !("token" in operator) && !("token_hash" in operator)));
  } finally {
    await server.close();
  }
});

Deno.test("a revoked operator credential gets 401 at once, and the revocation names who revoked", async () => {
  const server = await startServer();
  try {
    const bootstrap = server.config.platformAdminToken!;
    const suffix = crypto.randomUUID().slice(0, 8);
    const alice = await createOperator(server, bootstrap, `alice-${suffix}@ops.example`);
    const bob = await createOperator(server, bootstrap, `bob-${suffix}@ops.example`);
    await expectStatus(200, { server, method: "GET", path: "/v1/admin/tenants", token: alice.token });
    await expectStatus(204, {
      server,
      method: "DELETE",
      path: `/v1/admin/operators/${alice.id}`,
      token: bob.token,
    });
    const refused = await send(server, "GET", "/v1/admin/tenants", { token: alice.token });
    assertProblem(refused, 401);
    assert.equal(refused.body.detail, "The operator credential is unknown or revoked");
    const [row] = await server.owner`
      select revoked_at is not null as revoked, revoked_by from core.platform_operators where operator_id = ${alice.id}`;
    assert.deepEqual(row, { revoked: true, revoked_by: bob.id });
    // Revoking again keeps the first revocation; an unknown operator is 404.
    await expectStatus(204, {
      server,
      method: "DELETE",
      path: `/v1/admin/operators/${alice.id}`,
      token: bob.token,
    });
    assertProblem(
      await send(server, "DELETE", `/v1/admin/operators/${crypto.randomUUID()}`, { token: bob.token }),
      404,
    );
  } finally {
    await server.close();
  }
});

Deno.test("a session of app_user holding advisory locks cannot stop an operator's revocation", async () => {
  const server = await startServer();
  const attacker = postgres(requireEnv("APP_DATABASE_URL"), { max: 1, onnotice: () => {} });
  try {
    const bootstrap = server.config.platformAdminToken!;
    const mallory = await createOperator(
      server,
      bootstrap,
      `mallory-${crypto.randomUUID().slice(0, 8)}@ops.example`,
    );
    const session = await attacker.reserve();
    try {
      // The key revocations were once serialised with; any role may take it.
      await session`select pg_advisory_lock(hashtextextended('tenancy.bootstrap_operator', 0))`;
      await expectStatus(204, {
        server,
        method: "DELETE",
        path: `/v1/admin/operators/${mallory.id}`,
        token: bootstrap,
      });
    } finally {
      await session`select pg_advisory_unlock_all()`;
      session.release();
    }
    assertProblem(await send(server, "GET", "/v1/admin/tenants", { token: mallory.token }), 401);
  } finally {
    await attacker.end();
    await server.close();
  }
});

Deno.test("an operator credential shown once is not replayed for a retried Idempotency-Key", async () => {
  const server = await startServer();
  try {
    const bootstrap = server.config.platformAdminToken!;
    const name = `retried-${crypto.randomUUID().slice(0, 8)}@ops.example`;
    const headers = { "idempotency-key": `operator-${crypto.randomUUID()}` };
    const first = await expectStatus(201, {
      server,
      method: "POST",
      path: "/v1/admin/operators",
      token: bootstrap,
      body: { name },
      headers,
    });
    assert.ok(first.body.token);
    const retry = await send(server, "POST", "/v1/admin/operators", {
      token: bootstrap,
      body: { name },
      headers,
    });
    assertProblem(retry, 409);
    assert.match(String(retry.body.detail), /token was shown only to the first request/);
    const [{ count }] = await server.owner`
      select count(*)::int from core.platform_operators where name = ${name}`;
    assert.equal(count, 1, "the retry created a second operator");
    const [stored] = await server.owner`
      select response_body::text as body from core.platform_idempotency_keys where idempotency_key = ${
      headers["idempotency-key"]
    }`;
    assert.ok(!stored.body.includes(String(first.body.token)), "the stored response holds the credential");
  } finally {
    await server.close();
  }
});

Deno.test("without PLATFORM_ADMIN_TOKEN the platform routes still serve named operators", async () => {
  const setup = await startServer();
  let token: string;
  try {
    token = (await createOperator(
      setup,
      setup.config.platformAdminToken!,
      `solo-${crypto.randomUUID().slice(0, 8)}`,
    ))
      .token;
  } finally {
    await setup.close();
  }
  const server = await startServer({ PLATFORM_ADMIN_TOKEN: "" });
  try {
    assert.equal(server.config.platformAdminToken, undefined);
    await expectStatus(200, { server, method: "GET", path: "/v1/admin/tenants", token });
    assertProblem(
      await send(server, "GET", "/v1/admin/tenants", { token: setup.config.platformAdminToken! }),
      401,
    );
  } finally {
    await server.close();
  }
});
