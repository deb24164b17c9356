/**
 * API keys: revoked and expired keys stop working, a key can hand out only
 * what it holds, each permission opens exactly its routes, and no key is ever
 * stored in plain text anywhere in the database.
 */
import assert from "node:assert/strict";
import type { Permission } from "../src/http/router.ts";
import { sha256Hex } from "../src/http/auth.ts";
import { assertProblem, expectStatus, issueKey, listAll, send } from "./assertions.ts";
import { call, createTenant, startServer, type TestServer } from "./support.ts";

async function keyCount(server: TestServer, tenantId: string): Promise<number> {
  const [{ count }] = await server.owner`
    select count(*)::int as count from core.tenant_api_keys where tenant_id = ${tenantId}`;
  return count;
}

Deno.test("a revoked key gets 401 at once, and revoking it again keeps the first revoked_at", async () => {
  const server = await startServer();
  try {
    const tenant = await createTenant(server, "Revocation");
    const created = await expectStatus(201, {
      server,
      method: "POST",
      path: "/v1/api-keys",
      token: tenant.key,
      body: { name: "to revoke", permissions: ["users:read", "users:write"] },
    });
    const key = String(created.body.key);
    await expectStatus(200, { server, method: "GET", path: "/v1/users", token: key });

    await expectStatus(204, {
      server,
      method: "DELETE",
      path: `/v1/api-keys/${created.body.key_id}`,
      token: tenant.key,
    });
    assertProblem(await send(server, "GET", "/v1/users", { token: key }), 401);
    assertProblem(await send(server, "GET", "/v1/tenant", { token: key }), 401);
    assertProblem(
      await send(server, "POST", "/v1/users", {
        token: key,
        body: { email: "after-revocation@example.test" },
      }),
      401,
    );
    const [first] = await server.owner`
      select revoked_at::text from core.tenant_api_keys where key_id = ${String(created.body.key_id)}`;
    assert.ok(first.revoked_at, "revoked_at is not set");

    await expectStatus(204, {
      server,
      method: "DELETE",
      path: `/v1/api-keys/${created.body.key_id}`,
      token: tenant.key,
    });
    const [second] = await server.owner`
      select revoked_at::text from core.tenant_api_keys where key_id = ${String(created.body.key_id)}`;
    assert.equal(second.revoked_at, first.revoked_at);
    await expectStatus(200, { server, method: "GET", path: "/v1/users", token: tenant.key });
  } finally {
    await server.close();
  }
});

Deno.test("a key can revoke itself, and its next request gets 401", async () => {
  const server = await startServer();
  try {
    const tenant = await createTenant(server, "Self revocation");
    await expectStatus(204, {
      server,
      method: "DELETE",
      path: `/v1/api-keys/${tenant.keyId}`,
      token: tenant.key,
    });
    assertProblem(await send(server, "GET", "/v1/tenant", { token: tenant.key }), 401);
  } finally {
    await server.close();
  }
});

Deno.test("a key stored with expires_at in the past gets 401", async () => {
  const server = await startServer();
  try {
    const tenant = await createTenant(server, "Expired by the owner");
    const key = `tnk_${crypto.randomUUID().replaceAll("-", "")}expired`;
    const hash = sha256Hex(key);
    // Each key with its hash's claim, as core.register_key writes them.
    await server.owner`
      with k as (
        insert into core.tenant_api_keys (tenant_id, key_hash, key_prefix, name, permissions, expires_at)
        values (${tenant.tenantId}, ${hash}, ${
      key.slice(0, 12)
    }, 'expired', '{*}', now() - interval '1 second')
        returning key_hash, tenant_id, key_id)
      insert into core.api_key_hashes (key_hash, tenant_id, key_id) select * from k`;
    assertProblem(await send(server, "GET", "/v1/tenant", { token: key }), 401);

    // The same insert with a future expiry works: the 401 above is the expiry.
    const live = `tnk_${crypto.randomUUID().replaceAll("-", "")}current`;
    await server.owner`
      with k as (
        insert into core.tenant_api_keys (tenant_id, key_hash, key_prefix, name, permissions, expires_at)
        values (${tenant.tenantId}, ${sha256Hex(live)}, ${live.slice(0, 12)}, 'live', '{*}',
                now() + interval '1 hour')
        returning key_hash, tenant_id, key_id)
      insert into core.api_key_hashes (key_hash, tenant_id, key_id) select * from k`;
    await expectStatus(200, { server, method: "GET", path: "/v1/tenant", token: live });
  } finally {
    await server.close();
  }
});

Deno.test("a key issued with expires_at works until then and gets 401 from the moment it expires", async () => {
  const server = await startServer();
  try {
    const tenant = await createTenant(server, "Expiring key");
    const expiresAt = new Date(Date.now() + 3_600_000).toISOString();
    const created = await expectStatus(201, {
      server,
      method: "POST",
      path: "/v1/api-keys",
      token: tenant.key,
      body: { name: "short lived", permissions: ["users:read"], expires_at: expiresAt },
    });
    assert.equal(Date.parse(String(created.body.expires_at)), Date.parse(expiresAt));
    const key = String(created.body.key);
    await expectStatus(200, { server, method: "GET", path: "/v1/users", token: key });
    // Let its hour pass: move expires_at to a moment ago, as the owner.
    await server.owner`update core.tenant_api_keys set expires_at = now() - interval '1 second'
      where key_id = ${String(created.body.key_id)}`;
    assertProblem(await send(server, "GET", "/v1/users", { token: key }), 401);
  } finally {
    await server.close();
  }
});

Deno.test("POST /v1/api-keys and the platform route answer 400 for an expires_at in the past", async () => {
  const server = await startServer();
  try {
    const tenant = await createTenant(server, "Past expiry");
    const before = await keyCount(server, tenant.tenantId);
    const body = { name: "already expired", permissions: ["users:read"], expires_at: "2020-01-01T00:00:00Z" };
    assertProblem(await send(server, "POST", "/v1/api-keys", { token: tenant.key, body }), 400);
    assertProblem(
      await send(server, "POST", `/v1/admin/tenants/${tenant.tenantId}/api-keys`, {
        token: server.config.platformAdminToken,
        body,
      }),
      400,
    );
    assert.equal(await keyCount(server, tenant.tenantId), before);
  } finally {
    await server.close();
  }
});

Deno.test("a key cannot grant a permission it lacks (403), and can grant what it may do (X:write brings X:read)", async (t) => {
  const server = await startServer();
  try {
    const tenant = await createTenant(server, "No escalation");
    const { key } = await issueKey(server, tenant.tenantId, { permissions: ["keys:write", "users:read"] });
    const denied: Permission[][] = [["*"], ["documents:read"], ["users:read", "users:write"], ["audit:read"]];
    for (const permissions of denied) {
      await t.step(`refuses ${JSON.stringify(permissions)}`, async () => {
        const before = await keyCount(server, tenant.tenantId);
        const reply = await send(server, "POST", "/v1/api-keys", {
          token: key,
          body: { name: "escalation", permissions },
        });
        assertProblem(reply, 403);
        assert.match(String(reply.body.detail), /only grant permissions it holds/);
        assert.equal(await keyCount(server, tenant.tenantId), before, "a refused key was stored");
      });
    }
    for (
      const permissions of [["users:read"], ["keys:write"], ["keys:read"], [
        "keys:write",
        "users:read",
      ]] as Permission[][]
    ) {
      await t.step(`grants ${JSON.stringify(permissions)}`, async () => {
        const reply = await expectStatus(201, {
          server,
          method: "POST",
          path: "/v1/api-keys",
          token: key,
          body: { name: "subset", permissions },
        });
        assert.deepEqual(reply.body.permissions, permissions);
      });
    }
    await t.step("a key with * may grant *", async () => {
      await expectStatus(201, {
        server,
        method: "POST",
        path: "/v1/api-keys",
        token: tenant.key,
        body: { name: "full", permissions: ["*"] },
      });
    });
    await t.step("a key without keys:write cannot issue keys at all", async () => {
      const reader = await issueKey(server, tenant.tenantId, { permissions: ["keys:read", "users:read"] });
      assertProblem(
        await send(server, "POST", "/v1/api-keys", {
          token: reader.key,
          body: { name: "x", permissions: ["users:read"] },
        }),
        403,
      );
    });
  } finally {
    await server.close();
  }
});

Deno.test("a key holding exactly one read permission opens that list and gets 403 on the others", async (t) => {
  const server = await startServer();
  try {
    const tenant = await createTenant(server, "Permission matrix");
    const lists: [Permission, string][] = [
      ["users:read", "/v1/users"],
      ["documents:read", "/v1/documents"],
      ["keys:read", "/v1/api-keys"],
      ["audit:read", "/v1/audit-logs"],
      ["config:read", "/v1/config"],
    ];
    for (const [permission] of lists) {
      const { key } = await issueKey(server, tenant.tenantId, { permissions: [permission] });
      await t.step(permission, async () => {
        for (const [needed, path] of lists) {
          const reply = await send(server, "GET", path, { token: key });
          assert.equal(reply.status, needed === permission ? 200 : 403, `${permission} on ${path}`);
        }
        await expectStatus(200, { server, method: "GET", path: "/v1/tenant", token: key });
        await expectStatus(200, { server, method: "GET", path: "/v1/templates", token: key });
      });
    }
  } finally {
    await server.close();
  }
});

Deno.test("deleting a user revokes the keys bound to them, which then get 401 and are kept", async () => {
  const server = await startServer();
  try {
    const tenant = await createTenant(server, "Bound keys");
    const user = await expectStatus(201, {
      server,
      method: "POST",
      path: "/v1/users",
      token: tenant.key,
      body: { email: `bound-${crypto.randomUUID().slice(0, 8)}@example.test` },
    });
    const bound = await issueKey(server, tenant.tenantId, {
      permissions: ["users:read"],
      userId: String(user.body.user_id),
    });
    await expectStatus(200, { server, method: "GET", path: "/v1/users", token: bound.key });
    await expectStatus(204, {
      server,
      method: "DELETE",
      path: `/v1/users/${user.body.user_id}`,
      token: tenant.key,
    });
    assertProblem(await send(server, "GET", "/v1/users", { token: bound.key }), 401);
    const rows = await server.owner`
      select revoked_at is not null as revoked, user_id from core.tenant_api_keys where key_id = ${bound.keyId}`;
    assert.deepEqual(rows.map((row) => ({ ...row })), [{ revoked: true, user_id: null }]);
    const [trail] = await server.owner`
      select array_agg(action || ' ' || (details -> 'changed')::text order by "timestamp", log_id) as changes
      from core.audit_logs where resource_id = ${bound.keyId} and action = 'update'`;
    assert.deepEqual(trail.changes.sort(), ['update ["revoked_at"]', 'update ["user_id"]'].sort());
  } finally {
    await server.close();
  }
});

Deno.test("using a key records last_used_at", async () => {
  const server = await startServer();
  try {
    const tenant = await createTenant(server, "Last used");
    const { key, keyId } = await issueKey(server, tenant.tenantId, { permissions: ["users:read"] });
    const lastUsed = async () =>
      (await server.owner`select last_used_at from core.api_key_usage where key_id = ${keyId}`)[0]
        .last_used_at;
    assert.equal(await lastUsed(), null);
    await expectStatus(200, { server, method: "GET", path: "/v1/users", token: key });
    const deadline = Date.now() + 3000;
    while (await lastUsed() === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
    assert.ok(await lastUsed(), "last_used_at was not recorded within 3 s");
  } finally {
    await server.close();
  }
});

/**
 * Counts, in every text, varchar, jsonb and array column of every table in
 * schema core (listed from the catalog), the rows whose value contains the needle.
 */
async function occurrences(server: TestServer, needle: string): Promise<Record<string, number>> {
  const sql = server.owner;
  const columns = await sql<{ table_name: string; column_name: string }[]>`
    select c.table_name, c.column_name
    from information_schema.columns c
    join information_schema.tables t using (table_schema, table_name)
    where c.table_schema = 'core' and t.table_type = 'BASE TABLE'
      and c.data_type in ('text', 'character varying', 'character', 'jsonb', 'json', 'ARRAY')
    order by 1, 2`;
  assert.ok(columns.length >= 20, `only ${columns.length} columns found: the scan would prove little`);
  assert.ok(columns.some((c) => c.column_name === "key_hash"), "the scan does not reach key_hash");
  const hits: Record<string, number> = {};
  for (const { table_name, column_name } of columns) {
    const [{ count }] = await sql`
      select count(*)::int as count from ${sql("core")}.${sql(table_name)}
      where ${sql(column_name)}::text like '%' || ${needle} || '%'`;
    if (count > 0) hits[`${table_name}.${column_name}`] = count;
  }
  return hits;
}

async function issueEveryWay(server: TestServer, idempotent: boolean): Promise<string[]> {
  const tenant = await createTenant(server, "Plain text scan");
  const headers = idempotent ? { "idempotency-key": `key-${crypto.randomUUID()}` } : undefined;
  const created = await expectStatus(201, {
    server,
    method: "POST",
    path: "/v1/api-keys",
    token: tenant.key,
    headers,
    body: { name: "scanned", permissions: ["users:read"], user_id: tenant.userId },
  });
  const keys = [String(created.body.key)];
  if (!idempotent) {
    keys.push(tenant.key, (await issueKey(server, tenant.tenantId, { permissions: ["keys:read"] })).key);
  }
  for (const key of keys) await expectStatus(200, { server, method: "GET", path: "/v1/tenant", token: key });
  return keys;
}

Deno.test("the database never contains an API key in plain text, only its hash and prefix", async () => {
  const server = await startServer();
  try {
    for (const key of await issueEveryWay(server, false)) {
      assert.deepEqual(
        await occurrences(server, key),
        {},
        `key ${key.slice(0, 12)}... is stored in plain text`,
      );
      // The scan finds what is there: the prefix and the hash of the same key,
      // and the hash nowhere but in the key and its claim (not in the trail,
      // not in a stored response: the hash is what api.begin_request accepts).
      assert.ok((await occurrences(server, key.slice(0, 12)))["tenant_api_keys.key_prefix"] === 1);
      assert.deepEqual(await occurrences(server, sha256Hex(key)), {
        "api_key_hashes.key_hash": 1,
        "tenant_api_keys.key_hash": 1,
      });
    }
  } finally {
    await server.close();
  }
});

Deno.test("a key issued with an Idempotency-Key is not stored in plain text either", async () => {
  const server = await startServer();
  try {
    const [key] = await issueEveryWay(server, true);
    assert.deepEqual(await occurrences(server, sha256Hex(key)), {
      "api_key_hashes.key_hash": 1,
      "tenant_api_keys.key_hash": 1,
    });
    assert.deepEqual(await occurrences(server, key), {}, "the key is stored in plain text");
  } finally {
    await server.close();
  }
});

const KEY_FIELDS = [
  "created_at",
  "expires_at",
  "issued_by_key_id",
  "key_id",
  "key_prefix",
  "last_used_at",
  "name",
  "permissions",
  "revoked_at",
  "tenant_id",
  "updated_at",
  "user_id",
];

Deno.test("every response that describes a key has exactly its public fields and never its hash", async () => {
  const server = await startServer();
  try {
    const tenant = await createTenant(server, "Key fields");
    const admin = server.config.platformAdminToken!;
    const headers = { "idempotency-key": `fields-${crypto.randomUUID()}` };
    const body = { name: "described", permissions: ["users:read"] };
    const replies = {
      "POST /v1/api-keys": await expectStatus(201, {
        server,
        method: "POST",
        path: "/v1/api-keys",
        token: tenant.key,
        body,
        headers,
      }),
      "POST /v1/admin/tenants/{id}/api-keys": await expectStatus(201, {
        server,
        method: "POST",
        path: `/v1/admin/tenants/${tenant.tenantId}/api-keys`,
        token: admin,
        body,
      }),
    };
    const hashes = new Set<string>([sha256Hex(tenant.key)]);
    for (const [route, reply] of Object.entries(replies)) {
      assert.deepEqual(Object.keys(reply.body).sort(), [...KEY_FIELDS, "key"].sort(), `${route} body fields`);
      assert.equal(
        reply.headers.get("cache-control"),
        "no-store",
        `${route} may be cached with the key in it`,
      );
      hashes.add(sha256Hex(String(reply.body.key)));
    }
    const listed = await listAll(server, "/v1/api-keys", { token: tenant.key, limit: 100 });
    assert.equal(listed.items.length, 3);
    for (const item of listed.items) {
      assert.deepEqual(Object.keys(item).sort(), KEY_FIELDS, "GET /v1/api-keys item fields");
    }
    const retried = await call(server, "POST", "/v1/api-keys", { token: tenant.key, body, headers });
    assert.equal(retried.status, 409);
    const texts = [...Object.values(replies), retried].map((reply) => JSON.stringify(reply.body));
    texts.push(JSON.stringify(listed.items));
    for (const text of texts) {
      for (const hash of hashes) {
        assert.ok(!text.includes(hash), `a response carries the hash ${hash.slice(0, 8)}...`);
      }
    }
  } finally {
    await server.close();
  }
});

Deno.test("api_key_max_lifetime_days caps keys issued by both routes, and a cap that is not a number of days is a 400 naming it", async () => {
  const server = await startServer();
  try {
    // createTenant uses the Fintech Template: 90 days.
    const tenant = await createTenant(server, "key-lifetimes");
    const admin = server.config.platformAdminToken!;
    const days = (iso: unknown) => Math.round((Date.parse(String(iso)) - Date.now()) / 86_400_000);
    const byOperator = await expectStatus(201, {
      server,
      method: "POST",
      path: `/v1/admin/tenants/${tenant.tenantId}/api-keys`,
      token: admin,
      body: { name: "Operator issued", permissions: ["*"] },
    });
    assert.equal(days(byOperator.body.expires_at), 90, "no expires_at means the cap");
    const tooLong = await send(server, "POST", `/v1/admin/tenants/${tenant.tenantId}/api-keys`, {
      token: admin,
      body: { name: "Year 9999", permissions: ["*"], expires_at: "9999-12-31T00:00:00Z" },
    });
    assertProblem(tooLong, 422);
    assert.match(
      String(tooLong.body.detail),
      /^The key would outlive the tenant's api_key_max_lifetime_days of 90 days/,
    );
    const byTenant = await expectStatus(201, {
      server,
      method: "POST",
      path: "/v1/api-keys",
      token: String(byOperator.body.key),
      body: { name: "Tenant issued", permissions: ["documents:read"] },
    });
    assert.ok(days(byTenant.body.expires_at) <= 90);

    await expectStatus(200, {
      server,
      method: "PATCH",
      path: "/v1/config",
      token: tenant.key,
      body: { settings: { api_key_max_lifetime_days: 7 } },
    });
    const week = await expectStatus(201, {
      server,
      method: "POST",
      path: "/v1/api-keys",
      token: tenant.key,
      body: { name: "Week", permissions: ["documents:read"] },
    });
    assert.equal(days(week.body.expires_at), 7, "a lowered cap applies from the next key on");
    for (const value of ["90", 0, 1.5, 36501]) {
      const refused = await send(server, "PATCH", "/v1/config", {
        token: tenant.key,
        body: { settings: { api_key_max_lifetime_days: value } },
      });
      assertProblem(refused, 400);
      assert.match(JSON.stringify(refused.body), /api_key_max_lifetime_days/);
    }
  } finally {
    await server.close();
  }
});
