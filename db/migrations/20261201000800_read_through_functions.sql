-- migrate:up
/*
 * Why: a third attack from the app_user side (with real keys of its own)
 * found four more ways around the request context and row-level security.
 *
 * 1. A context replayed into a REPEATABLE READ transaction. The MAC binds a
 *    context to its backend and its transaction's start time, and every
 *    transaction of one multi-statement message starts at the same time: a
 *    context signed in the message's first transaction, kept in a session
 *    setting, verified again in a later one, begun REPEATABLE READ on an old
 *    exported snapshot, where a key revoked since still looked valid and
 *    issued a key. The context now verifies only in READ COMMITTED
 *    transactions, as it is only signed in them: every statement reads the
 *    key's current state.
 * 2. A cursor over api.audit_logs, fetched across a context swap: the view's
 *    tenant filter was evaluated under the first context and its redaction
 *    under a later one (another key's permissions), so details the first key
 *    may not read came out. Views are evaluated lazily, a row at a time; a
 *    function's result is computed whole when it is first read.
 * 3. EXPLAIN ANALYZE counts the rows a filter removes. Where an index does
 *    not begin with tenant_id (tenants.domain, tenants.created_at,
 *    tenant_configs.template_id, audit_logs."timestamp"), a query on its
 *    column reads other tenants' rows before row-level security drops them,
 *    and "Rows Removed by Filter: 1" confirms that some tenant has the domain
 *    asked about. Where the index begins with tenant_id the policy's
 *    condition is an index condition and no foreign row is ever read.
 * 4. The context numbers were a global counter anyone could read
 *    (select last_value from core.context_nonce): how many requests the
 *    platform serves. They were also written into every context.
 *
 * So: the verified context requires READ COMMITTED (1). app_user reads the
 * trail, its tenant and its configuration only through functions
 * (api.list_audit_logs, api.current_tenant, api.current_tenant_config),
 * which run as tenancy_writer, are bound by row-level security as app_user
 * is, and take no column to filter on that an index of another tenant's
 * rows could answer (2, 3); app_user can no longer select core.tenants,
 * core.tenant_configs, api.tenant, api.tenant_config or api.audit_logs, and
 * changes its configuration through api.update_tenant_config, a definer now
 * too. pgtap/10_rls_invariants.sql checks from the catalog that no column of
 * an index that does not lead with tenant_id is readable by app_user,
 * directly or through a view. A context ('v4') no longer carries its number:
 * the MAC covers it, read back with core.current_context_nonce(), which only
 * tenancy_auth's rights can run (4).
 *
 * What EXPLAIN ANALYZE still shows: a sequential scan counts every row of a
 * table, so anyone may learn how many users, documents, keys or audit
 * entries the platform holds in all; never which tenant's, nor anything of
 * one tenant.
 */
set local lock_timeout = '5s';
set local statement_timeout = '60s';

-- 4. The context's number, read only by tenancy_auth ---------------------------------

set local role tenancy_owner;

create function core.current_context_nonce() returns bigint
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  return currval('core.context_nonce');
exception
  -- No context signed in this session yet: nothing can verify.
  when object_not_in_prerequisite_state then
    return null;
end
$$;
comment on function core.current_context_nonce() is
  'Number of the context this session signed last, or NULL; the only way to read it, so that nobody learns the global count';

create or replace function core.sign_context(
  p_tenant_id uuid,
  p_api_key_id uuid,
  p_user_id uuid,
  p_user_role text,
  p_permissions text[],
  p_request_id uuid,
  p_client_request_id text,
  p_operator_id uuid default null
) returns void
language plpgsql volatile
as $$
declare
  v_payload text;
begin
  if p_request_id is null then
    raise exception 'a request id is required' using errcode = 'null_value_not_allowed';
  end if;
  -- The separator can appear in no field: ids are uuids, roles and
  -- permissions come from checked columns, and a client's id is checked here.
  if p_client_request_id !~ '^[A-Za-z0-9._:-]{1,128}$' then
    raise exception 'a client request id is 1-128 characters from A-Z a-z 0-9 . _ : -'
      using errcode = 'invalid_parameter_value';
  end if;
  -- Under REPEATABLE READ or SERIALIZABLE the whole transaction reads one
  -- snapshot, possibly an old exported one: a revoked key would still pass.
  if current_setting('transaction_isolation') <> 'read committed' then
    raise exception 'a request context is signed only in a READ COMMITTED transaction'
      using errcode = 'invalid_transaction_state';
  end if;
  v_payload := concat_ws('|', 'v4', coalesce(p_tenant_id::text, ''), coalesce(p_api_key_id::text, ''),
    coalesce(p_user_id::text, ''), coalesce(p_user_role, ''), array_to_string(p_permissions, ','), p_request_id,
    coalesce(p_client_request_id, ''), (extract(epoch from clock_timestamp()) * 1000000)::bigint,
    coalesce(p_operator_id::text, ''));
  -- The number is signed, not shown: the MAC covers payload and number.
  perform set_config('app.context',
    v_payload || '|' || encode(core.context_mac(v_payload || '|' || nextval('core.context_nonce'),
                                                (select k.secret from core.context_signing_key k)), 'hex'),
    true);
end
$$;
comment on function core.sign_context(uuid, uuid, uuid, text, text[], uuid, text, uuid) is
  'Sets app.context, signed for this transaction and for the session''s next number; usable only by tenancy_auth, which may read the signing key and advance the numbers';

-- The same columns as before; what changes is what verifies (1, 4).
create or replace view core.request_context with (security_barrier = true) as
  select nullif(split_part(c.signed, '|', 2), '')::uuid as tenant_id,
         nullif(split_part(c.signed, '|', 3), '')::uuid as api_key_id,
         nullif(split_part(c.signed, '|', 4), '')::uuid as user_id,
         nullif(split_part(c.signed, '|', 5), '') as user_role,
         string_to_array(split_part(c.signed, '|', 6), ',') as permissions,
         split_part(c.signed, '|', 7)::uuid as request_id,
         nullif(split_part(c.signed, '|', 8), '') as client_request_id,
         nullif(split_part(c.signed, '|', 10), '')::uuid as operator_id
  from (select current_setting('app.context', true) as signed) c
  cross join core.context_signing_key k
  where case when c.signed is null or split_part(c.signed, '|', 1) <> 'v4' then false
             when encode(core.context_mac(left(c.signed, -65) || '|' || core.current_context_nonce(), k.secret),
                         'hex') is distinct from right(c.signed, 64) then false
             else split_part(c.signed, '|', 9)::bigint
                  < (extract(epoch from statement_timestamp()) * 1000000)::bigint end
    and current_setting('transaction_isolation') = 'read committed'
    and clock_timestamp() < transaction_timestamp() + interval '30 seconds';
comment on view core.request_context is
  'The verified context: one row when app.context carries a valid signature of this transaction and of the number this session signed last, was signed before the current statement, is less than 30 s old and the transaction is READ COMMITTED; else none';

-- 2, 3. Reads through functions --------------------------------------------------------

create function api.current_tenant() returns setof api.tenant
language sql stable security definer
set search_path = pg_catalog, pg_temp
as $$
  select * from api.tenant
$$;
comment on function api.current_tenant() is
  'The tenant of the current context: one row, or none without context';

create function api.current_tenant_config() returns setof api.tenant_config
language sql stable security definer
set search_path = pg_catalog, pg_temp
as $$
  select * from api.tenant_config
$$;
comment on function api.current_tenant_config() is
  'Configuration of the current tenant: one row, or none without context or config:read';

alter function api.update_tenant_config(jsonb) security definer;
alter function api.update_tenant_config(jsonb) set search_path = pg_catalog, pg_temp;
alter function api.list_audit_logs(integer, timestamptz, uuid, uuid, text, text, timestamptz, timestamptz)
  security definer;
alter function api.list_audit_logs(integer, timestamptz, uuid, uuid, text, text, timestamptz, timestamptz)
  set search_path = pg_catalog, pg_temp;

reset role;

-- 4. Nobody but tenancy_auth reads or advances the numbers; whoever verifies a
-- context may ask for the session's own.
revoke all on sequence core.context_nonce from app_user, uber_admin, tenancy_auditor, tenancy_writer;
revoke select on sequence core.context_nonce from tenancy_auth;
alter function core.current_context_nonce() owner to tenancy_auth;
do $$
declare
  v_role text;
begin
  for v_role in
    select r.rolname from pg_roles r
    where has_function_privilege(r.oid, 'core.context_mac(text, bytea)', 'execute')
      and r.rolname not in ('tenancy_owner', 'tenancy_auth') and not r.rolsuper and r.rolname !~ '^pg_'
  loop
    execute format('grant execute on function core.current_context_nonce() to %I', v_role);
  end loop;
end
$$;
grant execute on function core.current_context_nonce() to tenancy_owner;

-- 2, 3. app_user reads these only through the functions above.
revoke select on core.tenants, core.tenant_configs, api.tenant, api.tenant_config, api.audit_logs from app_user;
revoke select (tenant_id, name, domain, subscription_tier, created_at, updated_at, deactivated_at)
  on core.tenants from app_user;
revoke select (tenant_id, template_id, settings, created_at, updated_at), update (settings)
  on core.tenant_configs from app_user;

grant select (tenant_id, name, domain, subscription_tier, created_at, updated_at) on core.tenants to tenancy_writer;
grant select (tenant_id, template_id, settings, created_at, updated_at), update (settings)
  on core.tenant_configs to tenancy_writer;
grant select on api.tenant, api.tenant_config, api.audit_logs to tenancy_writer;
grant execute on function core.current_permissions(),
  core.page_upper_bound(timestamptz, uuid, timestamptz) to tenancy_writer;

alter function api.current_tenant() owner to tenancy_writer;
alter function api.current_tenant_config() owner to tenancy_writer;
alter function api.update_tenant_config(jsonb) owner to tenancy_writer;
alter function api.list_audit_logs(integer, timestamptz, uuid, uuid, text, text, timestamptz, timestamptz)
  owner to tenancy_writer;
grant execute on function api.current_tenant(), api.current_tenant_config() to app_user;

comment on role tenancy_writer is
  'Owns the SECURITY DEFINER functions through which app_user deletes rows, claims idempotency keys, and reads its tenant, configuration and trail; bound by row-level security; cannot log in';

-- migrate:down
set local lock_timeout = '5s';
set local statement_timeout = '60s';

comment on role tenancy_writer is
  'Owns the SECURITY DEFINER functions through which app_user deletes rows and claims idempotency keys; bound by row-level security; cannot log in';

alter function api.update_tenant_config(jsonb) owner to tenancy_owner;
alter function api.update_tenant_config(jsonb) security invoker;
alter function api.update_tenant_config(jsonb) reset search_path;
alter function api.list_audit_logs(integer, timestamptz, uuid, uuid, text, text, timestamptz, timestamptz)
  owner to tenancy_owner;
alter function api.list_audit_logs(integer, timestamptz, uuid, uuid, text, text, timestamptz, timestamptz)
  security invoker;
alter function api.list_audit_logs(integer, timestamptz, uuid, uuid, text, text, timestamptz, timestamptz)
  reset search_path;
drop function api.current_tenant();
drop function api.current_tenant_config();

revoke execute on function core.current_permissions(),
  core.page_upper_bound(timestamptz, uuid, timestamptz) from tenancy_writer;
revoke select on api.tenant, api.tenant_config, api.audit_logs from tenancy_writer;
revoke select (tenant_id, name, domain, subscription_tier, created_at, updated_at) on core.tenants from tenancy_writer;
revoke select (tenant_id, template_id, settings, created_at, updated_at), update (settings)
  on core.tenant_configs from tenancy_writer;

grant select on api.tenant, api.tenant_config, api.audit_logs to app_user;
grant select (tenant_id, name, domain, subscription_tier, created_at, updated_at, deactivated_at)
  on core.tenants to app_user;
grant select (tenant_id, template_id, settings, created_at, updated_at), update (settings)
  on core.tenant_configs to app_user;

set local role tenancy_owner;
create or replace view core.request_context with (security_barrier = true) as
  select nullif(split_part(c.signed, '|', 2), '')::uuid as tenant_id,
         nullif(split_part(c.signed, '|', 3), '')::uuid as api_key_id,
         nullif(split_part(c.signed, '|', 4), '')::uuid as user_id,
         nullif(split_part(c.signed, '|', 5), '') as user_role,
         string_to_array(split_part(c.signed, '|', 6), ',') as permissions,
         split_part(c.signed, '|', 7)::uuid as request_id,
         nullif(split_part(c.signed, '|', 8), '') as client_request_id,
         nullif(split_part(c.signed, '|', 11), '')::uuid as operator_id
  from (select current_setting('app.context', true) as signed) c
  cross join core.context_signing_key k
  where split_part(c.signed, '|', 1) = 'v3'
    and case when encode(core.context_mac(left(c.signed, -65), k.secret), 'hex') = right(c.signed, 64)
             then split_part(c.signed, '|', 9)::bigint = currval('core.context_nonce')
                  and split_part(c.signed, '|', 10)::bigint
                      < (extract(epoch from statement_timestamp()) * 1000000)::bigint
             else false end
    and clock_timestamp() < transaction_timestamp() + interval '30 seconds';
comment on view core.request_context is
  'The verified context: one row when app.context carries a valid signature of this transaction, is the latest this session signed, was signed before the current statement and is less than 30 s old; else none';

create or replace function core.sign_context(
  p_tenant_id uuid,
  p_api_key_id uuid,
  p_user_id uuid,
  p_user_role text,
  p_permissions text[],
  p_request_id uuid,
  p_client_request_id text,
  p_operator_id uuid default null
) returns void
language plpgsql volatile
as $$
declare
  v_payload text;
begin
  if p_request_id is null then
    raise exception 'a request id is required' using errcode = 'null_value_not_allowed';
  end if;
  -- The separator can appear in no field: ids are uuids, roles and
  -- permissions come from checked columns, and a client's id is checked here.
  if p_client_request_id !~ '^[A-Za-z0-9._:-]{1,128}$' then
    raise exception 'a client request id is 1-128 characters from A-Z a-z 0-9 . _ : -'
      using errcode = 'invalid_parameter_value';
  end if;
  -- Under REPEATABLE READ or SERIALIZABLE the whole transaction reads one
  -- snapshot, possibly an old exported one: a revoked key would still pass.
  if current_setting('transaction_isolation') <> 'read committed' then
    raise exception 'a request context is signed only in a READ COMMITTED transaction'
      using errcode = 'invalid_transaction_state';
  end if;
  v_payload := concat_ws('|', 'v3', coalesce(p_tenant_id::text, ''), coalesce(p_api_key_id::text, ''),
    coalesce(p_user_id::text, ''), coalesce(p_user_role, ''), array_to_string(p_permissions, ','), p_request_id,
    coalesce(p_client_request_id, ''), nextval('core.context_nonce'),
    (extract(epoch from clock_timestamp()) * 1000000)::bigint, coalesce(p_operator_id::text, ''));
  perform set_config('app.context',
    v_payload || '|' || encode(core.context_mac(v_payload, (select k.secret from core.context_signing_key k)), 'hex'),
    true);
end
$$;
comment on function core.sign_context(uuid, uuid, uuid, text, text[], uuid, text, uuid) is
  'Sets app.context, signed for this transaction and numbered; usable only by tenancy_auth, which may read the signing key and advance the numbers';
reset role;

drop function core.current_context_nonce();
grant select on sequence core.context_nonce to app_user, uber_admin, tenancy_auditor, tenancy_writer, tenancy_auth;
