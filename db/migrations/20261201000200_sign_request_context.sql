-- migrate:up
/*
 * Why: the tenant that row-level security saw, and the actor the audit
 * trigger recorded, were plain session settings (app.tenant_id, app.user_id,
 * ...). Any app_user session could set them by hand, so the app_user password
 * alone opened every tenant and could put any actor into the trail.
 *
 * Now the context is one transaction-local setting, app.context, that only
 * the authentication functions can produce:
 *
 *   v1|tenant_id|api_key_id|user_id|user_role|permissions|request_id|client_request_id|mac
 *
 * mac is HMAC-SHA256, under a 256-bit key in core.context_signing_key that
 * only tenancy_owner and tenancy_auth can read, over the fields before it
 * followed by the backend's pid (4 bytes) and the transaction's start time
 * (8 bytes), both in network order (core.context_mac). So a context is valid
 * in the transaction that api.begin_request (or platform.begin_request)
 * signed it in and nowhere else: set by hand, copied from another
 * transaction, or altered in one character, it verifies as nothing. And it
 * verifies only for 30 seconds from the start of that transaction. The
 * bound matters because PostgreSQL gives every transaction of one
 * multi-statement simple-query message the same start time: within that
 * message a context copied to the session would verify again, after its key
 * was revoked, until the bound. (The service never sends such messages; its
 * transactions last a few seconds at most: statement_timeout is 5 s.)
 *
 * core.request_context is the only reader. It is a view owned by
 * tenancy_owner, deliberately not security_invoker: it reads the signing key
 * with its owner's rights and shows its caller one verified row, or no row.
 * Its output never depends on the key except through the MAC comparison.
 * A view rather than a function, because policies then evaluate it as one
 * InitPlan per statement at the cost of one HMAC (about 4 us), where a
 * SECURITY DEFINER or SQL function costs a call, and an SQL function with a
 * FROM clause is planned again for every statement.
 *
 * The request id in the context is assigned by the service (a UUID); what a
 * client sent as x-request-id travels beside it as client_request_id, so the
 * trail keeps both and trusts only the first.
 *
 * Also here, because they concern the same lookup: a key hash is unique
 * across all tenants, so the lookup finds exactly one key or none; and
 * api.create_api_key takes its caller from the verified context instead of a
 * key hash passed along.
 */
set local lock_timeout = '5s';
set local statement_timeout = '60s';
set local role tenancy_owner;

create table core.context_signing_key (
  only_row boolean primary key default true check (only_row),
  secret bytea not null check (octet_length(secret) = 32),
  created_at timestamptz not null default now()
);
comment on table core.context_signing_key is
  'The one HMAC key request contexts are signed with; readable by tenancy_owner and tenancy_auth only';
comment on column core.context_signing_key.only_row is 'Always true: the table holds one row';
comment on column core.context_signing_key.secret is
  '256 random bits; replacing them invalidates only the contexts of transactions in flight';
comment on column core.context_signing_key.created_at is 'When the key was generated';

-- The MAC construction, written once for the signer and the view: the
-- payload, then what binds it to this transaction on this backend.
-- Every name is qualified: PostgreSQL inlines this function into each query
-- that uses it and parses it with that query's search_path.
create function core.context_mac(p_payload text, p_secret bytea) returns bytea
language sql stable parallel restricted
as $$
  select extensions.hmac(
    pg_catalog.convert_to(p_payload, 'UTF8')
      operator(pg_catalog.||) pg_catalog.int4send(pg_catalog.pg_backend_pid())
      operator(pg_catalog.||) pg_catalog.timestamptz_send(pg_catalog.transaction_timestamp()),
    p_secret, 'sha256')
$$;
comment on function core.context_mac(text, bytea) is
  'HMAC-SHA256 of a context payload bound to the current backend and transaction start';

-- security_barrier: a caller's own conditions never run before the MAC check.
create view core.request_context with (security_barrier = true) as
  select nullif(split_part(c.signed, '|', 2), '')::uuid as tenant_id,
         nullif(split_part(c.signed, '|', 3), '')::uuid as api_key_id,
         nullif(split_part(c.signed, '|', 4), '')::uuid as user_id,
         nullif(split_part(c.signed, '|', 5), '') as user_role,
         string_to_array(split_part(c.signed, '|', 6), ',') as permissions,
         split_part(c.signed, '|', 7)::uuid as request_id,
         nullif(split_part(c.signed, '|', 8), '') as client_request_id
  from (select current_setting('app.context', true) as signed) c
  cross join core.context_signing_key k
  where split_part(c.signed, '|', 1) = 'v1'
    and encode(core.context_mac(left(c.signed, -65), k.secret), 'hex') = right(c.signed, 64)
    and clock_timestamp() < transaction_timestamp() + interval '30 seconds';
comment on view core.request_context is
  'The verified context of the current transaction: one row when app.context carries a valid signature, for 30 s from the transaction''s start; else none';

-- Writes the signed context; runs inside the definer functions below, as
-- tenancy_auth, the only other role that may read the key.
create function core.sign_context(
  p_tenant_id uuid,
  p_api_key_id uuid,
  p_user_id uuid,
  p_user_role text,
  p_permissions text[],
  p_request_id uuid,
  p_client_request_id text
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
  v_payload := concat_ws('|', 'v1', coalesce(p_tenant_id::text, ''), coalesce(p_api_key_id::text, ''),
    coalesce(p_user_id::text, ''), coalesce(p_user_role, ''), array_to_string(p_permissions, ','), p_request_id,
    coalesce(p_client_request_id, ''));
  perform set_config('app.context',
    v_payload || '|' || encode(core.context_mac(v_payload, (select k.secret from core.context_signing_key k)), 'hex'),
    true);
end
$$;
comment on function core.sign_context(uuid, uuid, uuid, text, text[], uuid, text) is
  'Sets app.context, signed for this transaction; usable only by tenancy_auth, which may read the signing key';

-- Every caller of the view runs core.context_mac and hmac as itself.
grant select on core.request_context to app_user, uber_admin, tenancy_auth, tenancy_auditor;
grant execute on function core.context_mac(text, bytea) to app_user, uber_admin, tenancy_auth, tenancy_auditor;
grant execute on function core.sign_context(uuid, uuid, uuid, text, text[], uuid, text) to tenancy_auth;

-- The tenant of the verified context for column defaults and functions
-- (policies read the view directly, below).
create or replace function core.current_tenant_id() returns uuid
language plpgsql stable parallel restricted
as $$
begin
  return (select c.tenant_id from core.request_context c);
end
$$;
comment on function core.current_tenant_id() is
  'Tenant of the verified request context; NULL without one, so policies fail closed';

-- Every policy reads the verified context itself: PostgreSQL evaluates the
-- scalar subquery once per statement (an InitPlan) as part of the query's own
-- plan. Through core.current_tenant_id() each statement would also pay a
-- PL/pgSQL call and an executor start for the query inside it.
alter policy select_own_tenant on core.tenants using (tenant_id = (select c.tenant_id from core.request_context c));
alter policy insert_own_tenant on core.tenants with check (tenant_id = (select c.tenant_id from core.request_context c));
alter policy update_own_tenant on core.tenants
  using (tenant_id = (select c.tenant_id from core.request_context c)) with check (tenant_id = (select c.tenant_id from core.request_context c));
alter policy delete_own_tenant on core.tenants using (tenant_id = (select c.tenant_id from core.request_context c));
alter policy select_own_tenant on core.audit_logs using (tenant_id = (select c.tenant_id from core.request_context c));
alter policy insert_own_tenant on core.audit_logs with check (tenant_id = (select c.tenant_id from core.request_context c));
alter policy select_own_tenant on core.tenant_configs using (tenant_id = (select c.tenant_id from core.request_context c));
alter policy insert_own_tenant on core.tenant_configs with check (tenant_id = (select c.tenant_id from core.request_context c));
alter policy update_own_tenant on core.tenant_configs
  using (tenant_id = (select c.tenant_id from core.request_context c)) with check (tenant_id = (select c.tenant_id from core.request_context c));
alter policy delete_own_tenant on core.tenant_configs using (tenant_id = (select c.tenant_id from core.request_context c));
alter policy select_own_tenant on core.users using (tenant_id = (select c.tenant_id from core.request_context c));
alter policy insert_own_tenant on core.users with check (tenant_id = (select c.tenant_id from core.request_context c));
alter policy update_own_tenant on core.users
  using (tenant_id = (select c.tenant_id from core.request_context c)) with check (tenant_id = (select c.tenant_id from core.request_context c));
alter policy delete_own_tenant on core.users using (tenant_id = (select c.tenant_id from core.request_context c));
alter policy select_own_tenant on core.documents using (tenant_id = (select c.tenant_id from core.request_context c));
alter policy insert_own_tenant on core.documents with check (tenant_id = (select c.tenant_id from core.request_context c));
alter policy update_own_tenant on core.documents
  using (tenant_id = (select c.tenant_id from core.request_context c)) with check (tenant_id = (select c.tenant_id from core.request_context c));
alter policy delete_own_tenant on core.documents using (tenant_id = (select c.tenant_id from core.request_context c));
alter policy select_own_tenant on core.tenant_api_keys using (tenant_id = (select c.tenant_id from core.request_context c));
alter policy insert_own_tenant on core.tenant_api_keys with check (tenant_id = (select c.tenant_id from core.request_context c));
alter policy update_own_tenant on core.tenant_api_keys
  using (tenant_id = (select c.tenant_id from core.request_context c)) with check (tenant_id = (select c.tenant_id from core.request_context c));
alter policy delete_own_tenant on core.tenant_api_keys using (tenant_id = (select c.tenant_id from core.request_context c));
alter policy select_own_tenant on core.idempotency_keys using (tenant_id = (select c.tenant_id from core.request_context c));
alter policy insert_own_tenant on core.idempotency_keys with check (tenant_id = (select c.tenant_id from core.request_context c));
alter policy update_own_tenant on core.idempotency_keys
  using (tenant_id = (select c.tenant_id from core.request_context c)) with check (tenant_id = (select c.tenant_id from core.request_context c));
alter policy delete_own_tenant on core.idempotency_keys using (tenant_id = (select c.tenant_id from core.request_context c));

drop function core.current_user_id();
drop function core.current_api_key_id();
drop function core.current_request_id();

-- Exactly one key per hash, whatever the tenant.
-- The table is small and written rarely: plain index builds and drops inside
-- the migration's transaction are brief and keep the migration atomic.
alter table core.tenant_api_keys drop constraint tenant_api_keys_tenant_id_key_hash_key;
-- squawk-ignore require-concurrent-index-deletion
drop index core.tenant_api_keys_key_hash_idx;
-- squawk-ignore require-concurrent-index-creation
create unique index tenant_api_keys_key_hash_key on core.tenant_api_keys (key_hash);

alter table core.audit_logs
  add column client_request_id text check (char_length(client_request_id) <= 200);
comment on column core.audit_logs.request_id is
  'Request id the service assigned (a UUID), from the verified context; the one to trust';
comment on column core.audit_logs.client_request_id is
  'x-request-id the client sent, if any; informational, never trusted';

create or replace view api.audit_logs with (security_invoker = true) as
  select log_id, tenant_id, user_id, api_key_id, action, resource_type, resource_id,
         details, request_id, "timestamp", client_request_id
  from core.audit_logs;
create or replace view platform.audit_logs with (security_invoker = true) as
  select log_id, tenant_id, user_id, api_key_id, action, resource_type, resource_id,
         details, request_id, "timestamp", client_request_id
  from core.audit_logs;

reset role;

-- Superuser from here: the key is generated with pgcrypto, and the definer
-- functions are handed to their roles.
insert into core.context_signing_key (secret) values (extensions.gen_random_bytes(32));
grant select on core.context_signing_key to tenancy_auth;
grant select (tenant_id, user_id, role) on core.users to tenancy_auth;
-- tenancy_owner too: forced row-level security makes its own statements
-- (a column default, a view it owns) check the context.
grant execute on function extensions.hmac(bytea, bytea, text)
  to app_user, uber_admin, tenancy_owner, tenancy_auth, tenancy_auditor;
grant insert (client_request_id) on core.audit_logs to tenancy_auditor;

drop function api.begin_request(text, text, text);
drop function api.create_api_key(text, text, text[], uuid, timestamptz);

-- The entry point of every tenant request. Looks up exactly one key by hash,
-- refuses unknown, revoked and expired keys and deactivated tenants (PT401),
-- checks the route's permission (PT403), then signs the transaction's context.
create function api.begin_request(
  p_key_hash text,
  p_permission text,
  p_request_id uuid,
  p_client_request_id text default null
) returns table (tenant_id uuid, key_id uuid, user_id uuid, permissions text[], last_used_at timestamptz)
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_key record;
begin
  -- key_hash is unique (tenant_api_keys_key_hash_key): one row or none.
  select k.tenant_id, k.key_id, k.user_id, u.role, k.permissions, k.last_used_at
  into v_key
  from core.tenant_api_keys k
  join core.tenants t on t.tenant_id = k.tenant_id
  left join core.users u on u.tenant_id = k.tenant_id and u.user_id = k.user_id
  where k.key_hash = p_key_hash
    and k.revoked_at is null
    and (k.expires_at is null or k.expires_at > now())
    and t.deactivated_at is null;
  if not found then
    raise exception 'unknown, revoked or expired API key' using errcode = 'PT401';
  end if;
  if p_permission is not null and not ('*' = any (v_key.permissions) or p_permission = any (v_key.permissions)) then
    raise exception 'the API key lacks the permission %', p_permission using errcode = 'PT403';
  end if;
  perform core.sign_context(v_key.tenant_id, v_key.key_id, v_key.user_id, v_key.role, v_key.permissions,
    p_request_id, p_client_request_id);
  return query select v_key.tenant_id, v_key.key_id, v_key.user_id, v_key.permissions, v_key.last_used_at;
end
$$;
comment on function api.begin_request(text, text, uuid, text) is
  'Authenticates a key hash, checks one permission and signs the transaction''s request context';

-- Platform requests carry no tenant and no key, but their request ids reach
-- the trail the same signed way.
create function platform.begin_request(p_request_id uuid, p_client_request_id text default null) returns void
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  perform core.sign_context(null, null, null, null, '{}', p_request_id, p_client_request_id);
end
$$;
comment on function platform.begin_request(uuid, text) is
  'Signs the request context of a platform request: its request ids, no tenant';

-- The caller is the key of the verified context, re-read so that its current
-- permissions, user and expiry apply. A key hands out no more than it holds:
-- no permission it lacks, no longer life, no other user.
create function api.create_api_key(
  p_name text,
  p_permissions text[],
  p_user_id uuid default null,
  p_expires_at timestamptz default null
) returns table (
  key text, key_id uuid, tenant_id uuid, key_prefix text, name text, permissions text[], user_id uuid,
  expires_at timestamptz, revoked_at timestamptz, last_used_at timestamptz, created_at timestamptz,
  updated_at timestamptz
)
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
#variable_conflict use_column
declare
  v_caller record;
begin
  select k.tenant_id, k.permissions, k.user_id, k.expires_at
  into v_caller
  from core.request_context c
  join core.tenant_api_keys k on k.tenant_id = c.tenant_id and k.key_id = c.api_key_id
  where k.revoked_at is null and (k.expires_at is null or k.expires_at > now());
  if not found then
    raise exception 'unknown, revoked or expired API key' using errcode = 'PT401';
  end if;
  if not ('*' = any (v_caller.permissions) or coalesce(p_permissions, '{}') <@ v_caller.permissions) then
    raise exception 'a key can only grant permissions it holds itself' using errcode = 'PT403';
  end if;
  if v_caller.user_id is not null and coalesce(p_user_id, v_caller.user_id) <> v_caller.user_id then
    raise exception 'a key bound to a user can only issue keys bound to that user' using errcode = 'PT403';
  end if;
  if v_caller.expires_at is not null and coalesce(p_expires_at, v_caller.expires_at) > v_caller.expires_at then
    raise exception 'a key that expires can only issue keys that expire no later' using errcode = 'PT403';
  end if;
  if p_expires_at is not null and p_expires_at <= now() then
    raise exception 'expires_at must be in the future' using errcode = 'check_violation';
  end if;
  return query
    select * from core.issue_api_key(v_caller.tenant_id, p_name, p_permissions,
      coalesce(p_user_id, v_caller.user_id), coalesce(p_expires_at, v_caller.expires_at));
end
$$;
comment on function api.create_api_key(text, text[], uuid, timestamptz) is
  'Issues a key for the calling key''s tenant with at most its permissions, life and user; returns the key once';

alter function api.begin_request(text, text, uuid, text) owner to tenancy_auth;
alter function platform.begin_request(uuid, text) owner to tenancy_auth;
alter function api.create_api_key(text, text[], uuid, timestamptz) owner to tenancy_auth;
grant execute on function api.begin_request(text, text, uuid, text), api.create_api_key(text, text[], uuid, timestamptz)
  to app_user;
grant execute on function platform.begin_request(uuid, text) to uber_admin;

-- TG_ARGV[0] names the column holding the row's id within its tenant. The
-- actor and the request come from the verified context only.
create or replace function core.record_audit() returns trigger
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_old jsonb := case when tg_op <> 'INSERT' then to_jsonb(old) end;
  v_new jsonb := case when tg_op <> 'DELETE' then to_jsonb(new) end;
  v_row jsonb := coalesce(v_new, v_old);
  v_not_audited constant text[] := array['key_hash', 'created_at', 'updated_at', 'last_used_at'];
  v_changed text[];
  v_context record;
begin
  select coalesce(array_agg(column_name order by column_name), '{}')
  into v_changed
  from jsonb_object_keys(v_row) as column_name
  where column_name <> all (v_not_audited)
    and (tg_op <> 'UPDATE' or v_old -> column_name is distinct from v_new -> column_name);

  -- An update that changed nothing an auditor cares about (say, only
  -- last_used_at) leaves no entry.
  if tg_op = 'UPDATE' and cardinality(v_changed) = 0 then
    return null;
  end if;

  -- No verified context (a migration, a DBA): the actor columns stay NULL.
  select c.user_id, c.api_key_id, c.request_id, c.client_request_id
  into v_context
  from core.request_context c;

  insert into core.audit_logs
    (tenant_id, user_id, api_key_id, action, resource_type, resource_id, details, request_id, client_request_id)
  values (
    (v_row ->> 'tenant_id')::uuid,
    v_context.user_id,
    v_context.api_key_id,
    lower(tg_op),
    tg_table_name,
    (v_row ->> tg_argv[0])::uuid,
    jsonb_build_object('changed', to_jsonb(v_changed), 'db_role', session_user)
      || case when v_old is null then '{}' else jsonb_build_object('old', (
           select coalesce(jsonb_object_agg(key, value), '{}') from jsonb_each(v_old) where key = any (v_changed))) end
      || case when v_new is null then '{}' else jsonb_build_object('new', (
           select coalesce(jsonb_object_agg(key, value), '{}') from jsonb_each(v_new) where key = any (v_changed))) end,
    v_context.request_id::text,
    v_context.client_request_id
  );
  return null;
end
$$;
comment on function core.record_audit() is
  'Trigger: writes one audit_logs row per changed row, actor and request taken from the verified request context';

-- migrate:down
set local lock_timeout = '5s';
set local statement_timeout = '60s';

drop function api.create_api_key(text, text[], uuid, timestamptz);
drop function platform.begin_request(uuid, text);
drop function api.begin_request(text, text, uuid, text);

set local role tenancy_owner;

create function core.current_user_id() returns uuid
language sql stable parallel safe
as $$ select nullif(current_setting('app.user_id', true), '')::uuid $$;
comment on function core.current_user_id() is 'Acting user from app.user_id, for the audit trail; NULL when unset';
create function core.current_api_key_id() returns uuid
language sql stable parallel safe
as $$ select nullif(current_setting('app.api_key_id', true), '')::uuid $$;
comment on function core.current_api_key_id() is 'API key of the current request from app.api_key_id, for the audit trail';
create function core.current_request_id() returns text
language sql stable parallel safe
as $$ select nullif(current_setting('app.request_id', true), '') $$;
comment on function core.current_request_id() is 'Request id of the current HTTP request from app.request_id, for the audit trail';

create or replace function core.current_tenant_id() returns uuid
language sql stable parallel safe
as $$ select nullif(current_setting('app.tenant_id', true), '')::uuid $$;
comment on function core.current_tenant_id() is
  'Tenant of the current transaction from app.tenant_id; NULL when unset or empty, so policies fail closed';

alter policy select_own_tenant on core.tenants using (tenant_id = (select core.current_tenant_id()));
alter policy insert_own_tenant on core.tenants with check (tenant_id = (select core.current_tenant_id()));
alter policy update_own_tenant on core.tenants
  using (tenant_id = (select core.current_tenant_id())) with check (tenant_id = (select core.current_tenant_id()));
alter policy delete_own_tenant on core.tenants using (tenant_id = (select core.current_tenant_id()));
alter policy select_own_tenant on core.audit_logs using (tenant_id = (select core.current_tenant_id()));
alter policy insert_own_tenant on core.audit_logs with check (tenant_id = (select core.current_tenant_id()));
alter policy select_own_tenant on core.tenant_configs using (tenant_id = (select core.current_tenant_id()));
alter policy insert_own_tenant on core.tenant_configs with check (tenant_id = (select core.current_tenant_id()));
alter policy update_own_tenant on core.tenant_configs
  using (tenant_id = (select core.current_tenant_id())) with check (tenant_id = (select core.current_tenant_id()));
alter policy delete_own_tenant on core.tenant_configs using (tenant_id = (select core.current_tenant_id()));
alter policy select_own_tenant on core.users using (tenant_id = (select core.current_tenant_id()));
alter policy insert_own_tenant on core.users with check (tenant_id = (select core.current_tenant_id()));
alter policy update_own_tenant on core.users
  using (tenant_id = (select core.current_tenant_id())) with check (tenant_id = (select core.current_tenant_id()));
alter policy delete_own_tenant on core.users using (tenant_id = (select core.current_tenant_id()));
alter policy select_own_tenant on core.documents using (tenant_id = (select core.current_tenant_id()));
alter policy insert_own_tenant on core.documents with check (tenant_id = (select core.current_tenant_id()));
alter policy update_own_tenant on core.documents
  using (tenant_id = (select core.current_tenant_id())) with check (tenant_id = (select core.current_tenant_id()));
alter policy delete_own_tenant on core.documents using (tenant_id = (select core.current_tenant_id()));
alter policy select_own_tenant on core.tenant_api_keys using (tenant_id = (select core.current_tenant_id()));
alter policy insert_own_tenant on core.tenant_api_keys with check (tenant_id = (select core.current_tenant_id()));
alter policy update_own_tenant on core.tenant_api_keys
  using (tenant_id = (select core.current_tenant_id())) with check (tenant_id = (select core.current_tenant_id()));
alter policy delete_own_tenant on core.tenant_api_keys using (tenant_id = (select core.current_tenant_id()));
alter policy select_own_tenant on core.idempotency_keys using (tenant_id = (select core.current_tenant_id()));
alter policy insert_own_tenant on core.idempotency_keys with check (tenant_id = (select core.current_tenant_id()));
alter policy update_own_tenant on core.idempotency_keys
  using (tenant_id = (select core.current_tenant_id())) with check (tenant_id = (select core.current_tenant_id()));
alter policy delete_own_tenant on core.idempotency_keys using (tenant_id = (select core.current_tenant_id()));

-- A view cannot lose a column in place; the list functions return its rows,
-- so they go and come back with it (the definitions of 0300 and 0900).
drop function api.list_audit_logs(integer, timestamptz, uuid, uuid, text, text, timestamptz, timestamptz);
drop function platform.list_audit_logs(integer, timestamptz, uuid, uuid);
drop view api.audit_logs;
drop view platform.audit_logs;
-- Undoing this migration is the point of dropping what it added.
-- squawk-ignore ban-drop-column
alter table core.audit_logs drop column client_request_id;
comment on column core.audit_logs.request_id is 'x-request-id of the HTTP request (app.request_id)';

create view api.audit_logs with (security_invoker = true) as
  select log_id, tenant_id, user_id, api_key_id, action, resource_type, resource_id,
         details, request_id, "timestamp"
  from core.audit_logs;
comment on view api.audit_logs is 'Audit trail of the current tenant';
grant select on api.audit_logs to app_user;

create function api.list_audit_logs(
  p_limit integer default 50,
  p_after_timestamp timestamptz default null,
  p_after_log_id uuid default null,
  p_user_id uuid default null,
  p_action text default null,
  p_resource_type text default null,
  p_since timestamptz default null,
  p_until timestamptz default null
) returns setof api.audit_logs
language plpgsql stable
set plan_cache_mode = force_generic_plan
as $$
declare
  v_below_at timestamptz;
  v_below_id uuid;
  v_since timestamptz := coalesce(p_since, '-infinity');
  v_limit integer := least(greatest(coalesce(p_limit, 50), 1), 100);
begin
  select bound_at, bound_id into v_below_at, v_below_id
  from core.page_upper_bound(p_after_timestamp, p_after_log_id, p_until);
  -- action and resource_type have no index; they filter the rows the scan reads.
  if p_user_id is null then
    return query
      select * from api.audit_logs a
      where (a."timestamp", a.log_id) < (v_below_at, v_below_id) and a."timestamp" >= v_since
        and (p_action is null or a.action = p_action)
        and (p_resource_type is null or a.resource_type = p_resource_type)
      order by a."timestamp" desc, a.log_id desc
      limit v_limit;
  else
    return query
      select * from api.audit_logs a
      where a.user_id = p_user_id
        and (a."timestamp", a.log_id) < (v_below_at, v_below_id) and a."timestamp" >= v_since
        and (p_action is null or a.action = p_action)
        and (p_resource_type is null or a.resource_type = p_resource_type)
      order by a."timestamp" desc, a.log_id desc
      limit v_limit;
  end if;
end
$$;
comment on function api.list_audit_logs(integer, timestamptz, uuid, uuid, text, text, timestamptz, timestamptz) is
  'Audit entries of the current tenant, newest first, keyset-paginated after ("timestamp", log_id); since inclusive, until exclusive';
grant execute on function api.list_audit_logs(integer, timestamptz, uuid, uuid, text, text, timestamptz, timestamptz)
  to app_user;

create view platform.audit_logs with (security_invoker = true) as
  select log_id, tenant_id, user_id, api_key_id, action, resource_type, resource_id,
         details, request_id, "timestamp"
  from core.audit_logs;
comment on view platform.audit_logs is 'Audit trail of every tenant, for platform operators';
grant select on platform.audit_logs to uber_admin;

create function platform.list_audit_logs(
  p_limit integer default 50,
  p_after_timestamp timestamptz default null,
  p_after_log_id uuid default null,
  p_tenant_id uuid default null
) returns setof platform.audit_logs
language sql stable
as $$
  select *
  from platform.audit_logs a
  where (p_after_timestamp is null or (a."timestamp", a.log_id) < (p_after_timestamp, p_after_log_id))
    and (p_tenant_id is null or a.tenant_id = p_tenant_id)
  order by a."timestamp" desc, a.log_id desc
  limit least(greatest(coalesce(p_limit, 50), 1), 100)
$$;
comment on function platform.list_audit_logs(integer, timestamptz, uuid, uuid) is
  'Audit entries across tenants (optionally one), newest first, keyset-paginated';
grant execute on function platform.list_audit_logs(integer, timestamptz, uuid, uuid) to uber_admin;

-- squawk-ignore require-concurrent-index-deletion
drop index core.tenant_api_keys_key_hash_key;
-- squawk-ignore require-concurrent-index-creation
create index tenant_api_keys_key_hash_idx on core.tenant_api_keys (key_hash);
-- squawk-ignore disallowed-unique-constraint, constraint-missing-not-valid
alter table core.tenant_api_keys add constraint tenant_api_keys_tenant_id_key_hash_key unique (tenant_id, key_hash);
reset role;

grant execute on function core.current_user_id(), core.current_api_key_id(), core.current_request_id()
  to app_user, uber_admin, tenancy_auditor;

create or replace function core.record_audit() returns trigger
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_old jsonb := case when tg_op <> 'INSERT' then to_jsonb(old) end;
  v_new jsonb := case when tg_op <> 'DELETE' then to_jsonb(new) end;
  v_row jsonb := coalesce(v_new, v_old);
  v_not_audited constant text[] := array['key_hash', 'created_at', 'updated_at', 'last_used_at'];
  v_changed text[];
begin
  select coalesce(array_agg(column_name order by column_name), '{}')
  into v_changed
  from jsonb_object_keys(v_row) as column_name
  where column_name <> all (v_not_audited)
    and (tg_op <> 'UPDATE' or v_old -> column_name is distinct from v_new -> column_name);

  -- An update that changed nothing an auditor cares about (say, only
  -- last_used_at) leaves no entry.
  if tg_op = 'UPDATE' and cardinality(v_changed) = 0 then
    return null;
  end if;

  insert into core.audit_logs
    (tenant_id, user_id, api_key_id, action, resource_type, resource_id, details, request_id)
  values (
    (v_row ->> 'tenant_id')::uuid,
    core.current_user_id(),
    core.current_api_key_id(),
    lower(tg_op),
    tg_table_name,
    (v_row ->> tg_argv[0])::uuid,
    jsonb_build_object('changed', to_jsonb(v_changed), 'db_role', session_user)
      || case when v_old is null then '{}' else jsonb_build_object('old', (
           select coalesce(jsonb_object_agg(key, value), '{}') from jsonb_each(v_old) where key = any (v_changed))) end
      || case when v_new is null then '{}' else jsonb_build_object('new', (
           select coalesce(jsonb_object_agg(key, value), '{}') from jsonb_each(v_new) where key = any (v_changed))) end,
    core.current_request_id()
  );
  return null;
end
$$;
comment on function core.record_audit() is
  'Trigger: writes one audit_logs row per changed row, actor and request taken from the session settings';

-- The SQL definitions of migration 0700, with the owner and search_path 20261201000100 gave them.
create function api.begin_request(p_key_hash text, p_permission text, p_request_id text)
returns table (tenant_id uuid, key_id uuid, user_id uuid, permissions text[], last_used_at timestamptz)
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_key record;
begin
  select k.tenant_id, k.key_id, k.user_id, k.permissions, k.last_used_at
  into v_key
  from core.tenant_api_keys k
  join core.tenants t on t.tenant_id = k.tenant_id
  where k.key_hash = p_key_hash
    and k.revoked_at is null
    and (k.expires_at is null or k.expires_at > now())
    and t.deactivated_at is null;
  if not found then
    raise exception 'unknown, revoked or expired API key' using errcode = 'PT401';
  end if;
  if p_permission is not null and not ('*' = any (v_key.permissions) or p_permission = any (v_key.permissions)) then
    raise exception 'the API key lacks the permission %', p_permission using errcode = 'PT403';
  end if;
  perform set_config('app.tenant_id', v_key.tenant_id::text, true),
          set_config('app.api_key_id', v_key.key_id::text, true),
          set_config('app.user_id', coalesce(v_key.user_id::text, ''), true),
          set_config('app.request_id', coalesce(p_request_id, ''), true);
  return query select v_key.tenant_id, v_key.key_id, v_key.user_id, v_key.permissions, v_key.last_used_at;
end
$$;
comment on function api.begin_request(text, text, text) is
  'Authenticates a key hash, checks one permission and sets app.tenant_id, app.api_key_id, app.user_id and app.request_id for the transaction';

create function api.create_api_key(
  p_caller_key_hash text,
  p_name text,
  p_permissions text[],
  p_user_id uuid default null,
  p_expires_at timestamptz default null
) returns table (
  key text, key_id uuid, tenant_id uuid, key_prefix text, name text, permissions text[], user_id uuid,
  expires_at timestamptz, revoked_at timestamptz, last_used_at timestamptz, created_at timestamptz,
  updated_at timestamptz
)
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
#variable_conflict use_column
declare
  v_caller record;
begin
  select k.tenant_id, k.permissions, k.user_id, k.expires_at
  into v_caller
  from core.tenant_api_keys k
  join core.tenants t on t.tenant_id = k.tenant_id
  where k.key_hash = p_caller_key_hash
    and k.revoked_at is null
    and (k.expires_at is null or k.expires_at > now())
    and t.deactivated_at is null;
  if not found or v_caller.tenant_id is distinct from core.current_tenant_id() then
    raise exception 'unknown, revoked or expired API key' using errcode = 'PT401';
  end if;
  if not ('*' = any (v_caller.permissions) or coalesce(p_permissions, '{}') <@ v_caller.permissions) then
    raise exception 'a key can only grant permissions it holds itself' using errcode = 'PT403';
  end if;
  if v_caller.user_id is not null and coalesce(p_user_id, v_caller.user_id) <> v_caller.user_id then
    raise exception 'a key bound to a user can only issue keys bound to that user' using errcode = 'PT403';
  end if;
  if v_caller.expires_at is not null and coalesce(p_expires_at, v_caller.expires_at) > v_caller.expires_at then
    raise exception 'a key that expires can only issue keys that expire no later' using errcode = 'PT403';
  end if;
  if p_expires_at is not null and p_expires_at <= now() then
    raise exception 'expires_at must be in the future' using errcode = 'check_violation';
  end if;
  return query
    select * from core.issue_api_key(v_caller.tenant_id, p_name, p_permissions,
      coalesce(p_user_id, v_caller.user_id), coalesce(p_expires_at, v_caller.expires_at));
end
$$;
comment on function api.create_api_key(text, text, text[], uuid, timestamptz) is
  'Issues a key for the calling key''s tenant with at most its permissions, life and user; returns the key once';

alter function api.begin_request(text, text, text) owner to tenancy_auth;
alter function api.create_api_key(text, text, text[], uuid, timestamptz) owner to tenancy_auth;
grant execute on function api.begin_request(text, text, text), api.create_api_key(text, text, text[], uuid, timestamptz)
  to app_user;

revoke select (tenant_id, user_id, role) on core.users from tenancy_auth;
revoke execute on function extensions.hmac(bytea, bytea, text)
  from app_user, uber_admin, tenancy_owner, tenancy_auth, tenancy_auditor;
drop function core.sign_context(uuid, uuid, uuid, text, text[], uuid, text);
drop view core.request_context;
drop function core.context_mac(text, bytea);
drop table core.context_signing_key;
