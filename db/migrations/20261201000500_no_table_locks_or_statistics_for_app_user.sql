-- migrate:up
/*
 * Why: two things the app_user password still reached across tenants.
 *
 * Table locks. LOCK TABLE ... ACCESS EXCLUSIVE needs only a table-level
 * UPDATE, DELETE or TRUNCATE privilege, and app_user held DELETE on users,
 * documents and idempotency keys: one session could lock core.users and
 * stall every tenant's requests (api.begin_request reads it). Now app_user
 * holds no table-level write privilege at all. Its deletes, and its use of
 * idempotency keys, go through SECURITY DEFINER functions owned by
 * tenancy_writer, which holds those privileges, owns nothing and does not
 * bypass row-level security: every policy applies to it exactly as to
 * app_user.
 *
 * Planner statistics. PostgreSQL plans with the most common values of a
 * column even under row-level security, so EXPLAIN by anyone may estimate a
 * title or an email of another tenant into view (rows=500 for a common
 * title, rows=1 for an absent one). pg_stats itself hides them from
 * app_user, the planner does not. No column of a tenant-scoped table but
 * tenant_id is analyzed any more (a column added later must be set the same
 * way; pgtap/10_rls_invariants.sql checks). tenant_id keeps its statistics,
 * which the planner needs to tell a large tenant from a small one; what they
 * can show is roughly how many rows a large tenant holds, to whoever already
 * knows its id. The list functions read pages in index order whatever the
 * estimates (below).
 */
set local lock_timeout = '5s';
set local statement_timeout = '60s';

do $$
begin
  if not exists (select from pg_roles where rolname = 'tenancy_writer') then
    create role tenancy_writer;
  end if;
end
$$;
alter role tenancy_writer nologin nosuperuser nocreatedb nocreaterole noinherit noreplication nobypassrls;
comment on role tenancy_writer is
  'Owns the SECURITY DEFINER functions through which app_user deletes rows and claims idempotency keys; bound by row-level security; cannot log in';

revoke delete on core.users, core.documents from app_user;
revoke all on core.idempotency_keys from app_user;

grant usage on schema core, api, extensions to tenancy_writer;
grant select, delete on core.users, core.documents to tenancy_writer;
grant select, insert (idempotency_key, request_hash),
  update (request_hash, response_status, response_body, created_at, expires_at), delete
  on core.idempotency_keys to tenancy_writer;
grant select on core.request_context to tenancy_writer;
grant execute on function core.context_mac(text, bytea), extensions.hmac(bytea, bytea, text),
  core.current_tenant_id(), core.current_api_key_id(), core.role_rank(text), core.all_permissions(),
  core.rank_of_caller(text, text[]) to tenancy_writer;

alter function api.delete_user(uuid) security definer;
alter function api.delete_user(uuid) set search_path = pg_catalog, pg_temp;
alter function api.delete_user(uuid) owner to tenancy_writer;
alter function api.delete_document(uuid) security definer;
alter function api.delete_document(uuid) set search_path = pg_catalog, pg_temp;
alter function api.delete_document(uuid) owner to tenancy_writer;
alter function api.claim_idempotency_key(text, text) security definer;
alter function api.claim_idempotency_key(text, text) set search_path = pg_catalog, pg_temp;
alter function api.claim_idempotency_key(text, text) owner to tenancy_writer;
alter function api.save_idempotent_response(text, integer, jsonb) security definer;
alter function api.save_idempotent_response(text, integer, jsonb) set search_path = pg_catalog, pg_temp;
alter function api.save_idempotent_response(text, integer, jsonb) owner to tenancy_writer;

do $$
declare
  v_column record;
begin
  for v_column in
    select a.attrelid::regclass as tab, a.attname as col
    from pg_attribute a join pg_class c on c.oid = a.attrelid
    where c.relnamespace = 'core'::regnamespace and c.relkind = 'r' and a.attnum > 0 and not a.attisdropped
      and a.attname <> 'tenant_id'
      and exists (select from pg_attribute t where t.attrelid = c.oid and t.attname = 'tenant_id')
  loop
    execute format('alter table %s alter column %I set statistics 0', v_column.tab, v_column.col);
  end loop;
end
$$;
-- Without statistics the planner guesses how many rows a tenant has, and
-- may guess that sorting them all beats reading the index in order. A page
-- is read in index order whatever it guesses: the list functions plan
-- without sorts and bitmap scans (pgtap/50_query_plans.sql counts the
-- buffers a page reads).
alter function api.list_documents(integer, timestamptz, uuid, uuid, timestamptz, timestamptz) set enable_sort = off;
alter function api.list_documents(integer, timestamptz, uuid, uuid, timestamptz, timestamptz) set enable_bitmapscan = off;
alter function api.list_audit_logs(integer, timestamptz, uuid, uuid, text, text, timestamptz, timestamptz) set enable_sort = off;
alter function api.list_audit_logs(integer, timestamptz, uuid, uuid, text, text, timestamptz, timestamptz) set enable_bitmapscan = off;
alter function api.list_users(integer, timestamptz, uuid) set enable_sort = off;
alter function api.list_users(integer, timestamptz, uuid) set enable_bitmapscan = off;
alter function api.list_api_keys(integer, timestamptz, uuid) set enable_sort = off;
alter function api.list_api_keys(integer, timestamptz, uuid) set enable_bitmapscan = off;

-- Statistics gathered before are dropped with them: nothing of them stays
-- in pg_statistic.
delete from pg_catalog.pg_statistic s
using pg_catalog.pg_attribute a
where a.attrelid = s.starelid and a.attnum = s.staattnum and a.attstattarget = 0
  and a.attrelid in (select c.oid from pg_catalog.pg_class c where c.relnamespace = 'core'::regnamespace);

-- migrate:down
set local lock_timeout = '5s';
set local statement_timeout = '60s';
do $$
declare
  v_column record;
begin
  for v_column in
    select c.relname as tab, a.attname as col
    from pg_attribute a join pg_class c on c.oid = a.attrelid
    where c.relnamespace = 'core'::regnamespace and a.attstattarget = 0 and a.attnum > 0 and not a.attisdropped
  loop
    execute format('alter table core.%I alter column %I set statistics -1', v_column.tab, v_column.col);
  end loop;
end
$$;

alter function api.list_documents(integer, timestamptz, uuid, uuid, timestamptz, timestamptz) reset enable_sort;
alter function api.list_documents(integer, timestamptz, uuid, uuid, timestamptz, timestamptz) reset enable_bitmapscan;
alter function api.list_audit_logs(integer, timestamptz, uuid, uuid, text, text, timestamptz, timestamptz) reset enable_sort;
alter function api.list_audit_logs(integer, timestamptz, uuid, uuid, text, text, timestamptz, timestamptz) reset enable_bitmapscan;
alter function api.list_users(integer, timestamptz, uuid) reset enable_sort;
alter function api.list_users(integer, timestamptz, uuid) reset enable_bitmapscan;
alter function api.list_api_keys(integer, timestamptz, uuid) reset enable_sort;
alter function api.list_api_keys(integer, timestamptz, uuid) reset enable_bitmapscan;

alter function api.delete_user(uuid) owner to tenancy_owner;
alter function api.delete_user(uuid) security invoker;
alter function api.delete_user(uuid) reset search_path;
alter function api.delete_document(uuid) owner to tenancy_owner;
alter function api.delete_document(uuid) security invoker;
alter function api.delete_document(uuid) reset search_path;
alter function api.claim_idempotency_key(text, text) owner to tenancy_owner;
alter function api.claim_idempotency_key(text, text) security invoker;
alter function api.claim_idempotency_key(text, text) reset search_path;
alter function api.save_idempotent_response(text, integer, jsonb) owner to tenancy_owner;
alter function api.save_idempotent_response(text, integer, jsonb) security invoker;
alter function api.save_idempotent_response(text, integer, jsonb) reset search_path;

revoke all on core.users, core.documents, core.idempotency_keys, core.request_context from tenancy_writer;
revoke execute on function core.context_mac(text, bytea), extensions.hmac(bytea, bytea, text),
  core.current_tenant_id(), core.current_api_key_id(), core.role_rank(text), core.all_permissions(),
  core.rank_of_caller(text, text[]) from tenancy_writer;
revoke usage on schema core, api, extensions from tenancy_writer;

grant delete on core.users, core.documents to app_user;
grant select, insert (idempotency_key, request_hash),
  update (request_hash, response_status, response_body, created_at, expires_at), delete
  on core.idempotency_keys to app_user;

do $$
begin
  drop role if exists tenancy_writer;
exception when dependent_objects_still_exist then
  raise notice 'role tenancy_writer is kept: another database of this cluster still uses it';
end
$$;
