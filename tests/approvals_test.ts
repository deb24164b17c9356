/**
 * Two-person approval over HTTP, from the side of a fintech tenant whose
 * settings say require_two_person_approval: a held-back change answers 202
 * with a pending request and changes nothing; the asker cannot approve it;
 * another user's key approves it and the change is made once; a second
 * approval is a 409; a rejection and an expiry change nothing; a request
 * whose user is gone is a 404; the trail shows the request and the decision.
 */
import assert from "node:assert/strict";
import { assertProblem, expectStatus, issueKey, send } from "./assertions.ts";
import { createTenant, startServer, type TestServer, type TestTenant } from "./support.ts";

/** A tenant that requires two people, and two users with a `*` key each. */
async function twoPeople(server: TestServer, name: string) {
  const tenant = await createTenant(server, name, { twoPersonApproval: true });
  const second = await expectStatus(201, {
    server,
    method: "POST",
    path: "/v1/users",
    token: tenant.key,
    body: { email: `second@${crypto.randomUUID().slice(0, 8)}.example`, role: "tenant_admin" },
  });
  const alice = await issueKey(server, tenant.tenantId, { userId: tenant.userId });
  const bob = await issueKey(server, tenant.tenantId, { userId: String(second.body.user_id) });
  return { tenant, alice: alice.key, bob: bob.key, bobUserId: String(second.body.user_id) };
}

async function currency(server: TestServer, tenant: TestTenant): Promise<unknown> {
  const config = await expectStatus(200, { server, method: "GET", path: "/v1/config", token: tenant.key });
  return (config.body.settings as Record<string, unknown>).currency;
}

Deno.test("a configuration change waits for another user's approval, is made once, and both steps are in the trail", async () => {
  const server = await startServer();
  try {
    const { tenant, alice, bob } = await twoPeople(server, "two-people-config");
    const asked = await expectStatus(202, {
      server,
      method: "PATCH",
      path: "/v1/config",
      token: alice,
      body: { settings: { currency: "USD" } },
    });
    assert.equal(asked.body.operation, "update_tenant_config");
    assert.equal(asked.body.status, "pending");
    assert.deepEqual(asked.body.payload, { settings: { currency: "USD" } });
    assert.equal(await currency(server, tenant), "EUR", "nothing changed yet");
    const shown = await expectStatus(200, {
      server,
      method: "GET",
      path: `/v1/approvals/${asked.body.approval_id}`,
      token: bob,
    });
    assert.equal(shown.body.status, "pending");
    const listed = await expectStatus(200, { server, method: "GET", path: "/v1/approvals", token: bob });
    assert.deepEqual(listed.body.items!.map((approval) => approval.approval_id), [asked.body.approval_id]);
    const other = await createTenant(server, "two-people-config-other");
    assertProblem(
      await send(server, "GET", `/v1/approvals/${asked.body.approval_id}`, { token: other.key }),
      404,
    );
    const otherList = await expectStatus(200, {
      server,
      method: "GET",
      path: "/v1/approvals",
      token: other.key,
    });
    assert.deepEqual(otherList.body.items, [], "another tenant lists none of them");

    const approve = `/v1/approvals/${asked.body.approval_id}/approve`;
    const own = await send(server, "POST", approve, { token: alice });
    assertProblem(own, 403);
    const unbound = await send(server, "POST", approve, { token: tenant.key });
    assertProblem(unbound, 403);

    const approved = await expectStatus(200, { server, method: "POST", path: approve, token: bob });
    assert.equal(approved.body.status, "approved");
    assert.equal((approved.body.result as { settings: { currency: string } }).settings.currency, "USD");
    assert.equal(await currency(server, tenant), "USD");
    assertProblem(await send(server, "POST", approve, { token: bob }), 409);

    const trail = await expectStatus(200, {
      server,
      method: "GET",
      path: "/v1/audit-logs?resource_type=approval_requests",
      token: tenant.key,
    });
    const actions = trail.body.items!.filter((entry) => entry.resource_id === asked.body.approval_id)
      .map((entry) => entry.action).sort();
    assert.ok(actions.includes("insert") && actions.includes("update"), JSON.stringify(actions));
  } finally {
    await server.close();
  }
});

Deno.test("a key that may issue keys is shown to its requester only, and works once approved; rejected and expired requests change nothing", async () => {
  const server = await startServer();
  try {
    const { tenant, alice, bob, bobUserId } = await twoPeople(server, "two-people-keys");
    const keyRequest = {
      server,
      method: "POST",
      path: "/v1/api-keys",
      token: alice,
      body: { name: "Issuer", permissions: ["keys:write", "documents:read"] },
      headers: { "idempotency-key": "ask-for-an-issuer" },
    };
    const asked = await expectStatus(202, keyRequest);
    // A retry cannot show the secret again; it names the request instead.
    const retried = await expectStatus(409, keyRequest);
    assert.match(String(retried.body.detail), new RegExp(`approval request ${asked.body.approval_id}`));
    // The secret goes to the requester, now; it works once approved.
    const requested = String(asked.body.key);
    assert.match(requested, /^tnk_/);
    assert.equal(asked.headers.get("cache-control"), "no-store");
    assertProblem(await send(server, "GET", "/v1/documents", { token: requested }), 401);
    const approved = await expectStatus(200, {
      server,
      method: "POST",
      path: `/v1/approvals/${asked.body.approval_id}/approve`,
      token: bob,
    });
    assert.equal(approved.body.key, undefined, "the approver never sees the secret");
    assert.equal((approved.body.result as Record<string, unknown>).key, undefined);
    assert.equal((approved.body.result as Record<string, unknown>).user_id, tenant.userId);
    await expectStatus(200, { server, method: "GET", path: "/v1/documents", token: requested });

    // A narrow key needs nobody: 201 at once.
    await expectStatus(201, {
      server,
      method: "POST",
      path: "/v1/api-keys",
      token: alice,
      body: { name: "Reader", permissions: ["documents:read"] },
    });

    const deletion = await expectStatus(202, {
      server,
      method: "DELETE",
      path: `/v1/users/${bobUserId}`,
      token: alice,
    });
    const rejected = await expectStatus(200, {
      server,
      method: "POST",
      path: `/v1/approvals/${deletion.body.approval_id}/reject`,
      token: bob,
    });
    assert.equal(rejected.body.status, "rejected");
    assert.equal(rejected.body.result, null);
    await expectStatus(200, { server, method: "GET", path: `/v1/users/${bobUserId}`, token: alice });

    const role = await expectStatus(202, {
      server,
      method: "PATCH",
      path: `/v1/users/${bobUserId}`,
      token: alice,
      body: { role: "viewer" },
    });
    await server.owner`update core.approval_requests set expires_at = now() - interval '1 second'
                       where approval_id = ${String(role.body.approval_id)}`;
    const listed = await expectStatus(200, {
      server,
      method: "GET",
      path: `/v1/approvals/${role.body.approval_id}`,
      token: bob,
    });
    assert.equal(listed.body.status, "expired");
    const all = await expectStatus(200, { server, method: "GET", path: "/v1/approvals", token: bob });
    assert.deepEqual(
      all.body.items!.map((approval) => [approval.approval_id, approval.status]),
      [[role.body.approval_id, "expired"], [deletion.body.approval_id, "rejected"], [
        asked.body.approval_id,
        "approved",
      ]],
      "the list shows every request, newest first",
    );
    assertProblem(
      await send(server, "POST", `/v1/approvals/${role.body.approval_id}/approve`, { token: bob }),
      409,
    );
    const user = await expectStatus(200, {
      server,
      method: "GET",
      path: `/v1/users/${bobUserId}`,
      token: alice,
    });
    assert.equal(user.body.role, "tenant_admin");
  } finally {
    await server.close();
  }
});

Deno.test("a user's new role and a user's deletion are made once approved, and two deciders at once decide a request once", async () => {
  const server = await startServer();
  try {
    const { tenant, alice, bob } = await twoPeople(server, "two-people-users");
    const [carol, dave] = await Promise.all(["carol", "dave"].map((name) =>
      expectStatus(201, {
        server,
        method: "POST",
        path: "/v1/users",
        token: tenant.key,
        body: { email: `${name}@${crypto.randomUUID().slice(0, 8)}.example`, role: "tenant_admin" },
      })
    ));
    const carolUserId = String(carol.body.user_id);
    const daveKey = (await issueKey(server, tenant.tenantId, { userId: String(dave.body.user_id) })).key;

    const role = await expectStatus(202, {
      server,
      method: "PATCH",
      path: `/v1/users/${carolUserId}`,
      token: alice,
      body: { role: "viewer" },
    });
    assert.equal(role.body.operation, "update_user_role");
    const approvedRole = await expectStatus(200, {
      server,
      method: "POST",
      path: `/v1/approvals/${role.body.approval_id}/approve`,
      token: bob,
    });
    assert.equal((approvedRole.body.result as Record<string, unknown>).role, "viewer");
    const changed = await expectStatus(200, {
      server,
      method: "GET",
      path: `/v1/users/${carolUserId}`,
      token: alice,
    });
    assert.equal(changed.body.role, "viewer");

    const deletion = await expectStatus(202, {
      server,
      method: "DELETE",
      path: `/v1/users/${carolUserId}`,
      token: alice,
    });
    assert.equal(deletion.body.operation, "delete_user");
    await expectStatus(200, { server, method: "GET", path: `/v1/users/${carolUserId}`, token: alice });
    const approve = `/v1/approvals/${deletion.body.approval_id}/approve`;
    const decisions = await Promise.all(
      [bob, daveKey].map((token) => send(server, "POST", approve, { token })),
    );
    assert.deepEqual(
      decisions.map((reply) => reply.status).sort(),
      [200, 409],
      "one decider wins, the other is told",
    );
    const winner = decisions.find((reply) => reply.status === 200)!;
    assert.equal(winner.body.status, "approved");
    assert.equal((winner.body.result as Record<string, unknown>).user_id, carolUserId);
    assertProblem(await send(server, "GET", `/v1/users/${carolUserId}`, { token: alice }), 404);

    const trail = await expectStatus(200, {
      server,
      method: "GET",
      path: "/v1/audit-logs?resource_type=users",
      token: tenant.key,
    });
    const actions = trail.body.items!.filter((entry) => entry.resource_id === carolUserId)
      .map((entry) => entry.action).sort();
    assert.deepEqual(actions, ["delete", "insert", "update"], "the role change and the deletion, each once");
  } finally {
    await server.close();
  }
});

Deno.test("a deletion whose user is removed while it waits answers 404, and stays pending", async () => {
  const server = await startServer();
  try {
    const { tenant, alice, bob } = await twoPeople(server, "two-people-gone");
    const erin = await expectStatus(201, {
      server,
      method: "POST",
      path: "/v1/users",
      token: tenant.key,
      body: { email: `erin@${crypto.randomUUID().slice(0, 8)}.example` },
    });
    const erinUserId = String(erin.body.user_id);
    const deletion = await expectStatus(202, {
      server,
      method: "DELETE",
      path: `/v1/users/${erinUserId}`,
      token: alice,
    });
    // Removed by hand meanwhile, as a DBA would (the owner's session holds no request context).
    await server
      .owner`delete from core.users where tenant_id = ${tenant.tenantId} and user_id = ${erinUserId}`;
    assertProblem(
      await send(server, "POST", `/v1/approvals/${deletion.body.approval_id}/approve`, { token: bob }),
      404,
    );
    const shown = await expectStatus(200, {
      server,
      method: "GET",
      path: `/v1/approvals/${deletion.body.approval_id}`,
      token: bob,
    });
    assert.equal(shown.body.status, "pending", "refused, the request is not decided");
  } finally {
    await server.close();
  }
});
