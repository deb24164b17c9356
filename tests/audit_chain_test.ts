/**
 * The audit chain over HTTP and offline, from an auditor's side: writers of
 * one tenant never fork or gap the chain, verification returns the head, the
 * export streams the whole chain in pages and resumes from a seq, and
 * scripts/verify-audit checks an export without the database, noticing a
 * changed, missing or reordered line and a head that differs from an anchor.
 */
import assert from "node:assert/strict";
import { assertProblem, expectStatus, send } from "./assertions.ts";
import { call, createTenant, startServer, type TestServer } from "./support.ts";

const LOCAL = new URL("../.local/", import.meta.url).pathname;

/** The export's lines, parsed, and its raw text. */
async function exportOf(server: TestServer, path: string, token: string) {
  const response = await fetch(`${server.url}${path}`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(response.status, 200, await response.clone().text());
  assert.equal(response.headers.get("content-type"), "application/x-ndjson");
  const text = await response.text();
  const lines = text.trimEnd().split("\n").map((line) => JSON.parse(line) as Record<string, unknown>);
  return { text, entries: lines.slice(0, -1), trailer: lines.at(-1)! };
}

/** Runs scripts/verify-audit on text written to a file; its exit code and output. */
async function verifyOffline(text: string, ...args: string[]) {
  const file = await Deno.makeTempFile({ dir: LOCAL, suffix: ".ndjson" });
  try {
    await Deno.writeTextFile(file, text);
    const { code, stdout, stderr } = await new Deno.Command("scripts/verify-audit", { args: [file, ...args] })
      .output();
    return { code, output: new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr) };
  } finally {
    await Deno.remove(file);
  }
}

function withLine(text: string, seq: number, change: (entry: Record<string, unknown>) => unknown): string {
  return text.split("\n").map((line) => {
    if (!line) return line;
    const entry = JSON.parse(line);
    return entry.seq === seq ? JSON.stringify(change(entry)) : line;
  }).filter((line) => line !== "null").join("\n");
}

Deno.test("concurrent writers of one tenant chain their rows without fork or gap, and the chain verifies", async () => {
  const server = await startServer();
  try {
    const a = await createTenant(server, "chain-concurrent-a");
    const b = await createTenant(server, "chain-concurrent-b");
    const writes = [
      ...Array.from({ length: 24 }, (_, i) => ({ tenant: a, i })),
      ...Array.from({ length: 8 }, (_, i) => ({ tenant: b, i })),
    ];
    const statuses = await Promise.all(writes.map(({ tenant, i }) =>
      call(server, "POST", "/v1/users", {
        token: tenant.key,
        body: { email: `writer${i}@${tenant.tenantId.slice(0, 8)}.example`, role: "viewer" },
      }).then((reply) => reply.status)
    ));
    assert.deepEqual([...new Set(statuses)], [201]);
    for (const tenant of [a, b]) {
      const rows = await server.owner`
        select seq, recorded_at from core.audit_logs where tenant_id = ${tenant.tenantId} order by seq`;
      assert.deepEqual(
        rows.map((row) => Number(row.seq)),
        rows.map((_, i) => i + 1),
        "seq is 1..n without gaps",
      );
      const recorded = rows.map((row) => String(row.recorded_at));
      assert.deepEqual(recorded, [...recorded].sort(), "rows were chained in the order they committed");
      const verified = await expectStatus(200, {
        server,
        method: "GET",
        path: "/v1/audit-logs/verify",
        token: tenant.key,
      });
      assert.equal(verified.body.verified, true, JSON.stringify(verified.body));
      assert.equal(verified.body.complete, true);
      assert.equal(verified.body.head_seq, rows.length);
      assert.match(String(verified.body.head_hash), /^[0-9a-f]{64}$/);
    }
  } finally {
    await server.close();
  }
});

Deno.test("the export streams the whole chain in pages, resumes from a seq, and verifies offline", async () => {
  const server = await startServer();
  try {
    const tenant = await createTenant(server, "chain-export");
    // 2,500 more audit rows, written as a DBA would: the export needs three pages.
    await server.owner`
      insert into core.users (tenant_id, email, role)
      select ${tenant.tenantId}, 'bulk' || n || '@chain-export.example', 'viewer' from generate_series(1, 2500) n`;
    const [{ count }] = await server.owner`
      select count(*)::int as count from core.audit_logs where tenant_id = ${tenant.tenantId}`;

    const { text, entries, trailer } = await exportOf(server, "/v1/audit-logs/export", tenant.key);
    assert.equal(entries.length, count);
    assert.deepEqual(entries.map((entry) => entry.seq), entries.map((_, i) => i + 1));
    assert.deepEqual(trailer, { end: "complete", next_from_seq: count + 1 });
    assert.ok(entries.every((entry) => entry.tenant_id === tenant.tenantId));

    const online = await expectStatus(200, {
      server,
      method: "GET",
      path: "/v1/audit-logs/verify",
      token: tenant.key,
    });
    const anchor = `${online.body.head_seq}:${online.body.head_hash}`;
    const offline = await verifyOffline(text);
    assert.equal(offline.code, 0, offline.output);
    assert.match(offline.output, new RegExp(`verified seq 1-${count}; head ${anchor}`));
    assert.equal(
      (await verifyOffline(text, "--anchor", anchor)).code,
      0,
      "the online head is the offline head",
    );

    const resumed = await exportOf(server, "/v1/audit-logs/export?from_seq=2001", tenant.key);
    assert.equal(resumed.entries[0].seq, 2001);
    assert.equal(resumed.entries.length, count - 2000);
    const fromMiddle = await verifyOffline(resumed.text);
    assert.equal(fromMiddle.code, 0, fromMiddle.output);
    assert.match(fromMiddle.output, new RegExp(`verified seq 2001-${count}; head ${anchor}`));

    // What the offline verifier notices.
    const changed = withLine(text, 5, (entry) => ({ ...entry, action: "delete" }));
    assert.match((await verifyOffline(changed)).output, /broken at seq 5: row changed/);
    const details = withLine(
      text,
      6,
      (entry) => ({ ...entry, details_text: String(entry.details_text) + " " }),
    );
    assert.match((await verifyOffline(details)).output, /broken at seq 6: row changed/);
    // Lines edited where the hash does not look: the details shown, a field's
    // type, a key given twice, a trailer that claims more.
    const shown = withLine(
      text,
      6,
      (entry) => ({ ...entry, details: { ...entry.details as object, forged: true } }),
    );
    assert.match((await verifyOffline(shown)).output, /broken at seq 6: row changed \(the details it shows/);
    const typed = withLine(text, 6, (entry) => ({ ...entry, action: [entry.action] }));
    assert.match(
      (await verifyOffline(typed)).output,
      /broken at seq 6: row changed \(line \d+ is not as exported: action/,
    );
    const twice = text.split("\n").map((line) =>
      line.includes('"seq":6,')
        ? line.replace('"resource_type":', '"resource_type":"documents","resource_type":')
        : line
    ).join("\n");
    assert.match((await verifyOffline(twice)).output, /broken at seq 6: row changed/);
    const spaced = text.split("\n").map((line) =>
      line.includes('"seq":6,')
        ? line.replace('"action":', '"action":"delete","action"' + " ".repeat(40) + ":")
        : line
    ).join("\n");
    assert.match((await verifyOffline(spaced)).output, /broken at seq 6: row changed/);
    const invented = withLine(text, 6, (entry) => ({
      ...entry,
      details_text: null,
      details_salt: null,
      details: { changed: ["email"], db_role: "app_user", note: "invented" },
    }));
    assert.match(
      (await verifyOffline(invented)).output,
      /broken at seq 6: row changed \(a redacted entry shows more/,
    );
    const claimed = text.split("\n").slice(0, 500).join("\n") + `\n${JSON.stringify(trailer)}\n`;
    assert.match((await verifyOffline(claimed)).output, /broken at seq 501: row missing/);
    const missing = withLine(text, 7, () => null);
    assert.match((await verifyOffline(missing)).output, /broken at seq 7: row missing/);
    const lines = text.split("\n");
    [lines[7], lines[8]] = [lines[8], lines[7]];
    const swapped = await verifyOffline(lines.join("\n"));
    assert.equal(swapped.code, 1);
    assert.match(swapped.output, /broken at seq 8: row missing/);
    const truncated = text.split("\n").slice(0, 100).join("\n");
    const cut = await verifyOffline(truncated);
    assert.equal(cut.code, 1);
    assert.match(
      cut.output,
      /incomplete: verified through seq 100, but it has no end line; resume with from_seq=101/,
    );
    const wrongAnchor = await verifyOffline(text, "--anchor", `10:${"0".repeat(64)}`);
    assert.match(wrongAnchor.output, /broken at seq 10: anchor mismatch/);
    const beyond = await verifyOffline(text, "--anchor", `${count + 5}:${"0".repeat(64)}`);
    assert.match(beyond.output, new RegExp(`broken at seq ${count + 5}: row missing`));
    assert.equal((await verifyOffline(text, "--anchor", "not-an-anchor")).code, 2);
  } finally {
    await server.close();
  }
});

Deno.test("entries with large details are exported whole, a few megabytes a page, none skipped", async () => {
  const server = await startServer();
  try {
    const tenant = await createTenant(server, "chain-large");
    // Nine entries of about 1 MB each, and one with a number no double holds, written as a DBA would:
    // in a transaction that reads the tenant's row first (on Citus a row's time is the distributed
    // transaction's, which begins at the first statement that reaches a worker; see the README).
    await server.owner.begin(async (tx) => {
      await tx`select from core.tenants where tenant_id = ${tenant.tenantId}`;
      await tx`
        insert into core.audit_logs (tenant_id, action, resource_type, resource_id, details)
        select ${tenant.tenantId}, 'note', 'tenants', ${tenant.tenantId}, jsonb_build_object('blob', repeat(n::text, 1000000))
        from generate_series(1, 9) n`;
      await tx`
        insert into core.audit_logs (tenant_id, action, resource_type, resource_id, details)
        values (${tenant.tenantId}, 'note', 'tenants', ${tenant.tenantId}, '{"amount": 12345678901234567890}')`;
    });
    const [{ count }] = await server.owner`
      select count(*)::int as count from core.audit_logs where tenant_id = ${tenant.tenantId}`;
    const { text, entries, trailer } = await exportOf(server, "/v1/audit-logs/export", tenant.key);
    assert.deepEqual(entries.map((entry) => entry.seq), Array.from({ length: count }, (_, i) => i + 1));
    assert.deepEqual(trailer, { end: "complete", next_from_seq: count + 1 });
    const offline = await verifyOffline(text);
    assert.equal(offline.code, 0, offline.output);
    // A number a double cannot hold, changed where only its double would look the same.
    assert.ok(text.includes('"amount":12345678901234567890'));
    const rounded = text.replace('"amount":12345678901234567890', '"amount":12345678901234567001');
    assert.match(
      (await verifyOffline(rounded)).output,
      /row changed \(the details it shows are not the details hashed/,
    );
  } finally {
    await server.close();
  }
});

Deno.test("a key that may read only the trail exports every row redacted, and the chain still verifies offline", async () => {
  const server = await startServer();
  try {
    const tenant = await createTenant(server, "chain-redacted");
    await expectStatus(201, {
      server,
      method: "POST",
      path: "/v1/users",
      token: tenant.key,
      body: { email: "secret-person@chain-redacted.example" },
    });
    const auditor = await expectStatus(201, {
      server,
      method: "POST",
      path: "/v1/api-keys",
      token: tenant.key,
      body: { name: "Auditor", permissions: ["audit:read"] },
    });
    const { text, entries } = await exportOf(server, "/v1/audit-logs/export", String(auditor.body.key));
    const users = entries.filter((entry) => entry.resource_type === "users");
    assert.ok(users.length > 0);
    for (const entry of users) {
      assert.equal(entry.details_text, null);
      assert.ok(!("new" in (entry.details as Record<string, unknown>)), "no values of users");
    }
    assert.ok(!text.includes("secret-person"), "the user's e-mail appears nowhere in the export");
    const offline = await verifyOffline(text);
    assert.equal(offline.code, 0, offline.output);
    assert.match(offline.output, /rows redacted/);
    // Verification needs the trail's permission, as reading it does.
    const reader = await expectStatus(201, {
      server,
      method: "POST",
      path: "/v1/api-keys",
      token: tenant.key,
      body: { name: "Reader", permissions: ["documents:read"] },
    });
    assertProblem(
      await send(server, "GET", "/v1/audit-logs/verify", { token: String(reader.body.key) }),
      403,
    );
    assertProblem(
      await send(server, "GET", "/v1/audit-logs/export", { token: String(reader.body.key) }),
      403,
    );
  } finally {
    await server.close();
  }
});

Deno.test("operators verify and export any tenant's chain; bad anchors and unknown tenants are refused", async () => {
  const server = await startServer();
  try {
    const token = server.config.platformAdminToken!;
    const tenant = await createTenant(server, "chain-platform");
    const verified = await expectStatus(200, {
      server,
      method: "GET",
      path: `/v1/admin/tenants/${tenant.tenantId}/audit-logs/verify`,
      token,
    });
    assert.equal(verified.body.verified, true);
    const { entries, trailer } = await exportOf(
      server,
      `/v1/admin/tenants/${tenant.tenantId}/audit-logs/export`,
      token,
    );
    assert.equal(entries.length, verified.body.head_seq);
    assert.ok(entries.every((entry) => entry.details_text !== null), "an operator's export is unredacted");
    assert.equal(trailer.end, "complete");
    const anchored = await expectStatus(200, {
      server,
      method: "GET",
      path: `/v1/admin/tenants/${tenant.tenantId}/audit-logs/verify?anchor=1:${"0".repeat(64)}`,
      token,
    });
    assert.deepEqual([anchored.body.verified, anchored.body.broken_at_seq, anchored.body.reason], [
      false,
      1,
      "anchor mismatch",
    ]);
    assertProblem(
      await send(server, "GET", `/v1/admin/tenants/${crypto.randomUUID()}/audit-logs/verify`, { token }),
      404,
    );
    assertProblem(
      await send(server, "GET", `/v1/admin/tenants/${crypto.randomUUID()}/audit-logs/export`, { token }),
      404,
    );
    for (const query of ["anchor=1:abc", "from_seq=0", "from_seq=1e3", "anchor=1:" + "G".repeat(64)]) {
      assertProblem(await send(server, "GET", `/v1/audit-logs/verify?${query}`, { token: tenant.key }), 400);
    }
    assertProblem(
      await send(server, "GET", `/v1/audit-logs/verify?from_seq=5&anchor=2:${"0".repeat(64)}`, {
        token: tenant.key,
      }),
      422,
    );
    assertProblem(
      await send(server, "GET", `/v1/audit-logs/verify?from_seq=${Number(verified.body.head_seq) + 2}`, {
        token: tenant.key,
      }),
      422,
    );
    for (const query of ["from_seq=9999999999999999", "anchor=99999999999999999:" + "0".repeat(64)]) {
      assertProblem(await send(server, "GET", `/v1/audit-logs/verify?${query}`, { token: tenant.key }), 400);
    }
  } finally {
    await server.close();
  }
});
