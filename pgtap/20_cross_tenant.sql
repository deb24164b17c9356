-- Attack matrix: app_user, holding tenant A's context, goes after tenant B's
-- rows in every tenant-scoped table, directly and through the api. Each denied
-- case is paired with the allowed one on A's own rows, so a policy that
-- refuses everything fails as surely as one that lets everything through.
-- Superusers bypass row-level security even when it is forced: every attack
-- runs after `set local role app_user`.
begin;
select plan(87);

-- The chain's head moves when a transaction commits (a deferred trigger);
-- this suite never commits, so it moves at the end of each statement.
set constraints core.advance_chain_head immediate;

-- pgTAP is installed by the superuser after `alter default privileges revoke
-- execute on functions from public`, so its functions are not executable by
-- the roles the suites switch to. Granted for this transaction only.
grant execute on all functions in schema public to app_user, uber_admin, tenancy_writer;
-- pgTAP's set and result comparisons build temporary tables as the role that
-- runs them, and the runtime roles have no TEMPORARY privilege (checked by
-- 10_rls_invariants and 15_definer_hijack, which do without it): lent to
-- them for this transaction only.
do $$ begin execute format('grant temporary on database %I to app_user, uber_admin, tenancy_writer', current_database()); end $$;

-- Fixtures ----------------------------------------------------------------------

-- Two tenants, provisioned the way a platform operator does it. The first
-- user of each is the operator's too (an API key is what opens the api, and
-- a tenant starts with none); each gets one key holding every permission,
-- bound to that user.
set local role uber_admin;
select tenant_id as tenant_a from platform.create_tenant('Tenant A', 'a.example.com', 'pro', 'Fintech Template') \gset
select tenant_id as tenant_b from platform.create_tenant('Tenant B', 'b.example.com', 'free', 'Fintech Template') \gset
reset role;
insert into core.users (tenant_id, email, role) values (:'tenant_a', 'alice@a.example.com', 'tenant_admin')
returning user_id as user_a \gset
insert into core.users (tenant_id, email, role) values (:'tenant_b', 'bob@b.example.com', 'tenant_admin')
returning user_id as user_b \gset
set local role uber_admin;
select key_id as key_a, key as secret_a
from platform.create_api_key(:'tenant_a', 'A automation', '{*}', :'user_a') \gset
select key_id as key_b, key as secret_b
from platform.create_api_key(:'tenant_b', 'B automation', '{*}', :'user_b') \gset
reset role;

\ir lib/context.psql
\ir lib/blind_writes.psql
select pg_temp.hash_of(:'secret_a') as hash_a, pg_temp.hash_of(:'secret_b') as hash_b \gset

-- The rest of each tenant's rows, created through the api with its key.
set local role app_user;
select pg_temp.begin_as(:'hash_a') \gset ignored_
select user_id as spare_user_a from api.create_user('spare@a.example.com') \gset
select document_id as doc_a from api.create_document(:'user_a', 'A ledger', repeat('a', 64)) \gset
select document_id as spare_doc_a from api.create_document(:'user_a', 'A draft', repeat('d', 64)) \gset
-- Both tenants require two people (the Fintech Template): a change waits.
select approval ->> 'approval_id' as approval_a from api.request_approval('delete_user', jsonb_build_object('user_id', :'spare_user_a')) \gset
-- A service process leased some of each tenant's requests per minute.
select granted from api.lease_requests() \gset ignored_
select pg_temp.begin_as(:'hash_b') \gset ignored_
select document_id as doc_b from api.create_document(:'user_b', 'B ledger', repeat('b', 64)) \gset
select approval ->> 'approval_id' as approval_b from api.request_approval('update_tenant_config', '{"settings": {"currency": "USD"}}') \gset
select granted from api.lease_requests() \gset ignored_
-- Tenant B's client sent POST with Idempotency-Key retry-1 and got 201.
select claimed from api.claim_idempotency_key('retry-1', repeat('b', 64)) \gset ignored_
select api.save_idempotent_response('retry-1', 201, '{"document_id": "b"}') \gset ignored_
reset role;
-- These suites are about one person's changes; two-person approval has
-- pgtap/47_two_person_approval.sql. (As the superuser, outside B's context.)
set local app.context = '';
update core.tenant_configs set settings = settings || '{"require_two_person_approval": false}'
  where tenant_id in (:'tenant_a', :'tenant_b');

-- Every table with a tenant_id column, found in the catalog.
create temp view tenant_tables as
  select c.oid::regclass as rel
  from pg_class c join pg_namespace n on n.oid = c.relnamespace
  where c.relkind in ('r', 'p')
    -- A partition's rows are its parent's: the parent counts them.
    and not c.relispartition
    and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname !~ '^pg_(toast|temp)'
    and exists (select from pg_attribute a where a.attrelid = c.oid and a.attname = 'tenant_id' and not a.attisdropped);

-- Row count and digest of one tenant's rows in every tenant-scoped table.
create function pg_temp.tenant_fingerprint(p_tenant_id uuid)
returns table (rel text, row_count bigint, digest text)
language plpgsql stable
as $$
declare
  v_rel regclass;
begin
  for v_rel in select t.rel from tenant_tables t order by 1 loop
    return query execute format(
      'select %L::text, count(*), md5(coalesce(string_agg(to_jsonb(t)::text, %L order by to_jsonb(t)::text), %L))
       from %s t where t.tenant_id = $1', v_rel, ',', '', v_rel)
    using p_tenant_id;
  end loop;
end
$$;

\ir lib/readable_tenant_relations.psql

-- For every table or view with a tenant_id column that the calling role may
-- read: how many of its visible rows belong to a tenant other than p_tenant_id.
create function pg_temp.rows_of_other_tenants(p_tenant_id uuid)
returns table (rel text, foreign_rows bigint)
language plpgsql stable
as $$
declare
  v_rel text;
begin
  for v_rel in select * from pg_temp.readable_tenant_relations() loop
    return query execute format(
      'select %L::text, count(*) from %s where tenant_id is distinct from $1', v_rel, v_rel)
    using p_tenant_id;
  end loop;
end
$$;
grant execute on function pg_temp.rows_of_other_tenants(uuid) to app_user, uber_admin;

create temp table b_before as select * from pg_temp.tenant_fingerprint(:'tenant_b');
create temp table a_before as select * from pg_temp.tenant_fingerprint(:'tenant_a');
select is(array(select rel from b_before where row_count = 0 order by 1), '{}'::text[],
  'the fixtures give tenant B rows in every tenant-scoped table, so every attack has a target');

-- Reads ---------------------------------------------------------------------------

set local role app_user;
select pg_temp.begin_as(:'hash_a') \gset ignored_

select set_has(format('select rel from pg_temp.rows_of_other_tenants(%L)', :'tenant_a'),
  $$ values ('core.users'), ('core.documents'), ('core.tenant_api_keys'),
            ('api.users'), ('api.documents'), ('api.api_keys'),
            ('api.current_tenant()'), ('api.current_tenant_config()'), ('api.list_audit_logs()'),
            ('api.list_documents()'), ('api.list_users()'), ('api.list_api_keys()') $$,
  'the sweep covers every tenant-scoped table, api view and reading function app_user may use');
select is(
  array(select format('%s shows %s foreign rows', rel, foreign_rows)
        from pg_temp.rows_of_other_tenants(:'tenant_a') where foreign_rows > 0),
  '{}'::text[],
  'under tenant A''s context no readable table or view shows a row of another tenant');

select is((select count(*)::int from core.users where tenant_id = :'tenant_b'), 0,
  'tenant A reads none of tenant B''s users');
select is((select count(*)::int from core.users), 2, 'tenant A reads its own two users');
select is_empty(format('select 1 from api.users where user_id = %L', :'user_b'),
  'tenant A cannot fetch tenant B''s user by id through api.users');
select is((select count(*)::int from core.documents where tenant_id = :'tenant_b'), 0,
  'tenant A reads none of tenant B''s documents');
select is((select count(*)::int from api.documents), 2, 'tenant A reads its own two documents');
select is_empty(format('select 1 from api.documents where document_id = %L', :'doc_b'),
  'tenant A cannot fetch tenant B''s document by id through api.documents');
select is((select count(key_id)::int from core.tenant_api_keys where tenant_id = :'tenant_b'), 0,
  'tenant A reads none of tenant B''s API keys');
select results_eq('select key_id from api.list_api_keys()', format('values (%L::uuid)', :'key_a'),
  'api.list_api_keys lists tenant A''s key and only it');
select results_eq('select tenant_id from api.current_tenant_config()', format('values (%L::uuid)', :'tenant_a'),
  'api.current_tenant_config shows tenant A''s configuration and only it');
select results_eq('select tenant_id from api.current_tenant()', format('values (%L::uuid)', :'tenant_a'),
  'api.current_tenant shows tenant A and only it');
select throws_ok('select 1 from core.tenants', '42501', null,
  'app_user cannot select core.tenants, whose created_at index reads every tenant''s rows');
select throws_ok('select 1 from core.tenant_configs', '42501', null,
  'nor core.tenant_configs, whose template index does the same');
select is((select count(*)::int from api.list_audit_logs(100) where tenant_id = :'tenant_b'), 0,
  'tenant A reads none of tenant B''s audit entries');
select isnt_empty('select 1 from api.list_audit_logs()', 'tenant A reads its own audit entries');
select throws_ok('select 1 from core.audit_logs', '42501', 'permission denied for table audit_logs',
  'app_user reads the trail only through api.list_audit_logs, never core.audit_logs itself');
select throws_ok('select 1 from api.audit_logs', '42501', null,
  'nor api.audit_logs: the function computes a page whole, under one context');
select throws_ok('select 1 from core.idempotency_keys', '42501', 'permission denied for table idempotency_keys',
  'app_user reaches idempotency keys only through the api functions');
select results_eq($$ select claimed, response_status from api.claim_idempotency_key('retry-1', repeat('a', 64)) $$,
  $$ values (true, null::integer) $$,
  'tenant A claims Idempotency-Key retry-1 afresh: tenant B''s stored response for the same key is not replayed');
select results_eq($$ select claimed, request_hash = repeat('a', 64) from api.claim_idempotency_key('retry-1', repeat('a', 64)) $$,
  $$ values (false, true) $$,
  'a retry of tenant A''s own request finds tenant A''s claim, not tenant B''s');

-- Updates -------------------------------------------------------------------------

select is_empty(format($$ update core.users set role = 'viewer' where tenant_id = %L returning 1 $$, :'tenant_b'),
  'tenant A''s UPDATE of tenant B''s users touches no row');
select is_empty(format($$ select * from api.update_user(%L, p_role => 'viewer') $$, :'user_b'),
  'api.update_user on tenant B''s user returns no row under tenant A');
select isnt_empty(format($$ select * from api.update_user(%L, p_email => 'alice@a.example.com') $$, :'user_a'),
  'api.update_user on tenant A''s own user returns the row');
select is_empty(format($$ update core.documents set title = 'pwned' where tenant_id = %L returning 1 $$, :'tenant_b'),
  'tenant A''s UPDATE of tenant B''s documents touches no row');
select is_empty(format($$ select * from api.update_document(%L, p_title => 'pwned') $$, :'doc_b'),
  'api.update_document on tenant B''s document returns no row under tenant A');
select isnt_empty(format($$ select * from api.update_document(%L, p_title => 'A ledger v2') $$, :'doc_a'),
  'api.update_document on tenant A''s own document returns the row');
select throws_ok(format($$ update core.tenant_api_keys set revoked_at = now() where tenant_id = %L $$, :'tenant_b'),
  '42501', 'permission denied for table tenant_api_keys', 'app_user may not UPDATE keys at all: it revokes through api.revoke_api_key');
select is_empty(format('select * from api.revoke_api_key(%L)', :'key_b'),
  'api.revoke_api_key on tenant B''s key returns no row under tenant A');
select throws_ok(format($$ update core.tenant_configs set settings = '{}' where tenant_id = %L $$, :'tenant_b'),
  '42501', 'permission denied for table tenant_configs',
  'app_user may not UPDATE configurations directly: it changes its own through api.update_tenant_config');
select results_eq($$ select tenant_id, settings ->> 'currency' from api.update_tenant_config('{"currency": "USD"}') $$,
  format($$ values (%L::uuid, 'USD') $$, :'tenant_a'),
  'api.update_tenant_config changes tenant A''s configuration and only it');
select throws_ok(format($$ update core.idempotency_keys set response_status = 500 where tenant_id = %L $$, :'tenant_b'),
  '42501', 'permission denied for table idempotency_keys', 'app_user may not UPDATE idempotency keys directly');
select lives_ok($$ select api.save_idempotent_response('retry-1', 500, '{"overwritten": true}') $$,
  'tenant A stores a response for its own retry-1 (tenant B''s row of the same name must stay as it was)');
select throws_ok(format($$ update core.tenants set name = 'pwned' where tenant_id = %L $$, :'tenant_b'), '42501',
  'permission denied for table tenants', 'app_user may not UPDATE core.tenants at all');
select throws_ok(format($$ update core.audit_logs set action = 'x' where tenant_id = %L $$, :'tenant_b'), '42501',
  'permission denied for table audit_logs', 'app_user may not UPDATE core.audit_logs at all');
select throws_ok(format('update core.users set tenant_id = %L where user_id = %L', :'tenant_b', :'user_a'), '42501',
  'permission denied for table users', 'tenant A cannot move its user into tenant B: tenant_id is not updatable');

-- Deletes -------------------------------------------------------------------------

select throws_ok(format('delete from core.documents where tenant_id = %L', :'tenant_b'), '42501',
  'permission denied for table documents', 'app_user may not DELETE documents directly: only through api.delete_document');
select is_empty(format('select * from api.delete_document(%L)', :'doc_b'),
  'api.delete_document on tenant B''s document returns no row under tenant A');
select isnt_empty(format('select * from api.delete_document(%L)', :'spare_doc_a'),
  'api.delete_document on tenant A''s own document deletes it');
select throws_ok(format('delete from core.users where tenant_id = %L', :'tenant_b'), '42501',
  'permission denied for table users', 'app_user may not DELETE users directly: only through api.delete_user');
select is_empty(format('select * from api.delete_user(%L)', :'user_b'),
  'api.delete_user on tenant B''s user returns no row under tenant A');
select isnt_empty(format('select * from api.delete_user(%L)', :'spare_user_a'),
  'api.delete_user on tenant A''s own user deletes it');
-- The role the deletes run as is held to the same policies.
reset role;
set local role tenancy_writer;
select is_empty(format('delete from core.documents where tenant_id = %L returning 1', :'tenant_b'),
  'as tenancy_writer, under tenant A''s context, a DELETE of tenant B''s documents touches no row');
select is_empty(format('delete from core.users where tenant_id = %L returning 1', :'tenant_b'),
  'as tenancy_writer, under tenant A''s context, a DELETE of tenant B''s users touches no row');
select is_empty(format('delete from core.idempotency_keys where tenant_id = %L returning 1', :'tenant_b'),
  'as tenancy_writer, under tenant A''s context, a DELETE of tenant B''s idempotency keys touches no row');
reset role;
set local role app_user;
select throws_ok(format('delete from core.tenant_api_keys where tenant_id = %L', :'tenant_b'), '42501',
  'permission denied for table tenant_api_keys', 'app_user may not DELETE API keys at all (keys are revoked, not deleted)');
select throws_ok(format('delete from core.tenant_configs where tenant_id = %L', :'tenant_b'), '42501',
  'permission denied for table tenant_configs', 'app_user may not DELETE configurations at all');
select throws_ok(format('delete from core.tenants where tenant_id = %L', :'tenant_b'), '42501',
  'permission denied for table tenants', 'app_user may not DELETE tenants at all');
select throws_ok(format('delete from core.audit_logs where tenant_id = %L', :'tenant_b'), '42501',
  'permission denied for table audit_logs', 'app_user may not DELETE audit entries at all');

-- Inserts into tenant B ---------------------------------------------------------------

-- Keys are issued only through api.create_api_key: app_user can neither
-- insert into core.tenant_api_keys nor call core.issue_api_key directly.
select throws_ok(format($$ insert into core.tenant_api_keys (tenant_id, key_hash, key_prefix, name, permissions)
    values (%L, repeat('e', 64), 'tnk_evilevil', 'Planted', '{*}') $$, :'tenant_b'), '42501',
  'permission denied for table tenant_api_keys',
  'tenant A cannot plant an API key in tenant B: app_user may not insert keys directly');
select throws_ok(format($$ select * from core.issue_api_key(%L, 'Planted', '{*}', null, null, null) $$, :'tenant_b'), '42501',
  'permission denied for function issue_api_key',
  'core.issue_api_key is not executable by app_user, so it cannot issue a key for tenant B');
select throws_ok(format($$ select * from core.issue_api_key(%L, 'Own', '{documents:read}', null, null, null) $$, :'tenant_a'), '42501',
  'permission denied for function issue_api_key',
  'core.issue_api_key is not executable by app_user even for its own tenant (no bypass of the escalation check)');
select throws_ok(format($$ insert into core.users (tenant_id, email) values (%L, 'mallory@b.example.com') $$,
  :'tenant_b'), '42501', 'permission denied for table users',
  'tenant A cannot choose tenant_id when adding a user: the column is not insert-granted');
select lives_ok($$ insert into core.users (email) values ('carol@a.example.com') $$,
  'tenant A adds a user through the granted columns; tenant_id comes from its context');
select is((select tenant_id from core.users where email = 'carol@a.example.com'), :'tenant_a'::uuid,
  'the user added without a tenant_id landed in tenant A');
select throws_ok(format($$ insert into core.documents (tenant_id, user_id, title, content_hash)
    values (%L, %L, 'Planted', repeat('e', 64)) $$, :'tenant_b', :'user_b'), '42501',
  'permission denied for table documents',
  'tenant A cannot choose tenant_id when adding a document: the column is not insert-granted');
select throws_ok(format($$ insert into core.tenant_configs (tenant_id, settings) values (%L, '{}') $$, :'tenant_b'),
  '42501', 'permission denied for table tenant_configs', 'app_user may not INSERT configurations at all');
select throws_ok(format($$ insert into core.idempotency_keys (tenant_id, idempotency_key, request_hash)
    values (%L, 'retry-2', repeat('e', 64)) $$, :'tenant_b'), '42501', 'permission denied for table idempotency_keys',
  'tenant A cannot choose tenant_id when claiming an idempotency key: the column is not insert-granted');
select throws_ok(format($$ insert into core.tenants (tenant_id, name) values (%L, 'Tenant B2') $$, :'tenant_b'),
  '42501', 'permission denied for table tenants', 'app_user may not INSERT tenants at all');
select throws_ok(format($$ insert into core.audit_logs (tenant_id, action, resource_type, resource_id)
    values (%L, 'delete', 'documents', %L) $$, :'tenant_b', :'doc_b'),
  '42501', 'permission denied for table audit_logs', 'app_user may not forge audit entries');

-- Cross-tenant references -----------------------------------------------------------

select throws_ok(format($$ select * from api.create_document(%L, 'Stolen author', repeat('c', 64)) $$, :'user_b'),
  'PT403', 'a key bound to a user authors documents only as that user',
  'a key of tenant A bound to its user cannot name tenant B''s user as author');
-- An unbound key names the author; the composite foreign key still refuses B's.
reset role;
set local role uber_admin;
select key as service_secret_a, key_id as service_key_a
from platform.create_api_key(:'tenant_a', 'A service', '{documents:write}') \gset
reset role;
set local role app_user;
select pg_temp.begin_as(pg_temp.hash_of(:'service_secret_a')) \gset ignored_
select throws_ok(format($$ select * from api.create_document(%L, 'Stolen author', repeat('c', 64)) $$, :'user_b'),
  '23503', 'insert or update on table "documents" violates foreign key constraint "documents_tenant_id_user_id_fkey"',
  'a document of tenant A cannot name tenant B''s user as author, even through a key bound to no user');
reset role;
set local role uber_admin;
select key_id from platform.revoke_api_key(:'tenant_a', :'service_key_a') \gset ignored_
reset role;
set local role app_user;
select pg_temp.begin_as(:'hash_a') \gset ignored_
select lives_ok(format($$ select * from api.create_document(%L, 'Own author', repeat('c', 64)) $$, :'user_a'),
  'a document of tenant A can name tenant A''s user as author');
select results_eq(
  format($$ select tenant_id from api.begin_request(%L, 'keys:write', gen_random_uuid()) $$, :'hash_a'),
  format('values (%L::uuid)', :'tenant_a'),
  'tenant A''s key authenticates as tenant A (context for the key tests below)');
-- Even a platform operator, who bypasses RLS, cannot bind A's key to B's user.
set local role uber_admin;
select throws_ok(format($$ select * from platform.create_api_key(%L, 'Stolen user', '{documents:read}', %L) $$,
    :'tenant_a', :'user_b'),
  '23503',
  'insert or update on table "tenant_api_keys" violates foreign key constraint "tenant_api_keys_tenant_id_user_id_fkey"',
  'an API key of tenant A cannot be bound to tenant B''s user');
reset role;
set local role app_user;
select lives_ok(format($$ select * from api.create_api_key('Own user', '{documents:read}', %L) $$, :'user_a'),
  'an API key of tenant A can be bound to tenant A''s user');

-- The platform operator sees every tenant ------------------------------------------------

-- uber_admin bypasses row-level security, even with tenant A's context still set.
set local role uber_admin;
select set_has('select tenant_id from platform.tenants',
  format('values (%L::uuid), (%L::uuid)', :'tenant_a', :'tenant_b'),
  'uber_admin sees both tenants in platform.tenants');
select set_has('select tenant_id from core.users', format('values (%L::uuid), (%L::uuid)', :'tenant_a', :'tenant_b'),
  'uber_admin sees users of both tenants');
select set_has('select tenant_id from core.documents', format('values (%L::uuid), (%L::uuid)', :'tenant_a', :'tenant_b'),
  'uber_admin sees documents of both tenants');
select set_has('select tenant_id from platform.audit_logs',
  format('values (%L::uuid), (%L::uuid)', :'tenant_a', :'tenant_b'),
  'uber_admin sees audit entries of both tenants');
select set_has(
  format('select rel from pg_temp.rows_of_other_tenants(%L) where foreign_rows > 0', :'tenant_a'),
  $$ values ('core.users'), ('core.documents'), ('core.tenant_api_keys'), ('core.tenant_configs'), ('core.tenants'),
            ('core.audit_logs') $$,
  'uber_admin sees rows of other tenants in every tenant-scoped table, where app_user saw none');
reset role;

-- Blind writes -------------------------------------------------------------------------

-- An UPDATE or DELETE that reads no column (no WHERE, no RETURNING) is
-- filtered by the UPDATE and DELETE policies alone, not by the SELECT policy
-- as well: these show that those policies hold on their own. They hit tenant
-- A's rows, which is fine this late in the file.
set local role app_user;
select pg_temp.begin_as(:'hash_a') \gset ignored_
select lives_ok($$ update core.users set role = 'viewer' $$, 'tenant A runs an unqualified UPDATE of core.users');
select lives_ok($$ update core.documents set title = 'blind' $$,
  'tenant A runs an unqualified UPDATE of core.documents');
-- Deletes, idempotency keys and the configuration are tenancy_writer's to
-- touch, for app_user.
reset role;
set local role tenancy_writer;
select lives_ok($$ update core.tenant_configs set settings = '{}' $$,
  'as tenancy_writer, tenant A runs an unqualified UPDATE of core.tenant_configs');
select lives_ok($$ update core.idempotency_keys set response_status = 500 $$,
  'as tenancy_writer, tenant A runs an unqualified UPDATE of core.idempotency_keys');
select lives_ok($$ delete from core.documents $$, 'as tenancy_writer, tenant A runs an unqualified DELETE of core.documents');
select lives_ok($$ delete from core.idempotency_keys $$,
  'as tenancy_writer, tenant A runs an unqualified DELETE of core.idempotency_keys');
select lives_ok($$ delete from core.users $$,
  'as tenancy_writer, tenant A runs an unqualified DELETE of core.users (which revokes the keys bound to them)');
reset role;
select results_eq(
  format($$ select (select count(*)::int from core.documents where tenant_id = %1$L),
                   (select count(*)::int from core.users where tenant_id = %1$L),
                   (select count(*)::int from core.tenant_api_keys where tenant_id = %1$L and revoked_at is null) $$,
    :'tenant_a'),
  'values (0, 0, 0)',
  'the blind writes did reach tenant A''s own rows: its documents and users are gone, its users'' keys revoked');

-- Defence in depth: the policies refuse tenant B on their own -------------------------

-- The grants already stop app_user from naming a tenant_id on most tables.
-- Widen them to INSERT, UPDATE and DELETE on every tenant table, as a
-- careless future migration might, and try tenant B again: plant a copy of
-- one of B's rows, move every row A reaches into B, and run blind updates and
-- deletes of everything. The policies alone must refuse the first two, and
-- B's fingerprint (checked last) shows the third reached none of B's rows.
-- This comes last because the widened grants stay until the rollback.
reset role;
create function pg_temp.sample_rows(p_tenant_id uuid) returns table (rel regclass, sample jsonb)
language plpgsql stable
as $$
declare
  v_rel regclass;
begin
  for v_rel in select t.rel from tenant_tables t order by 1 loop
    return query execute format('select %L::regclass, to_jsonb(t) from %s t where t.tenant_id = $1 limit 1', v_rel, v_rel)
      using p_tenant_id;
  end loop;
end
$$;
create temp table b_samples as select * from pg_temp.sample_rows(:'tenant_b');
-- The blind writes above emptied some of A's tables; A gets a row in each
-- again, so that moving A's rows has something to move.
insert into core.users (tenant_id, email) values (:'tenant_a', 'again@a.example.com') returning user_id as again_user \gset
insert into core.documents (tenant_id, user_id, title, content_hash) values (:'tenant_a', :'again_user', 'Again', repeat('a', 64));
insert into core.idempotency_keys (tenant_id, idempotency_key, request_hash) values (:'tenant_a', 'again', repeat('a', 64));
insert into core.tenant_api_keys (tenant_id, key_hash, key_prefix, name) values (:'tenant_a', repeat('9', 64), 'tnk_againaga', 'Again');
select is(array(select rel::text from tenant_tables t
                where not exists (select from pg_temp.sample_rows(:'tenant_a') s where s.rel = t.rel and s.sample is not null)
                order by 1),
  '{}'::text[], 'tenant A has a row in every tenant table again');
grant select on b_samples, tenant_tables to app_user;
do $$
declare
  v_rel regclass;
begin
  for v_rel in select rel from tenant_tables loop
    execute format('grant insert, update, delete on %s to app_user', v_rel);
  end loop;
end
$$;

create function pg_temp.widened_attempts(p_tenant_b uuid) returns table (rel text, attempt text, outcome text)
language plpgsql volatile
as $$
declare
  v_target record;
  v_rows bigint;
begin
  for v_target in select b.rel, b.sample from b_samples b order by 1 loop
    rel := v_target.rel::text;
    attempt := 'plant';
    begin
      execute format('insert into %s select * from jsonb_populate_record(null::%s, $1)', v_target.rel, v_target.rel)
        using v_target.sample;
      outcome := 'inserted';
    exception when others then
      outcome := sqlstate;
    end;
    return next;
    attempt := 'move';
    begin
      execute format('update %s set tenant_id = $1', v_target.rel) using p_tenant_b;
      get diagnostics v_rows = row_count;
      outcome := v_rows || ' rows';
    exception when others then
      outcome := sqlstate;
    end;
    return next;
  end loop;
end
$$;
grant execute on function pg_temp.widened_attempts(uuid) to app_user;

-- Still under the context the blind writes above ran with (their revocation
-- of A's keys came after it was signed).
set local role app_user;
create temp table widened as select * from pg_temp.widened_attempts(:'tenant_b');
select set_eq('select rel from widened',
  'select t.rel::text from tenant_tables t',
  'with every grant widened, each tenant table is attacked');
select is(
  array(select format('%s: %s', rel, outcome) from widened where attempt = 'plant' and outcome <> '42501' order by 1),
  '{}'::text[],
  'with INSERT granted on every tenant table, the insert policy alone refuses a copy of one of tenant B''s rows (42501, before any unique key is checked)');
select is(
  array(select format('%s: %s', w.rel, w.outcome) from widened w
        where w.attempt = 'move'
          and w.outcome <> case when exists (select from pg_policies p
                                             where format('%I.%I', p.schemaname, p.tablename) = w.rel and p.cmd = 'UPDATE'
                                               and p.qual <> 'false')
                                then '42501' else '0 rows' end
        order by 1),
  '{}'::text[],
  'with UPDATE granted on every tenant table, moving tenant A''s rows into tenant B is refused by the update policy''s WITH CHECK (and reaches nothing where no update policy exists or it is USING (false))');
select is(
  array(select format('%s %s: %s', rel, command, outcome) from pg_temp.blind_writes(true)
        where outcome !~ '^([0-9]+ rows|23502|23503|23514|42501)$' order by 1),
  '{}'::text[],
  'with every grant widened, blind updates and deletes of every tenant table run (what they reached is judged by the fingerprints below)');
reset role;

-- Tenant B is untouched -------------------------------------------------------------

select set_eq(format('select * from pg_temp.tenant_fingerprint(%L)', :'tenant_b'),
  'select * from b_before',
  'after every attack by tenant A, tenant B''s rows in every tenant-scoped table are exactly as before (checked as superuser)');
select is(
  array(select rel from (select * from pg_temp.tenant_fingerprint(:'tenant_a') except select * from a_before) as changed
        order by 1),
  array['core.api_key_hashes', 'core.api_key_usage', 'core.approval_requests', 'core.audit_chain_heads', 'core.audit_logs',
        'core.documents', 'core.request_windows', 'core.tenant_api_keys', 'core.tenant_configs', 'core.tenant_domains',
        'core.tenant_usage', 'core.users'],
  'the same fingerprint does see tenant A''s own rows change, so an unchanged tenant B is no blind spot');

select * from finish();
rollback;
