/**
 * Mutations that `./scripts/test --mutations` makes, one at a time, to prove
 * that the suites notice when a protection is removed. Each names the suites
 * that must kill it; a mutation they do not kill fails the run. A protection
 * added later comes with its mutation here.
 */

/**
 * One change that removes or weakens a protection: SQL run as the superuser
 * on a fresh copy of the migrated test database; or `find` (exactly once)
 * replaced by `replace` in the definition of a function or view
 * (`definitionOf`, after `sql` if both are given) or in a file of a copy of
 * the source tree (`file`).
 */
export interface Mutation {
  /** What the mutation does, as a reviewer would say it. */
  name: string;
  /** pgTAP files (pgtap/...) and Deno test files (tests/...) that must fail with it. */
  suites: string[];
  sql?: string;
  definitionOf?: string;
  file?: string;
  find?: string;
  replace?: string;
}

const context = "(select c.tenant_id from core.request_context c)";

/** Every mutation the run applies. */
export const MUTATIONS: Mutation[] = [
  {
    name: "documents: the UPDATE and DELETE policies let every row through when there is no context",
    sql: `alter policy update_own_tenant on core.documents
            using (tenant_id = ${context} or ${context} is null);
          alter policy delete_own_tenant on core.documents
            using (tenant_id = ${context} or ${context} is null);`,
    suites: ["pgtap/25_missing_context.sql"],
  },
  {
    name: "users: the UPDATE and DELETE policies let every row through when there is no context",
    sql: `alter policy update_own_tenant on core.users using (tenant_id = ${context} or ${context} is null);
          alter policy delete_own_tenant on core.users using (tenant_id = ${context} or ${context} is null);`,
    suites: ["pgtap/25_missing_context.sql"],
  },
  {
    name: "users: a SELECT policy USING (true)",
    sql: "alter policy select_own_tenant on core.users using (true);",
    suites: ["pgtap/10_rls_invariants.sql", "pgtap/20_cross_tenant.sql", "pgtap/25_missing_context.sql"],
  },
  {
    name: "documents: the SELECT policy also trusts a hand-set app.tenant_id",
    sql: `alter policy select_own_tenant on core.documents
            using (tenant_id = coalesce(${context}, nullif(current_setting('app.tenant_id', true), '')::uuid));`,
    suites: ["pgtap/26_forged_context.sql"],
  },
  {
    name: "tenant_api_keys: the INSERT policy checks only that a tenant is named",
    sql: "alter policy insert_own_tenant on core.tenant_api_keys with check (tenant_id is not null);",
    suites: ["pgtap/20_cross_tenant.sql"],
  },
  {
    name: "documents: row-level security is no longer forced on the owner",
    sql: "alter table core.documents no force row level security;",
    suites: ["pgtap/10_rls_invariants.sql"],
  },
  {
    name: "api.documents runs with its owner's rights (security_invoker off)",
    sql: "alter view api.documents set (security_invoker = false);",
    suites: ["pgtap/10_rls_invariants.sql"],
  },
  {
    name: "core.record_audit no longer pins its search_path",
    sql: "alter function core.record_audit() reset search_path;",
    suites: ["pgtap/10_rls_invariants.sql", "pgtap/15_definer_hijack.sql"],
  },
  {
    name: "app_user may create temporary objects again",
    sql:
      "do $$ begin execute format('grant temporary on database %I to app_user', current_database()); end $$;",
    suites: ["pgtap/10_rls_invariants.sql"],
  },
  {
    name: "/ready reports ready while the runtime role bypasses row-level security",
    file: "src/routes/system.ts",
    find: "if (result.context[0]?.bypasses_rls) {",
    replace: "if (false) {",
    suites: ["tests/system_test.ts"],
  },
  {
    name: "the append-only guard of the audit trail fires on origin only (replica mode skips it)",
    sql: "alter table core.audit_logs enable trigger reject_update_delete;",
    suites: ["pgtap/10_rls_invariants.sql"],
  },
  {
    name: "a key hash is unique only within its tenant",
    sql: `alter table core.api_key_hashes drop constraint api_key_hashes_pkey;
          alter table core.api_key_hashes add constraint api_key_hashes_tenant_key_hash_key unique (tenant_id, key_hash);`,
    suites: ["pgtap/10_rls_invariants.sql"],
  },
  {
    name:
      "the audit trigger takes the resource type from tg_table_name, which on a Citus shard names the shard",
    definitionOf: "core.record_audit()",
    find: "    tg_argv[1],\n",
    replace: "    tg_table_name,\n",
    suites: ["pgtap/10_rls_invariants.sql"],
  },
  {
    name: "a record_audit trigger names another table as its resource type",
    sql: `drop trigger record_audit on core.documents;
          create trigger record_audit after insert or update or delete on core.documents
            for each row execute function core.record_audit('document_id', 'users');
          alter table core.documents enable always trigger record_audit;`,
    suites: ["pgtap/30_audit.sql"],
  },
  {
    name: "a deleted user's keys stay bound to the user",
    definitionOf: "core.revoke_keys_of_deleted_user()",
    find:
      "update core.tenant_api_keys k set user_id = null where k.tenant_id = old.tenant_id and k.user_id = old.user_id;",
    replace: "",
    suites: ["tests/api_keys_test.ts"],
  },
  {
    name: "an audit row's time defaults to the statement's clock instead of its transaction's",
    sql: `alter table core.audit_logs alter column "timestamp" set default statement_timestamp();`,
    suites: ["pgtap/33_audit_partitions.sql", "pgtap/30_audit.sql"],
  },
  {
    name: "an operator may give the Platform tenant a domain, squatting it out of every listing",
    definitionOf: "core.set_tenant_domain(uuid,text)",
    find: "  if p_tenant_id = '00000000-0000-0000-0000-000000000000' and p_domain is not null then",
    replace: "  if false then",
    suites: ["pgtap/35_platform_operators.sql"],
  },
  {
    name: "uber_admin may claim domains in the registry itself",
    sql: "grant insert, delete on core.tenant_domains to uber_admin;",
    suites: ["pgtap/35_platform_operators.sql"],
  },
  {
    name: "core.require_active_operator lets the platform role change tenants without an operator's context",
    definitionOf: "core.require_active_operator()",
    find: "  if session_user = 'uber_admin' and not exists (",
    replace: "  if false and not exists (",
    suites: ["pgtap/35_platform_operators.sql"],
  },
  {
    name: "api.create_api_key leaves the workers whatever context the caller put there",
    definitionOf: "api.create_api_key(text,text[],uuid,timestamp with time zone)",
    find: "  perform core.carry_context_to_workers();\n",
    replace: "",
    suites: ["pgtap/15_definer_hijack.sql"],
  },
  {
    name: "platform.update_plan lets an operator revoked earlier in the transaction change plans",
    definitionOf: "platform.update_plan(uuid,integer,integer,integer,integer,integer)",
    find: "  perform core.require_active_operator();\n",
    replace: "",
    suites: ["pgtap/35_platform_operators.sql"],
  },
  {
    name: "a function named get_current_transaction_id that is not Citus's binds the contexts",
    definitionOf: "core.on_citus()",
    find: "and d.deptype = 'e' and e.extname = 'citus'",
    replace: "and d.deptype = 'e' and e.extname = 'citus' or true",
    suites: ["pgtap/00_schema.sql"],
  },
  {
    name: "a tenant's domain needs no claim in the registry",
    sql: "drop trigger check_domain_claim on core.tenants;",
    suites: ["pgtap/00_schema.sql"],
  },
  {
    name: "a claim that names a key authenticates it whatever the key's own hash",
    definitionOf: "api.begin_request(text,text,uuid,text,boolean)",
    find: "    and k.key_hash = p_key_hash\n",
    replace: "",
    suites: ["pgtap/40_api_keys.sql"],
  },
  {
    name: "core.set_tenant_domain leaves the old domain claimed",
    definitionOf: "core.set_tenant_domain(uuid,text)",
    find: "delete from core.tenant_domains d where d.domain = v_old and d.tenant_id = p_tenant_id;",
    replace: "null;",
    suites: ["tests/http_routes_test.ts"],
  },
  {
    name: "core.request_context accepts a context whatever its MAC",
    definitionOf: "core.request_context",
    find: "WHEN (NOT core.context_verifies(c.signed)) THEN false",
    replace: "WHEN false THEN false",
    suites: ["pgtap/26_forged_context.sql"],
  },
  {
    name: "a signed context verifies however long after its transaction began",
    definitionOf: "core.request_context",
    find: "(clock_timestamp() < (transaction_timestamp() + '00:00:30'::interval))",
    replace: "true",
    suites: ["pgtap/27_context_lifetime.sql"],
  },
  {
    name:
      "an earlier context of the transaction, put back, verifies again (any of the session's last numbers)",
    definitionOf: "core.context_verifies(text)",
    find: "'hex') = right(p_signed, 64);",
    replace:
      "'hex') = right(p_signed, 64) or exists (select from generate_series(greatest(v_nonce - 5, 1), v_nonce) n " +
      "where encode(core.context_mac(left(p_signed, -65) || '|' || n, " +
      "(select k.secret from core.context_signing_key k)), 'hex') = right(p_signed, 64));",
    suites: ["pgtap/28_context_swaps.sql"],
  },
  {
    name: "a context verifies in the very statement that signed it",
    definitionOf: "core.request_context",
    find: "< ((EXTRACT(epoch FROM statement_timestamp()) * (1000000)::numeric))::bigint)",
    replace: "> 0)",
    suites: ["pgtap/28_context_swaps.sql"],
  },
  {
    name: "the audit trigger records an app_user change made without its tenant's context",
    definitionOf: "core.record_audit()",
    find: "if session_user = 'app_user' and v_context.tenant_id is distinct from",
    replace: "if false and v_context.tenant_id is distinct from",
    suites: ["pgtap/28_context_swaps.sql"],
  },
  {
    name: "the role guard lets an app_user change to users through when there is no context",
    definitionOf: "core.guard_user_roles()",
    find: "    if session_user = 'app_user' then",
    replace: "    if false then",
    suites: ["pgtap/28_context_swaps.sql"],
  },
  {
    name: "a context may be signed under REPEATABLE READ (an old snapshot sees a revoked key)",
    definitionOf: "core.sign_context(uuid,uuid,uuid,text,text[],uuid,text,uuid)",
    find: "if current_setting('transaction_isolation') <> 'read committed' then",
    replace: "if false then",
    suites: ["tests/app_user_attacks_test.ts"],
  },
  {
    name: "a context carried into a REPEATABLE READ transaction verifies there",
    definitionOf: "core.request_context",
    find: "(current_setting('transaction_isolation'::text) = 'read committed'::text)",
    replace: "true",
    suites: ["tests/app_user_attacks_test.ts"],
  },
  {
    name: "app_user reads api.audit_logs itself, a row at a time",
    sql: "grant select on api.audit_logs to app_user;",
    suites: ["pgtap/10_rls_invariants.sql", "pgtap/20_cross_tenant.sql", "pgtap/28_context_swaps.sql"],
  },
  {
    name: "app_user selects core.tenants, whose created_at index reads every tenant's rows",
    sql: "grant select (tenant_id, created_at) on core.tenants to app_user;",
    suites: ["pgtap/10_rls_invariants.sql", "pgtap/20_cross_tenant.sql"],
  },
  {
    name: "app_user reads the global count of contexts",
    sql: "grant select on sequence core.context_nonce to app_user;",
    suites: ["pgtap/10_rls_invariants.sql"],
  },
  {
    name: "the service begins transactions at the role's default isolation",
    file: "src/db.ts",
    find: `const beginStatement = "begin isolation level read committed read write";`,
    replace: `const beginStatement = "begin";`,
    suites: ["tests/app_user_attacks_test.ts"],
  },
  {
    name: "a query the server cancels while a connection opens ends the process",
    file: "src/db.ts",
    find: "    if (!fromServer && !isTransientDatabaseError(event.reason)) return;",
    replace: "    if (!isTransientDatabaseError(event.reason)) return;",
    suites: ["tests/app_user_attacks_test.ts"],
  },
  {
    name: "recording a key's use waits for a row lock another session holds",
    definitionOf: "api.touch_api_key(text)",
    find: "for update skip locked",
    replace: "for update",
    suites: ["tests/app_user_attacks_test.ts"],
  },
  {
    name: "tenant_id is analyzed again (EXPLAIN estimates find tenant ids)",
    sql: "alter table core.users alter column tenant_id set statistics -1;",
    suites: ["pgtap/10_rls_invariants.sql"],
  },
  {
    name: "the lower(email) index expression is analyzed again (EXPLAIN tells whether an address exists)",
    sql: "alter index core.users_tenant_email_key alter column 2 set statistics -1;",
    suites: ["pgtap/10_rls_invariants.sql"],
  },
  {
    name: "uber_admin may insert key rows itself again (a hash and provenance of its choosing)",
    sql: `grant insert (tenant_id, key_hash, key_prefix, name, permissions, issued_by_key_id)
            on core.tenant_api_keys to uber_admin;`,
    suites: ["pgtap/28_context_swaps.sql"],
  },
  {
    name: "a GET's transaction stays read-write after its context is signed",
    definitionOf: "api.begin_request(text,text,uuid,text,boolean)",
    find: "perform set_config('transaction_read_only', 'on', true);",
    replace: "null;",
    suites: ["pgtap/28_context_swaps.sql"],
  },
  {
    name: "a connection lost while it opens ends the process",
    file: "src/db.ts",
    find: "    event.preventDefault();\n",
    replace: "",
    suites: ["tests/app_user_attacks_test.ts"],
  },
  {
    name: "uber_admin changes tenants without a named operator",
    definitionOf: "core.record_audit()",
    find: "if session_user = 'uber_admin' and not exists (",
    replace: "if false and not exists (",
    suites: ["pgtap/35_platform_operators.sql"],
  },
  {
    name: "a revoked operator credential still authenticates",
    definitionOf: "platform.begin_request(text,uuid,text,boolean)",
    find: "where o.token_hash = p_token_hash and o.revoked_at is null;",
    replace: "where o.token_hash = p_token_hash;",
    suites: ["pgtap/35_platform_operators.sql", "tests/operators_test.ts"],
  },
  {
    name: "the bootstrap token creates operators while others are active",
    definitionOf: "platform.bootstrap_operator(text)",
    find: "if exists (select from core.platform_operators o where o.revoked_at is null) then",
    replace: "if false then",
    suites: ["pgtap/35_platform_operators.sql"],
  },
  {
    name: "the last active operator may be revoked (the platform locks itself out)",
    definitionOf: "platform.revoke_operator(uuid)",
    find:
      "if exists (select 1 from core.platform_operators o where o.operator_id = p_operator_id and o.revoked_at is null)",
    replace:
      "if false and exists (select 1 from core.platform_operators o where o.operator_id = p_operator_id)",
    suites: ["pgtap/35_platform_operators.sql"],
  },
  {
    name: "uber_admin may read operators' credential hashes",
    sql: "grant select (token_hash) on core.platform_operators to uber_admin;",
    suites: ["pgtap/35_platform_operators.sql"],
  },
  {
    name: "the Platform tenant may be reactivated (keys could then work in its trail)",
    sql: "alter table core.tenants drop constraint tenants_platform_stays_deactivated;",
    suites: ["pgtap/00_schema.sql"],
  },
  {
    name: "a new operator's credential is stored for Idempotency-Key replays",
    file: "src/routes/admin.ts",
    find: `oneTimeSecret: "token",`,
    replace: "",
    suites: ["tests/operators_test.ts"],
  },
  {
    name: "api.begin_request accepts an expired key",
    definitionOf: "api.begin_request(text,text,uuid,text,boolean)",
    find: "and (k.expires_at is null or k.expires_at > now())",
    replace: "",
    suites: ["pgtap/40_api_keys.sql", "tests/api_keys_test.ts"],
  },
  {
    name: "api.create_api_key lets a key grant permissions it lacks",
    definitionOf: "core.check_key_issue(uuid,uuid,text[],uuid,timestamp with time zone)",
    find:
      "if not core.effective_permissions(coalesce(p_permissions, '{}'), null) <@ v_issuer.permissions then",
    replace: "if false then",
    suites: ["pgtap/40_api_keys.sql", "tests/api_keys_test.ts"],
  },
  {
    name: "api.create_api_key also returns the new key's hash",
    sql:
      `alter function api.create_api_key(text, text[], uuid, timestamptz) rename to create_api_key_unmutated;
          create function api.create_api_key(p_name text, p_permissions text[], p_user_id uuid default null,
            p_expires_at timestamptz default null)
          returns table (key text, key_id uuid, tenant_id uuid, key_prefix text, name text, permissions text[],
            user_id uuid, expires_at timestamptz, revoked_at timestamptz, last_used_at timestamptz,
            created_at timestamptz, updated_at timestamptz, issued_by_key_id uuid, key_hash text)
          language sql volatile security definer set search_path = pg_catalog, pg_temp
          as $$ select i.*, k.key_hash
                from api.create_api_key_unmutated(p_name, p_permissions, p_user_id, p_expires_at) i
                join core.tenant_api_keys k on k.tenant_id = i.tenant_id and k.key_id = i.key_id $$;
          alter function api.create_api_key(text, text[], uuid, timestamptz) owner to tenancy_auth;
          grant execute on function api.create_api_key(text, text[], uuid, timestamptz) to app_user;`,
    suites: ["tests/api_keys_test.ts"],
  },
  {
    name: "the audit trigger files an entry under the context's tenant rather than the row's",
    definitionOf: "core.record_audit()",
    find: "(v_row ->> 'tenant_id')::uuid,",
    replace: "coalesce((select c.tenant_id from core.request_context c), (v_row ->> 'tenant_id')::uuid),",
    suites: ["pgtap/30_audit.sql"],
  },
  {
    name: "GET /v1/audit-logs?user_id= reads the user's entries across tenants",
    sql: `create function core.audit_rows_of_user(p_user_id uuid) returns setof api.audit_logs
          language sql stable security definer set search_path = pg_catalog, pg_temp
          as $$ select log_id, tenant_id, user_id, api_key_id, action, resource_type, resource_id, details,
                       request_id, "timestamp", client_request_id, operator_id
                from core.audit_logs where user_id = p_user_id $$;
          grant select on core.audit_logs to tenancy_auditor;
          alter function core.audit_rows_of_user(uuid) owner to tenancy_auditor;
          grant execute on function core.audit_rows_of_user(uuid) to app_user;`,
    definitionOf:
      "api.list_audit_logs(integer,timestamp with time zone,uuid,uuid,text,text,timestamp with time zone," +
      "timestamp with time zone)",
    // The tenant filter Citus routes by goes too: it repeats the policy.
    find: "select * from api.audit_logs a\n      where a.tenant_id = v_tenant_id and a.user_id = p_user_id",
    replace: "select * from core.audit_rows_of_user(p_user_id) a\n      where a.user_id = p_user_id",
    suites: ["tests/audit_test.ts", "tests/cross_tenant_test.ts"],
  },
  {
    name: "platform.revoke_api_key ignores the tenant in the path",
    definitionOf: "platform.revoke_api_key(uuid,uuid)",
    find: "where k.tenant_id = p_tenant_id and k.key_id = p_key_id",
    replace: "where k.key_id = p_key_id",
    suites: ["tests/http_routes_test.ts"],
  },
  {
    name: "templates: the length limit on descriptions is dropped",
    sql: "alter table core.templates drop constraint templates_description_check;",
    suites: ["pgtap/00_schema.sql"],
  },
  {
    name: "API keys carry 64 random bits instead of 256",
    definitionOf: "core.issue_api_key(uuid,text,text[],uuid,timestamp with time zone,uuid)",
    find: "extensions.gen_random_bytes(32)",
    replace: "(extensions.gen_random_bytes(8) || decode(repeat('00', 24), 'hex'))",
    suites: ["pgtap/40_api_keys.sql"],
  },
  {
    name: "a key bound to a viewer keeps the write permissions it holds",
    definitionOf: "core.effective_permissions(text[],text)",
    find: "and (p_role is null or v_permission = any (core.role_permissions(p_role)))",
    replace: "",
    suites: ["pgtap/45_in_tenant_authorization.sql"],
  },
  {
    name: "a member's key changes anyone's documents",
    sql: `alter policy update_own_tenant on core.documents
            using (tenant_id = (select c.tenant_id from core.request_context c where 'documents:write' = any (c.permissions)))
            with check (tenant_id = (select c.tenant_id from core.request_context c
                                     where 'documents:write' = any (c.permissions)));`,
    suites: ["pgtap/45_in_tenant_authorization.sql"],
  },
  {
    name: "a user-bound key inserts documents authored by anyone",
    sql: `alter policy insert_own_tenant on core.documents
            with check (tenant_id = (select c.tenant_id from core.request_context c
                                     where 'documents:write' = any (c.permissions)));`,
    suites: ["pgtap/45_in_tenant_authorization.sql"],
  },
  {
    name: "any key with users:write changes roles",
    definitionOf: "core.guard_user_roles()",
    find: "    if not (v_context.user_role is not distinct from 'tenant_admin'",
    replace: "    if false and not (v_context.user_role is not distinct from 'tenant_admin'",
    suites: ["pgtap/45_in_tenant_authorization.sql"],
  },
  {
    name: "a key revokes keys holding more than it does",
    definitionOf: "api.revoke_api_key(uuid)",
    find: "if not core.effective_permissions(v_target.permissions, null) <@ v_caller.permissions then",
    replace: "if false then",
    suites: ["pgtap/45_in_tenant_authorization.sql"],
  },
  {
    name: "revoking a key leaves the keys it issued working",
    definitionOf: "core.revoke_keys(uuid,uuid[])",
    find: "on k.issued_by_key_id = d.key_id",
    replace: "on false",
    suites: ["pgtap/45_in_tenant_authorization.sql"],
  },
  {
    name: "deleting a user deletes their keys",
    sql: "grant delete on core.tenant_api_keys to tenancy_auth;",
    definitionOf: "core.revoke_keys_of_deleted_user()",
    find: "update core.tenant_api_keys k set user_id = null where",
    replace: "delete from core.tenant_api_keys k where",
    suites: ["pgtap/45_in_tenant_authorization.sql", "tests/api_keys_test.ts"],
  },
  {
    name: "audit entries show old and new values to any audit:read key",
    definitionOf: "api.audit_logs",
    find: "ELSE ((a.details - 'old'::text) - 'new'::text)",
    replace: "ELSE a.details",
    suites: ["pgtap/45_in_tenant_authorization.sql"],
  },
  {
    name: "JSON bodies are parsed into doubles (numbers silently changed)",
    file: "src/http/request.ts",
    find: "return parseJson(text);",
    replace: "return JSON.parse(text);",
    suites: ["tests/bad_input_test.ts"],
  },
  {
    name: "a revoked operator keeps acting within a request begun before the revocation",
    definitionOf: "core.current_operator_id()",
    find: "where exists (select from core.platform_operators o",
    replace: "where true or exists (select from core.platform_operators o",
    suites: ["pgtap/35_platform_operators.sql"],
  },
  {
    name: "a revoked key revokes keys within a request begun before the revocation",
    definitionOf: "api.revoke_api_key(uuid)",
    find: "  if not exists (select from core.tenant_api_keys k",
    replace: "  if false and not exists (select from core.tenant_api_keys k",
    suites: ["pgtap/28_context_swaps.sql"],
  },
  {
    name: "an uber_admin update that changes nothing audited skips the operator check",
    definitionOf: "core.record_audit()",
    find: "  -- No verified context (a migration, a DBA): the actor columns stay NULL.",
    replace: "  if tg_op = 'UPDATE' and cardinality(v_changed) = 0 then return null; end if;",
    suites: ["pgtap/35_platform_operators.sql"],
  },
  {
    name: "uber_admin writes the platform's Idempotency-Keys directly",
    sql: "grant select, delete on core.platform_idempotency_keys to uber_admin;",
    suites: ["pgtap/35_platform_operators.sql"],
  },
  {
    name: "operator revocations wait on an advisory lock anyone may hold",
    definitionOf: "platform.revoke_operator(uuid)",
    find: "perform from core.platform_operators o where o.revoked_at is null for update;",
    replace: "perform pg_advisory_xact_lock(hashtextextended('tenancy.bootstrap_operator', 0));",
    suites: ["pgtap/10_rls_invariants.sql", "tests/operators_test.ts"],
  },
  {
    name: "audit rows are no longer chained",
    sql: "alter table core.audit_logs disable trigger chain_audit_row;",
    suites: ["pgtap/10_rls_invariants.sql", "pgtap/32_audit_chain.sql"],
  },
  {
    name: "two writers of one tenant chain without waiting for each other",
    definitionOf: "core.chain_audit_row()",
    find: "where h.tenant_id = new.tenant_id\n    for update skip locked;",
    replace: "where h.tenant_id = new.tenant_id;",
    suites: ["tests/audit_chain_test.ts"],
  },
  {
    name: "the chain's head never moves",
    definitionOf: "core.advance_chain_head()",
    find: "  if not exists (select from core.audit_logs a",
    replace: "  if false and not exists (select from core.audit_logs a",
    suites: ["pgtap/32_audit_chain.sql", "tests/audit_chain_test.ts"],
  },
  {
    name: "the canonical record leaves out the operator",
    definitionOf: "core.audit_record(core.audit_logs)",
    find: "p_row.operator_id::text, ",
    replace: "",
    suites: ["pgtap/32_audit_chain.sql"],
  },
  {
    name: "verification does not rehash the details",
    definitionOf: "core.verify_audit_chain(uuid,bigint,integer,bigint,bytea)",
    find: "if v_row.details_sha256 is distinct from " +
      "sha256(v_row.details_salt || convert_to(v_row.details::text, 'UTF8'))\n       or ",
    replace: "if ",
    suites: ["pgtap/32_audit_chain.sql"],
  },
  {
    name: "verification does not compare the end of the chain with its head",
    definitionOf: "core.verify_audit_chain(uuid,bigint,integer,bigint,bytea)",
    find: "if coalesce(v_head.seq, 0) > v_expected - 1 then",
    replace: "if false then",
    suites: ["pgtap/32_audit_chain.sql"],
  },
  {
    name:
      "verification takes any audit.purged row for a checkpoint, even one the maintenance could not have written",
    definitionOf: "core.verify_audit_chain(uuid,bigint,integer,bigint,bytea)",
    find: "if not (v_purge.through_seq ~ '^[0-9]{1,18}$'",
    replace: "if false and not (v_purge.through_seq ~ '^[0-9]{1,18}$'",
    suites: ["pgtap/33_audit_partitions.sql"],
  },
  {
    name: "the maintenance drops a month without asking its tenants' retention",
    definitionOf: "core.expired_audit_partitions()",
    find: "exit when exists (select from core.audit_partition_tenants",
    replace: "exit when false and exists (select from core.audit_partition_tenants",
    suites: ["pgtap/33_audit_partitions.sql"],
  },
  {
    name: "a month's partition is made without its TRUNCATE guard",
    definitionOf: "core.create_audit_partition(timestamp with time zone)",
    find: "execute format('create trigger reject_truncate",
    replace: "perform format('create trigger reject_truncate",
    suites: ["pgtap/33_audit_partitions.sql"],
  },
  {
    name: "a write past the plan's limit goes through",
    definitionOf: "core.meter_usage()",
    find: "if v_delta > 0 and v_used > (case",
    replace: "if false and v_delta > 0 and v_used > (case",
    suites: ["pgtap/46_plans_and_quotas.sql", "tests/plans_test.ts"],
  },
  {
    name: "a lease forgets what the minute has already leased",
    definitionOf: "api.lease_requests(integer)",
    find: "set window_start = v_window, leased = v_leased + v_granted",
    replace: "set window_start = v_window, leased = v_granted",
    suites: ["pgtap/48_rate_limits.sql"],
  },
  {
    name: "a lease hands out a whole budget again, whatever was leased",
    definitionOf: "api.lease_requests(integer)",
    find: "v_left := greatest(v_limit - v_leased, 0);",
    replace: "v_left := v_limit;",
    suites: ["pgtap/48_rate_limits.sql"],
  },
  {
    name: "app_user may write the rate-limit windows (a fresh budget at will)",
    sql: "grant update on core.request_windows to app_user;",
    suites: ["pgtap/48_rate_limits.sql"],
  },
  {
    name: "the service spends nothing of a slice per request",
    file: "src/rate_limit.ts",
    find: "budget.tokens--;",
    replace: "",
    suites: ["tests/rate_limits_test.ts"],
  },
  {
    name: "a 429 does not say when to retry",
    file: "src/rate_limit.ts",
    find: `"retry-after": String(retryAfter),`,
    replace: "",
    suites: ["tests/rate_limits_test.ts"],
  },
  {
    name: "a lease waits for whoever holds its tenant's window instead of ending them",
    definitionOf: "api.lease_requests(integer)",
    find: "perform core.end_window_holders(v_tenant_id);",
    replace: "null;",
    suites: ["tests/app_user_attacks_test.ts"],
  },
  {
    name: "a key found revoked (401) keeps spending its tenant's minute",
    file: "src/app.ts",
    find: "context.admission.unauthorized();",
    replace: "",
    suites: ["tests/rate_limits_test.ts"],
  },
  {
    name: "SIGTERM ends the workers without letting in-flight requests finish",
    file: "src/service.ts",
    find: "await Promise.race([server.finished, graceOver]);",
    replace: "",
    suites: ["tests/faults_shutdown_test.ts"],
  },
  {
    name: "a tenant key may have less than a year of its trail kept",
    definitionOf: "core.settings_error(jsonb)",
    find: "(p_settings ->> 'audit_retention_days')::int not between 365 and 36500",
    replace: "(p_settings ->> 'audit_retention_days')::int not between 1 and 36500",
    suites: ["pgtap/46_plans_and_quotas.sql"],
  },
  {
    name: "two-person approval holds nothing back",
    definitionOf: "core.hold_for_approval()",
    find: "and not core.approved_now(v_tenant_id, v_operation) then",
    replace: "and false then",
    suites: ["pgtap/47_two_person_approval.sql", "pgtap/15_definer_hijack.sql"],
  },
  {
    name: "a request whose user is gone while it waits is decided anyway",
    definitionOf: "api.decide_approval(uuid,boolean)",
    find:
      "      raise exception 'the request was decided meanwhile' using errcode = 'PT409';\n    end if;\n    raise;\n",
    replace:
      "      raise exception 'the request was decided meanwhile' using errcode = 'PT409';\n    end if;\n",
    suites: ["pgtap/47_two_person_approval.sql"],
  },
  {
    name: "the key that asked for a change, or its user, may approve it",
    definitionOf: "api.decide_approval(uuid,boolean)",
    find: "if v_context.api_key_id = v_request.requested_by_key_id\n" +
      "     or v_context.user_id is not distinct from v_request.requested_by_user_id\n     or exists (",
    replace: "if false and exists (",
    suites: ["pgtap/47_two_person_approval.sql", "tests/approvals_test.ts"],
  },
  {
    name: "a request decided or expired meanwhile is decided again",
    definitionOf: "core.decide_request(uuid,uuid,boolean,uuid,uuid)",
    find: "and a.status = 'pending' and a.expires_at > v_now",
    replace: "",
    suites: ["pgtap/47_two_person_approval.sql"],
  },
  {
    name: "a request is decided by the time its deciding transaction began, not the clock",
    definitionOf: "core.decide_request(uuid,uuid,boolean,uuid,uuid)",
    find: "v_now timestamptz := clock_timestamp();",
    replace: "v_now timestamptz := now();",
    suites: ["pgtap/47_two_person_approval.sql"],
  },
  {
    name: "an approved request lets through every later change of its kind",
    definitionOf: "core.approved_now(uuid,text)",
    find: "and a.executing_in = v_transaction",
    replace: "",
    suites: ["pgtap/47_two_person_approval.sql"],
  },
  {
    name: "an approved change leaves its transaction's mark on the request",
    definitionOf: "core.decide_request(uuid,uuid,boolean,uuid,uuid)",
    find: "set executing_in = null, key_hash = null",
    replace: "set key_hash = null",
    suites: ["pgtap/47_two_person_approval.sql"],
  },
  {
    name: "a revocation cannot end a session that locked the usage counts inside a savepoint",
    definitionOf: "core.end_usage_holders(uuid)",
    find: "where u.tenant_id = p_tenant_id and r.pids[i] = 0",
    replace: "where false and u.tenant_id = p_tenant_id and r.pids[i] = 0",
    suites: ["tests/app_user_attacks_test.ts"],
  },
  {
    name:
      "the chain takes an audit row stamped with any time, so a transaction's rows may lie in other partitions",
    definitionOf: "core.chain_audit_row()",
    find: `if new."timestamp" is distinct from core.transaction_time() then`,
    replace: "if false then",
    suites: ["pgtap/33_audit_partitions.sql"],
  },
  {
    name: "the export shows a narrow key the details it may not read",
    definitionOf: "core.audit_export(uuid,bigint,integer,text[])",
    find: "then a.details else a.details - 'old' - 'new' end,",
    replace: "then a.details else a.details end,",
    suites: ["tests/audit_chain_test.ts"],
  },
  {
    name: "a key may be issued to outlive the tenant's api_key_max_lifetime_days",
    definitionOf: "core.capped_expiry(uuid,timestamp with time zone)",
    find: "if p_expires_at > v_cap then",
    replace: "if false then",
    suites: ["pgtap/42_key_lifetimes.sql", "tests/api_keys_test.ts"],
  },
  {
    name: "a key issued without expires_at never expires, cap or not",
    definitionOf: "core.capped_expiry(uuid,timestamp with time zone)",
    find: "return coalesce(p_expires_at, v_cap);",
    replace: "return p_expires_at;",
    suites: ["pgtap/42_key_lifetimes.sql"],
  },
  {
    name: "a writer waits for a chain head held past any request's life",
    definitionOf: "core.chain_audit_row()",
    find: "      perform core.end_stale_transactions();\n    else",
    replace: "      null;\n    else",
    suites: ["tests/app_user_attacks_test.ts"],
  },
  {
    name: "the offline verifier trusts the details a line shows",
    file: "scripts/lib/verify_audit.ts",
    find: "if (!sameJson(shown, parsedOrUndefined(entry.details_text))) {",
    replace: "if (false) {",
    suites: ["tests/audit_chain_test.ts"],
  },
  {
    name: "the export moves past a page before it is sent",
    file: "src/http/ndjson.ts",
    find: "for (const value of linesOf(rows, current)) controller.enqueue(line(value));",
    replace: "for (const value of linesOf(rows, current).slice(1)) controller.enqueue(line(value));",
    suites: ["tests/audit_chain_test.ts"],
  },
  {
    name: "a key's revocation waits for whoever holds its tenant's chain head",
    definitionOf: "core.revoke_keys(uuid,uuid[])",
    find: "    perform core.seize_chain_head(p_tenant_id);\n",
    replace: "",
    suites: ["tests/app_user_attacks_test.ts"],
  },
  {
    name: "the offline verifier compares numbers as doubles",
    file: "scripts/lib/verify_audit.ts",
    find: 'typeof value === "number" ? `#${context?.source}` : value,',
    replace: "value,",
    suites: ["tests/audit_chain_test.ts"],
  },
  {
    name: "app_user chains its first audited change of a transaction inside a savepoint",
    definitionOf: "core.chain_audit_row()",
    find: "  if session_user in ('app_user', 'uber_admin') and not exists (",
    replace: "  if false and not exists (",
    suites: ["tests/app_user_attacks_test.ts"],
  },
  {
    name: "a new key's 201 may be cached",
    file: "src/app.ts",
    find: `if (route.oneTimeSecret) headers.set("cache-control", "no-store");`,
    replace: "",
    suites: ["tests/api_keys_test.ts"],
  },
  {
    name: "query parameters are collected in a plain object (constructor looks given twice)",
    file: "src/http/request.ts",
    find: "if (query.has(name)) {",
    replace: "if (name in {} || query.has(name)) {",
    suites: ["tests/http_routes_test.ts"],
  },
  {
    name: "DELETE /v1/documents/:document_id needs no permission",
    file: "src/routes/documents.ts",
    find: `summary: "Delete a document",\n    access: "tenant",\n    permission: "documents:write",`,
    replace: `summary: "Delete a document",\n    access: "tenant",`,
    suites: ["tests/http_routes_test.ts"],
  },
  {
    name: "PATCH /v1/users/:user_id needs only users:read",
    file: "src/routes/users.ts",
    find:
      `"requires two people)",\n    access: "tenant",\n    permission: "users:write",\n    params: UserPath,\n    body: UpdateUser,`,
    replace:
      `"requires two people)",\n    access: "tenant",\n    permission: "users:read",\n    params: UserPath,\n    body: UpdateUser,`,
    suites: ["tests/http_routes_test.ts"],
  },
  {
    name: "core.key_is_active is an SQL function again, which Citus cannot plan",
    sql: `create or replace function core.key_is_active(p_tenant_id uuid, p_key_id uuid) returns boolean
            language sql stable
            as $$ select exists (select from core.tenant_api_keys k
                                 where k.tenant_id = p_tenant_id and k.key_id = p_key_id and k.revoked_at is null
                                   and (k.expires_at is null or k.expires_at > now())) $$;`,
    suites: ["pgtap/10_rls_invariants.sql"],
  },
];
