-- migrate:up
/*
 * Why: the Fintech Template promises api_key_max_lifetime_days: 90, and a
 * tenant created from it issued a key expiring in year 9999.
 *
 * Now a tenant's api_key_max_lifetime_days caps the expires_at of every key
 * issued for it, by its own keys or by an operator (both go through
 * core.issue_api_key): a key issued without expires_at expires at the cap,
 * and a later expires_at is refused (PT422, naming the limit); a key issued
 * by a key that expires sooner still expires with its issuer. A setting
 * that is not a whole number of days from 1 to 36,500 issues no key at all
 * rather than an unlimited one, and api.update_tenant_config refuses to
 * store one. Keys issued before a cap was set or lowered keep the expiry
 * they were issued with: nothing is extended, nothing is silently cut short;
 * an operator lists and revokes them (platform routes).
 */
set local lock_timeout = '5s';
set local statement_timeout = '60s';

set local role tenancy_owner;

create function core.capped_expiry(p_tenant_id uuid, p_expires_at timestamptz) returns timestamptz
language plpgsql stable
as $$
declare
  v_setting jsonb;
  v_cap timestamptz;
begin
  select c.settings -> 'api_key_max_lifetime_days' into v_setting
  from core.tenant_configs c where c.tenant_id = p_tenant_id;
  if v_setting is null or v_setting = 'null'::jsonb then
    return p_expires_at;
  end if;
  if jsonb_typeof(v_setting) <> 'number' or v_setting::text !~ '^[1-9][0-9]{0,4}$' or v_setting::text::int > 36500 then
    raise exception 'the tenant''s api_key_max_lifetime_days is not a whole number of days from 1 to 36,500; no key is issued until it is'
      using errcode = 'PT422';
  end if;
  v_cap := now() + make_interval(days => v_setting::text::int);
  if p_expires_at > v_cap then
    raise exception 'the key would outlive the tenant''s api_key_max_lifetime_days of % days; the latest expiry allowed is %',
      v_setting, to_char(v_cap at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
      using errcode = 'PT422';
  end if;
  return coalesce(p_expires_at, v_cap);
end
$$;
comment on function core.capped_expiry(uuid, timestamptz) is
  'The expiry a new key of this tenant gets: the one asked for, or the cap of api_key_max_lifetime_days when none was asked; refuses one beyond the cap';

create or replace function core.issue_api_key(p_tenant_id uuid, p_name text, p_permissions text[], p_user_id uuid,
  p_expires_at timestamptz, p_issued_by_key_id uuid)
returns table (key text, key_id uuid, tenant_id uuid, key_prefix text, name text, permissions text[], user_id uuid,
  expires_at timestamptz, revoked_at timestamptz, last_used_at timestamptz, created_at timestamptz,
  updated_at timestamptz, issued_by_key_id uuid)
language sql
as $$
  with new_key as (
    select 'tnk_' || rtrim(translate(encode(extensions.gen_random_bytes(32), 'base64'), '+/', '-_'), '=') as secret
  ), inserted as (
    insert into core.tenant_api_keys
      (tenant_id, key_hash, key_prefix, name, permissions, user_id, expires_at, issued_by_key_id)
    select p_tenant_id, encode(sha256(convert_to(n.secret, 'UTF8')), 'hex'), left(n.secret, 12),
           p_name, coalesce(p_permissions, '{}'), p_user_id, core.capped_expiry(p_tenant_id, p_expires_at),
           p_issued_by_key_id
    from new_key n
    returning key_id, tenant_id, key_prefix, name, permissions, user_id, expires_at, revoked_at,
              null::timestamptz as last_used_at, created_at, updated_at, issued_by_key_id
  )
  select n.secret, i.*
  from new_key n, inserted i
$$;

reset role;

-- The stored setting is checked too, whoever changes it through the API.
create or replace function api.update_tenant_config(p_settings_patch jsonb)
returns setof api.tenant_config
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_days jsonb := p_settings_patch -> 'api_key_max_lifetime_days';
begin
  if v_days is not null and v_days <> 'null'::jsonb
     and (jsonb_typeof(v_days) <> 'number' or v_days::text !~ '^[1-9][0-9]{0,4}$' or v_days::text::int > 36500) then
    raise exception 'api_key_max_lifetime_days is a whole number of days from 1 to 36,500' using errcode = 'PT422';
  end if;
  -- A JSON merge patch of the top level: keys set to null are removed;
  -- nulls nested inside a value are kept as sent.
  return query
    update core.tenant_configs c
    set settings = (c.settings || p_settings_patch)
      - array(select e.key from jsonb_each(p_settings_patch) as e where e.value = 'null'::jsonb)
    where c.tenant_id = (select core.current_tenant_id())
    returning c.tenant_id, c.template_id, c.settings, c.created_at, c.updated_at;
end
$$;

-- A key the tenant issues without expires_at takes its issuer's expiry, or
-- the cap when that comes sooner.
create or replace function api.create_api_key(p_name text, p_permissions text[], p_user_id uuid default null, p_expires_at timestamptz default null)
returns table (key text, key_id uuid, tenant_id uuid, key_prefix text, name text, permissions text[], user_id uuid, expires_at timestamptz, revoked_at timestamptz, last_used_at timestamptz, created_at timestamptz, updated_at timestamptz, issued_by_key_id uuid)
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
#variable_conflict use_column
declare
  v_caller record;
begin
  select k.tenant_id, k.key_id, c.permissions, c.user_role, k.user_id, k.expires_at
  into v_caller
  from core.request_context c
  join core.tenant_api_keys k on k.tenant_id = c.tenant_id and k.key_id = c.api_key_id
  where k.revoked_at is null and (k.expires_at is null or k.expires_at > now());
  if not found then
    raise exception 'unknown, revoked or expired API key' using errcode = 'PT401';
  end if;
  if not 'keys:write' = any (v_caller.permissions) then
    raise exception 'the API key lacks the permission keys:write' using errcode = 'PT403';
  end if;
  if not core.effective_permissions(coalesce(p_permissions, '{}'), null) <@ v_caller.permissions then
    raise exception 'a key can only grant permissions it holds itself' using errcode = 'PT403';
  end if;
  if v_caller.user_id is not null and coalesce(p_user_id, v_caller.user_id) <> v_caller.user_id then
    raise exception 'a key bound to a user can only issue keys bound to that user' using errcode = 'PT403';
  end if;
  if v_caller.user_id is null and p_user_id is not null and core.role_rank(
       (select u.role from core.users u where u.tenant_id = v_caller.tenant_id and u.user_id = p_user_id))
     > core.rank_of_caller(null, v_caller.permissions) then
    raise exception 'a key cannot issue keys for a user whose role is above its own' using errcode = 'PT403';
  end if;
  if v_caller.expires_at is not null and coalesce(p_expires_at, v_caller.expires_at) > v_caller.expires_at then
    raise exception 'a key that expires can only issue keys that expire no later' using errcode = 'PT403';
  end if;
  if p_expires_at is not null and p_expires_at <= now() then
    raise exception 'expires_at must be in the future' using errcode = 'check_violation';
  end if;
  return query
    select * from core.issue_api_key(v_caller.tenant_id, p_name, p_permissions,
      coalesce(p_user_id, v_caller.user_id),
      -- Asked for no expiry: its issuer's, or the tenant's cap if sooner.
      coalesce(p_expires_at, least(v_caller.expires_at, core.capped_expiry(v_caller.tenant_id, null))),
      v_caller.key_id);
end
$$;

grant execute on function core.capped_expiry(uuid, timestamptz) to tenancy_auth;
grant select (tenant_id, settings) on core.tenant_configs to tenancy_auth;

-- migrate:down
set local lock_timeout = '5s';
set local statement_timeout = '60s';

revoke select (tenant_id, settings) on core.tenant_configs from tenancy_auth;
create or replace function api.create_api_key(p_name text, p_permissions text[], p_user_id uuid default null, p_expires_at timestamptz default null)
returns table (key text, key_id uuid, tenant_id uuid, key_prefix text, name text, permissions text[], user_id uuid, expires_at timestamptz, revoked_at timestamptz, last_used_at timestamptz, created_at timestamptz, updated_at timestamptz, issued_by_key_id uuid)
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
#variable_conflict use_column
declare
  v_caller record;
begin
  select k.tenant_id, k.key_id, c.permissions, c.user_role, k.user_id, k.expires_at
  into v_caller
  from core.request_context c
  join core.tenant_api_keys k on k.tenant_id = c.tenant_id and k.key_id = c.api_key_id
  where k.revoked_at is null and (k.expires_at is null or k.expires_at > now());
  if not found then
    raise exception 'unknown, revoked or expired API key' using errcode = 'PT401';
  end if;
  if not 'keys:write' = any (v_caller.permissions) then
    raise exception 'the API key lacks the permission keys:write' using errcode = 'PT403';
  end if;
  if not core.effective_permissions(coalesce(p_permissions, '{}'), null) <@ v_caller.permissions then
    raise exception 'a key can only grant permissions it holds itself' using errcode = 'PT403';
  end if;
  if v_caller.user_id is not null and coalesce(p_user_id, v_caller.user_id) <> v_caller.user_id then
    raise exception 'a key bound to a user can only issue keys bound to that user' using errcode = 'PT403';
  end if;
  if v_caller.user_id is null and p_user_id is not null and core.role_rank(
       (select u.role from core.users u where u.tenant_id = v_caller.tenant_id and u.user_id = p_user_id))
     > core.rank_of_caller(null, v_caller.permissions) then
    raise exception 'a key cannot issue keys for a user whose role is above its own' using errcode = 'PT403';
  end if;
  if v_caller.expires_at is not null and coalesce(p_expires_at, v_caller.expires_at) > v_caller.expires_at then
    raise exception 'a key that expires can only issue keys that expire no later' using errcode = 'PT403';
  end if;
  if p_expires_at is not null and p_expires_at <= now() then
    raise exception 'expires_at must be in the future' using errcode = 'check_violation';
  end if;
  return query
    select * from core.issue_api_key(v_caller.tenant_id, p_name, p_permissions,
      coalesce(p_user_id, v_caller.user_id), coalesce(p_expires_at, v_caller.expires_at), v_caller.key_id);
end
$$;
drop function api.update_tenant_config(jsonb);
set local role tenancy_owner;
create function api.update_tenant_config(p_settings_patch jsonb) returns setof api.tenant_config
language sql
as $$
  -- A JSON merge patch of the top level: keys set to null are removed;
  -- nulls nested inside a value are kept as sent.
  update core.tenant_configs
  set settings = (settings || p_settings_patch)
    - array(select key from jsonb_each(p_settings_patch) where value = 'null'::jsonb)
  where tenant_id = (select core.current_tenant_id())
  returning tenant_id, template_id, settings, created_at, updated_at
$$;
comment on function api.update_tenant_config(jsonb) is
  'Merges a JSON object into the current tenant''s settings; a key set to null is removed';
reset role;
alter function api.update_tenant_config(jsonb) security definer;
alter function api.update_tenant_config(jsonb) set search_path = pg_catalog, pg_temp;
alter function api.update_tenant_config(jsonb) owner to tenancy_writer;
grant execute on function api.update_tenant_config(jsonb) to app_user;

set local role tenancy_owner;
create or replace function core.issue_api_key(p_tenant_id uuid, p_name text, p_permissions text[], p_user_id uuid,
  p_expires_at timestamptz, p_issued_by_key_id uuid)
returns table (key text, key_id uuid, tenant_id uuid, key_prefix text, name text, permissions text[], user_id uuid,
  expires_at timestamptz, revoked_at timestamptz, last_used_at timestamptz, created_at timestamptz,
  updated_at timestamptz, issued_by_key_id uuid)
language sql
as $$
  with new_key as (
    select 'tnk_' || rtrim(translate(encode(extensions.gen_random_bytes(32), 'base64'), '+/', '-_'), '=') as secret
  ), inserted as (
    insert into core.tenant_api_keys
      (tenant_id, key_hash, key_prefix, name, permissions, user_id, expires_at, issued_by_key_id)
    select p_tenant_id, encode(sha256(convert_to(n.secret, 'UTF8')), 'hex'), left(n.secret, 12),
           p_name, coalesce(p_permissions, '{}'), p_user_id, p_expires_at, p_issued_by_key_id
    from new_key n
    returning key_id, tenant_id, key_prefix, name, permissions, user_id, expires_at, revoked_at,
              null::timestamptz as last_used_at, created_at, updated_at, issued_by_key_id
  )
  select n.secret, i.*
  from new_key n, inserted i
$$;
drop function core.capped_expiry(uuid, timestamptz);
reset role;

