-- migrate:up
/*
 * Why: every platform action was recorded as db_role = uber_admin behind one
 * shared PLATFORM_ADMIN_TOKEN, so nobody could tell which operator did what,
 * and a leaked token could not be withdrawn from one person.
 *
 * Now each operator has a credential of their own (tnop_..., shown once,
 * stored as its SHA-256 only, revocable at once), and a platform request
 * begins with platform.begin_request(token hash), which signs the operator
 * into the request context next to the request ids. The audit trigger writes
 * the operator into every row it records (audit_logs.operator_id), and it
 * refuses any change made in an uber_admin session without one: holding the
 * uber_admin password alone no longer lets anyone change anything
 * unattributed.
 *
 * Bootstrap: while no operator is active, platform.bootstrap_operator creates
 * one named "bootstrap" whose credential is the token presented (the service
 * passes PLATFORM_ADMIN_TOKEN); its creation is attributed to itself (an
 * operator whose created_by is its own id, which nothing else can insert).
 * Whoever holds the uber_admin password can bootstrap too, while no operator
 * is active: that is what bootstrapping is. Once named operators exist,
 * revoke the bootstrap operator and the shared token is worth nothing. The
 * last active operator cannot be revoked, so the platform is never locked
 * out; a revoked credential stays revoked, bootstrap or not.
 *
 * Operators belong to no tenant. Their changes are recorded in the trail
 * of the reserved tenant "Platform" (00000000-0000-0000-0000-000000000000),
 * the platform's own: it stays deactivated (a check says so), so no key is
 * ever issued for it or authenticates in it, and platform.tenants does not
 * list it. A platform Idempotency-Key is now the operator's, as a tenant's is its
 * API key's: one operator's retry never replays another's response.
 */
set local lock_timeout = '5s';
set local statement_timeout = '60s';
-- The platform context and its signer are replaced, not altered: their
-- signatures change. The old ones belong to tenancy_auth and tenancy_owner.
drop function platform.begin_request(uuid, text, boolean);
drop function core.sign_context(uuid, uuid, uuid, text, text[], uuid, text);

set local role tenancy_owner;

create table core.platform_operators (
  operator_id uuid primary key default gen_random_uuid(),
  name text not null check (name ~ '^[A-Za-z0-9][A-Za-z0-9 ._@-]{0,99}$'),
  token_hash text not null unique check (token_hash ~ '^[0-9a-f]{64}$'),
  token_prefix text not null check (char_length(token_prefix) <= 16),
  created_by uuid references core.platform_operators (operator_id),
  created_at timestamptz not null default now(),
  revoked_at timestamptz,
  revoked_by uuid references core.platform_operators (operator_id)
);
comment on table core.platform_operators is
  'Named platform operators and the hashes of their credentials; every platform action is attributed to one';
comment on column core.platform_operators.operator_id is 'Identity of the operator, recorded in audit_logs.operator_id';
comment on column core.platform_operators.name is 'Who the operator is, e.g. an e-mail address; unique among active operators';
comment on column core.platform_operators.token_hash is 'Hex SHA-256 of the credential; the credential itself is never stored';
comment on column core.platform_operators.token_prefix is 'First characters of the credential, to recognise it';
comment on column core.platform_operators.created_by is 'Operator who created this one (the bootstrap operator created itself)';
comment on column core.platform_operators.created_at is 'When the operator was created';
comment on column core.platform_operators.revoked_at is 'When the credential stopped working, for good';
comment on column core.platform_operators.revoked_by is 'Operator who revoked it';
create unique index platform_operators_active_name_key on core.platform_operators (lower(name))
  where revoked_at is null;
create index platform_operators_created_by_idx on core.platform_operators (created_by);
create index platform_operators_revoked_by_idx on core.platform_operators (revoked_by);

-- The same guard as on API keys, naming what it guards.
create or replace function core.keep_revocation() returns trigger
language plpgsql volatile
as $$
begin
  if old.revoked_at is not null and new.revoked_at is distinct from old.revoked_at then
    raise exception 'a revoked % stays revoked', coalesce(tg_argv[0], 'API key')
      using errcode = 'insufficient_privilege';
  end if;
  return new;
end
$$;
create trigger keep_revocation before update of revoked_at on core.platform_operators
  for each row execute function core.keep_revocation('operator');
alter table core.platform_operators enable always trigger keep_revocation;
create trigger record_audit after insert or update or delete on core.platform_operators
  for each row execute function core.record_audit('operator_id');
alter table core.platform_operators enable always trigger record_audit;

-- The operator of the verified context --------------------------------------------

alter table core.audit_logs add column operator_id uuid;
alter table core.audit_logs alter column operator_id set statistics 0;
comment on column core.audit_logs.operator_id is
  'Platform operator who made the request (platform routes); NULL for tenant API keys and DBAs';

-- Field 11 is the operator; 'v3' so that no context signed in the old shape
-- is read in the new one.
create function core.sign_context(
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

create function core.current_operator_id() returns uuid
language plpgsql stable parallel restricted
as $$
begin
  return (select c.operator_id from core.request_context c);
end
$$;
comment on function core.current_operator_id() is
  'Platform operator of the verified request context; NULL outside platform requests';

-- Platform requests: authenticate the operator --------------------------------------

create function platform.begin_request(
  p_token_hash text,
  p_request_id uuid,
  p_client_request_id text default null,
  p_read_only boolean default false
) returns table (operator_id uuid, name text)
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
#variable_conflict use_column
declare
  v_operator record;
begin
  select o.operator_id, o.name into v_operator
  from core.platform_operators o
  where o.token_hash = p_token_hash and o.revoked_at is null;
  if not found then
    raise exception 'unknown or revoked operator credential' using errcode = 'PT401';
  end if;
  perform core.sign_context(null, null, null, null, '{}', p_request_id, p_client_request_id,
    v_operator.operator_id);
  if p_read_only then
    perform set_config('transaction_read_only', 'on', true);
  end if;
  return query select v_operator.operator_id, v_operator.name;
end
$$;
comment on function platform.begin_request(text, uuid, text, boolean) is
  'Authenticates an operator credential by its hash and signs the platform request''s context: operator and request ids, no tenant; read-only from here if asked';

-- Runs in a transaction of its own, before the request's.
create function platform.bootstrap_operator(p_token_hash text) returns boolean
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_operator_id uuid := gen_random_uuid();
begin
  -- One bootstrap at a time; the second finds the first's operator.
  perform pg_advisory_xact_lock(hashtextextended('tenancy.bootstrap_operator', 0));
  if exists (select from core.platform_operators o where o.revoked_at is null) then
    return false;
  end if;
  -- A credential once revoked stays revoked, bootstrap or not.
  if exists (select from core.platform_operators o where o.token_hash = p_token_hash) then
    return false;
  end if;
  insert into core.platform_operators (operator_id, name, token_hash, token_prefix, created_by)
  values (v_operator_id, 'bootstrap', p_token_hash, '', v_operator_id);
  return true;
end
$$;
comment on function platform.bootstrap_operator(text) is
  'While no operator is active, creates the operator "bootstrap" whose credential has this hash (PLATFORM_ADMIN_TOKEN); true when it did';

create function platform.create_operator(p_name text)
returns table (operator_id uuid, name text, token text, token_prefix text, created_by uuid, created_at timestamptz,
  revoked_at timestamptz, revoked_by uuid)
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
#variable_conflict use_column
declare
  v_caller uuid := core.current_operator_id();
  v_token text := 'tnop_' || rtrim(translate(encode(extensions.gen_random_bytes(32), 'base64'), '+/', '-_'), '=');
begin
  if v_caller is null then
    raise exception 'a platform change needs a named operator' using errcode = 'PT401';
  end if;
  return query
    insert into core.platform_operators as o (name, token_hash, token_prefix, created_by)
    values (p_name, encode(sha256(convert_to(v_token, 'UTF8')), 'hex'), left(v_token, 12), v_caller)
    returning o.operator_id, o.name, v_token, o.token_prefix, o.created_by, o.created_at, o.revoked_at, o.revoked_by;
end
$$;
comment on function platform.create_operator(text) is
  'Creates a named operator, by the operator of the context; returns its credential once, in the column token';

create function platform.revoke_operator(p_operator_id uuid)
returns table (operator_id uuid, revoked_at timestamptz)
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
#variable_conflict use_column
declare
  v_caller uuid := core.current_operator_id();
begin
  if v_caller is null then
    raise exception 'a platform change needs a named operator' using errcode = 'PT401';
  end if;
  -- Serialises revocations, so two operators cannot revoke each other as
  -- the last two.
  perform pg_advisory_xact_lock(hashtextextended('tenancy.bootstrap_operator', 0));
  if exists (select from core.platform_operators o where o.operator_id = p_operator_id and o.revoked_at is null)
     and not exists (select from core.platform_operators o
                     where o.revoked_at is null and o.operator_id <> p_operator_id) then
    raise exception 'the last active operator cannot be revoked; create another first' using errcode = 'PT409';
  end if;
  return query
    update core.platform_operators o
    set revoked_at = coalesce(o.revoked_at, now()), revoked_by = coalesce(o.revoked_by, v_caller)
    where o.operator_id = p_operator_id
    returning o.operator_id, o.revoked_at;
end
$$;
comment on function platform.revoke_operator(uuid) is
  'Revokes an operator''s credential at once; revoking twice keeps the first time; no row when unknown';

-- The platform's own tenant, for its trail only.
-- core.tenants holds a row per tenant: the check's scan is brief.
-- squawk-ignore constraint-missing-not-valid
alter table core.tenants add constraint tenants_platform_stays_deactivated
  check (tenant_id <> '00000000-0000-0000-0000-000000000000' or deactivated_at is not null);
create or replace view platform.tenants with (security_invoker = true) as
  select tenant_id, name, domain, subscription_tier, deactivated_at, created_at, updated_at
  from core.tenants
  where tenant_id <> '00000000-0000-0000-0000-000000000000';

create view platform.operators with (security_invoker = true) as
  select operator_id, name, token_prefix, created_by, created_at, revoked_at, revoked_by
  from core.platform_operators;
comment on view platform.operators is 'Platform operators, without their credentials'' hashes';

-- The trail names the operator ------------------------------------------------------

create or replace view api.audit_logs with (security_invoker = false) as
  select a.log_id, a.tenant_id, a.user_id, a.api_key_id, a.action, a.resource_type, a.resource_id,
         case when a.resource_type = 'tenants'
                or (case a.resource_type
                      when 'users' then 'users:read'
                      when 'documents' then 'documents:read'
                      when 'tenant_api_keys' then 'keys:read'
                      when 'tenant_configs' then 'config:read'
                    end) = any (coalesce((select core.current_permissions()), '{}'))
              then a.details
              else a.details - 'old' - 'new' end as details,
         a.request_id, a."timestamp", a.client_request_id, a.operator_id
  from core.audit_logs a;

create or replace view platform.audit_logs with (security_invoker = true) as
  select log_id, tenant_id, user_id, api_key_id, action, resource_type, resource_id,
         details, request_id, "timestamp", client_request_id, operator_id
  from core.audit_logs;

-- A platform Idempotency-Key is its operator's ----------------------------------------

-- What was stored belonged to no operator; a stored response lives 24 hours.
delete from core.platform_idempotency_keys;
alter table core.platform_idempotency_keys drop constraint platform_idempotency_keys_pkey;
-- The table was emptied just above: the new key and column cost no scan.
-- squawk-ignore adding-required-field, adding-foreign-key-constraint
alter table core.platform_idempotency_keys add column operator_id uuid not null references core.platform_operators;
-- squawk-ignore constraint-missing-not-valid, adding-serial-primary-key-field
alter table core.platform_idempotency_keys add primary key (operator_id, idempotency_key);
comment on column core.platform_idempotency_keys.operator_id is 'Operator who sent the request; keys are per operator';

create or replace function platform.claim_idempotency_key(p_idempotency_key text, p_request_hash text)
returns table (claimed boolean, request_hash text, response_status integer, response_body jsonb)
language plpgsql volatile
as $$
declare
  v_operator_id uuid := core.current_operator_id();
begin
  if v_operator_id is null then
    raise exception 'a platform change needs a named operator' using errcode = 'PT401';
  end if;
  delete from core.platform_idempotency_keys k
  where k.expires_at < now() and (k.operator_id, k.idempotency_key) in (
      select e.operator_id, e.idempotency_key from core.platform_idempotency_keys e
      where e.expires_at < now() and (e.operator_id, e.idempotency_key) <> (v_operator_id, p_idempotency_key)
      limit 10);
  return query
    insert into core.platform_idempotency_keys as k (operator_id, idempotency_key, request_hash)
    values (v_operator_id, p_idempotency_key, p_request_hash)
    on conflict (operator_id, idempotency_key) do update
      set request_hash = excluded.request_hash, response_status = null, response_body = null,
          created_at = now(), expires_at = now() + interval '24 hours'
      where k.expires_at < now()
    returning true, k.request_hash, k.response_status, k.response_body;
  if not found then
    return query
      select false, k.request_hash, k.response_status, k.response_body
      from core.platform_idempotency_keys k
      where k.operator_id = v_operator_id and k.idempotency_key = p_idempotency_key;
  end if;
end
$$;
comment on function platform.claim_idempotency_key(text, text) is
  'Claims an Idempotency-Key for the operator''s platform request (claimed = true), or returns the stored request hash and response';

create or replace function platform.save_idempotent_response(p_idempotency_key text, p_status integer, p_body jsonb)
returns void
language sql volatile
as $$
  update core.platform_idempotency_keys
  set response_status = p_status, response_body = p_body
  where operator_id = core.current_operator_id() and idempotency_key = p_idempotency_key
$$;

reset role;

-- Superuser from here: the platform's tenant (forced row-level security would
-- hide it from the owner), the audit trigger (tenancy_auditor's), the
-- definer functions handed to their roles, grants.
insert into core.tenants (tenant_id, name, deactivated_at)
values ('00000000-0000-0000-0000-000000000000', 'Platform', now());
-- TG_ARGV[0] names the column holding the row's id. The actor and the
-- request come from the verified context only. A row of no tenant (an
-- operator) goes to the platform's own trail, the Platform tenant's.
create or replace function core.record_audit() returns trigger
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_old jsonb := case when tg_op <> 'INSERT' then to_jsonb(old) end;
  v_new jsonb := case when tg_op <> 'DELETE' then to_jsonb(new) end;
  v_row jsonb := coalesce(v_new, v_old);
  v_not_audited constant text[] := array['key_hash', 'token_hash', 'created_at', 'updated_at', 'last_used_at'];
  v_changed text[];
  v_context record;
  v_operator_id uuid;
begin
  select coalesce(array_agg(column_name order by column_name), '{}')
  into v_changed
  from jsonb_object_keys(v_row) as column_name
  where column_name <> all (v_not_audited)
    and (tg_op <> 'UPDATE' or v_old -> column_name is distinct from v_new -> column_name);

  -- An update that changed nothing an auditor cares about leaves no entry.
  if tg_op = 'UPDATE' and cardinality(v_changed) = 0 then
    return null;
  end if;

  -- No verified context (a migration, a DBA): the actor columns stay NULL.
  select c.tenant_id, c.user_id, c.api_key_id, c.request_id, c.client_request_id, c.operator_id
  into v_context
  from core.request_context c;

  -- The service's role changes a tenant's rows only under that tenant's
  -- context, so every change it makes has an actor.
  if session_user = 'app_user' and v_context.tenant_id is distinct from (v_row ->> 'tenant_id')::uuid then
    raise exception 'a change through app_user needs the verified request context of the row''s tenant'
      using errcode = 'insufficient_privilege';
  end if;

  -- The bootstrap operator, the one that created itself, is its own actor.
  v_operator_id := coalesce(v_context.operator_id,
    case when tg_table_name = 'platform_operators' and tg_op = 'INSERT'
              and v_new ->> 'created_by' = v_new ->> 'operator_id'
         then (v_new ->> 'operator_id')::uuid end);
  -- The platform role changes nothing without a named operator.
  if session_user = 'uber_admin' and v_operator_id is null then
    raise exception 'a platform change needs a named operator (platform.begin_request)'
      using errcode = 'PT401';
  end if;

  insert into core.audit_logs
    (tenant_id, user_id, api_key_id, operator_id, action, resource_type, resource_id, details, request_id,
     client_request_id)
  values (
    coalesce((v_row ->> 'tenant_id')::uuid, '00000000-0000-0000-0000-000000000000'),
    v_context.user_id,
    v_context.api_key_id,
    v_operator_id,
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

alter function platform.begin_request(text, uuid, text, boolean) owner to tenancy_auth;
alter function platform.bootstrap_operator(text) owner to tenancy_auth;
alter function platform.create_operator(text) owner to tenancy_auth;
alter function platform.revoke_operator(uuid) owner to tenancy_auth;

grant execute on function core.sign_context(uuid, uuid, uuid, text, text[], uuid, text, uuid) to tenancy_auth;
grant execute on function core.current_operator_id()
  to app_user, uber_admin, tenancy_owner, tenancy_auth, tenancy_auditor, tenancy_writer;
grant select (operator_id, name, token_hash, revoked_at), insert (operator_id, name, token_hash, token_prefix, created_by),
  update (revoked_at, revoked_by) on core.platform_operators to tenancy_auth;
grant select (token_prefix, created_by, created_at, revoked_by) on core.platform_operators to tenancy_auth;
grant execute on function extensions.gen_random_bytes(integer) to tenancy_auth;
grant select (operator_id, name, token_prefix, created_by, created_at, revoked_at, revoked_by)
  on core.platform_operators to uber_admin;
grant select on platform.operators to uber_admin;
grant execute on function platform.begin_request(text, uuid, text, boolean), platform.bootstrap_operator(text),
  platform.create_operator(text), platform.revoke_operator(uuid) to uber_admin;
grant insert (operator_id) on core.audit_logs to tenancy_auditor;
grant select (operator_id), insert (operator_id) on core.platform_idempotency_keys to uber_admin;


-- migrate:down
set local lock_timeout = '5s';
set local statement_timeout = '60s';

-- Platform Idempotency-Keys, as 20261201000400 left them.
delete from core.platform_idempotency_keys;
alter table core.platform_idempotency_keys drop constraint platform_idempotency_keys_pkey;
-- Undoing this migration is the point of dropping what it added.
-- squawk-ignore ban-drop-column
alter table core.platform_idempotency_keys drop column operator_id;
-- squawk-ignore constraint-missing-not-valid, adding-serial-primary-key-field
alter table core.platform_idempotency_keys add primary key (idempotency_key);

set local role tenancy_owner;
create or replace function platform.claim_idempotency_key(p_idempotency_key text, p_request_hash text)
returns table (claimed boolean, request_hash text, response_status integer, response_body jsonb)
language plpgsql volatile
as $$
begin
  delete from core.platform_idempotency_keys k
  where k.expires_at < now() and k.idempotency_key <> p_idempotency_key
    and k.idempotency_key in (
      select e.idempotency_key from core.platform_idempotency_keys e where e.expires_at < now() limit 10);
  return query
    insert into core.platform_idempotency_keys as k (idempotency_key, request_hash)
    values (p_idempotency_key, p_request_hash)
    on conflict (idempotency_key) do update
      set request_hash = excluded.request_hash, response_status = null, response_body = null,
          created_at = now(), expires_at = now() + interval '24 hours'
      where k.expires_at < now()
    returning true, k.request_hash, k.response_status, k.response_body;
  if not found then
    return query
      select false, k.request_hash, k.response_status, k.response_body
      from core.platform_idempotency_keys k where k.idempotency_key = p_idempotency_key;
  end if;
end
$$;
comment on function platform.claim_idempotency_key(text, text) is
  'Claims an Idempotency-Key for a platform request (claimed = true), or returns the stored request hash and response';
create or replace function platform.save_idempotent_response(p_idempotency_key text, p_status integer, p_body jsonb)
returns void
language sql volatile
as $$
  update core.platform_idempotency_keys
  set response_status = p_status, response_body = p_body
  where idempotency_key = p_idempotency_key
$$;

-- The trail's views without the operator, and the list functions that
-- return their rows.
drop view api.audit_logs cascade;
create view api.audit_logs with (security_invoker = false) as
  select a.log_id, a.tenant_id, a.user_id, a.api_key_id, a.action, a.resource_type, a.resource_id,
         case when a.resource_type = 'tenants'
                or (case a.resource_type
                      when 'users' then 'users:read'
                      when 'documents' then 'documents:read'
                      when 'tenant_api_keys' then 'keys:read'
                      when 'tenant_configs' then 'config:read'
                    end) = any (coalesce((select core.current_permissions()), '{}'))
              then a.details
              else a.details - 'old' - 'new' end as details,
         a.request_id, a."timestamp", a.client_request_id
  from core.audit_logs a;
comment on view api.audit_logs is
  'Audit trail of the current tenant; old and new values only for resource types the key may read. Runs as tenancy_owner, whom forced row-level security binds';
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
set enable_sort = off
set enable_bitmapscan = off
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

drop view platform.audit_logs cascade;
create view platform.audit_logs with (security_invoker = true) as
  select log_id, tenant_id, user_id, api_key_id, action, resource_type, resource_id,
         details, request_id, "timestamp", client_request_id
  from core.audit_logs;
comment on view platform.audit_logs is 'Audit trail of every tenant, for platform operators';
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

drop view platform.operators;
drop function platform.revoke_operator(uuid);
drop function platform.create_operator(text);
drop function platform.bootstrap_operator(text);
drop function core.current_operator_id();
reset role;

-- The platform context and the signer as 20261201000600 left them. A view
-- loses a column only by being dropped, and every policy depends on this
-- one: they are kept as they are (from the catalog) and re-created, with the
-- view's grants.
drop function platform.begin_request(text, uuid, text, boolean);
drop function core.sign_context(uuid, uuid, uuid, text, text[], uuid, text, uuid);
do $$
declare
  v_policies jsonb;
  v_readers text;
  v_policy jsonb;
begin
  select jsonb_agg(to_jsonb(p)) into v_policies
  from pg_policies p
  join pg_policy pp on pp.polname = p.policyname and pp.polrelid = format('%I.%I', p.schemaname, p.tablename)::regclass
  where exists (select from pg_depend d
                where d.classid = 'pg_policy'::regclass and d.objid = pp.oid
                  and d.refobjid = 'core.request_context'::regclass);
  select string_agg(distinct quote_ident(r.rolname), ', ') into v_readers
  from pg_class c cross join aclexplode(c.relacl) a join pg_roles r on r.oid = a.grantee
  where c.oid = 'core.request_context'::regclass and a.privilege_type = 'SELECT' and r.rolname <> 'tenancy_owner';

  drop view core.request_context cascade;
  set local role tenancy_owner;
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
    where split_part(c.signed, '|', 1) = 'v2'
      and case when encode(core.context_mac(left(c.signed, -65), k.secret), 'hex') = right(c.signed, 64)
               then split_part(c.signed, '|', 9)::bigint = currval('core.context_nonce')
                    and split_part(c.signed, '|', 10)::bigint
                        < (extract(epoch from statement_timestamp()) * 1000000)::bigint
               else false end
      and clock_timestamp() < transaction_timestamp() + interval '30 seconds';
  comment on view core.request_context is
    'The verified context: one row when app.context carries a valid signature of this transaction, is the latest this session signed, was signed before the current statement and is less than 30 s old; else none';
  reset role;
  execute format('grant select on core.request_context to %s', v_readers);
  for v_policy in select * from jsonb_array_elements(v_policies) loop
    execute format('create policy %I on %I.%I as %s for %s to %s', v_policy ->> 'policyname',
        v_policy ->> 'schemaname', v_policy ->> 'tablename', v_policy ->> 'permissive', v_policy ->> 'cmd',
        (select string_agg(quote_ident(r), ', ') from jsonb_array_elements_text(v_policy -> 'roles') r))
      || coalesce(' using (' || (v_policy ->> 'qual') || ')', '')
      || coalesce(' with check (' || (v_policy ->> 'with_check') || ')', '');
  end loop;
end
$$;

set local role tenancy_owner;
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
  -- Under REPEATABLE READ or SERIALIZABLE the whole transaction reads one
  -- snapshot, possibly an old exported one: a revoked key would still pass.
  if current_setting('transaction_isolation') <> 'read committed' then
    raise exception 'a request context is signed only in a READ COMMITTED transaction'
      using errcode = 'invalid_transaction_state';
  end if;
  v_payload := concat_ws('|', 'v2', coalesce(p_tenant_id::text, ''), coalesce(p_api_key_id::text, ''),
    coalesce(p_user_id::text, ''), coalesce(p_user_role, ''), array_to_string(p_permissions, ','), p_request_id,
    coalesce(p_client_request_id, ''), nextval('core.context_nonce'),
    (extract(epoch from clock_timestamp()) * 1000000)::bigint);
  perform set_config('app.context',
    v_payload || '|' || encode(core.context_mac(v_payload, (select k.secret from core.context_signing_key k)), 'hex'),
    true);
end
$$;
comment on function core.sign_context(uuid, uuid, uuid, text, text[], uuid, text) is
  'Sets app.context, signed for this transaction and numbered; usable only by tenancy_auth, which may read the signing key and advance the numbers';
create function platform.begin_request(
  p_request_id uuid,
  p_client_request_id text default null,
  p_read_only boolean default false
) returns void
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  perform core.sign_context(null, null, null, null, '{}', p_request_id, p_client_request_id);
  if p_read_only then
    perform set_config('transaction_read_only', 'on', true);
  end if;
end
$$;
comment on function platform.begin_request(uuid, text, boolean) is
  'Signs the request context of a platform request: its request ids, no tenant; read-only from here if asked';
create or replace function core.keep_revocation() returns trigger
language plpgsql volatile
as $$
begin
  if old.revoked_at is not null and new.revoked_at is distinct from old.revoked_at then
    raise exception 'a revoked API key stays revoked' using errcode = 'insufficient_privilege';
  end if;
  return new;
end
$$;
reset role;
alter function platform.begin_request(uuid, text, boolean) owner to tenancy_auth;
grant execute on function core.sign_context(uuid, uuid, uuid, text, text[], uuid, text) to tenancy_auth;
grant execute on function platform.begin_request(uuid, text, boolean) to uber_admin;
grant execute on function api.list_audit_logs(integer, timestamptz, uuid, uuid, text, text, timestamptz, timestamptz)
  to app_user;
grant select on api.audit_logs to app_user;
grant select on platform.audit_logs to uber_admin;
grant execute on function platform.list_audit_logs(integer, timestamptz, uuid, uuid) to uber_admin;

-- The trigger as 20261201000600 left it.
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

  -- An update that changed nothing an auditor cares about leaves no entry.
  if tg_op = 'UPDATE' and cardinality(v_changed) = 0 then
    return null;
  end if;

  -- No verified context (a migration, a DBA): the actor columns stay NULL.
  select c.tenant_id, c.user_id, c.api_key_id, c.request_id, c.client_request_id
  into v_context
  from core.request_context c;

  -- The service's role changes a tenant's rows only under that tenant's
  -- context, so every change it makes has an actor.
  if session_user = 'app_user' and v_context.tenant_id is distinct from (v_row ->> 'tenant_id')::uuid then
    raise exception 'a change through app_user needs the verified request context of the row''s tenant'
      using errcode = 'insufficient_privilege';
  end if;

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

-- The platform's own trail and tenant go with its operators.
alter table core.audit_logs disable trigger reject_update_delete;
delete from core.audit_logs where tenant_id = '00000000-0000-0000-0000-000000000000';
alter table core.audit_logs enable always trigger reject_update_delete;
alter table core.tenants disable trigger record_audit;
delete from core.tenants where tenant_id = '00000000-0000-0000-0000-000000000000';
alter table core.tenants enable always trigger record_audit;
alter table core.tenants drop constraint tenants_platform_stays_deactivated;
set local role tenancy_owner;
create or replace view platform.tenants with (security_invoker = true) as
  select tenant_id, name, domain, subscription_tier, deactivated_at, created_at, updated_at
  from core.tenants;
reset role;
-- Undoing this migration is the point of dropping what it added.
-- squawk-ignore ban-drop-column
alter table core.audit_logs drop column operator_id;
drop table core.platform_operators;
