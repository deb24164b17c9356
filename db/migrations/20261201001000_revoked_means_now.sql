-- migrate:up
/*
 * Why: a fourth attack, from the uber_admin and app_user side, found that
 * revocation did not stop whoever kept a transaction open, and three smaller
 * holes.
 *
 * 1. A context verifies for up to 30 s after it was signed. A revoked
 *    operator, inside such a window, could still create an operator (and so
 *    outlive any revocation by opening a transaction every 29 s), revoke
 *    one, or issue a tenant's key; a revoked API key could still revoke
 *    keys. Now core.current_operator_id() is NULL once the operator is
 *    revoked, the audit trigger refuses any uber_admin change whose operator
 *    is not active at that moment (READ COMMITTED reads the revocation the
 *    moment it commits), and api.revoke_api_key re-reads its caller's key,
 *    as api.create_api_key does. Other reads and writes of a revoked key's
 *    transaction stay allowed until it ends, as the README says.
 * 2. Operator revocations were serialised by an advisory lock, which any
 *    role may take and hold: app_user could stop every revocation. They now
 *    lock the active operators' rows, which only tenancy_auth may lock;
 *    bootstrapping relies on the unique index of active names, needs READ
 *    COMMITTED, and answers false when a concurrent bootstrap came first.
 * 3. uber_admin wrote core.platform_idempotency_keys directly, which has no
 *    audit trigger: it could plant a response another operator's retry
 *    would replay, or delete claims, with no operator and no entry. Its
 *    idempotency functions now run as tenancy_writer and uber_admin holds no
 *    privilege on the table. And an update by uber_admin that changed
 *    nothing audited (set name = name) skipped the operator check: the check
 *    now comes first.
 * 4. core.current_context_nonce() returned the session's number to anyone
 *    verifying a context, and that number is the global count. The whole
 *    MAC check now runs in core.context_verifies(signed), as tenancy_auth,
 *    which answers only yes or no; the view reads no table at all.
 */
set local lock_timeout = '5s';
set local statement_timeout = '60s';

-- 4. The signature is checked where the number and the key are ------------------------

set local role tenancy_owner;
create function core.context_verifies(p_signed text) returns boolean
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_nonce bigint;
begin
  begin
    v_nonce := currval('core.context_nonce');
  exception
    -- This session never signed: nothing it holds can verify.
    when object_not_in_prerequisite_state then
      return false;
  end;
  return encode(core.context_mac(left(p_signed, -65) || '|' || v_nonce,
                                 (select k.secret from core.context_signing_key k)), 'hex') = right(p_signed, 64);
end
$$;
comment on function core.context_verifies(text) is
  'Whether a context carries the MAC of this backend, transaction and the number this session signed last; only yes or no';

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
  where case when c.signed is null or split_part(c.signed, '|', 1) <> 'v4' then false
             when not core.context_verifies(c.signed) then false
             else split_part(c.signed, '|', 9)::bigint
                  < (extract(epoch from statement_timestamp()) * 1000000)::bigint end
    and current_setting('transaction_isolation') = 'read committed'
    and clock_timestamp() < transaction_timestamp() + interval '30 seconds';
comment on view core.request_context is
  'The verified context: one row when app.context carries a valid signature of this transaction and of the number this session signed last, was signed before the current statement, is less than 30 s old and the transaction is READ COMMITTED; else none';
reset role;

alter function core.context_verifies(text) owner to tenancy_auth;
do $$
declare
  v_role text;
begin
  for v_role in
    select r.rolname from pg_roles r
    where has_function_privilege(r.oid, 'core.current_context_nonce()', 'execute')
      and r.rolname <> 'tenancy_auth' and not r.rolsuper and r.rolname !~ '^pg_'
  loop
    execute format('grant execute on function core.context_verifies(text) to %I', v_role);
  end loop;
end
$$;
drop function core.current_context_nonce();

-- 1. Revoked means revoked now --------------------------------------------------------

create or replace function core.current_operator_id()
returns uuid
language plpgsql
stable parallel restricted
as $$
begin
  -- The context was signed up to 30 s ago; an operator revoked since is no
  -- operator any more.
  return (select c.operator_id from core.request_context c
          where exists (select from core.platform_operators o
                        where o.operator_id = c.operator_id and o.revoked_at is null));
end
$$;
create or replace function core.record_audit()
returns trigger
language plpgsql
security definer
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
  -- The platform role changes nothing, not even nothing, without a named
  -- operator who is still active now (an operator revoking itself is
  -- active until that change).
  if session_user = 'uber_admin' and not exists (
       select from core.platform_operators o
       where o.operator_id = v_operator_id
         and (o.revoked_at is null
              or (tg_table_name = 'platform_operators' and tg_op = 'UPDATE'
                  and (v_new ->> 'operator_id')::uuid = v_operator_id and v_old ->> 'revoked_at' is null))) then
    raise exception 'a platform change needs a named, active operator (platform.begin_request)'
      using errcode = 'PT401';
  end if;

  -- An update that changed nothing an auditor cares about leaves no entry.
  if tg_op = 'UPDATE' and cardinality(v_changed) = 0 then
    return null;
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
create or replace function api.revoke_api_key(p_key_id uuid)
returns setof api.api_keys
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_caller record;
  v_target record;
begin
  select c.tenant_id, c.permissions, c.user_role, c.api_key_id into v_caller from core.request_context c;
  if v_caller.tenant_id is null then
    return;
  end if;
  -- The context was signed up to 30 s ago; the key may have been revoked
  -- since, and a revoked key revokes nothing.
  if not exists (select from core.tenant_api_keys k
                 where k.tenant_id = v_caller.tenant_id and k.key_id = v_caller.api_key_id
                   and k.revoked_at is null and (k.expires_at is null or k.expires_at > now())) then
    raise exception 'unknown, revoked or expired API key' using errcode = 'PT401';
  end if;
  if not 'keys:write' = any (v_caller.permissions) then
    raise exception 'the API key lacks the permission keys:write' using errcode = 'PT403';
  end if;
  select k.permissions, u.role into v_target
  from core.tenant_api_keys k
  left join core.users u on u.tenant_id = k.tenant_id and u.user_id = k.user_id
  where k.tenant_id = v_caller.tenant_id and k.key_id = p_key_id;
  if not found then
    return;
  end if;
  if not core.effective_permissions(v_target.permissions, null) <@ v_caller.permissions then
    raise exception 'a key can only revoke keys whose permissions it holds itself' using errcode = 'PT403';
  end if;
  if core.role_rank(v_target.role) > core.rank_of_caller(v_caller.user_role, v_caller.permissions) then
    raise exception 'a key cannot revoke keys of a user whose role is above its own' using errcode = 'PT403';
  end if;
  perform core.revoke_keys(v_caller.tenant_id, array[p_key_id]);
  return query
    select k.key_id, k.tenant_id, k.key_prefix, k.name, k.permissions, k.user_id, k.expires_at, k.revoked_at,
           s.last_used_at, k.created_at, k.updated_at, k.issued_by_key_id
    from core.tenant_api_keys k
    left join core.api_key_usage s on s.tenant_id = k.tenant_id and s.key_id = k.key_id
    where k.tenant_id = v_caller.tenant_id and k.key_id = p_key_id;
end
$$;

-- 2. No advisory lock anyone could hold -------------------------------------------------

create or replace function platform.revoke_operator(p_operator_id uuid)
returns table (operator_id uuid, revoked_at timestamptz)
language plpgsql
security definer
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
  -- the last two: each locks every active operator's row first. (Row locks
  -- only tenancy_auth can take, where an advisory lock anyone can hold.)
  perform from core.platform_operators o where o.revoked_at is null for update;
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
create or replace function platform.bootstrap_operator(p_token_hash text)
returns boolean
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_operator_id uuid := gen_random_uuid();
begin
  -- Only READ COMMITTED sees every operator committed so far.
  if current_setting('transaction_isolation') <> 'read committed' then
    raise exception 'an operator is bootstrapped only in a READ COMMITTED transaction'
      using errcode = 'invalid_transaction_state';
  end if;
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
exception
  -- A concurrent bootstrap's operator, named "bootstrap" too, came first:
  -- the unique index on active names waits for it and then refuses this one.
  when unique_violation then
    return false;
end
$$;

-- 3. Platform idempotency keys only through functions --------------------------------------

create or replace function platform.claim_idempotency_key(p_idempotency_key text, p_request_hash text)
returns table (claimed boolean, request_hash text, response_status integer, response_body jsonb)
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
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
create or replace function platform.save_idempotent_response(p_idempotency_key text, p_status integer, p_body jsonb)
returns void
language sql
security definer
set search_path = pg_catalog, pg_temp
as $$
  update core.platform_idempotency_keys
  set response_status = p_status, response_body = p_body
  where operator_id = core.current_operator_id() and idempotency_key = p_idempotency_key
$$;

alter function platform.claim_idempotency_key(text, text) owner to tenancy_writer;
alter function platform.save_idempotent_response(text, integer, jsonb) owner to tenancy_writer;
revoke all on core.platform_idempotency_keys from uber_admin;
grant select, insert (operator_id, idempotency_key, request_hash),
  update (request_hash, response_status, response_body, created_at, expires_at), delete
  on core.platform_idempotency_keys to tenancy_writer;
grant select (operator_id, revoked_at) on core.platform_operators to tenancy_writer, tenancy_auditor;
grant execute on function core.current_operator_id() to tenancy_writer;

-- migrate:down
set local lock_timeout = '5s';
set local statement_timeout = '60s';

revoke execute on function core.current_operator_id() from tenancy_writer;
revoke select (operator_id, revoked_at) on core.platform_operators from tenancy_writer, tenancy_auditor;
revoke all on core.platform_idempotency_keys from tenancy_writer;
grant select (operator_id, idempotency_key, request_hash, response_status, response_body, created_at, expires_at),
  insert (operator_id, idempotency_key, request_hash),
  update (request_hash, response_status, response_body, created_at, expires_at), delete
  on core.platform_idempotency_keys to uber_admin;
alter function platform.claim_idempotency_key(text, text) owner to tenancy_owner;
alter function platform.save_idempotent_response(text, integer, jsonb) owner to tenancy_owner;
create or replace function platform.claim_idempotency_key(p_idempotency_key text, p_request_hash text)
returns table (claimed boolean, request_hash text, response_status integer, response_body jsonb)
language plpgsql
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
create or replace function platform.save_idempotent_response(p_idempotency_key text, p_status integer, p_body jsonb)
returns void
language sql
as $$
  update core.platform_idempotency_keys
  set response_status = p_status, response_body = p_body
  where operator_id = core.current_operator_id() and idempotency_key = p_idempotency_key
$$;
create or replace function platform.revoke_operator(p_operator_id uuid)
returns table (operator_id uuid, revoked_at timestamptz)
language plpgsql
security definer
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
create or replace function platform.bootstrap_operator(p_token_hash text)
returns boolean
language plpgsql
security definer
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
create or replace function core.current_operator_id()
returns uuid
language plpgsql
stable parallel restricted
as $$
begin
  return (select c.operator_id from core.request_context c);
end
$$;
create or replace function core.record_audit()
returns trigger
language plpgsql
security definer
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
create or replace function api.revoke_api_key(p_key_id uuid)
returns setof api.api_keys
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_caller record;
  v_target record;
begin
  select c.tenant_id, c.permissions, c.user_role into v_caller from core.request_context c;
  if v_caller.tenant_id is null then
    return;
  end if;
  if not 'keys:write' = any (v_caller.permissions) then
    raise exception 'the API key lacks the permission keys:write' using errcode = 'PT403';
  end if;
  select k.permissions, u.role into v_target
  from core.tenant_api_keys k
  left join core.users u on u.tenant_id = k.tenant_id and u.user_id = k.user_id
  where k.tenant_id = v_caller.tenant_id and k.key_id = p_key_id;
  if not found then
    return;
  end if;
  if not core.effective_permissions(v_target.permissions, null) <@ v_caller.permissions then
    raise exception 'a key can only revoke keys whose permissions it holds itself' using errcode = 'PT403';
  end if;
  if core.role_rank(v_target.role) > core.rank_of_caller(v_caller.user_role, v_caller.permissions) then
    raise exception 'a key cannot revoke keys of a user whose role is above its own' using errcode = 'PT403';
  end if;
  perform core.revoke_keys(v_caller.tenant_id, array[p_key_id]);
  return query
    select k.key_id, k.tenant_id, k.key_prefix, k.name, k.permissions, k.user_id, k.expires_at, k.revoked_at,
           s.last_used_at, k.created_at, k.updated_at, k.issued_by_key_id
    from core.tenant_api_keys k
    left join core.api_key_usage s on s.tenant_id = k.tenant_id and s.key_id = k.key_id
    where k.tenant_id = v_caller.tenant_id and k.key_id = p_key_id;
end
$$;

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
reset role;
alter function core.current_context_nonce() owner to tenancy_auth;
do $$
declare
  v_role text;
begin
  for v_role in
    select r.rolname from pg_roles r
    where has_function_privilege(r.oid, 'core.context_verifies(text)', 'execute')
      and r.rolname <> 'tenancy_auth' and not r.rolsuper and r.rolname !~ '^pg_'
  loop
    execute format('grant execute on function core.current_context_nonce() to %I', v_role);
  end loop;
end
$$;
drop function core.context_verifies(text);
