-- Fail closed: without a tenant context (app.context never set, set to the
-- empty string, which is what a transaction-local setting reads as once its
-- transaction is over, or set to something that is not a signed context)
-- app_user reads no tenant row and writes none. 26_forged_context tries
-- contexts forged on purpose.
--
-- The fixtures are written by the superuser with explicit tenant ids, not
-- through the api, because the api needs a signed app.context and, once a
-- setting has been set in a session, it can never again be "not set" there.
begin;
select plan(44);

-- pgTAP is installed by the superuser after `alter default privileges revoke
-- execute on functions from public`, so its functions are not executable by
-- the roles the suites switch to. Granted for this transaction only.
grant execute on all functions in schema public to app_user, uber_admin, tenancy_writer;
-- pgTAP's set and result comparisons build temporary tables as the role that
-- runs them, and the runtime roles have no TEMPORARY privilege (checked by
-- 10_rls_invariants and 15_definer_hijack, which do without it): lent to
-- them for this transaction only.
do $$ begin execute format('grant temporary on database %I to app_user, uber_admin, tenancy_writer', current_database()); end $$;

select ok(current_setting('app.context', true) is null,
  'the session starts with app.context not set at all');

-- Fixtures ----------------------------------------------------------------------

set local role uber_admin;
select tenant_id as tenant_a from platform.create_tenant('Tenant A', 'a.example.com', 'pro', 'Fintech Template') \gset
reset role;
insert into core.users (tenant_id, email, role) values (:'tenant_a', 'alice@a.example.com', 'tenant_admin') returning user_id as user_a \gset
insert into core.documents (tenant_id, user_id, title, content_hash)
values (:'tenant_a', :'user_a', 'A ledger', repeat('a', 64)) returning document_id as doc_a \gset
set local role uber_admin;
select key_id as key_a, encode(sha256(convert_to(key, 'UTF8')), 'hex') as hash_a
from platform.create_api_key(:'tenant_a', 'A automation', '{*}', :'user_a') \gset
reset role;
insert into core.idempotency_keys (tenant_id, api_key_id, idempotency_key, request_hash, response_status)
values (:'tenant_a', :'key_a', 'retry-1', repeat('a', 64), 201);
insert into core.approval_requests (tenant_id, operation, payload, requested_by_key_id)
values (:'tenant_a', 'delete_user', jsonb_build_object('user_id', :'user_a'), :'key_a');

\ir lib/readable_tenant_relations.psql
\ir lib/context.psql
\ir lib/blind_writes.psql
\ir lib/fingerprint.psql

-- For every table or view with a tenant_id column that the calling role may
-- read: how many rows it shows.
create function pg_temp.visible_rows()
returns table (rel text, row_count bigint)
language plpgsql stable
as $$
declare
  v_rel text;
begin
  for v_rel in select * from pg_temp.readable_tenant_relations() loop
    return query execute format('select %L::text, count(*) from %s', v_rel, v_rel);
  end loop;
end
$$;
grant execute on function pg_temp.visible_rows() to app_user;

create temp table rows_before as select * from pg_temp.visible_rows();
-- Every row of every table, before any write made with or without a context.
-- The fixtures' updated_at is moved a day back first: an UPDATE that reaches
-- a row then changes it (the set_updated_at trigger), even one that sets a
-- column to itself.
do $$
declare
  v_rel regclass;
begin
  for v_rel in
    select a.attrelid::regclass from pg_attribute a join pg_class c on c.oid = a.attrelid
    where c.relnamespace = 'core'::regnamespace and c.relkind = 'r' and a.attname = 'updated_at' and c.relname <> 'audit_logs'
  loop
    execute format('update %s set updated_at = updated_at - interval ''1 day''', v_rel);
  end loop;
end
$$;
create temp table fingerprint_before as select * from pg_temp.fingerprint();
select is(
  array(select rel from rows_before
        -- (a partition's rows are its parent's, and next month's has none yet)
        where row_count = 0
          and (select relkind in ('r', 'p') and not relispartition from pg_class where oid = to_regclass(rel))
        order by 1),
  '{}'::text[],
  'the fixtures put rows in every tenant-scoped table, so reading none of them means something');

-- No context at all -------------------------------------------------------------

set local role app_user;

select set_has('select rel from pg_temp.visible_rows()',
  $$ values ('core.users'), ('core.documents'), ('core.tenant_api_keys'),
            ('api.users'), ('api.documents'), ('api.api_keys'),
            ('api.current_tenant()'), ('api.current_tenant_config()'), ('api.list_audit_logs()'),
            ('api.list_documents()'), ('api.list_users()'), ('api.list_api_keys()') $$,
  'the sweep covers every tenant-scoped table, api view and reading function app_user may use');
select is(
  array(select format('%s shows %s rows', rel, row_count) from pg_temp.visible_rows() where row_count > 0),
  '{}'::text[],
  'without app.context every tenant-scoped table and api view reads as empty');
select is_empty('select * from api.list_users()', 'without context api.list_users lists nobody');
select is_empty('select * from api.list_documents()', 'without context api.list_documents lists nothing');
select is_empty('select * from api.list_api_keys()', 'without context api.list_api_keys lists nothing');
select is_empty('select * from api.list_audit_logs()', 'without context api.list_audit_logs lists nothing');

select throws_ok($$ select * from api.create_user('mallory@example.com') $$, '42501',
  'new row violates row-level security policy for table "users"',
  'without context api.create_user is refused by the insert policy');
select throws_ok(format($$ select * from api.create_document(%L, 'Orphan', repeat('f', 64)) $$, :'user_a'), '42501',
  'new row violates row-level security policy for table "documents"',
  'without context api.create_document is refused by the insert policy');
select throws_ok(format($$ select * from core.issue_api_key(%L, 'Orphan', '{*}', null, null, null) $$, :'tenant_a'), '42501',
  'permission denied for function issue_api_key',
  'without context a key cannot be issued, even naming an existing tenant');
select throws_ok($$ select * from api.claim_idempotency_key('retry-1', repeat('f', 64)) $$, '42501',
  'new row violates row-level security policy for table "idempotency_keys"',
  'without context an idempotency key can be neither claimed nor replayed');
select throws_ok($$ select * from api.create_api_key('Orphan', '{documents:read}') $$, 'PT401',
  'unknown, revoked or expired API key',
  'without context api.create_api_key issues nothing: there is no calling key');
select is_empty(format($$ select * from api.update_user(%L, p_role => 'viewer') $$, :'user_a'),
  'without context api.update_user changes nobody');
select is_empty(format($$ select * from api.update_document(%L, p_title => 'pwned') $$, :'doc_a'),
  'without context api.update_document changes nothing');
select is_empty(format('select * from api.revoke_api_key(%L)', :'key_a'),
  'without context api.revoke_api_key revokes nothing');
select is_empty($$ select * from api.update_tenant_config('{"currency": "USD"}') $$,
  'without context api.update_tenant_config changes nothing');
select is_empty(format('select * from api.delete_document(%L)', :'doc_a'),
  'without context api.delete_document deletes nothing');
select is_empty(format('select * from api.delete_user(%L)', :'user_a'),
  'without context api.delete_user deletes nobody');
select is_empty($$ update core.users set role = 'viewer' returning 1 $$,
  'without context an unqualified UPDATE of core.users touches no row');
reset role;
set local role tenancy_writer;
select is_empty('delete from core.documents returning 1',
  'without context an unqualified DELETE of core.documents, as tenancy_writer (which deletes for app_user), touches no row');
reset role;
set local role app_user;
-- Blind writes read no column, so only the UPDATE and DELETE policies filter
-- them (not the SELECT policy too). They run as app_user and as
-- tenancy_writer, through whose functions app_user deletes and claims
-- idempotency keys. They are kept; the fingerprint below shows what they
-- changed.
create temp table blind_no_context as select 'app_user' as via, * from pg_temp.blind_writes(true);
reset role;
grant insert, select on blind_no_context to tenancy_writer;
set local role tenancy_writer;
insert into blind_no_context select 'tenancy_writer', * from pg_temp.blind_writes(true);
reset role;
set local role app_user;
select set_has('select via, rel, command from blind_no_context',
  $$ values ('app_user', 'core.users', 'UPDATE'), ('app_user', 'core.documents', 'UPDATE'),
            ('tenancy_writer', 'core.tenant_configs', 'UPDATE'), ('tenancy_writer', 'core.users', 'DELETE'),
            ('tenancy_writer', 'core.documents', 'DELETE'), ('tenancy_writer', 'core.idempotency_keys', 'UPDATE'),
            ('tenancy_writer', 'core.idempotency_keys', 'DELETE') $$,
  'the catalog finds a blind UPDATE or DELETE for every table and command app_user may write, itself or through tenancy_writer');
select is(array(select format('%s %s %s: %s', via, rel, command, outcome) from blind_no_context where outcome <> '0 rows' order by 1),
  '{}'::text[],
  'without context a blind UPDATE and DELETE of every table app_user may write touches no row');

-- Empty context ---------------------------------------------------------------------

set local app.context = '';

create temp table blind_empty as select 'app_user' as via, * from pg_temp.blind_writes(true);
reset role;
grant insert, select on blind_empty to tenancy_writer;
set local role tenancy_writer;
insert into blind_empty select 'tenancy_writer', * from pg_temp.blind_writes(true);
reset role;
set local role app_user;
select is(array(select format('%s %s %s: %s', via, rel, command, outcome) from blind_empty where outcome <> '0 rows' order by 1),
  '{}'::text[],
  'with an empty context a blind UPDATE and DELETE of every table app_user may write, itself or through tenancy_writer, touches no row');
select is(
  array(select format('%s shows %s rows', rel, row_count) from pg_temp.visible_rows() where row_count > 0),
  '{}'::text[],
  'with app.context set to the empty string every tenant-scoped table and api view reads as empty');
select is_empty('select * from api.list_documents()', 'with an empty context api.list_documents lists nothing');
select throws_ok($$ select * from api.create_user('mallory@example.com') $$, '42501',
  'new row violates row-level security policy for table "users"',
  'with an empty context api.create_user is refused by the insert policy');
select throws_ok(format($$ select * from api.create_document(%L, 'Orphan', repeat('f', 64)) $$, :'user_a'), '42501',
  'new row violates row-level security policy for table "documents"',
  'with an empty context api.create_document is refused by the insert policy');
select throws_ok(format($$ select * from core.issue_api_key(%L, 'Orphan', '{*}', null, null, null) $$, :'tenant_a'), '42501',
  'permission denied for function issue_api_key',
  'with an empty context a key cannot be issued, even naming an existing tenant');
select is_empty(format($$ select * from api.update_document(%L, p_title => 'pwned') $$, :'doc_a'),
  'with an empty context api.update_document changes nothing');
select throws_ok($$ select * from api.claim_idempotency_key('retry-1', repeat('f', 64)) $$, '42501',
  'new row violates row-level security policy for table "idempotency_keys"',
  'with an empty context an idempotency key can be neither claimed nor replayed');
select is_empty(format('select * from api.delete_user(%L)', :'user_a'),
  'with an empty context api.delete_user deletes nobody');
select is_empty($$ select * from api.update_tenant_config('{"currency": "USD"}') $$,
  'with an empty context api.update_tenant_config changes nothing');

-- Malformed context ------------------------------------------------------------------

set local app.context = 'v1|not-a-uuid||||*|not-a-uuid||not-a-mac';
select is(
  array(select format('%s shows %s rows', rel, row_count) from pg_temp.visible_rows() where row_count > 0),
  '{}'::text[],
  'with a malformed app.context every tenant-scoped table and api view reads as empty, without an error');
select throws_ok($$ select * from api.create_user('mallory@example.com') $$, '42501',
  'new row violates row-level security policy for table "users"',
  'a malformed app.context makes writes fail rather than land anywhere');
create temp table blind_malformed as select 'app_user' as via, * from pg_temp.blind_writes(true);
reset role;
grant insert, select on blind_malformed to tenancy_writer;
set local role tenancy_writer;
insert into blind_malformed select 'tenancy_writer', * from pg_temp.blind_writes(true);
reset role;
set local role app_user;
select is(array(select format('%s %s %s: %s', via, rel, command, outcome) from blind_malformed where outcome <> '0 rows' order by 1),
  '{}'::text[],
  'with a malformed context a blind UPDATE and DELETE of every table app_user may write, itself or through tenancy_writer, touches no row');
reset role;
select set_eq('select * from pg_temp.fingerprint()', 'select * from fingerprint_before',
  'after every write without a valid context, every table is exactly as the superuser saw it before: nothing was written');
set local role app_user;

-- With the tenant's context, the same calls work -----------------------------------

select pg_temp.begin_as(:'hash_a') \gset ignored_
select results_eq('select user_id from api.users', format('values (%L::uuid)', :'user_a'),
  'with tenant A''s context api.users shows tenant A''s user');
select results_eq('select document_id from api.list_documents()', format('values (%L::uuid)', :'doc_a'),
  'with tenant A''s context api.list_documents lists tenant A''s document');
select isnt_empty($$ select * from api.create_user('bob@a.example.com') $$,
  'with tenant A''s context api.create_user adds a user');
select isnt_empty(format($$ select * from api.update_document(%L, p_title => 'A ledger v2') $$, :'doc_a'),
  'with tenant A''s context api.update_document changes the document');
reset role;

-- Nothing was written while the context was missing --------------------------------

select results_eq(
  $$ select rel, row_count from pg_temp.visible_rows() where rel in ('core.users', 'core.documents')
     order by rel $$,
  $$ select rel, row_count + case rel when 'core.users' then 1 else 0 end from rows_before
     where rel in ('core.users', 'core.documents') order by rel $$,
  'only the user added under tenant A''s context is new; no document or user was written without context');
select is(
  (select title from core.documents where document_id = :'doc_a'), 'A ledger v2',
  'the document changed only under tenant A''s context, never to the title tried without context');
select results_eq(
  format($$ select (select revoked_at is null from core.tenant_api_keys where key_id = %L),
                   (select count(*)::int from core.idempotency_keys where tenant_id = %L) $$, :'key_a', :'tenant_a'),
  'values (true, 1)',
  'the blind writes without context neither revoked tenant A''s key nor deleted its idempotency key');

select * from finish();
rollback;
