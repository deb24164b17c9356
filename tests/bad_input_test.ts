/**
 * Hostile and unusual input: malformed JSON, wrong content types, oversized
 * bodies, SQL metacharacters and odd Unicode (stored and returned exactly),
 * NUL characters, deep nesting, and a seeded random stream of malformed
 * requests that must only ever produce 4xx answers.
 */
import assert from "node:assert/strict";
import { allRoutes } from "../src/app.ts";
import {
  assertNoLeak,
  assertProblem,
  expectStatus,
  fieldErrors,
  issueKey,
  mulberry32,
  send,
  tenantSnapshot,
} from "./assertions.ts";
import { createTenant, SOME_HASH, startServer, type TestServer, type TestTenant } from "./support.ts";

function documentBody(tenant: TestTenant, fields: Record<string, unknown>): Record<string, unknown> {
  return { user_id: tenant.userId, title: "Untitled", content_hash: SOME_HASH, ...fields };
}

// A document body as raw JSON text, with one field given as written (escapes and all).
function documentJson(tenant: TestTenant, override: string): string {
  const base = { user_id: tenant.userId, title: "t", content_hash: SOME_HASH };
  const key = override.slice(1, override.indexOf('"', 1));
  const rest = Object.entries(base).filter(([name]) => name !== key).map(([n, v]) =>
    `"${n}":${JSON.stringify(v)}`
  );
  return `{${[...rest, override].join(",")}}`;
}

Deno.test("malformed JSON answers 400 on every route with a body", async (t) => {
  const server = await startServer();
  try {
    const tenant = await createTenant(server, "Malformed JSON");
    const bodies = [
      '{"email":',
      '{"email": "a@example.test",}',
      "{'email': 'a@example.test'}",
      '{"email": "a@example.test"}{"role": "member"}',
      "NaN",
      "\uFEFF{}",
      '{"email": "a@example.test" /* comment */}',
      '{"email": undefined}',
      "\u0000",
    ];
    const targets: [string, string, string | undefined][] = [
      ["POST", "/v1/users", tenant.key],
      ["PATCH", `/v1/users/${tenant.userId}`, tenant.key],
      ["POST", "/v1/documents", tenant.key],
      ["PATCH", "/v1/config", tenant.key],
      ["POST", "/v1/api-keys", tenant.key],
      ["POST", "/v1/admin/tenants", server.config.platformAdminToken],
    ];
    for (const [method, path, token] of targets) {
      await t.step(`${method} ${path}`, async () => {
        for (const rawBody of bodies) {
          const reply = await send(server, method, path, { token, rawBody });
          assert.equal(reply.status, 400, `${JSON.stringify(rawBody)}: ${reply.status}`);
        }
        const invalidUtf8 = await fetch(server.url + path, {
          method,
          headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
          body: new Uint8Array([0x7b, 0x22, 0xc3, 0x28, 0x22, 0x3a, 0x31, 0x7d]),
        });
        const text = await invalidUtf8.text();
        assert.equal(invalidUtf8.status, 400, text);
        assert.equal(invalidUtf8.headers.get("content-type"), "application/problem+json");
      });
    }
  } finally {
    await server.close();
  }
});

Deno.test("a body over the default 1 MiB limit answers 413 and one sent as text/plain answers 415", async () => {
  const server = await startServer();
  try {
    const tenant = await createTenant(server, "Big bodies");
    const huge = JSON.stringify(documentBody(tenant, { title: "x".repeat(1_100_000) }));
    assertProblem(await send(server, "POST", "/v1/documents", { token: tenant.key, rawBody: huge }), 413);
    const json = JSON.stringify(documentBody(tenant, {}));
    for (const contentType of ["text/plain", "text/json", "application/json-patch+json", "application/xml"]) {
      assertProblem(
        await send(server, "POST", "/v1/documents", { token: tenant.key, rawBody: json, contentType }),
        415,
      );
    }
    // JSON under another accepted name or with parameters is fine.
    for (
      const contentType of [
        "application/merge-patch+json",
        "application/json; charset=utf-8",
        "APPLICATION/JSON",
      ]
    ) {
      await expectStatus(201, {
        server,
        method: "POST",
        path: "/v1/documents",
        token: tenant.key,
        rawBody: json,
        contentType,
      });
    }
  } finally {
    await server.close();
  }
});

Deno.test("ids that are not UUIDs answer 400 and differently written UUIDs are looked up as UUIDs", async () => {
  const server = await startServer();
  try {
    const tenant = await createTenant(server, "Id shapes");
    const token = tenant.key;
    for (
      const id of ["0", "null", "undefined", "%20", "{" + tenant.userId + "}", tenant.userId + "%00", "*"]
    ) {
      const reply = await send(server, "GET", `/v1/users/${id}`, { token });
      assertProblem(reply, 400);
      assert.deepEqual(fieldErrors(reply), ["path:user_id"], id);
    }
    const upper = await expectStatus(200, {
      server,
      method: "GET",
      path: `/v1/users/${tenant.userId.toUpperCase()}`,
      token,
    });
    assert.equal(upper.body.user_id, tenant.userId);
    assertProblem(
      await send(server, "GET", "/v1/users/00000000-0000-0000-0000-000000000000", { token }),
      404,
    );
  } finally {
    await server.close();
  }
});

const SQL_TEXT = [
  "'; drop table core.users; --",
  "Robert'); DROP TABLE core.documents;--",
  '" OR 1=1 --',
  "$1 $$ $tag$ \\ \\\\ %_ E'\\x41'",
  "/* comment */ select pg_sleep(10);",
  "1; update core.tenants set deactivated_at = now()",
];

const ODD_UNICODE = [
  "\u{1F469}\u200D\u{1F469}\u200D\u{1F467}\u200D\u{1F466} family (zero-width joiners)",
  "\u200Fright-to-left mark and \u202Eoverride\u202C",
  "e\u0301 combining acute, not normalised to \u00e9",
  "zero\u200Bwidth\u200Cspaces\uFEFF",
  "\u{1D518}\u{1D52B}\u{1D526}\u{1D520}\u{1D52C}\u{1D521}\u{1D522} astral plane",
  "\u0645\u0631\u062D\u0628\u0627 \u4F60\u597D \u0417\u0434\u0440\u0430\u0432\u0441\u0442\u0432\u0443\u0439",
  "controls \u0001\u001F\u007F and a tab\tand newline\n",
  "\uFFFD replacement and \uFFFF non-character",
];

Deno.test("SQL metacharacters and odd Unicode in titles and metadata are stored and returned literally", async (t) => {
  const server = await startServer();
  try {
    const tenant = await createTenant(server, "Literal text");
    const [{ users: usersBefore }] = await server.owner`select count(*)::int as users from core.users`;
    for (const value of [...SQL_TEXT, ...ODD_UNICODE]) {
      await t.step(JSON.stringify(value), async () => {
        const metadata = { [value]: value, nested: { list: [value, { deeper: value }] }, plain: 1 };
        const created = await expectStatus(201, {
          server,
          method: "POST",
          path: "/v1/documents",
          token: tenant.key,
          body: documentBody(tenant, { title: value, metadata }),
        });
        assert.equal(created.body.title, value);
        assert.deepEqual(created.body.metadata, metadata);
        const id = String(created.body.document_id);
        const read = await expectStatus(200, {
          server,
          method: "GET",
          path: `/v1/documents/${id}`,
          token: tenant.key,
        });
        assert.equal(read.body.title, value);
        assert.deepEqual(read.body.metadata, metadata);
        const [row] = await server.owner`
          select title, metadata, title = ${value} as same from core.documents where document_id = ${id}`;
        assert.equal(row.same, true, "the database holds other text than was sent");
        assert.deepEqual(row.metadata, metadata);

        const patched = await expectStatus(200, {
          server,
          method: "PATCH",
          path: `/v1/documents/${id}`,
          token: tenant.key,
          body: { title: `${value}${value}` },
        });
        assert.equal(patched.body.title, `${value}${value}`);
      });
    }
    await t.step("text in other resources round-trips too", async () => {
      const name = `${SQL_TEXT[0]} ${ODD_UNICODE[0]}`;
      const tenantReply = await expectStatus(201, {
        server,
        method: "POST",
        path: "/v1/admin/tenants",
        token: server.config.platformAdminToken,
        body: { name },
      });
      assert.equal(tenantReply.body.name, name);
      const key = await expectStatus(201, {
        server,
        method: "POST",
        path: "/v1/api-keys",
        token: tenant.key,
        body: { name, permissions: ["users:read"] },
      });
      assert.equal(key.body.name, name);
      const config = await expectStatus(200, {
        server,
        method: "PATCH",
        path: "/v1/config",
        token: tenant.key,
        body: { settings: { [name]: name } },
      });
      assert.equal((config.body.settings as Record<string, unknown>)[name], name);
    });
    await t.step("combining characters are not normalised", async () => {
      const decomposed = "e\u0301";
      const reply = await expectStatus(201, {
        server,
        method: "POST",
        path: "/v1/documents",
        token: tenant.key,
        body: documentBody(tenant, { title: decomposed }),
      });
      assert.equal(reply.body.title, decomposed);
      assert.notEqual(reply.body.title, decomposed.normalize("NFC"));
    });
    const [{ users: usersAfter }] = await server.owner`select count(*)::int as users from core.users`;
    assert.equal(usersAfter, usersBefore, "core.users changed");
    const [{ tables }] = await server.owner`
      select count(*)::int as tables from information_schema.tables
      where table_schema = 'core' and table_name in ('users', 'documents', 'tenants')`;
    assert.equal(tables, 3);
  } finally {
    await server.close();
  }
});

Deno.test("SQL metacharacters in query strings and paths answer 400", async () => {
  const server = await startServer();
  try {
    const tenant = await createTenant(server, "SQL in queries");
    const token = tenant.key;
    const injection = encodeURIComponent("x' or '1'='1");
    for (
      const path of [
        `/v1/audit-logs?resource_type=${injection}`,
        `/v1/audit-logs?action=${injection}`,
        `/v1/documents?user_id=${injection}`,
        `/v1/documents?created_after=${injection}`,
        `/v1/users?limit=${encodeURIComponent("1; drop table core.users")}`,
        `/v1/users/${injection}`,
        `/v1/documents/${encodeURIComponent("1 or 1=1")}`,
      ]
    ) {
      assertProblem(await send(server, "GET", path, { token }), 400);
    }
  } finally {
    await server.close();
  }
});

Deno.test("a metadata key named __proto__ is stored and returned like any other key", async () => {
  const server = await startServer();
  try {
    const tenant = await createTenant(server, "Prototype keys");
    const rawBody = `{"user_id":"${tenant.userId}","title":"t","content_hash":"${SOME_HASH}",` +
      `"metadata":{"__proto__":{"polluted":true},"constructor":{"prototype":1}}}`;
    const created = await expectStatus(201, {
      server,
      method: "POST",
      path: "/v1/documents",
      token: tenant.key,
      rawBody,
    });
    const expected = JSON.parse('{"__proto__":{"polluted":true},"constructor":{"prototype":1}}');
    assert.deepEqual(created.body.metadata, expected);
    const [row] = await server.owner`select metadata::text from core.documents where document_id = ${
      String(created.body.document_id)
    }`;
    assert.match(row.metadata, /"__proto__": \{"polluted": true\}/);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  } finally {
    await server.close();
  }
});

Deno.test("NUL characters and unpaired surrogates answer 400 naming the field, never 500", async (t) => {
  const server = await startServer();
  try {
    const tenant = await createTenant(server, "NUL characters");
    const token = tenant.key;
    const admin = server.config.platformAdminToken;
    const cases: [string, string, string | undefined, string, string][] = [
      [
        "NUL in a title",
        "POST /v1/documents",
        token,
        documentJson(tenant, '"title":"a\\u0000b"'),
        "body:title",
      ],
      [
        "NUL in a metadata value",
        "POST /v1/documents",
        token,
        documentJson(tenant, '"metadata":{"k":"a\\u0000b"}'),
        "body:metadata",
      ],
      [
        "NUL in a metadata key",
        "POST /v1/documents",
        token,
        documentJson(tenant, '"metadata":{"a\\u0000":1}'),
        "body:metadata",
      ],
      [
        "NUL deep in metadata",
        "POST /v1/documents",
        token,
        documentJson(tenant, '"metadata":{"a":[{"b":["\\u0000"]}]}'),
        "body:metadata",
      ],
      [
        "an unpaired surrogate in a title",
        "POST /v1/documents",
        token,
        documentJson(tenant, '"title":"\\ud800"'),
        "body:title",
      ],
      [
        "an unpaired surrogate in metadata",
        "POST /v1/documents",
        token,
        documentJson(tenant, '"metadata":{"k":"\\udc00x"}'),
        "body:metadata",
      ],
      [
        "NUL in an email",
        `PATCH /v1/users/${tenant.userId}`,
        token,
        '{"email":"a\\u0000@example.test"}',
        "body:email",
      ],
      ["NUL in settings", "PATCH /v1/config", token, '{"settings":{"k":"\\u0000"}}', "body:settings"],
      [
        "NUL in a key name",
        "POST /v1/api-keys",
        token,
        '{"name":"\\u0000","permissions":["*"]}',
        "body:name",
      ],
      ["NUL in a tenant name", "POST /v1/admin/tenants", admin, '{"name":"a\\u0000"}', "body:name"],
      [
        "NUL in a template name",
        "POST /v1/admin/tenants",
        admin,
        '{"name":"a","template_name":"\\u0000"}',
        "body:template_name",
      ],
    ];
    for (const [label, route, credential, rawBody, field] of cases) {
      await t.step(label, async () => {
        const [method, path] = route.split(" ");
        const reply = await send(server, method, path, { token: credential, rawBody });
        assertProblem(reply, 400);
        assert.deepEqual(fieldErrors(reply), [field]);
      });
    }
    await t.step("NUL in query and path values", async () => {
      for (
        const path of [
          "/v1/audit-logs?resource_type=%00",
          "/v1/users?cursor=%00",
          "/v1/users/%00",
          "/v1/documents?user_id=%00",
        ]
      ) {
        assertProblem(await send(server, "GET", path, { token }), 400);
      }
    });
  } finally {
    await server.close();
  }
});

Deno.test("metadata nests up to 32 levels; deeper answers 400, however deep", async () => {
  const server = await startServer();
  try {
    const tenant = await createTenant(server, "Deep metadata");
    const nested = (depth: number) => `{"a":${"[".repeat(depth - 1)}${"]".repeat(depth - 1)}}`;
    const ok = await expectStatus(201, {
      server,
      method: "POST",
      path: "/v1/documents",
      token: tenant.key,
      rawBody: documentJson(tenant, `"metadata":${nested(32)}`),
    });
    assert.deepEqual(ok.body.metadata, JSON.parse(nested(32)));
    for (const depth of [33, 10_000, 200_000]) {
      for (
        const [method, path, rawBody] of [
          ["POST", "/v1/documents", documentJson(tenant, `"metadata":${nested(depth)}`)],
          ["PATCH", "/v1/config", `{"settings":${nested(depth)}}`],
        ]
      ) {
        const reply = await send(server, method, path, { token: tenant.key, rawBody });
        assertProblem(reply, 400);
        assert.deepEqual(
          fieldErrors(reply),
          [path === "/v1/config" ? "body:settings" : "body:metadata"],
          `${depth}`,
        );
      }
    }
    await expectStatus(200, { server, method: "GET", path: "/ready" });
  } finally {
    await server.close();
  }
});

// --- the seeded random stream ----------------------------------------------------

const FUZZ_SEED = 20261124;
const FUZZ_REQUESTS = 1500;
const FUZZ_CONCURRENCY = 8;

/** One generated request, replayable from the seed and its index. */
interface FuzzRequest {
  index: number;
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string | Uint8Array;
}

function fuzzer(seed: number, world: { tenant: TestTenant; readKey: string; admin: string }) {
  const random = mulberry32(seed);
  const int = (n: number) => Math.floor(random() * n);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)];
  const chance = (p: number) => random() < p;

  const printable = () => String.fromCharCode(0x20 + int(0x5f));
  const hex = (n: number) => Array.from({ length: n }, () => int(16).toString(16)).join("");
  const uuid = () => `${hex(8)}-${hex(4)}-4${hex(3)}-${pick(["8", "9", "a", "b"])}${hex(3)}-${hex(12)}`;
  const bytes = (n: number) => Uint8Array.from({ length: n }, () => int(256));
  const base64url = (data: Uint8Array) =>
    btoa(String.fromCharCode(...data)).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
  const oddChars = [
    "\u0000",
    "\ud800",
    "\udfff",
    "\u200d",
    "\u202e",
    "\ufeff",
    "e\u0301",
    "\u{1F600}",
    "'",
    '"',
    "\\",
    ";",
    "--",
    "%",
    "$$",
    "\n",
    "\t",
  ];
  // Lone surrogates cannot be percent-encoded; invalid UTF-8 is sent raw below.
  const encode = (text: string) => encodeURIComponent(text.toWellFormed());
  const randomText = (max: number) => {
    let text = "";
    for (let i = int(max); i > 0; i--) text += chance(0.2) ? pick(oddChars) : printable();
    return text;
  };
  const timestamps = [
    "2026-01-01T00:00:00Z",
    "0000-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999999Z",
    "2026-02-30T00:00:00Z",
    "yesterday",
    "2026-01-01",
    "2026-01-01T00:00:00+99:00",
    "",
  ];
  const segments = () =>
    pick([
      () => uuid(),
      () => uuid(),
      () => uuid(),
      () => uuid().toUpperCase(),
      () => "00000000-0000-0000-0000-000000000000",
      () => "not-a-uuid",
      () => encode(randomText(40)),
      () => "%00",
      () => "%ZZ",
      () => "%E0%A4%A",
      () => "%ED%A0%80",
      () => "%C0%AE%C0%AE",
      () => "a".repeat(2000),
      () => String(int(1_000_000)),
      () => encode("'; drop table core.users; --"),
      () => "",
    ])();
  const routes = allRoutes();
  const junkPaths = [
    "/",
    "/v1",
    "/v1/",
    "/v2/users",
    "/v1/users/",
    "/v1/users/:id/extra",
    "//v1//users",
    "/v1/admin",
    "/v1/admin/tenants/:id/api-keys/:id",
    "/v1/documents/:id/",
    "/.env",
  ];
  const methods = ["GET", "HEAD", "POST", "PATCH", "PUT", "DELETE", "OPTIONS", "FUZZ"];
  const publicPaths = new Set(allRoutes().filter((r) => r.access === "public").map((r) => r.path));
  const queryNames = [
    "limit",
    "cursor",
    "user_id",
    "action",
    "resource_type",
    "since",
    "until",
    "created_after",
    "created_before",
    "tenant_id",
  ];
  const queryValue = (name: string) =>
    pick([
      () => pick(["0", "101", "abc", "-1", "1.5", "1e400", "", "2"]),
      () => pick(timestamps),
      () => uuid(),
      () => randomText(30),
      () => btoa(JSON.stringify([pick(timestamps), pick([uuid(), "x", 1])])),
      () => base64url(bytes(int(60))),
      () => name === "action" ? pick(["insert", "truncate"]) : "A".repeat(600),
    ])();
  const credentials = [
    () => ({}),
    () => ({ authorization: `Bearer ${world.tenant.key}` }),
    () => ({ authorization: `Bearer ${world.tenant.key}` }),
    () => ({ authorization: `Bearer ${world.readKey}` }),
    () => ({ authorization: `Bearer ${world.readKey}` }),
    () => ({ authorization: `Bearer ${world.admin}` }),
    () => ({ authorization: `Bearer ${world.admin}` }),
    () => ({ authorization: `Bearer tnk_${base64url(bytes(32))}` }),
    () => ({ authorization: `Bearer tnk_${"x".repeat(int(200))}` }),
    () => ({ authorization: `Basic ${btoa("a:b")}` }),
    () => ({ authorization: pick(["Bearer", "bearer  x y", "Token abc", ""]) }),
  ];
  const contentTypes = [
    "application/json",
    "application/json; charset=utf-8",
    "application/merge-patch+json",
    "APPLICATION/JSON",
    "text/plain",
    "multipart/form-data; boundary=x",
    "application/x-www-form-urlencoded",
    "",
    "application/json; charset=latin1",
  ];
  const validBodies = [
    { email: "fuzz@example.test", role: "member" },
    { user_id: world.tenant.userId, title: "Fuzz", content_hash: SOME_HASH, metadata: { a: 1 } },
    { name: "fuzz", permissions: ["users:read"] },
    { settings: { theme: "dark" } },
    { name: "Fuzz tenant", template_name: "Fintech Template" },
    { title: "Renamed" },
    { subscription_tier: "pro" },
  ];
  // Every body is invalid for every route: garbled, not JSON, not an object,
  // or an object with a field no schema declares.
  const body = (): string | Uint8Array | undefined =>
    pick([
      () => undefined,
      () => bytes(int(300)),
      () => randomText(300),
      () => {
        const text = JSON.stringify(pick(validBodies));
        const at = int(text.length);
        const garbled = pick([
          () => text.slice(0, at),
          () => text.slice(0, at) + printable() + text.slice(at),
          () => text.slice(0, at) + text.slice(at + 1),
        ])();
        try {
          const parsed = JSON.parse(garbled);
          if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) {
            return JSON.stringify({ ...parsed, fz_unknown: true });
          }
          return garbled;
        } catch {
          return garbled;
        }
      },
      () =>
        JSON.stringify({
          ...pick(validBodies),
          [pick(["tenant_id", "fz_extra", "key_hash"])]: randomText(20),
        }),
      () => JSON.stringify(pick([[], null, 0, "text", true, [pick(validBodies)]])),
      () => `{"metadata":${"[".repeat(5000)}${"]".repeat(5000)},"fz":1}`,
      () => JSON.stringify({ ...pick(validBodies), title: randomText(600), fz: 1 }),
      () => `{"email":"${"a".repeat(int(3))}\\u0000","fz":1}`,
      () => JSON.stringify({ ...pick(validBodies), padding: "x".repeat(int(8000)) }),
      () => JSON.stringify({ ...pick(validBodies), padding: "x".repeat(int(8000)) }),
    ])();

  return function next(index: number): FuzzRequest {
    // Mostly a real route, often with its own method, so requests get past
    // routing into authentication, validation and the database.
    const route = chance(0.85) ? pick(routes) : null;
    let method = route && chance(0.75) ? route.method : pick(methods);
    let path = (route?.path ?? pick(junkPaths)).replace(/:[a-z_]+/g, () => segments());
    const resolved = new URL(path, "http://fuzz.invalid").pathname;
    if ((method === "GET" || method === "HEAD") && (publicPaths.has(resolved) || publicPaths.has(path))) {
      method = "POST";
    }
    const headers: Record<string, string> = { ...pick(credentials)() };
    if (chance(0.6)) headers["content-type"] = chance(0.6) ? "application/json" : pick(contentTypes);
    if (chance(0.3)) headers["x-request-id"] = Array.from({ length: int(150) }, printable).join("").trim();
    if (chance(0.2)) headers["idempotency-key"] = Array.from({ length: int(300) }, printable).join("").trim();
    if (chance(0.2)) headers.accept = pick(["*/*", "text/html", "application/xml", "application/json;q=0"]);
    if (chance(0.1)) headers["x-fuzz"] = Array.from({ length: int(500) }, printable).join("").trim();

    // A GET always carries a parameter no route declares, so even one that
    // gets through authentication and matches a route is refused; a DELETE
    // names an id nobody holds, or carries such a parameter too.
    const params: string[] = [];
    if (method === "GET" || method === "HEAD" || (method === "DELETE" && chance(0.5))) {
      params.push(`fz_${int(1000)}=1`);
    }
    const queried = method === "GET" || method === "HEAD" || chance(0.4);
    for (let i = method === "DELETE" || !queried ? 0 : int(4); i > 0; i--) {
      const name = chance(0.9) ? pick(queryNames) : encode(randomText(10));
      params.push(`${name}=${encode(queryValue(name))}`);
    }
    if (params.length) path += `?${params.join("&")}`;
    const request: FuzzRequest = { index, method, path, headers };
    if (method !== "GET" && method !== "HEAD" && chance(0.9)) request.body = body();
    return request;
  };
}

interface FuzzOutcome {
  request: FuzzRequest;
  status: number | string;
  detail: string;
}

async function sendFuzz(
  server: TestServer,
  request: FuzzRequest,
  seen: Map<number, number>,
): Promise<FuzzOutcome | null> {
  const describe = (status: number | string, detail: string) => ({ request, status, detail });
  let response: Response;
  try {
    response = await fetch(server.url + request.path, {
      method: request.method,
      headers: request.headers,
      body: request.body as BodyInit | undefined,
      signal: AbortSignal.timeout(10_000),
    });
  } catch (error) {
    return describe("no answer", String(error));
  }
  const text = await response.text();
  seen.set(response.status, (seen.get(response.status) ?? 0) + 1);
  if (response.status < 400 || response.status > 499) return describe(response.status, text.slice(0, 300));
  if (!response.headers.get("x-request-id")) return describe(response.status, "no x-request-id");
  if (request.method === "HEAD") return null;
  if (response.headers.get("content-type") !== "application/problem+json") {
    return describe(response.status, `content-type ${response.headers.get("content-type")}`);
  }
  try {
    const problem = JSON.parse(text);
    assert.equal(problem.status, response.status);
    assert.ok(problem.type && problem.title && problem.detail);
    assertNoLeak(`${problem.title} ${problem.detail}`);
  } catch (error) {
    return describe(
      response.status,
      `bad problem body: ${String(error).slice(0, 200)} ${text.slice(0, 200)}`,
    );
  }
  return null;
}

Deno.test(`${FUZZ_REQUESTS} seeded random malformed requests only get 4xx answers and change nothing`, async () => {
  // A small body limit lets the stream reach 413 without sending megabytes.
  const server = await startServer({ BODY_LIMIT_BYTES: "2048" });
  try {
    const tenant = await createTenant(server, "Fuzz target");
    const readKey =
      (await issueKey(server, tenant.tenantId, { permissions: ["users:read", "documents:read"] })).key;
    const next = fuzzer(FUZZ_SEED, { tenant, readKey, admin: server.config.platformAdminToken! });
    const snapshot = await tenantSnapshot(server, tenant.tenantId);
    const [before] = await server.owner`
      select (select count(*) from core.tenants)::int as tenants, (select count(*) from core.audit_logs)::int as audits`;

    const failures: FuzzOutcome[] = [];
    const seen = new Map<number, number>();
    const statuses = new Map<number | string, number>();
    for (let start = 0; start < FUZZ_REQUESTS; start += FUZZ_CONCURRENCY) {
      const batch = Array.from(
        { length: Math.min(FUZZ_CONCURRENCY, FUZZ_REQUESTS - start) },
        (_, i) => next(start + i),
      );
      const outcomes = await Promise.all(batch.map((request) => sendFuzz(server, request, seen)));
      for (const outcome of outcomes) if (outcome) failures.push(outcome);
    }
    for (const failure of failures) statuses.set(failure.status, (statuses.get(failure.status) ?? 0) + 1);
    assert.deepEqual(
      failures.slice(0, 10).map(({ request, status, detail }) => ({
        index: request.index,
        method: request.method,
        path: request.path.slice(0, 200),
        headers: request.headers,
        body: typeof request.body === "string" ? request.body.slice(0, 200) : request.body && "(bytes)",
        status,
        detail,
      })),
      [],
      `${failures.length} of ${FUZZ_REQUESTS} requests (seed ${FUZZ_SEED}) were not a clean 4xx: ${
        JSON.stringify(Object.fromEntries(statuses))
      }`,
    );

    console.log(JSON.stringify(Object.fromEntries([...seen].sort())));
    // The stream reaches every stage of the pipeline, not just the first check.
    for (const status of [400, 401, 403, 404, 405, 413, 415]) {
      assert.ok(
        (seen.get(status) ?? 0) > 0,
        `no request got ${status}: ${JSON.stringify(Object.fromEntries(seen))}`,
      );
    }

    await expectStatus(200, { server, method: "GET", path: "/ready" });
    await expectStatus(200, { server, method: "GET", path: "/v1/tenant", token: tenant.key });
    const [after] = await server.owner`
      select (select count(*) from core.tenants)::int as tenants, (select count(*) from core.audit_logs)::int as audits`;
    assert.deepEqual(after, before, "a malformed request changed the database");
    assert.deepEqual(await tenantSnapshot(server, tenant.tenantId), snapshot);
  } finally {
    await server.close();
  }
});

Deno.test("the random stream is reproducible from its seed and covers every method and many paths", () => {
  const tenant = { tenantId: "t", key: "k", keyId: "i", userId: "u" };
  const world = { tenant, readKey: "r", admin: "a" };
  const first = fuzzer(7, world);
  const second = fuzzer(7, world);
  const a = Array.from({ length: 200 }, (_, i) => first(i));
  const b = Array.from({ length: 200 }, (_, i) => second(i));
  assert.deepEqual(a, b);
  const other = fuzzer(8, world);
  assert.notDeepEqual(Array.from({ length: 200 }, (_, i) => other(i)), a);
  const methods = new Set(a.map((r) => r.method));
  for (const method of ["GET", "POST", "PATCH", "DELETE", "PUT", "HEAD", "OPTIONS"]) {
    assert.ok(methods.has(method), method);
  }
  assert.ok(new Set(a.map((r) => r.path.split("?")[0])).size > 50);
});

Deno.test("a tampered cursor sent with an unknown key or a key lacking the permission answers 400 and the server keeps serving", async () => {
  const server = await startServer();
  try {
    const tenant = await createTenant(server, "Cursor tamper");
    const auditOnly = await issueKey(server, tenant.tenantId, { permissions: ["audit:read"] });
    const callers = [`tnk_${"x".repeat(30)}`, auditOnly.key, tenant.key];
    for (const token of callers) {
      for (
        const path of ["/v1/users?cursor=x", "/v1/documents?cursor=%E2%98%83", "/v1/api-keys?cursor=W10"]
      ) {
        const reply = await send(server, "GET", path, { token });
        assertProblem(reply, 400);
        assert.deepEqual(fieldErrors(reply), ["query:cursor"]);
      }
    }
    const health = await send(server, "GET", "/health");
    assert.equal(health.status, 200);
  } finally {
    await server.close();
  }
});

Deno.test("numbers in metadata and settings are stored and returned exactly as sent, at any precision", async () => {
  const server = await startServer();
  try {
    const tenant = await createTenant(server, "Exact numbers");
    // What JSON.parse would change: beyond 2^53, more digits than a double
    // holds, beyond a double's range, a trailing zero. (A negative zero jsonb stores as
    // 0 itself: numeric has no signed zero.)
    const numbers = [
      "12345678901234567891",
      "0.1000000000000000055511151231257827",
      "9007199254740993",
      "1.0",
    ];
    const metadata = `{"exact":[${numbers.join(",")}],"huge":1e400,"plain":42}`;
    // The responses are read as text: JSON.parse here would change the numbers itself.
    const raw = async (path: string, init: RequestInit = {}) =>
      await (await fetch(server.url + path, {
        ...init,
        headers: { authorization: `Bearer ${tenant.key}`, "content-type": "application/json" },
      })).text();
    const createdText = await raw("/v1/documents", {
      method: "POST",
      body: `{"user_id":"${tenant.userId}","title":"t","content_hash":"${SOME_HASH}","metadata":${metadata}}`,
    });
    const documentId = /"document_id":"([0-9a-f-]{36})"/.exec(createdText)?.[1];
    assert.ok(documentId, `not created: ${createdText.slice(0, 300)}`);
    // jsonb writes 1e400 out in digits; every other number comes back as sent.
    const exact = `"exact":[${numbers.join(",")}]`;
    const huge = `"huge":1${"0".repeat(400)}`;
    const [stored] = await server.owner`
      select metadata::text as text from core.documents where document_id = ${documentId}`;
    for (const text of [createdText, await raw(`/v1/documents/${documentId}`), stored.text]) {
      const compact = text.replaceAll(" ", "");
      assert.ok(
        compact.includes(exact) && compact.includes(huge),
        `a number changed: ${compact.slice(compact.indexOf("metadata"), compact.indexOf("metadata") + 700)}`,
      );
    }
    const patched = await raw("/v1/config", {
      method: "PATCH",
      body: `{"settings":{"limit":9007199254740993}}`,
    });
    assert.match(patched, /"limit":9007199254740993[,}]/);
    assert.match(await raw("/v1/config"), /"limit":9007199254740993[,}]/);
  } finally {
    await server.close();
  }
});
