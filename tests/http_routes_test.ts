/**
 * Every route over real HTTP: the happy path, and each error status that
 * applies to it. The error matrices are driven by the service's own route
 * table, so a route added later is checked (or makes the coverage test fail)
 * without anyone remembering to list it here.
 */
import assert from "node:assert/strict";
import { allRoutes } from "../src/app.ts";
import { type DbRoute, type Permission, PERMISSIONS, type Route } from "../src/http/router.ts";
import { EXPECTED_SCHEMA_VERSION } from "../src/schema_version.ts";
import {
  assertProblem,
  expectStatus,
  fieldErrors,
  fillPath,
  issueKey,
  listAll,
  send,
  tenantSnapshot,
  unknownKey,
} from "./assertions.ts";
import { call, createTenant, SOME_HASH, startServer, type TestServer, type TestTenant } from "./support.ts";

const UNREACHABLE = "postgres://nobody:wrong@127.0.0.1:1/none";

function routeKey(route: Route): string {
  return `${route.method} ${route.path}`;
}

function dbRoutes(): DbRoute[] {
  return allRoutes().filter((route): route is DbRoute => route.access !== "public");
}

/** The list routes: those paged with limit and cursor. */
function listRoutes(): DbRoute[] {
  return dbRoutes().filter((route) => route.query && "limit" in (route.query as { shape?: object }).shape!);
}

function uniqueEmail(label = "user"): string {
  return `${label}-${crypto.randomUUID().slice(0, 8)}@example.test`;
}

/** A body each route accepts, and one it must refuse naming the listed fields. */
interface Fixture {
  body?: (tenant: TestTenant) => Record<string, unknown>;
  badBody?: { body: Record<string, unknown>; fields: string[] };
}

const fixtures: Record<string, Fixture> = {
  "GET /v1/tenant": {},
  "GET /v1/config": {},
  "PATCH /v1/config": {
    body: () => ({ settings: { theme: "dark" } }),
    badBody: {
      body: { settings: [1], tenant_id: crypto.randomUUID() },
      fields: ["body:settings", "body:tenant_id"],
    },
  },
  "GET /v1/templates": {},
  "GET /v1/users": {},
  "POST /v1/users": {
    body: () => ({ email: uniqueEmail() }),
    badBody: { body: { email: "not-an-email", role: "king" }, fields: ["body:email", "body:role"] },
  },
  "GET /v1/users/:user_id": {},
  "PATCH /v1/users/:user_id": {
    body: () => ({ role: "viewer" }),
    badBody: {
      body: { email: 5, role: "x", nickname: "n" },
      fields: ["body:email", "body:nickname", "body:role"],
    },
  },
  "DELETE /v1/users/:user_id": {},
  "GET /v1/documents": {},
  "POST /v1/documents": {
    body: (tenant) => ({ user_id: tenant.userId, title: "A title", content_hash: SOME_HASH }),
    badBody: {
      body: { user_id: "x", title: "", content_hash: "ABC", metadata: [] },
      fields: ["body:content_hash", "body:metadata", "body:title", "body:user_id"],
    },
  },
  "GET /v1/documents/:document_id": {},
  "PATCH /v1/documents/:document_id": {
    body: () => ({ title: "Renamed" }),
    badBody: {
      body: { title: 7, content_hash: "z", metadata: "s" },
      fields: ["body:content_hash", "body:metadata", "body:title"],
    },
  },
  "DELETE /v1/documents/:document_id": {},
  "GET /v1/api-keys": {},
  "POST /v1/api-keys": {
    body: () => ({ name: "a key", permissions: ["users:read"] }),
    badBody: {
      body: { name: "", permissions: ["root"], expires_at: "tomorrow" },
      fields: ["body:expires_at", "body:name", "body:permissions.0"],
    },
  },
  "DELETE /v1/api-keys/:key_id": {},
  "GET /v1/audit-logs": {},
  "GET /v1/audit-logs/verify": {},
  "GET /v1/audit-logs/export": {},
  "GET /v1/admin/tenants": {},
  "POST /v1/admin/tenants": {
    body: () => ({ name: "Tenant from a fixture" }),
    badBody: {
      body: { name: "", domain: "Not A Domain", subscription_tier: "gold", template_name: 5 },
      fields: ["body:domain", "body:name", "body:subscription_tier", "body:template_name"],
    },
  },
  "GET /v1/admin/tenants/:tenant_id": {},
  "PATCH /v1/admin/tenants/:tenant_id": {
    body: () => ({ subscription_tier: "pro" }),
    badBody: {
      body: { name: 1, domain: "UPPER.example", subscription_tier: "x" },
      fields: ["body:domain", "body:name", "body:subscription_tier"],
    },
  },
  "DELETE /v1/admin/tenants/:tenant_id": {},
  "POST /v1/admin/tenants/:tenant_id/api-keys": {
    body: () => ({ name: "a key", permissions: ["*"] }),
    badBody: {
      body: { name: 3, permissions: [], user_id: "nobody" },
      fields: ["body:name", "body:permissions", "body:user_id"],
    },
  },
  "DELETE /v1/admin/tenants/:tenant_id/api-keys/:key_id": {},
  "GET /v1/admin/audit-logs": {},
  "GET /v1/admin/tenants/:tenant_id/audit-logs/verify": {},
  "GET /v1/admin/tenants/:tenant_id/audit-logs/export": {},
  "GET /v1/admin/operators": {},
  "POST /v1/admin/operators": {
    body: () => ({ name: `operator-${crypto.randomUUID()}` }),
    badBody: {
      body: { name: " leading space", role: "root" },
      fields: ["body:name", "body:role"],
    },
  },
  "DELETE /v1/admin/operators/:operator_id": {},
  "GET /v1/approvals": {},
  "GET /v1/approvals/:approval_id": {},
  "POST /v1/approvals/:approval_id/approve": {},
  "POST /v1/approvals/:approval_id/reject": {},
  "GET /v1/admin/plans": {},
  "PATCH /v1/admin/plans/:plan_id": {
    body: () => ({ max_users: 10000 }),
    badBody: {
      body: { max_users: -1, requests_per_minute: 0 },
      fields: ["body:max_users", "body:requests_per_minute"],
    },
  },
};

/**
 * What each database route requires, written out here rather than read from
 * the route table, so a route whose permission is dropped or changed fails
 * the comparison below and the 403 matrix asks for the permission meant.
 */
const REQUIRED: Record<string, Permission | "any key" | "platform token"> = {
  "GET /v1/tenant": "any key",
  "GET /v1/config": "config:read",
  "PATCH /v1/config": "config:write",
  "GET /v1/templates": "any key",
  "GET /v1/users": "users:read",
  "POST /v1/users": "users:write",
  "GET /v1/users/:user_id": "users:read",
  "PATCH /v1/users/:user_id": "users:write",
  "DELETE /v1/users/:user_id": "users:write",
  "GET /v1/documents": "documents:read",
  "POST /v1/documents": "documents:write",
  "GET /v1/documents/:document_id": "documents:read",
  "PATCH /v1/documents/:document_id": "documents:write",
  "DELETE /v1/documents/:document_id": "documents:write",
  "GET /v1/api-keys": "keys:read",
  "POST /v1/api-keys": "keys:write",
  "DELETE /v1/api-keys/:key_id": "keys:write",
  "GET /v1/audit-logs": "audit:read",
  "GET /v1/audit-logs/verify": "audit:read",
  "GET /v1/audit-logs/export": "audit:read",
  "GET /v1/admin/tenants": "platform token",
  "POST /v1/admin/tenants": "platform token",
  "GET /v1/admin/tenants/:tenant_id": "platform token",
  "PATCH /v1/admin/tenants/:tenant_id": "platform token",
  "DELETE /v1/admin/tenants/:tenant_id": "platform token",
  "POST /v1/admin/tenants/:tenant_id/api-keys": "platform token",
  "DELETE /v1/admin/tenants/:tenant_id/api-keys/:key_id": "platform token",
  "GET /v1/admin/audit-logs": "platform token",
  "GET /v1/admin/tenants/:tenant_id/audit-logs/verify": "platform token",
  "GET /v1/admin/tenants/:tenant_id/audit-logs/export": "platform token",
  "GET /v1/admin/operators": "platform token",
  "POST /v1/admin/operators": "platform token",
  "DELETE /v1/admin/operators/:operator_id": "platform token",
  "GET /v1/approvals": "any key",
  "GET /v1/approvals/:approval_id": "any key",
  "POST /v1/approvals/:approval_id/approve": "any key",
  "POST /v1/approvals/:approval_id/reject": "any key",
  "GET /v1/admin/plans": "platform token",
  "PATCH /v1/admin/plans/:plan_id": "platform token",
};

function fixtureOf(route: DbRoute): Fixture {
  const fixture = fixtures[routeKey(route)];
  assert.ok(fixture, `no fixture for ${routeKey(route)}`);
  return fixture;
}

function tokenFor(server: TestServer, route: DbRoute, tenant: TestTenant): string {
  return route.access === "admin" ? server.config.platformAdminToken! : tenant.key;
}

Deno.test("every database route requires exactly the permission this suite expects of it", () => {
  const served = Object.fromEntries(
    dbRoutes().map((route) => [
      routeKey(route),
      route.access === "admin" ? "platform token" : route.permission ?? "any key",
    ]),
  );
  assert.deepEqual(served, REQUIRED);
});

Deno.test("this suite's route table covers every database route the service serves", () => {
  assert.deepEqual(dbRoutes().map(routeKey).sort(), Object.keys(fixtures).sort());
  for (const route of dbRoutes()) {
    assert.equal(
      Boolean(fixtures[routeKey(route)].body),
      Boolean(route.body),
      `${routeKey(route)} body fixture`,
    );
  }
});

// --- system routes ---------------------------------------------------------------

Deno.test("GET /health, /ready, /openapi.json and /docs answer 200 without credentials", async () => {
  const server = await startServer();
  try {
    const health = await expectStatus(200, { server, method: "GET", path: "/health" });
    assert.deepEqual(health.body, { status: "ok" });
    const ready = await expectStatus(200, { server, method: "GET", path: "/ready" });
    assert.equal(ready.body.status, "ready");
    assert.equal(ready.body.schema_version, EXPECTED_SCHEMA_VERSION);

    const openapi = await expectStatus(200, { server, method: "GET", path: "/openapi.json" });
    assert.equal(openapi.body.openapi, "3.1.0");
    const paths = openapi.body.paths as Record<string, Record<string, unknown>>;
    for (const route of allRoutes()) {
      const path = route.path.replace(/:([a-z_]+)/g, "{$1}");
      assert.ok(paths[path]?.[route.method.toLowerCase()], `openapi.json lacks ${route.method} ${path}`);
    }

    const docs = await fetch(server.url + "/docs");
    assert.equal(docs.status, 200);
    assert.match(docs.headers.get("content-type") ?? "", /^text\/html/);
    assert.ok(docs.headers.get("x-request-id"));
    // The page is Swagger UI on /openapi.json, from the service alone
    // (tests/docs_browser_test.ts renders it in a browser).
    assert.match(docs.headers.get("content-security-policy") ?? "", /default-src 'none'; script-src 'self';/);
    const html = await docs.text();
    assert.match(html, /<script src="\/docs\/assets\/swagger-ui-bundle\.js"><\/script>/);
    for (const asset of ["swagger-ui-bundle.js", "swagger-ui.css", "init.js"]) {
      const reply = await fetch(`${server.url}/docs/assets/${asset}`);
      assert.equal(reply.status, 200, asset);
      assert.ok((await reply.text()).length > 100, `${asset} has content`);
    }
    assertProblem(await send(server, "GET", "/docs/assets/swagger-ui.js.map"), 404);
  } finally {
    await server.close();
  }
});

Deno.test("an unknown path answers 404 problem+json", async () => {
  const server = await startServer();
  try {
    for (const path of ["/", "/v2/users", "/v1/users/extra/segment", "/v1/nothing"]) {
      assertProblem(await send(server, "GET", path), 404);
    }
  } finally {
    await server.close();
  }
});

// --- tenant resources, happy paths ---------------------------------------------

Deno.test("GET /v1/tenant returns the tenant the key belongs to", async () => {
  const server = await startServer();
  try {
    const tenant = await createTenant(server, "Tenant reading itself");
    const reply = await expectStatus(200, { server, method: "GET", path: "/v1/tenant", token: tenant.key });
    assert.equal(reply.body.tenant_id, tenant.tenantId);
    assert.equal(reply.body.name, "Tenant reading itself");
    assert.deepEqual(
      Object.keys(reply.body).sort(),
      ["created_at", "domain", "name", "plan", "subscription_tier", "tenant_id", "updated_at"],
    );
    assert.equal((reply.body.plan as { tier: string }).tier, reply.body.subscription_tier);
  } finally {
    await server.close();
  }
});

Deno.test("GET /v1/templates lists the catalog with each template's default settings", async () => {
  const server = await startServer();
  try {
    const tenant = await createTenant(server, "Template reader");
    const reply = await expectStatus(200, {
      server,
      method: "GET",
      path: "/v1/templates",
      token: tenant.key,
    });
    assert.equal(reply.body.next_cursor, null);
    const [expected] = await server
      .owner`select default_config from core.templates where name = 'Fintech Template'`;
    const fintech = reply.body.items?.find((item) => item.name === "Fintech Template");
    assert.ok(fintech, "Fintech Template is missing");
    assert.deepEqual(fintech.default_config, expected.default_config);
  } finally {
    await server.close();
  }
});

Deno.test("PATCH /v1/config merges settings, a null removes a key, and GET /v1/config shows the result", async () => {
  const server = await startServer();
  try {
    const tenant = await createTenant(server, "Config tenant");
    const token = tenant.key;
    const before = await expectStatus(200, { server, method: "GET", path: "/v1/config", token });
    const settings = before.body.settings as Record<string, unknown>;
    assert.equal(settings.currency, "EUR");

    const patched = await expectStatus(200, {
      server,
      method: "PATCH",
      path: "/v1/config",
      token,
      body: { settings: { theme: "dark", currency: null } },
    });
    const { currency: _removed, ...kept } = settings;
    const expected = { ...kept, theme: "dark" };
    assert.deepEqual(patched.body.settings, expected);
    const after = await expectStatus(200, { server, method: "GET", path: "/v1/config", token });
    assert.deepEqual(after.body.settings, expected);
    const [row] = await server
      .owner`select settings from core.tenant_configs where tenant_id = ${tenant.tenantId}`;
    assert.deepEqual(row.settings, expected);
  } finally {
    await server.close();
  }
});

Deno.test("users: POST creates, GET reads, PATCH changes and DELETE removes a user", async () => {
  const server = await startServer();
  try {
    const tenant = await createTenant(server, "User lifecycle");
    const token = tenant.key;
    const email = uniqueEmail("Ada");
    const created = await expectStatus(201, {
      server,
      method: "POST",
      path: "/v1/users",
      token,
      body: { email },
    });
    const userId = String(created.body.user_id);
    assert.equal(created.body.email, email);
    assert.equal(created.body.role, "member");
    assert.equal(created.body.tenant_id, tenant.tenantId);

    const read = await expectStatus(200, { server, method: "GET", path: `/v1/users/${userId}`, token });
    assert.deepEqual(read.body, created.body);

    const patched = await expectStatus(200, {
      server,
      method: "PATCH",
      path: `/v1/users/${userId}`,
      token,
      body: { role: "viewer" },
    });
    assert.equal(patched.body.role, "viewer");
    assert.equal(patched.body.email, email);
    const [row] = await server.owner`select role from core.users where user_id = ${userId}`;
    assert.equal(row.role, "viewer");

    const deleted = await expectStatus(204, { server, method: "DELETE", path: `/v1/users/${userId}`, token });
    assert.deepEqual(deleted.body, {});
    assertProblem(await send(server, "GET", `/v1/users/${userId}`, { token }), 404);
    assertProblem(await send(server, "DELETE", `/v1/users/${userId}`, { token }), 404);
    const [{ count }] = await server
      .owner`select count(*)::int as count from core.users where user_id = ${userId}`;
    assert.equal(count, 0);
  } finally {
    await server.close();
  }
});

Deno.test("POST and PATCH /v1/users return 409 for an email that differs from another only in case", async () => {
  const server = await startServer();
  try {
    const tenant = await createTenant(server, "Duplicate emails");
    const token = tenant.key;
    const email = uniqueEmail("grace");
    await expectStatus(201, { server, method: "POST", path: "/v1/users", token, body: { email } });
    assertProblem(
      await send(server, "POST", "/v1/users", { token, body: { email: email.toUpperCase() } }),
      409,
    );
    const other = await expectStatus(201, {
      server,
      method: "POST",
      path: "/v1/users",
      token,
      body: { email: uniqueEmail("other") },
    });
    assertProblem(
      await send(server, "PATCH", `/v1/users/${other.body.user_id}`, {
        token,
        body: { email: email.replace(/^g/, "G") },
      }),
      409,
    );
    const [{ count }] = await server.owner`
      select count(*)::int as count from core.users where tenant_id = ${tenant.tenantId} and lower(email) = ${email}`;
    assert.equal(count, 1);
  } finally {
    await server.close();
  }
});

Deno.test("the same email may belong to users of two tenants", async () => {
  const server = await startServer();
  try {
    const a = await createTenant(server, "Email tenant A");
    const b = await createTenant(server, "Email tenant B");
    const email = uniqueEmail("shared");
    await expectStatus(201, { server, method: "POST", path: "/v1/users", token: a.key, body: { email } });
    await expectStatus(201, { server, method: "POST", path: "/v1/users", token: b.key, body: { email } });
  } finally {
    await server.close();
  }
});

Deno.test("DELETE /v1/users/{id} returns 409 while the user authors documents, and keeps the user", async () => {
  const server = await startServer();
  try {
    const tenant = await createTenant(server, "Author tenant");
    const token = tenant.key;
    await expectStatus(201, {
      server,
      method: "POST",
      path: "/v1/documents",
      token,
      body: { user_id: tenant.userId, title: "Kept", content_hash: SOME_HASH },
    });
    assertProblem(await send(server, "DELETE", `/v1/users/${tenant.userId}`, { token }), 409);
    await expectStatus(200, { server, method: "GET", path: `/v1/users/${tenant.userId}`, token });
  } finally {
    await server.close();
  }
});

Deno.test("documents: POST creates, GET reads, PATCH changes and DELETE removes a document", async () => {
  const server = await startServer();
  try {
    const tenant = await createTenant(server, "Document lifecycle");
    const token = tenant.key;
    const body = {
      user_id: tenant.userId,
      title: "Quarterly report",
      content_hash: SOME_HASH,
      metadata: { a: 1 },
    };
    const created = await expectStatus(201, { server, method: "POST", path: "/v1/documents", token, body });
    const id = String(created.body.document_id);
    assert.equal(created.body.tenant_id, tenant.tenantId);
    assert.equal(created.body.title, body.title);
    assert.deepEqual(created.body.metadata, body.metadata);

    const read = await expectStatus(200, { server, method: "GET", path: `/v1/documents/${id}`, token });
    assert.deepEqual(read.body, created.body);

    const newHash = "b".repeat(64);
    const patched = await expectStatus(200, {
      server,
      method: "PATCH",
      path: `/v1/documents/${id}`,
      token,
      body: { content_hash: newHash, metadata: { b: [true, null] } },
    });
    assert.equal(patched.body.title, body.title);
    assert.equal(patched.body.content_hash, newHash);
    assert.deepEqual(patched.body.metadata, { b: [true, null] });

    await expectStatus(204, { server, method: "DELETE", path: `/v1/documents/${id}`, token });
    assertProblem(await send(server, "GET", `/v1/documents/${id}`, { token }), 404);
    const [{ count }] = await server.owner`
      select count(*)::int as count from core.documents where document_id = ${id}`;
    assert.equal(count, 0);
  } finally {
    await server.close();
  }
});

Deno.test("POST /v1/documents returns 422 for a user_id that is no user of the tenant, and stores nothing", async () => {
  const server = await startServer();
  try {
    const tenant = await createTenant(server, "Orphan documents");
    assertProblem(
      await send(server, "POST", "/v1/documents", {
        token: tenant.key,
        body: { user_id: crypto.randomUUID(), title: "Orphan", content_hash: SOME_HASH },
      }),
      422,
    );
    const [{ count }] = await server.owner`
      select count(*)::int as count from core.documents where tenant_id = ${tenant.tenantId}`;
    assert.equal(count, 0);
  } finally {
    await server.close();
  }
});

Deno.test("GET /v1/documents filters by user_id, created_after (inclusive) and created_before (exclusive)", async () => {
  const server = await startServer();
  try {
    const tenant = await createTenant(server, "Document filters");
    const token = tenant.key;
    const second = await expectStatus(201, {
      server,
      method: "POST",
      path: "/v1/users",
      token,
      body: { email: uniqueEmail("second") },
    });
    const authors = [tenant.userId, String(second.body.user_id), tenant.userId];
    const docs: Record<string, unknown>[] = [];
    for (const [i, userId] of authors.entries()) {
      const reply = await expectStatus(201, {
        server,
        method: "POST",
        path: "/v1/documents",
        token,
        body: { user_id: userId, title: `Document ${i}`, content_hash: SOME_HASH },
      });
      docs.push(reply.body);
    }
    const ids = (reply: { body: { items?: Record<string, unknown>[] } }) =>
      (reply.body.items ?? []).map((item) => item.document_id);
    const list = (query: string) =>
      expectStatus(200, { server, method: "GET", path: `/v1/documents?${query}`, token });

    assert.deepEqual(ids(await list("")), [docs[2], docs[1], docs[0]].map((d) => d.document_id));
    assert.deepEqual(ids(await list(`user_id=${second.body.user_id}`)), [docs[1].document_id]);
    assert.deepEqual(ids(await list(`user_id=${tenant.userId}`)), [docs[2].document_id, docs[0].document_id]);
    const middle = encodeURIComponent(String(docs[1].created_at));
    assert.deepEqual(ids(await list(`created_after=${middle}`)), [docs[2].document_id, docs[1].document_id]);
    assert.deepEqual(ids(await list(`created_before=${middle}`)), [docs[0].document_id]);
    assert.deepEqual(
      ids(
        await list(
          `created_after=${middle}&created_before=${encodeURIComponent(String(docs[2].created_at))}`,
        ),
      ),
      [docs[1].document_id],
    );
    assert.deepEqual(ids(await list(`user_id=${crypto.randomUUID()}`)), []);
  } finally {
    await server.close();
  }
});

Deno.test("API keys: POST returns the key once, GET lists only its prefix, DELETE revokes it", async () => {
  const server = await startServer();
  try {
    const tenant = await createTenant(server, "Key lifecycle");
    const created = await expectStatus(201, {
      server,
      method: "POST",
      path: "/v1/api-keys",
      token: tenant.key,
      body: { name: "reporting", permissions: ["documents:read"] },
    });
    const key = String(created.body.key);
    assert.match(key, /^tnk_[A-Za-z0-9_-]{43}$/);
    assert.equal(created.body.key_prefix, key.slice(0, 12));
    assert.deepEqual(created.body.permissions, ["documents:read"]);
    await expectStatus(200, { server, method: "GET", path: "/v1/documents", token: key });

    const { items } = await listAll(server, "/v1/api-keys", { token: tenant.key });
    const listed = items.find((item) => item.key_id === created.body.key_id);
    assert.ok(listed, "the new key is not listed");
    assert.equal(listed.key_prefix, key.slice(0, 12));
    for (const item of items) {
      assert.ok(!("key" in item) && !("key_hash" in item), "a list exposes key material");
    }
    assert.ok(!JSON.stringify(items).includes(key), "the list contains the key itself");

    await expectStatus(204, {
      server,
      method: "DELETE",
      path: `/v1/api-keys/${created.body.key_id}`,
      token: tenant.key,
    });
    assertProblem(await send(server, "GET", "/v1/documents", { token: key }), 401);
    const after = await listAll(server, "/v1/api-keys", { token: tenant.key });
    const revoked = after.items.find((item) => item.key_id === created.body.key_id);
    assert.ok(revoked?.revoked_at, "the revoked key shows no revoked_at");
  } finally {
    await server.close();
  }
});

// --- platform routes, happy paths ------------------------------------------------

Deno.test("POST /v1/admin/tenants with template_name seeds the configuration GET /v1/config shows", async () => {
  const server = await startServer();
  try {
    const token = server.config.platformAdminToken!;
    const domain = `t${crypto.randomUUID().slice(0, 8)}.example`;
    const created = await expectStatus(201, {
      server,
      method: "POST",
      path: "/v1/admin/tenants",
      token,
      body: {
        name: "Seeded tenant",
        domain,
        subscription_tier: "enterprise",
        template_name: "Fintech Template",
      },
    });
    assert.equal(created.body.name, "Seeded tenant");
    assert.equal(created.body.domain, domain);
    assert.equal(created.body.subscription_tier, "enterprise");
    assert.equal(created.body.deactivated_at, null);
    const tenantId = String(created.body.tenant_id);
    const { key } = await issueKey(server, tenantId, { permissions: ["config:read"] });

    const config = await expectStatus(200, { server, method: "GET", path: "/v1/config", token: key });
    const templates = await expectStatus(200, { server, method: "GET", path: "/v1/templates", token: key });
    const fintech = templates.body.items?.find((item) => item.name === "Fintech Template");
    assert.ok(fintech);
    assert.equal(config.body.template_id, fintech.template_id);
    assert.deepEqual(config.body.settings, fintech.default_config);
    assert.ok(Object.keys(config.body.settings as object).length > 0, "the template seeded no settings");

    const plain = await expectStatus(201, {
      server,
      method: "POST",
      path: "/v1/admin/tenants",
      token,
      body: { name: "Plain" },
    });
    const plainKey = await issueKey(server, String(plain.body.tenant_id), { permissions: ["config:read"] });
    const plainConfig = await expectStatus(200, {
      server,
      method: "GET",
      path: "/v1/config",
      token: plainKey.key,
    });
    assert.deepEqual(plainConfig.body.settings, {});
    assert.equal(plainConfig.body.template_id, null);
    assert.equal(plain.body.subscription_tier, "free");
  } finally {
    await server.close();
  }
});

Deno.test("POST /v1/admin/tenants with an unknown template_name returns 404 and provisions nothing", async () => {
  const server = await startServer();
  try {
    const [{ count: before }] = await server.owner`select count(*)::int as count from core.tenants`;
    assertProblem(
      await send(server, "POST", "/v1/admin/tenants", {
        token: server.config.platformAdminToken,
        body: { name: "No such template", template_name: "Nonexistent Template" },
      }),
      404,
    );
    const [{ count: after }] = await server.owner`select count(*)::int as count from core.tenants`;
    assert.equal(after, before);
  } finally {
    await server.close();
  }
});

Deno.test("GET and PATCH /v1/admin/tenants/{id} read and change a tenant; a taken domain is 409", async () => {
  const server = await startServer();
  try {
    const token = server.config.platformAdminToken!;
    const tenant = await createTenant(server, "Admin managed");
    const path = `/v1/admin/tenants/${tenant.tenantId}`;
    const read = await expectStatus(200, { server, method: "GET", path, token });
    assert.equal(read.body.name, "Admin managed");
    assert.equal(read.body.deactivated_at, null);

    const domain = `d${crypto.randomUUID().slice(0, 8)}.example`;
    const patched = await expectStatus(200, {
      server,
      method: "PATCH",
      path,
      token,
      body: { name: "Renamed", domain, subscription_tier: "pro" },
    });
    assert.equal(patched.body.name, "Renamed");
    assert.equal(patched.body.domain, domain);
    assert.equal(patched.body.subscription_tier, "pro");

    const other = await createTenant(server, "Domain rival");
    assertProblem(
      await send(server, "PATCH", `/v1/admin/tenants/${other.tenantId}`, { token, body: { domain } }),
      409,
    );
    assertProblem(
      await send(server, "POST", "/v1/admin/tenants", { token, body: { name: "Rival", domain } }),
      409,
    );

    const cleared = await expectStatus(200, { server, method: "PATCH", path, token, body: { domain: null } });
    assert.equal(cleared.body.domain, null);
    assert.equal(cleared.body.name, "Renamed");
    const [row] = await server
      .owner`select domain, name from core.tenants where tenant_id = ${tenant.tenantId}`;
    assert.deepEqual({ ...row }, { domain: null, name: "Renamed" });
  } finally {
    await server.close();
  }
});

Deno.test("DELETE /v1/admin/tenants/{id}/api-keys/{key_id} revokes that one key, and only under its own tenant", async () => {
  const server = await startServer();
  try {
    const a = await createTenant(server, "Keeps its keys");
    const b = await createTenant(server, "Loses one key");
    const spare = await issueKey(server, b.tenantId, { permissions: ["*"] });
    const admin = server.config.platformAdminToken!;
    const path = (tenant: TestTenant, keyId: string) =>
      `/v1/admin/tenants/${tenant.tenantId}/api-keys/${keyId}`;
    assertProblem(await send(server, "DELETE", path(a, b.keyId), { token: admin }), 404);
    await expectStatus(200, { server, method: "GET", path: "/v1/tenant", token: b.key });
    await expectStatus(204, { server, method: "DELETE", path: path(b, b.keyId), token: admin });
    assertProblem(await send(server, "GET", "/v1/tenant", { token: b.key }), 401);
    await expectStatus(200, { server, method: "GET", path: "/v1/tenant", token: spare.key });
    await expectStatus(200, { server, method: "GET", path: "/v1/tenant", token: a.key });
    assertProblem(await send(server, "DELETE", path(b, crypto.randomUUID()), { token: admin }), 404);
  } finally {
    await server.close();
  }
});

Deno.test("DELETE /v1/admin/tenants/{id} deactivates: the tenant's keys get 401 at once and its data stays", async () => {
  const server = await startServer();
  try {
    const token = server.config.platformAdminToken!;
    const tenant = await createTenant(server, "To be deactivated");
    const second = await issueKey(server, tenant.tenantId, { permissions: ["users:read"] });
    await expectStatus(201, {
      server,
      method: "POST",
      path: "/v1/documents",
      token: tenant.key,
      body: { user_id: tenant.userId, title: "Survives", content_hash: SOME_HASH },
    });
    await expectStatus(200, { server, method: "GET", path: "/v1/users", token: second.key });
    const before = await tenantSnapshot(server, tenant.tenantId);

    const deleted = await expectStatus(200, {
      server,
      method: "DELETE",
      path: `/v1/admin/tenants/${tenant.tenantId}`,
      token,
    });
    assert.ok(deleted.body.deactivated_at, "no deactivated_at in the response");

    assertProblem(await send(server, "GET", "/v1/users", { token: second.key }), 401);
    assertProblem(await send(server, "GET", "/v1/tenant", { token: tenant.key }), 401);
    assertProblem(
      await send(server, "POST", "/v1/users", { token: tenant.key, body: { email: uniqueEmail() } }),
      401,
    );
    assertProblem(
      await send(server, "POST", `/v1/admin/tenants/${tenant.tenantId}/api-keys`, {
        token,
        body: { name: "after deactivation", permissions: ["*"] },
      }),
      404,
    );

    const after = await tenantSnapshot(server, tenant.tenantId);
    for (const table of ["users", "documents", "tenant_api_keys", "tenant_configs"]) {
      assert.ok(after[table].length > 0, `${table} rows of the tenant are gone`);
      assert.deepEqual(after[table], before[table], `${table} rows changed on deactivation`);
    }
    const read = await expectStatus(200, {
      server,
      method: "GET",
      path: `/v1/admin/tenants/${tenant.tenantId}`,
      token,
    });
    assert.equal(read.body.deactivated_at, deleted.body.deactivated_at);
  } finally {
    await server.close();
  }
});

Deno.test("GET /v1/admin/audit-logs?tenant_id= lists exactly that tenant's audit rows", async () => {
  const server = await startServer();
  try {
    const tenant = await createTenant(server, "Audited by the platform");
    await createTenant(server, "Someone else");
    const { items } = await listAll(server, `/v1/admin/audit-logs?tenant_id=${tenant.tenantId}`, {
      token: server.config.platformAdminToken,
      limit: 3,
    });
    const expected = await server.owner`
      select log_id from core.audit_logs where tenant_id = ${tenant.tenantId} order by "timestamp" desc, log_id desc`;
    assert.ok(expected.length >= 3, "the fixture made too few audit rows");
    assert.deepEqual(items.map((item) => item.log_id), expected.map((row) => row.log_id));
  } finally {
    await server.close();
  }
});

// --- lists ------------------------------------------------------------------------

Deno.test("every list pages with limit=2 through each row exactly once, newest first", async (t) => {
  const server = await startServer();
  try {
    const tenant = await createTenant(server, "Paging tenant");
    const token = tenant.key;
    for (let i = 0; i < 5; i++) {
      await expectStatus(201, {
        server,
        method: "POST",
        path: "/v1/users",
        token,
        body: { email: uniqueEmail() },
      });
      await expectStatus(201, {
        server,
        method: "POST",
        path: "/v1/documents",
        token,
        body: { user_id: tenant.userId, title: `Doc ${i}`, content_hash: SOME_HASH },
      });
      await issueKey(server, tenant.tenantId, { permissions: ["users:read"] });
    }
    const admin = server.config.platformAdminToken;
    const cases: { path: string; token?: string; id: string; query: () => Promise<{ id: string }[]> }[] = [
      {
        path: "/v1/users",
        token,
        id: "user_id",
        query: () =>
          server.owner`select user_id as id from core.users where tenant_id = ${tenant.tenantId}
            order by created_at desc, user_id desc`,
      },
      {
        path: "/v1/documents",
        token,
        id: "document_id",
        query: () =>
          server.owner`select document_id as id from core.documents where tenant_id = ${tenant.tenantId}
            order by created_at desc, document_id desc`,
      },
      {
        path: "/v1/api-keys",
        token,
        id: "key_id",
        query: () =>
          server.owner`select key_id as id from core.tenant_api_keys where tenant_id = ${tenant.tenantId}
            order by created_at desc, key_id desc`,
      },
      {
        path: "/v1/audit-logs",
        token,
        id: "log_id",
        query: () =>
          server.owner`select log_id as id from core.audit_logs where tenant_id = ${tenant.tenantId}
            order by "timestamp" desc, log_id desc`,
      },
      {
        path: "/v1/admin/tenants",
        token: admin,
        id: "tenant_id",
        query: () =>
          server.owner`select tenant_id as id from core.tenants
            where tenant_id <> '00000000-0000-0000-0000-000000000000'
            order by created_at desc, tenant_id desc`,
      },
      {
        path: `/v1/admin/audit-logs?tenant_id=${tenant.tenantId}`,
        token: admin,
        id: "log_id",
        query: () =>
          server.owner`select log_id as id from core.audit_logs where tenant_id = ${tenant.tenantId}
            order by "timestamp" desc, log_id desc`,
      },
    ];
    for (const { path, token, id, query } of cases) {
      await t.step(`GET ${path}`, async () => {
        const { items, pages } = await listAll(server, path, { token, limit: 2 });
        const expected = (await query()).map((row) => row.id);
        assert.ok(expected.length >= 5, `the fixture has only ${expected.length} rows`);
        const served = items.map((item) => item[id]);
        assert.equal(new Set(served).size, served.length, "a row was served twice");
        assert.deepEqual(served, expected);
        assert.ok(pages >= Math.ceil(expected.length / 2), `only ${pages} pages for ${expected.length} rows`);
      });
    }
  } finally {
    await server.close();
  }
});

// --- error matrices over the route table -----------------------------------------

Deno.test("tenant routes answer 401 without a key, with an unknown key and with anything not a key", async (t) => {
  const server = await startServer();
  try {
    const tenant = await createTenant(server, "401 matrix");
    const before = await tenantSnapshot(server, tenant.tenantId);
    const credentials: [string, Record<string, string>][] = [
      ["no Authorization header", {}],
      ["an unknown key", { authorization: `Bearer ${unknownKey()}` }],
      ["a token that is not a key", { authorization: "Bearer not-a-key" }],
      ["the platform admin token", { authorization: `Bearer ${server.config.platformAdminToken}` }],
      ["Basic credentials", { authorization: `Basic ${btoa("user:password")}` }],
      ["an empty bearer", { authorization: "Bearer " }],
    ];
    for (const route of dbRoutes().filter((r) => r.access === "tenant")) {
      await t.step(routeKey(route), async () => {
        const body = fixtureOf(route).body?.(tenant);
        for (const [label, headers] of credentials) {
          const reply = await send(server, route.method, fillPath(route.path, tenant.userId), {
            headers,
            body,
          });
          assert.equal(reply.status, 401, `${label}: ${reply.status}`);
          assertProblem(reply, 401);
          assert.match(reply.headers.get("www-authenticate") ?? "", /^Bearer/);
        }
      });
    }
    assert.deepEqual(await tenantSnapshot(server, tenant.tenantId), before);
  } finally {
    await server.close();
  }
});

Deno.test("platform routes answer 401 without a token, with a wrong token and with a tenant key", async (t) => {
  const server = await startServer();
  try {
    const tenant = await createTenant(server, "Admin 401 matrix");
    const admin = server.config.platformAdminToken!;
    const [{ count: before }] = await server.owner`select count(*)::int as count from core.audit_logs`;
    const credentials: [string, Record<string, string>][] = [
      ["no Authorization header", {}],
      ["a wrong token", { authorization: "Bearer wrong-token-wrong-token-wrong-token" }],
      ["the token with one more character", { authorization: `Bearer ${admin}x` }],
      ["the token without its last character", { authorization: `Bearer ${admin.slice(0, -1)}` }],
      ["a tenant key with every permission", { authorization: `Bearer ${tenant.key}` }],
    ];
    for (const route of dbRoutes().filter((r) => r.access === "admin")) {
      await t.step(routeKey(route), async () => {
        const body = fixtureOf(route).body?.(tenant);
        for (const [label, headers] of credentials) {
          const reply = await send(server, route.method, fillPath(route.path, tenant.tenantId), {
            headers,
            body,
          });
          assert.equal(reply.status, 401, `${label}: ${reply.status}`);
          assertProblem(reply, 401);
        }
      });
    }
    const [{ count: after }] = await server.owner`select count(*)::int as count from core.audit_logs`;
    assert.equal(after, before, "a refused platform request changed something");
  } finally {
    await server.close();
  }
});

Deno.test("each permission-guarded route answers 403 to a key holding every other permission (that does not bring it)", async (t) => {
  const server = await startServer();
  try {
    const tenant = await createTenant(server, "403 matrix");
    const keys = new Map<Permission, string>();
    for (const permission of PERMISSIONS.filter((p) => p !== "*")) {
      // X:write brings X:read, so a key without X:read holds no X:write either.
      const others = PERMISSIONS.filter((p) =>
        p !== permission && p !== "*" && p !== permission.replace(/:read$/, ":write")
      );
      keys.set(permission, (await issueKey(server, tenant.tenantId, { permissions: others })).key);
    }
    const before = await tenantSnapshot(server, tenant.tenantId);
    const guarded = dbRoutes().filter((route) =>
      route.access === "tenant" && REQUIRED[routeKey(route)] !== "any key"
    );
    assert.ok(guarded.length >= 13, "too few guarded routes found");
    for (const route of guarded) {
      const permission = REQUIRED[routeKey(route)] as Permission;
      await t.step(`${routeKey(route)} needs ${permission}`, async () => {
        const path = fillPath(route.path, (name) => name === "key_id" ? tenant.keyId : tenant.userId);
        const body = fixtureOf(route).body?.(tenant);
        assertProblem(await send(server, route.method, path, { token: keys.get(permission), body }), 403);
      });
    }
    assert.deepEqual(await tenantSnapshot(server, tenant.tenantId), before);
  } finally {
    await server.close();
  }
});

Deno.test("routes with an id answer 404 for an id that does not exist", async (t) => {
  const server = await startServer();
  try {
    const tenant = await createTenant(server, "404 matrix");
    const before = await tenantSnapshot(server, tenant.tenantId);
    for (const route of dbRoutes().filter((r) => r.params)) {
      await t.step(routeKey(route), async () => {
        const reply = await send(server, route.method, fillPath(route.path, crypto.randomUUID()), {
          token: tokenFor(server, route, tenant),
          body: fixtureOf(route).body?.(tenant),
        });
        assertProblem(reply, 404);
      });
    }
    assert.deepEqual(await tenantSnapshot(server, tenant.tenantId), before);
  } finally {
    await server.close();
  }
});

Deno.test("routes with an id answer 400 naming the path parameter when it is not a UUID", async (t) => {
  const server = await startServer();
  try {
    const tenant = await createTenant(server, "Bad path matrix");
    const values = [
      "not-a-uuid",
      "1",
      `${crypto.randomUUID()}x`,
      "%27%3B%20drop%20table%20core.users%3B%20--",
    ];
    for (const route of dbRoutes().filter((r) => r.params)) {
      await t.step(routeKey(route), async () => {
        for (const value of values) {
          const reply = await send(server, route.method, fillPath(route.path, value), {
            token: tokenFor(server, route, tenant),
            body: fixtureOf(route).body?.(tenant),
          });
          assertProblem(reply, 400);
          const params = [...route.path.matchAll(/:([a-z_]+)/g)].map((m) => `path:${m[1]}`).sort();
          assert.deepEqual(fieldErrors(reply), params, value);
        }
      });
    }
  } finally {
    await server.close();
  }
});

function base64url(value: unknown): string {
  return btoa(JSON.stringify(value)).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

Deno.test("list routes answer 400 for limit 0, 101 and abc, a tampered cursor and an unknown parameter", async (t) => {
  const server = await startServer();
  try {
    const tenant = await createTenant(server, "Query matrix");
    const good = base64url(["2026-01-01T00:00:00.123456Z", crypto.randomUUID()]);
    const cases: [string, string, string][] = [
      ["limit=0", "limit=0", "query:limit"],
      ["limit=101", "limit=101", "query:limit"],
      ["limit=abc", "limit=abc", "query:limit"],
      ["limit=-1", "limit=-1", "query:limit"],
      ["limit=2.5", "limit=2.5", "query:limit"],
      ["a repeated limit", "limit=1&limit=2", "query:limit"],
      ["a cursor that is not base64 JSON", "cursor=not-a-cursor!", "query:cursor"],
      ["a truncated cursor", `cursor=${good.slice(0, -6)}`, "query:cursor"],
      ["a cursor of another shape", `cursor=${base64url({ after: "x" })}`, "query:cursor"],
      [
        "a cursor with SQL in it",
        `cursor=${base64url(["2026-01-01T00:00:00Z", "'; drop table core.users; --"])}`,
        "query:cursor",
      ],
      [
        "a cursor with a bad timestamp",
        `cursor=${base64url(["yesterday", crypto.randomUUID()])}`,
        "query:cursor",
      ],
      [
        "a cursor with a third element",
        `cursor=${base64url(["2026-01-01T00:00:00Z", crypto.randomUUID(), 1])}`,
        "query:cursor",
      ],
      ["a cursor longer than 512 characters", `cursor=${"A".repeat(600)}`, "query:cursor"],
      ["an unknown parameter", "colour=blue", "query:colour"],
      // Names every JavaScript object has: unknown like any other, never "given twice".
      ["a parameter named constructor", "constructor=1", "query:constructor"],
      ["a parameter named __proto__", "__proto__=1", "query:__proto__"],
      ["a parameter named toString", "toString=1", "query:toString"],
      ["a parameter named hasOwnProperty", "hasOwnProperty=x", "query:hasOwnProperty"],
    ];
    for (const route of listRoutes()) {
      await t.step(routeKey(route), async () => {
        const token = tokenFor(server, route, tenant);
        await expectStatus(200, {
          server,
          method: "GET",
          path: `${route.path}?cursor=${good}&limit=100`,
          token,
        });
        for (const [label, query, field] of cases) {
          const reply = await send(server, "GET", `${route.path}?${query}`, { token });
          assert.equal(reply.status, 400, `${label}: ${reply.status} ${JSON.stringify(reply.body)}`);
          assert.deepEqual(fieldErrors(reply), [field], label);
          if (label.startsWith("a parameter named")) {
            const [error] = reply.body.errors as { message: string }[];
            assert.match(error.message, /unrecognized/i, `${label} is not treated as an unknown parameter`);
          }
        }
        if (route.access === "tenant") {
          const reply = await send(server, "GET", `${route.path}?tenant_id=${tenant.tenantId}`, { token });
          assertProblem(reply, 400);
          assert.deepEqual(fieldErrors(reply), ["query:tenant_id"]);
        }
      });
    }
  } finally {
    await server.close();
  }
});

Deno.test("a cursor whose timestamp PostgreSQL cannot represent (year 0000) is a 400, not a 500", async (t) => {
  const server = await startServer();
  try {
    const tenant = await createTenant(server, "Year zero cursor");
    const cursor = base64url(["0000-01-01T00:00:00Z", crypto.randomUUID()]);
    for (const route of listRoutes()) {
      await t.step(routeKey(route), async () => {
        const reply = await send(server, "GET", `${route.path}?cursor=${cursor}`, {
          token: tokenFor(server, route, tenant),
        });
        assertProblem(reply, 400);
        assert.deepEqual(fieldErrors(reply), ["query:cursor"]);
      });
    }
  } finally {
    await server.close();
  }
});

Deno.test("list filters answer 400 naming each malformed filter value", async (t) => {
  const server = await startServer();
  try {
    const tenant = await createTenant(server, "Filter matrix");
    const cases: [string, string, string[]][] = [
      ["/v1/documents", "user_id=nobody&created_after=yesterday&created_before=2026-13-01T00:00:00Z", [
        "query:created_after",
        "query:created_before",
        "query:user_id",
      ]],
      ["/v1/documents", "created_after=0000-01-01T00:00:00Z", ["query:created_after"]],
      ["/v1/audit-logs", "user_id=1&action=truncate&resource_type=Users;&since=now&until=2026-01-01", [
        "query:action",
        "query:resource_type",
        "query:since",
        "query:until",
        "query:user_id",
      ]],
      ["/v1/audit-logs", "since=0000-06-01T00:00:00Z", ["query:since"]],
      ["/v1/admin/audit-logs", "tenant_id=acme", ["query:tenant_id"]],
    ];
    for (const [path, query, fields] of cases) {
      await t.step(`${path}?${query}`, async () => {
        const token = path.startsWith("/v1/admin") ? server.config.platformAdminToken : tenant.key;
        const reply = await send(server, "GET", `${path}?${query}`, { token });
        assertProblem(reply, 400);
        assert.deepEqual(fieldErrors(reply), fields);
      });
    }
  } finally {
    await server.close();
  }
});

Deno.test("routes without a query schema answer 400 naming any query parameter", async (t) => {
  const server = await startServer();
  try {
    const tenant = await createTenant(server, "No query matrix");
    for (const route of dbRoutes().filter((r) => !r.query)) {
      await t.step(routeKey(route), async () => {
        const reply = await send(
          server,
          route.method,
          `${fillPath(route.path, crypto.randomUUID())}?debug=1`,
          {
            token: tokenFor(server, route, tenant),
            body: fixtureOf(route).body?.(tenant),
          },
        );
        assertProblem(reply, 400);
        assert.deepEqual(fieldErrors(reply), ["query:debug"]);
      });
    }
  } finally {
    await server.close();
  }
});

Deno.test("routes with a body answer 400 listing every invalid field, and for non-objects and unknown fields", async (t) => {
  const server = await startServer();
  try {
    const tenant = await createTenant(server, "Body matrix");
    const before = await tenantSnapshot(server, tenant.tenantId);
    for (const route of dbRoutes().filter((r) => r.body)) {
      await t.step(routeKey(route), async () => {
        const fixture = fixtureOf(route);
        const options = { token: tokenFor(server, route, tenant) };
        const path = fillPath(route.path, (name) => name === "tenant_id" ? tenant.tenantId : tenant.userId);
        const bad = await send(server, route.method, path, { ...options, body: fixture.badBody!.body });
        assertProblem(bad, 400);
        assert.deepEqual(fieldErrors(bad), fixture.badBody!.fields);

        const extra = await send(server, route.method, path, {
          ...options,
          body: { ...fixture.body!(tenant), tenant_id: crypto.randomUUID() },
        });
        assertProblem(extra, 400);
        assert.deepEqual(fieldErrors(extra), ["body:tenant_id"]);

        for (const raw of ["[]", "null", "42", '"text"', "{}"]) {
          const reply = await send(server, route.method, path, { ...options, rawBody: raw });
          assertProblem(reply, 400);
          assert.ok(fieldErrors(reply).length > 0, `${raw}: no field named`);
        }
        for (const raw of ["", "   ", "{", '{"name": }', "{'name': 'x'}", "\u00ff\u00fe"]) {
          assertProblem(await send(server, route.method, path, { ...options, rawBody: raw }), 400);
        }
      });
    }
    assert.deepEqual(await tenantSnapshot(server, tenant.tenantId), before);
  } finally {
    await server.close();
  }
});

Deno.test("routes with a body answer 415 when the body is not sent as JSON", async (t) => {
  const server = await startServer();
  try {
    const tenant = await createTenant(server, "415 matrix");
    const types = [
      "text/plain",
      "application/x-www-form-urlencoded",
      "multipart/form-data; boundary=x",
      "",
      "json",
    ];
    for (const route of dbRoutes().filter((r) => r.body)) {
      await t.step(routeKey(route), async () => {
        const path = fillPath(route.path, (name) => name === "tenant_id" ? tenant.tenantId : tenant.userId);
        const rawBody = JSON.stringify(fixtureOf(route).body!(tenant));
        for (const contentType of types) {
          const reply = await send(server, route.method, path, {
            token: tokenFor(server, route, tenant),
            rawBody,
            contentType,
          });
          assert.equal(reply.status, 415, `content-type ${JSON.stringify(contentType)}: ${reply.status}`);
        }
      });
    }
  } finally {
    await server.close();
  }
});

Deno.test("routes with a body answer 413 when the body exceeds BODY_LIMIT_BYTES, declared or streamed", async (t) => {
  const server = await startServer({ BODY_LIMIT_BYTES: "1024" });
  try {
    const tenant = await createTenant(server, "413 matrix");
    const before = await tenantSnapshot(server, tenant.tenantId);
    for (const route of dbRoutes().filter((r) => r.body)) {
      await t.step(routeKey(route), async () => {
        const path = fillPath(route.path, (name) => name === "tenant_id" ? tenant.tenantId : tenant.userId);
        const token = tokenFor(server, route, tenant);
        // A valid body padded with JSON whitespace: only its size is wrong.
        const json = JSON.stringify(fixtureOf(route).body!(tenant));
        const padded = json.slice(0, -1) + " ".repeat(2048) + "}";
        assertProblem(await send(server, route.method, path, { token, rawBody: padded }), 413);

        const chunks = [padded.slice(0, 700), padded.slice(700, 1400), padded.slice(1400)];
        const stream = ReadableStream.from(chunks.map((chunk) => new TextEncoder().encode(chunk)));
        const response = await fetch(server.url + path, {
          method: route.method,
          headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
          body: stream,
        });
        const text = await response.text();
        assert.equal(response.status, 413, text);
        assert.equal(response.headers.get("content-type"), "application/problem+json");
        assert.ok(response.headers.get("x-request-id"));
      });
    }
    assert.deepEqual(await tenantSnapshot(server, tenant.tenantId), before);
  } finally {
    await server.close();
  }
});

Deno.test("a body of exactly BODY_LIMIT_BYTES is accepted and one byte more is 413", async () => {
  const server = await startServer({ BODY_LIMIT_BYTES: "1024" });
  try {
    const tenant = await createTenant(server, "Limit boundary");
    const sized = (size: number) => {
      const json = JSON.stringify({ email: uniqueEmail("edge") });
      return json.slice(0, -1) + " ".repeat(size - json.length) + "}";
    };
    assert.equal(new TextEncoder().encode(sized(1024)).length, 1024);
    const token = tenant.key;
    assertProblem(await send(server, "POST", "/v1/users", { token, rawBody: sized(1025) }), 413);
    await expectStatus(201, { server, method: "POST", path: "/v1/users", token, rawBody: sized(1024) });
  } finally {
    await server.close();
  }
});

Deno.test("each path answers 405 with an Allow header for a method it does not serve", async (t) => {
  const server = await startServer();
  try {
    const methodsByPath = new Map<string, Set<string>>();
    for (const route of allRoutes()) {
      const methods = methodsByPath.get(route.path) ?? new Set();
      methods.add(route.method);
      methodsByPath.set(route.path, methods);
    }
    for (const [path, allowed] of methodsByPath) {
      await t.step(`${path} serves ${[...allowed].join(", ")}`, async () => {
        for (
          const method of ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"].filter((m) => !allowed.has(m))
        ) {
          const reply = await send(server, method, fillPath(path, crypto.randomUUID()));
          assertProblem(reply, 405);
          const allow = (reply.headers.get("allow") ?? "").split(",").map((m) => m.trim()).sort();
          assert.deepEqual(allow, [...allowed].sort(), `${method} ${path}`);
        }
      });
    }
  } finally {
    await server.close();
  }
});

Deno.test("every database route answers 503 with Retry-After when the database is unreachable", async (t) => {
  // A short pool wait keeps the matrix quick: after the first failed connects
  // a request waits that long for a connection before answering 503.
  const server = await startServer({
    APP_DATABASE_URL: UNREACHABLE,
    ADMIN_DATABASE_URL: UNREACHABLE,
    DB_POOL_WAIT_MS: "250",
  });
  try {
    const tenant: TestTenant = {
      tenantId: crypto.randomUUID(),
      key: unknownKey(),
      keyId: crypto.randomUUID(),
      userId: crypto.randomUUID(),
    };
    for (const route of dbRoutes()) {
      await t.step(routeKey(route), async () => {
        const started = performance.now();
        const reply = await send(server, route.method, fillPath(route.path, crypto.randomUUID()), {
          token: tokenFor(server, route, tenant),
          body: fixtureOf(route).body?.(tenant),
        });
        assertProblem(reply, 503);
        assert.equal(reply.headers.get("retry-after"), "1");
        assert.ok(performance.now() - started < 5000, "the 503 took longer than 5 s");
      });
    }
    await t.step("GET /health still answers 200", async () => {
      await expectStatus(200, { server, method: "GET", path: "/health" });
    });
    // /ready answers a JSON status document for probes, not problem+json.
    await t.step("GET /ready answers 503 with Retry-After", async () => {
      const reply = await call(server, "GET", "/ready");
      assert.equal(reply.status, 503);
      assert.equal(reply.body.status, "unavailable");
      assert.ok(reply.headers.get("x-request-id"));
      assert.equal(reply.headers.get("retry-after"), "1");
    });
  } finally {
    await server.close();
  }
});
