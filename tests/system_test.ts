import assert from "node:assert/strict";
import postgres from "postgres";
import { EXPECTED_SCHEMA_VERSION } from "../src/schema_version.ts";
import { ConfigError, loadConfig } from "../src/config.ts";
import { spawnService } from "./cluster.ts";
import { call, onCitus, requireEnv, startServer, type TestServer } from "./support.ts";

Deno.test("GET /health answers 200 without touching the database", async () => {
  const server = await startServer({ APP_DATABASE_URL: "postgres://nobody:wrong@127.0.0.1:1/none" });
  try {
    const response = await call(server, "GET", "/health");
    assert.equal(response.status, 200);
    assert.deepEqual(response.body, { status: "ok" });
    assert.match(response.headers.get("x-request-id") ?? "", /^[0-9a-f-]{36}$/);
  } finally {
    await server.close();
  }
});

Deno.test("GET /ready answers 200 with the schema version when the database is migrated", async () => {
  const server = await startServer();
  try {
    const response = await call(server, "GET", "/ready");
    assert.equal(response.status, 200);
    assert.equal(response.body.schema_version, EXPECTED_SCHEMA_VERSION);
  } finally {
    await server.close();
  }
});

Deno.test("GET /ready answers 503 while the runtime role may create temporary objects in the database", async () => {
  const server = await startServer();
  const database = new URL(server.config.appDatabaseUrl).pathname.slice(1);
  try {
    await server.owner.unsafe(`grant temporary on database "${database}" to app_user`);
    const response = await call(server, "GET", "/ready");
    assert.equal(response.status, 503);
    assert.match(String(response.body.reason), /temporary objects/);
    await server.owner.unsafe(`revoke temporary on database "${database}" from app_user`);
    assert.equal((await call(server, "GET", "/ready")).status, 200);
  } finally {
    await server.owner.unsafe(`revoke temporary on database "${database}" from app_user`);
    await server.close();
  }
});

Deno.test("GET /ready answers 503 while the runtime role can bypass row-level security", async (t) => {
  const app = new URL(requireEnv("APP_DATABASE_URL"));
  const admin = new URL(requireEnv("ADMIN_DATABASE_URL"));
  const owner = new URL(requireEnv("DATABASE_URL"));
  async function assertNotReady(url: URL): Promise<void> {
    url.pathname = app.pathname;
    const server = await startServer({ APP_DATABASE_URL: url.href });
    try {
      const response = await call(server, "GET", "/ready");
      assert.equal(response.status, 503);
      assert.match(String(response.body.reason), /can bypass row-level security/);
    } finally {
      await server.close();
    }
  }
  await t.step("the superuser", () => assertNotReady(owner));
  await t.step("uber_admin (BYPASSRLS)", () => assertNotReady(admin));
  // Roles are the cluster's: each step's role is made and dropped here.
  const server = await startServer();
  const role = `ready_probe_${crypto.randomUUID().slice(0, 8)}`;
  const password = crypto.randomUUID();
  const probe = new URL(app.href);
  probe.username = role;
  probe.password = password;
  try {
    await server.owner.unsafe(`create role ${role} login password '${password}' in role app_user`);
    await t.step("app_user's privileges alone are ready", async () => {
      const probeServer = await startServer({ APP_DATABASE_URL: probe.href });
      try {
        assert.equal((await call(probeServer, "GET", "/ready")).status, 200);
      } finally {
        await probeServer.close();
      }
    });
    await server.owner.unsafe(`grant uber_admin to ${role}`);
    await t.step("a member of a BYPASSRLS role (SET ROLE away)", () => assertNotReady(new URL(probe.href)));
    await server.owner.unsafe(`revoke uber_admin from ${role}; grant tenancy_owner to ${role}`);
    await t.step("a member of the tables' owner", () => assertNotReady(new URL(probe.href)));
  } finally {
    await server.owner.unsafe(`drop role if exists ${role}`);
    await server.close();
  }
});

Deno.test("GET /ready answers 503 with Retry-After when the database is unreachable", async () => {
  const server = await startServer({ APP_DATABASE_URL: "postgres://nobody:wrong@127.0.0.1:1/none" });
  try {
    const response = await call(server, "GET", "/ready");
    assert.equal(response.status, 503);
    assert.equal(response.headers.get("retry-after"), "1");
    assert.equal(response.body.status, "unavailable");
  } finally {
    await server.close();
  }
});

Deno.test("EXPECTED_SCHEMA_VERSION names the newest migration in db/migrations", () => {
  const versions = [...Deno.readDirSync(new URL("../db/migrations", import.meta.url))]
    .map((entry) => entry.name.split("_")[0])
    .sort();
  assert.equal(EXPECTED_SCHEMA_VERSION, versions.at(-1));
});

Deno.test("a caller-supplied x-request-id is echoed when well formed and replaced when not", async () => {
  const server = await startServer();
  try {
    const kept = await call(server, "GET", "/health", { headers: { "x-request-id": "req-123.abc" } });
    assert.equal(kept.headers.get("x-request-id"), "req-123.abc");
    const replaced = await call(server, "GET", "/health", {
      headers: { "x-request-id": "bad id\u00e9<script>" },
    });
    assert.notEqual(replaced.headers.get("x-request-id"), "bad id\u00e9<script>");
    assert.match(replaced.headers.get("x-request-id") ?? "", /^[0-9a-f-]{36}$/);
  } finally {
    await server.close();
  }
});

Deno.test("configuration errors name each bad variable and never echo a secret", () => {
  const secretUrl = "mysql://user:s3cret-password@host/db";
  try {
    loadConfig({ APP_DATABASE_URL: secretUrl, PORT: "70000", DB_POOL_MIN: "5", DB_POOL_MAX: "2" });
    assert.fail("loadConfig accepted a bad environment");
  } catch (error) {
    assert.ok(error instanceof ConfigError);
    const message = (error as ConfigError).message;
    assert.match(message, /APP_DATABASE_URL: must be a postgres/);
    assert.match(message, /PORT:/);
    assert.doesNotMatch(message, /s3cret-password/);
  }
});

Deno.test("configuration defaults: pool of 10 with 2 opened at start-up", () => {
  const config = loadConfig({ APP_DATABASE_URL: "postgres://app@127.0.0.1/db" });
  assert.equal(config.poolMax, 10);
  assert.equal(config.poolMin, 2);
  assert.equal(config.port, 8000);
});

/** The trail's partition for the month (UTC) that many months from now. */
async function partitionAhead(server: TestServer, months: number): Promise<string> {
  const [{ name }] = await server.owner`
    select format('audit_logs_y%s', to_char(date_trunc('month', now() at time zone 'UTC')
                                            + make_interval(months => ${months}), 'YYYY"m"MM')) as name`;
  return name;
}

/** Takes a partition of the trail away, as if it had never been made. */
async function dropPartition(server: TestServer, name: string): Promise<void> {
  await server.owner.unsafe(`alter table core.audit_logs detach partition core.${name}`);
  await server.owner.unsafe(`drop table core.${name}`);
}

// Where a month's partition stands on each node: on one server its own
// row-level security and triggers; on Citus, on every worker, how many of its
// shards are attached to the trail's and their triggers, and how many shards
// the worker's metadata lists for it. (Statement triggers left out: the
// shards of the partitions made when the tables were distributed have none.)
async function partitionShape(server: TestServer, name: string): Promise<unknown> {
  if (!await onCitus(server)) {
    const [row] = await server.owner`
      select c.relrowsecurity, c.relforcerowsecurity, c.relowner::regrole::text as owner,
             (select string_agg(t.tgname || ':' || t.tgenabled::text, ',' order by t.tgname) from pg_trigger t
              where t.tgrelid = c.oid and not t.tgisinternal) as triggers
      from pg_class c where c.oid = ${"core." + name}::regclass`;
    return row;
  }
  return await server.owner.unsafe(
    `select nodeport, result from run_command_on_workers($command$
       select count(*) filter (where exists (select from pg_inherits i where i.inhrelid = c.oid)) || ' attached of '
              || count(*) || '; ' || string_agg(distinct coalesce(t.triggers, 'no triggers'), ' or ') || '; '
              || (select count(*) from pg_dist_shard s where s.logicalrelid = to_regclass('core.${name}')) || ' in metadata'
       from pg_class c
       cross join lateral (select string_agg(regexp_replace(g.tgname, '_[0-9]+$', '') || ':' || g.tgenabled::text, ','
                                             order by g.tgname) as triggers
                           from pg_trigger g where g.tgrelid = c.oid and not g.tgisinternal and g.tgtype & 1 = 1) t
       where c.relname ~ '^${name}_[0-9]+$' and c.relrowsecurity and c.relforcerowsecurity
     $command$) order by nodeport`,
  );
}

Deno.test("the trail's coming partition is made whole on every node, whatever Citus settings app_user chose", async () => {
  const server = await startServer();
  const app = postgres(requireEnv("APP_DATABASE_URL"), { max: 1, onnotice: () => {} });
  try {
    const furthest = await partitionAhead(server, 3);
    const before = await partitionAhead(server, 2);
    await dropPartition(server, furthest);
    // With the app_user password: every setting anyone may set that decides
    // whether Citus makes a table on the workers, turned against it.
    const { made, after } = await app.begin(async (tx) => {
      for (
        const setting of [
          "citus.enable_ddl_propagation = off",
          "citus.enable_metadata_sync = off",
          "citus.create_object_propagation = deferred",
          "citus.enable_unsafe_triggers = off",
        ]
      ) await tx.unsafe(`set local ${setting}`);
      const made = await tx`select action, partition_name from core.maintain_audit_partitions()`;
      const [{ after }] = await tx`select current_setting('citus.enable_unsafe_triggers') as after`;
      return { made, after };
    });
    assert.deepEqual(made.map((row) => [row.action, row.partition_name]), [["created", furthest]]);
    assert.equal(after, "off", "the maintenance leaves its caller's settings as they were");
    assert.deepEqual(await partitionShape(server, furthest), await partitionShape(server, before));
  } finally {
    await app.end();
    await server.close();
  }
});

Deno.test("the service makes the audit trail's missing partitions when it starts", async () => {
  const server = await startServer();
  let service;
  try {
    // The furthest month the maintenance keeps ready holds no row yet.
    const furthest = await partitionAhead(server, 3);
    await dropPartition(server, furthest);
    service = await spawnService({});
    const deadline = performance.now() + 20_000;
    let made = false;
    while (!made && performance.now() < deadline) {
      [{ made }] = await server.owner`select to_regclass(${"core." + furthest}) is not null as made`;
      if (!made) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.ok(made, `core.${furthest} was not made again; the service wrote:\n${service.output()}`);
    const [{ owner }] = await server.owner`select relowner::regrole::text as owner from pg_class
                                          where oid = ${"core." + furthest}::regclass`;
    assert.equal(owner, "tenancy_owner");
    await service.stop();
    assert.match(
      service.output(),
      new RegExp(`"message":"audit partition created","partition":"${furthest}"`),
    );
  } finally {
    await service?.stop();
    await server.close();
  }
});
