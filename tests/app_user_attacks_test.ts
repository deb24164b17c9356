/**
 * From the side of someone who holds the app_user password (a SQL injection,
 * a compromised app host) and a key or two: what they can do with sessions
 * of their own next to the service's. A stale snapshot does not bring a
 * revoked key back, nor does a context carried into a later transaction, a
 * lock they hold does not stop a revocation (nor, named after another
 * session, get that one ended in its place), and terminating or cancelling
 * the service's sessions does not take the service down. On Citus too.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { spawnService } from "./cluster.ts";
import { sha256Hex } from "../src/http/auth.ts";
import { pgEnv } from "./pg_env.ts";
import { call, createTenant, onCitus, requireEnv, startServer, type TestServer } from "./support.ts";

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The code of the error a promise rejects with, or "none". */
async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return "none";
  } catch (error) {
    return String((error as { code?: unknown }).code);
  }
}

Deno.test("a request context is signed only under READ COMMITTED, so an old snapshot cannot bring a revoked key back", async () => {
  const server = await startServer();
  const app = postgres(requireEnv("APP_DATABASE_URL"), { max: 1, onnotice: () => {} });
  const holder = postgres(requireEnv("APP_DATABASE_URL"), { max: 1, onnotice: () => {} });
  const { promise: done, resolve: finish } = Promise.withResolvers<void>();
  let held: Promise<unknown> | undefined;
  try {
    const tenant = await createTenant(server, "stale-snapshot");
    const hash = sha256Hex(tenant.key);
    const begin = (tx: postgres.TransactionSql) =>
      tx`select tenant_id from api.begin_request(${hash}, null, ${crypto.randomUUID()})`;

    assert.equal(await codeOf(app.begin(begin)), "none", "READ COMMITTED signs the context (the control)");
    for (const level of ["repeatable read", "serializable"]) {
      assert.equal(
        await codeOf(app.begin(`isolation level ${level}`, begin)),
        "25000",
        `${level} is refused with invalid_transaction_state`,
      );
    }

    // A snapshot exported before the revocation and imported after it.
    const { promise: exported, resolve: gotSnapshot } = Promise.withResolvers<string>();
    held = holder.begin("isolation level repeatable read", async (tx) => {
      const [{ id }] = await tx`select pg_export_snapshot() as id`;
      gotSnapshot(String(id));
      await done;
    });
    const snapshot = await exported;
    assert.match(snapshot, /^[0-9A-F-]+$/);
    const revoked = await call(
      server,
      "DELETE",
      `/v1/admin/tenants/${tenant.tenantId}/api-keys/${tenant.keyId}`,
      {
        token: server.config.platformAdminToken,
      },
    );
    assert.equal(revoked.status, 204);
    const replayed = app.begin("isolation level repeatable read", async (tx) => {
      await tx.unsafe(`set transaction snapshot '${snapshot}'`);
      return await begin(tx);
    });
    // (On Citus the key is read on a worker, under a snapshot of its own:
    // the revoked key is refused as revoked before any context is signed.)
    assert.equal(
      await codeOf(replayed),
      await onCitus(server) ? "PT401" : "25000",
      "the revoked key does not authenticate under the old snapshot",
    );
  } finally {
    finish();
    await held?.catch(() => {});
    await Promise.all([app.end(), holder.end()]);
    await server.close();
  }
});

Deno.test("a context carried into a later transaction of the same message does not verify there under REPEATABLE READ", async () => {
  const server = await startServer();
  const attacker = postgres(requireEnv("APP_DATABASE_URL"), { max: 1, onnotice: () => {} });
  try {
    const tenant = await createTenant(server, "carried-context");
    const hash = sha256Hex(tenant.key);
    // Every transaction of one simple-query message starts at the same time,
    // and the MAC binds backend and start time: a context kept in a session
    // setting is still genuine in the next transaction of that message.
    const carryInto = async (level: string) => {
      const session = await attacker.reserve();
      try {
        await session.unsafe(`
          begin;
          select tenant_id from api.begin_request('${hash}', null, gen_random_uuid());
          select set_config('attack.context', current_setting('app.context'), false);
          commit;
          begin isolation level ${level}`).simple();
        await session`select set_config('app.context', current_setting('attack.context'), true)`;
        const [{ contexts }] = await session`select count(*)::int as contexts from core.request_context`;
        await session`rollback`;
        return contexts as number;
      } finally {
        session.release();
      }
    };
    // (On Citus a context is bound to its distributed transaction: carried
    // into another it verifies under no isolation level.)
    assert.equal(
      await carryInto("read committed"),
      await onCitus(server) ? 0 : 1,
      "under READ COMMITTED the carried context verifies on one server (the control: it is genuine, and every statement reads the key afresh)",
    );
    assert.equal(await carryInto("repeatable read"), 0, "under REPEATABLE READ it does not");
    assert.equal(await carryInto("serializable"), 0, "nor under SERIALIZABLE");
  } finally {
    await attacker.end();
    await server.close();
  }
});

Deno.test("session defaults set on the app_user role neither refuse every request nor change what the API returns", async () => {
  const attacker = postgres(requireEnv("APP_DATABASE_URL"), { max: 1, onnotice: () => {} });
  let server: TestServer | undefined;
  try {
    // Anyone holding the password may change the role's own defaults.
    await attacker.unsafe(`alter role app_user set default_transaction_isolation = 'serializable'`);
    await attacker.unsafe(`alter role app_user set datestyle = 'SQL, DMY'`);
    await attacker.unsafe(`alter role app_user set intervalstyle = 'sql_standard'`);
    server = await startServer();
    const tenant = await createTenant(server, "role-defaults");
    const read = await call(server, "GET", "/v1/tenant", { token: tenant.key });
    assert.equal(read.status, 200, JSON.stringify(read.body));
    const { created_at } = read.body as { created_at: string };
    assert.match(created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/, "timestamps keep their ISO form");
    const write = await call(server, "PATCH", "/v1/config", {
      token: tenant.key,
      body: { settings: { note: "x" } },
    });
    assert.equal(write.status, 200, JSON.stringify(write.body));
  } finally {
    await attacker.unsafe(`alter role app_user reset default_transaction_isolation`);
    await attacker.unsafe(`alter role app_user reset datestyle`);
    await attacker.unsafe(`alter role app_user reset intervalstyle`);
    await attacker.end();
    await server?.close();
  }
});

/**
 * A psql session of app_user that runs the script and then stays open, its
 * transaction with it, until it is stopped (see stop()).
 */
async function openSession(script: string): Promise<Deno.ChildProcess> {
  const session = new Deno.Command("psql", {
    args: ["-X", "-q", "-v", "ON_ERROR_STOP=1"],
    env: pgEnv(requireEnv("APP_DATABASE_URL")),
    stdin: "piped",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const writer = session.stdin.getWriter();
  await writer.write(new TextEncoder().encode(script));
  writer.releaseLock();
  return session;
}

/**
 * A psql session of app_user that changes a document (an audited write no
 * plan counts, so it holds the chain head and nothing else), hides its lock
 * as best it can, and never commits.
 */
async function holdChainHead(key: string, documentId: string): Promise<Deno.ChildProcess> {
  return await openSession(`
    set idle_in_transaction_session_timeout = 0;
    begin;
    select tenant_id from api.begin_request('${sha256Hex(key)}', null, gen_random_uuid());
    select document_id from api.update_document('${documentId}', p_title => 'Hostage');
    -- The head advanced at once inside a released savepoint: its lock is
    -- then shared with a subtransaction (a multixact).
    savepoint hidden;
    set constraints all immediate;
    release savepoint hidden;
  `);
}

async function idleHolders(server: TestServer, lastStatement = ""): Promise<number> {
  const [{ count }] = await server.owner`
    select count(*)::int as count from pg_stat_activity
    where usename = 'app_user' and state = 'idle in transaction' and application_name = 'psql'
      and strpos(query, ${lastStatement}) > 0`;
  return count;
}

/**
 * Waits (10 s at most) until exactly one holder is idle in its transaction
 * after its script's last statement. psql is idle in the transaction between
 * statements too, and an earlier test's holder, killed a moment ago, can
 * still show until its backend notices.
 */
async function heldAfter(server: TestServer, lastStatement: string): Promise<boolean> {
  const deadline = performance.now() + 10_000;
  while (performance.now() < deadline) {
    if (await idleHolders(server, lastStatement) === 1 && await idleHolders(server) === 1) return true;
    await sleep(50);
  }
  return false;
}

/**
 * On Citus, the sessions the workers keep for other nodes' transactions that
 * hold a row they changed (a transaction id) and sit idle in that
 * transaction: where an attacker's row locks are held there.
 */
async function idleWorkerHolders(server: TestServer, olderThan = "0 seconds"): Promise<number> {
  const rows = await server.owner.unsafe(`select result from run_command_on_workers($command$
    select count(*) from pg_stat_activity s
    where s.state = 'idle in transaction' and s.application_name ~ '^citus_internal gpid=[0-9]+$'
      and s.xact_start < now() - interval '${olderThan}'
      and exists (select from pg_locks l where l.pid = s.pid and l.locktype = 'transactionid' and l.granted)
  $command$)`);
  return rows.reduce((sum, row) => sum + Number(row.result), 0);
}

async function stop(holder: Deno.ChildProcess | undefined): Promise<void> {
  if (!holder) return;
  try {
    holder.kill("SIGKILL");
  } catch {
    // It has exited already, its session ended.
  }
  await holder.status;
}

Deno.test("a session holding its tenant's audit chain never keeps a key from being revoked, and is ended once older than any request", async () => {
  const server = await startServer();
  const holders: Deno.ChildProcess[] = [];
  try {
    const tenant = await createTenant(server, "chain-hostage");
    const issue = async (name: string) => {
      const issued = await call(server, "POST", "/v1/api-keys", {
        token: tenant.key,
        body: { name, permissions: ["documents:write"] },
      });
      assert.equal(issued.status, 201);
      return issued.body as { key: string; key_id: string };
    };
    const first = await issue("Hostage taker");
    // A first audited change inside a savepoint would hold the head under an
    // id no one can trace to the session: it is refused.
    const hidden = await new Deno.Command("psql", {
      args: ["-X", "-q", "-v", "ON_ERROR_STOP=1"],
      env: pgEnv(requireEnv("APP_DATABASE_URL")),
      stdin: "piped",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const input = hidden.stdin.getWriter();
    await input.write(new TextEncoder().encode(`
      begin;
      select tenant_id from api.begin_request('${sha256Hex(first.key)}', null, gen_random_uuid());
      savepoint hidden;
      select document_id from api.create_document('${tenant.userId}', 'Hidden', repeat('a', 64));
    `));
    await input.close();
    const { code, stderr } = await hidden.output();
    assert.notEqual(code, 0);
    assert.match(new TextDecoder().decode(stderr), /make no audited change inside a savepoint/);
    const second = await issue("Second hostage taker");
    const document = await call(server, "POST", "/v1/documents", {
      token: tenant.key,
      body: { user_id: tenant.userId, title: "Held", content_hash: "a".repeat(64) },
    });
    assert.equal(document.status, 201);
    const hostage = String(document.body.document_id);
    // Writes that only the chain head holds up: a user's new e-mail is
    // audited, and no plan counts it.
    const rename = (email: string) =>
      call(server, "PATCH", `/v1/users/${tenant.userId}`, { token: tenant.key, body: { email } });
    const holding = () => heldAfter(server, "release savepoint hidden");

    holders.push(await holdChainHead(first.key, hostage));
    assert.ok(await holding(), "the first holder's transaction is open, idle, after its write");
    const waited = await rename("while-held@chain-hostage.example");
    assert.equal(
      waited.status,
      503,
      "a write of the tenant waits for a young holder and gives up (the control)",
    );
    const revoked = await call(server, "DELETE", `/v1/api-keys/${first.key_id}`, { token: tenant.key });
    assert.equal(revoked.status, 204, "a revocation ends the holder, whatever its age, and goes through");
    assert.equal(await idleHolders(server), 0, "the holder's session was ended");
    assert.equal((await call(server, "GET", "/v1/documents", { token: first.key })).status, 401);

    holders.push(await holdChainHead(second.key, hostage));
    assert.ok(await holding(), "a second holder takes the head");
    await sleep(31_000);
    const written = await rename("after-the-hostage@chain-hostage.example");
    assert.equal(
      written.status,
      200,
      "past 30 s a write of the tenant ends the stale holder and goes through",
    );
    // (On Citus it is ended on the worker that holds the head, which cannot
    // end the coordinator's session: that session can only fail from then on.)
    if (await onCitus(server)) {
      assert.equal(await idleWorkerHolders(server, "30 seconds"), 0, "no stale holder is left on a worker");
    } else {
      assert.equal(await idleHolders(server), 0);
    }
  } finally {
    for (const holder of holders) await stop(holder);
    await server.close();
  }
});

Deno.test("a session holding a key's usage row cannot stop that key, or the key that issued it, being revoked", async () => {
  const server = await startServer({ DB_POOL_MAX: "2" });
  const hostage = postgres(requireEnv("APP_DATABASE_URL"), { max: 1, onnotice: () => {} });
  const { promise: unlock, resolve: release } = Promise.withResolvers<void>();
  let holder: Promise<unknown> | undefined;
  try {
    const tenant = await createTenant(server, "usage-lock");
    const issued = await call(server, "POST", "/v1/api-keys", {
      token: tenant.key,
      body: { name: "leaked", permissions: ["documents:read"] },
    });
    assert.equal(issued.status, 201);
    const child = String(issued.body.key);
    const citus = await onCitus(server);

    // What the attacker runs: record a use of each key, and keep the
    // transaction (and its row locks) open.
    const { promise: locked, resolve: lockTaken } = Promise.withResolvers<void>();
    holder = hostage.begin(async (tx) => {
      await tx`set local idle_in_transaction_session_timeout = 0`;
      await tx`select api.touch_api_key(${sha256Hex(tenant.key)})`;
      await tx`select api.touch_api_key(${sha256Hex(child)})`;
      // An update took a transaction id: its rows stay locked until the end
      // (on Citus on the worker that holds them).
      const [{ count }] = await tx`
        select count(*)::int from pg_locks where pid = pg_backend_pid() and locktype = 'transactionid'`;
      assert.equal(
        citus ? await idleWorkerHolders(server) : count,
        1,
        "the attacker's session holds the rows it updated",
      );
      lockTaken();
      await unlock;
    });
    await locked;

    // Uses of the keys go on; their touches skip the held rows.
    for (let i = 0; i < 4; i++) {
      assert.equal((await call(server, "GET", "/v1/documents", { token: child })).status, 200);
    }
    const [{ waiting }] = await server.owner`
      select count(*)::int as waiting from pg_stat_activity
      where usename = 'app_user' and wait_event_type = 'Lock'`;
    assert.equal(waiting, 0, "no session of the service waits on the attacker's locks");

    // Revoking the parent revokes the child too, at once, lock or no lock.
    const otherAdmin = await call(server, "POST", `/v1/admin/tenants/${tenant.tenantId}/api-keys`, {
      token: server.config.platformAdminToken,
      body: { name: "second admin", permissions: ["*"] },
    });
    assert.equal(otherAdmin.status, 201);
    const revoked = await call(server, "DELETE", `/v1/api-keys/${tenant.keyId}`, {
      token: String(otherAdmin.body.key),
    });
    assert.equal(revoked.status, 204, JSON.stringify(revoked.body));
    assert.equal((await call(server, "GET", "/v1/documents", { token: child })).status, 401);
    assert.equal((await call(server, "GET", "/v1/documents", { token: tenant.key })).status, 401);
  } finally {
    release();
    await holder?.catch(() => {});
    await hostage.end();
    await server.close();
  }
});

Deno.test("terminating and cancelling the service's database sessions in a tight loop never takes the service down", async () => {
  const setup = await startServer();
  let key: string;
  try {
    key = (await createTenant(setup, "terminator")).key;
  } finally {
    await setup.close();
  }
  const attacker = postgres(requireEnv("APP_DATABASE_URL"), { max: 1, onnotice: () => {} });
  const service = await spawnService({ DB_POOL_MAX: "4" });
  let exited = false;
  service.status.then(() => exited = true);
  const target = { url: service.url } as TestServer;
  try {
    const statuses = new Map<number, number>();
    let stop = false;
    const killer = (async () => {
      let kills = 0;
      while (!stop) {
        const rows = await attacker`
          select pg_terminate_backend(pid) from pg_stat_activity
          where usename = 'app_user' and application_name = 'tenancy-api'`;
        kills += rows.length;
        await sleep(2);
        // Cancelling hits the queries of connections just opened, among them
        // the driver's own type query.
        await attacker`
          select pg_cancel_backend(pid) from pg_stat_activity
          where usename = 'app_user' and application_name = 'tenancy-api' and state = 'active'`;
        await sleep(3);
      }
      return kills;
    })();
    const workers = Array.from({ length: 4 }, async () => {
      while (!stop && !exited) {
        try {
          const { status } = await call(target, "GET", "/v1/tenant", { token: key });
          statuses.set(status, (statuses.get(status) ?? 0) + 1);
        } catch {
          statuses.set(0, (statuses.get(0) ?? 0) + 1);
        }
      }
    });
    await sleep(6000);
    stop = true;
    const kills = await killer;
    await Promise.all(workers);

    assert.equal(exited, false, `the service exited; it wrote:\n${service.output()}`);
    assert.ok(kills > 20, `the loop terminated only ${kills} sessions`);
    const unexpected = [...statuses.keys()].filter((status) => status !== 200 && status !== 503);
    assert.deepEqual(unexpected, [], `answers during the attack: ${JSON.stringify([...statuses])}`);
    // Once the attack stops, requests succeed again.
    let recovered = false;
    for (let i = 0; i < 20 && !recovered; i++) {
      recovered = (await call(target, "GET", "/v1/tenant", { token: key })).status === 200;
      if (!recovered) await sleep(100);
    }
    assert.ok(recovered, "the service answered 200 again after the attack");
  } finally {
    await attacker.end();
    await service.stop();
  }
});

Deno.test("a session that calls the audit maintenance and never commits does not keep it from running", async () => {
  const server = await startServer();
  let holder: Deno.ChildProcess | undefined;
  try {
    holder = await openSession(`
      set idle_in_transaction_session_timeout = 0;
      begin;
      select count(*) from core.maintain_audit_partitions();
    `);
    assert.ok(
      await heldAfter(server, "maintain_audit_partitions"),
      "the holder is idle in its transaction, the trail locked",
    );
    // The next maintenance (the service's, or scripts/db maintain) ends it
    // instead of waiting out its lock_timeout and failing every hour.
    await server.owner`select count(*) from core.maintain_audit_partitions()`;
    assert.equal(await idleHolders(server), 0);
  } finally {
    await stop(holder);
    await server.close();
  }
});

Deno.test("a session holding its tenant's usage counts inside a savepoint still cannot stop a key's revocation", async () => {
  const server = await startServer();
  let holder: Deno.ChildProcess | undefined;
  try {
    const tenant = await createTenant(server, "usage-hostage");
    const doc = await call(server, "POST", "/v1/documents", {
      token: tenant.key,
      body: { user_id: tenant.userId, title: "Before", content_hash: "a".repeat(64) },
    });
    assert.equal(doc.status, 201);
    const victim = await call(server, "POST", "/v1/api-keys", {
      token: tenant.key,
      body: { name: "To be revoked", permissions: ["documents:read"] },
    });
    assert.equal(victim.status, 201);
    // The chain head locked at the top level first (so the audited insert
    // passes the chain's savepoint rule), then the counts inside a savepoint,
    // where pgrowlocks names no session for the lock.
    holder = await openSession(`
      set idle_in_transaction_session_timeout = 0;
      begin;
      select tenant_id from api.begin_request('${sha256Hex(tenant.key)}', null, gen_random_uuid());
      select document_id from api.update_document('${doc.body.document_id}', p_title => 'Held');
      savepoint hidden;
      select document_id from api.create_document('${tenant.userId}', 'Hidden', repeat('a', 64));
      release savepoint hidden;
    `);
    assert.ok(
      await heldAfter(server, "release savepoint hidden"),
      "the holder is idle in its transaction, the counts locked",
    );
    const revoked = await call(server, "DELETE", `/v1/api-keys/${victim.body.key_id}`, { token: tenant.key });
    assert.equal(revoked.status, 204, "the revocation ends the holder and goes through");
    assert.equal(await idleHolders(server), 0);
  } finally {
    await stop(holder);
    await server.close();
  }
});

Deno.test("a session holding its tenant's rate-limit window is ended by the next lease, however young", async () => {
  const setup = await startServer();
  let server: TestServer | undefined;
  let holder: Deno.ChildProcess | undefined;
  try {
    const tenant = await createTenant(setup, "window-hostage");
    // With the app_user password and the tenant's key: a lease left open.
    holder = await openSession(`
      set idle_in_transaction_session_timeout = 0;
      set statement_timeout = 0;
      begin;
      select tenant_id from api.begin_request('${
      sha256Hex(tenant.key)
    }', null, gen_random_uuid(), null, false);
      select granted from api.lease_requests();
    `);
    assert.ok(
      await heldAfter(setup, "lease_requests"),
      "the holder is idle in its transaction, the window locked",
    );

    // A process that holds no slice of the tenant's minute must lease one:
    // its lease waits 200 ms, ends the holder (seconds old, not 30) and is
    // served.
    server = await startServer();
    const { status } = await call(server, "GET", "/v1/tenant", { token: tenant.key });
    assert.equal(status, 200, "the first request is served");
    assert.equal(await idleHolders(setup), 0, "the holder was ended");
  } finally {
    await stop(holder);
    await server?.close();
    await setup.close();
  }
});

Deno.test("a holder that names its session after another's gets itself ended, not the other", async () => {
  const setup = await startServer();
  let server: TestServer | undefined;
  let victim: Deno.ChildProcess | undefined;
  let holder: Deno.ChildProcess | undefined;
  const pidOf = async (name: string): Promise<number | undefined> => {
    const rows = await setup.owner`select pid from pg_stat_activity where application_name = ${name}`;
    return rows[0]?.pid;
  };
  try {
    const tenant = await createTenant(setup, "window-impostor");
    // Another session of the service's role: the one the attacker would have ended.
    const victimName = `victim-${crypto.randomUUID()}`;
    victim = await openSession(`set application_name = '${victimName}';\nselect 1;\n`);
    let victimPid: number | undefined;
    for (let i = 0; i < 200 && !victimPid; i++) {
      victimPid = await pidOf(victimName);
      if (!victimPid) await sleep(50);
    }
    assert.ok(victimPid, "the other session is connected");
    // On Citus a session's global id is its node's id times 10^10 plus its
    // process id, and Citus names the sessions it opens on the workers after
    // the coordinator's session: the attacker names its own after the victim.
    const [{ nodeid }] = await onCitus(setup)
      ? await setup.owner`select n.nodeid from pg_dist_node n where n.groupid = 0`
      : [{ nodeid: 1 }];
    const impostor = `citus_internal gpid=${BigInt(nodeid) * 10_000_000_000n + BigInt(victimPid)}`;
    holder = await openSession(`
      set citus.allow_nested_distributed_execution = on;
      set application_name = '${impostor}';
      set idle_in_transaction_session_timeout = 0;
      set statement_timeout = 0;
      begin;
      select tenant_id from api.begin_request('${
      sha256Hex(tenant.key)
    }', null, gen_random_uuid(), null, false);
      select granted from api.lease_requests();
    `);
    let holderPid: number | undefined;
    for (let i = 0; i < 200; i++) {
      const rows = await setup.owner`
        select pid from pg_stat_activity
        where application_name = ${impostor} and state = 'idle in transaction' and strpos(query, 'lease_requests') > 0`;
      holderPid = rows[0]?.pid;
      if (holderPid) break;
      await sleep(50);
    }
    assert.ok(holderPid, "the impostor holds the tenant's window, idle in its transaction");

    server = await startServer();
    const { status } = await call(server, "GET", "/v1/tenant", { token: tenant.key });
    assert.equal(status, 200, "the tenant's request is served");
    const [{ alive }] = await setup
      .owner`select count(*)::int as alive from pg_stat_activity where pid = ${holderPid}`;
    assert.equal(alive, 0, "the impostor was ended");
    assert.equal(await pidOf(victimName), victimPid, "the session it named itself after was not");
  } finally {
    await stop(holder);
    await stop(victim);
    await server?.close();
    await setup.close();
  }
});
