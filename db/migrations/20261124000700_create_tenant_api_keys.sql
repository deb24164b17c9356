-- migrate:up
/*
 * Why: API keys are how HTTP clients reach a tenant. Only a SHA-256 hash of a
 * key is stored; the key itself is shown once, when it is issued. A key
 * carries permissions, may be bound to a user, may expire, and stops working
 * at once when revoked or when its tenant is deactivated.
 *
 * app_user cannot read key hashes (column privileges leave key_hash out), so
 * authentication goes through api.begin_request, a SECURITY DEFINER function
 * that looks up exactly one key by hash and sets the transaction's tenant
 * context from it: the tenant is decided by the key, inside the database.
 * Nor can app_user insert keys directly: api.create_api_key (SECURITY
 * DEFINER) is the only way, so its no-escalation rule cannot be bypassed.
 */
-- Fail fast instead of queueing behind long transactions on a live server.
set local lock_timeout = '5s';
set local statement_timeout = '60s';
create table core.tenant_api_keys (
  tenant_id uuid not null default core.current_tenant_id() references core.tenants (tenant_id),
  key_id uuid not null default gen_random_uuid(),
  key_hash text not null check (key_hash ~ '^[0-9a-f]{64}$'),
  key_prefix text not null check (char_length(key_prefix) between 8 and 16),
  name text not null check (char_length(name) between 1 and 200),
  permissions text[] not null default '{}' check (
    permissions <@ array['users:read', 'users:write', 'documents:read', 'documents:write', 'keys:read',
      'keys:write', 'audit:read', 'config:read', 'config:write', '*']
    and array_position(permissions, null) is null
  ),
  user_id uuid,
  expires_at timestamptz,
  revoked_at timestamptz,
  last_used_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (tenant_id, key_id),
  unique (tenant_id, key_hash),
  foreign key (tenant_id, user_id) references core.users (tenant_id, user_id) on delete cascade
);
comment on table core.tenant_api_keys is 'API keys of a tenant, stored as hashes only';
comment on column core.tenant_api_keys.tenant_id is 'Tenant the key opens';
comment on column core.tenant_api_keys.key_id is 'Identity of the key within the tenant';
comment on column core.tenant_api_keys.key_hash is 'SHA-256 of the key as lower-case hex; the key itself is never stored';
comment on column core.tenant_api_keys.key_prefix is 'First characters of the key, shown to people to tell keys apart';
comment on column core.tenant_api_keys.name is 'What the key is for, 1-200 characters';
comment on column core.tenant_api_keys.permissions is 'Granted permissions, e.g. documents:read, or * for all';
comment on column core.tenant_api_keys.user_id is 'User the key acts as, if bound; the key is deleted with that user';
comment on column core.tenant_api_keys.expires_at is 'When the key stops working by itself, if ever';
comment on column core.tenant_api_keys.revoked_at is 'When the key was revoked; a revoked key never works again';
comment on column core.tenant_api_keys.last_used_at is 'Last successful use, recorded at most once a minute';
comment on column core.tenant_api_keys.created_at is 'When the key was issued';
comment on column core.tenant_api_keys.updated_at is 'When the row last changed (maintained by trigger)';

-- Authentication looks a key up by hash before its tenant is known.
create index tenant_api_keys_key_hash_idx on core.tenant_api_keys (key_hash);
create index tenant_api_keys_tenant_user_idx on core.tenant_api_keys (tenant_id, user_id);
create index tenant_api_keys_tenant_created_at_idx on core.tenant_api_keys (tenant_id, created_at desc, key_id desc);

create trigger set_updated_at before update on core.tenant_api_keys
  for each row execute function core.set_updated_at();

-- Revocation is final: "a revoked key never works again" holds for every
-- role, whatever UPDATE it is granted.
create function core.keep_revocation() returns trigger
language plpgsql volatile
as $$
begin
  if old.revoked_at is not null and new.revoked_at is distinct from old.revoked_at then
    raise exception 'a revoked API key stays revoked' using errcode = 'insufficient_privilege';
  end if;
  return new;
end
$$;
comment on function core.keep_revocation() is 'Trigger: refuses to clear or move revoked_at once it is set';
create trigger keep_revocation before update of revoked_at on core.tenant_api_keys
  for each row execute function core.keep_revocation();
create trigger record_audit after insert or update or delete on core.tenant_api_keys
  for each row execute function core.record_audit('key_id');

alter table core.tenant_api_keys enable row level security;
alter table core.tenant_api_keys force row level security;

create policy select_own_tenant on core.tenant_api_keys for select
  using (tenant_id = (select core.current_tenant_id()));
create policy insert_own_tenant on core.tenant_api_keys for insert
  with check (tenant_id = (select core.current_tenant_id()));
create policy update_own_tenant on core.tenant_api_keys for update
  using (tenant_id = (select core.current_tenant_id()))
  with check (tenant_id = (select core.current_tenant_id()));
create policy delete_own_tenant on core.tenant_api_keys for delete
  using (tenant_id = (select core.current_tenant_id()));

grant select (tenant_id, key_id, key_prefix, name, permissions, user_id, expires_at, revoked_at,
    last_used_at, created_at, updated_at),
  update (revoked_at) on core.tenant_api_keys to app_user;
grant select (tenant_id, key_id, key_prefix, name, permissions, user_id, expires_at, revoked_at,
    last_used_at, created_at, updated_at),
  insert (tenant_id, key_hash, key_prefix, name, permissions, user_id, expires_at)
  on core.tenant_api_keys to uber_admin;

create view api.api_keys with (security_invoker = true) as
  select key_id, tenant_id, key_prefix, name, permissions, user_id, expires_at, revoked_at,
         last_used_at, created_at, updated_at
  from core.tenant_api_keys;
comment on view api.api_keys is 'API keys of the current tenant, without their hashes';
grant select on api.api_keys to app_user;

grant execute on function extensions.gen_random_bytes(integer) to uber_admin;

-- Issues a key: 256 random bits from pgcrypto's CSPRNG, base64url-encoded
-- behind the recognisable prefix "tnk_". Callers: platform.create_api_key
-- (uber_admin) and api.create_api_key (SECURITY DEFINER, tenant from context).
create function core.issue_api_key(
  p_tenant_id uuid,
  p_name text,
  p_permissions text[],
  p_user_id uuid default null,
  p_expires_at timestamptz default null
) returns table (
  key text, key_id uuid, tenant_id uuid, key_prefix text, name text, permissions text[], user_id uuid,
  expires_at timestamptz, revoked_at timestamptz, last_used_at timestamptz, created_at timestamptz,
  updated_at timestamptz
)
language sql volatile
as $$
  with new_key as (
    select 'tnk_' || rtrim(translate(encode(extensions.gen_random_bytes(32), 'base64'), '+/', '-_'), '=') as secret
  ), inserted as (
    insert into core.tenant_api_keys (tenant_id, key_hash, key_prefix, name, permissions, user_id, expires_at)
    select p_tenant_id, encode(sha256(convert_to(n.secret, 'UTF8')), 'hex'), left(n.secret, 12),
           p_name, coalesce(p_permissions, '{}'), p_user_id, p_expires_at
    from new_key n
    returning key_id, tenant_id, key_prefix, name, permissions, user_id, expires_at, revoked_at,
              last_used_at, created_at, updated_at
  )
  select n.secret, i.*
  from new_key n, inserted i
$$;
comment on function core.issue_api_key(uuid, text, text[], uuid, timestamptz) is
  'Creates an API key and returns it once, in the column key; only its hash is stored';
grant execute on function core.issue_api_key(uuid, text, text[], uuid, timestamptz) to uber_admin;

-- The calling key is identified by its hash, never by app.api_key_id: a
-- session can set its own settings, but only a holder of the key knows it.
-- A key can hand out no more than it holds: no permission it lacks, no
-- longer life, no other user.
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
set search_path = ''
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

create function api.list_api_keys(
  p_limit integer default 20,
  p_after_created_at timestamptz default null,
  p_after_key_id uuid default null
) returns setof api.api_keys
language sql stable
as $$
  select *
  from api.api_keys k
  where p_after_created_at is null
     or (k.created_at, k.key_id) < (p_after_created_at, p_after_key_id)
  order by k.created_at desc, k.key_id desc
  limit least(greatest(coalesce(p_limit, 20), 1), 100)
$$;
comment on function api.list_api_keys(integer, timestamptz, uuid) is
  'API keys of the current tenant, newest first, keyset-paginated after (created_at, key_id)';

create function api.revoke_api_key(p_key_id uuid) returns setof api.api_keys
language sql volatile
as $$
  update core.tenant_api_keys
  set revoked_at = coalesce(revoked_at, now())
  where key_id = p_key_id
  returning key_id, tenant_id, key_prefix, name, permissions, user_id, expires_at, revoked_at,
            last_used_at, created_at, updated_at
$$;
comment on function api.revoke_api_key(uuid) is
  'Revokes a key of the current tenant at once; revoking twice keeps the first time; no row when unknown';

-- The entry point of every tenant request. Looks up one key by hash, refuses
-- unknown, revoked and expired keys and deactivated tenants (PT401), checks
-- the route's permission (PT403), then sets the transaction-local context
-- that every policy reads.
create function api.begin_request(p_key_hash text, p_permission text, p_request_id text)
returns table (tenant_id uuid, key_id uuid, user_id uuid, permissions text[], last_used_at timestamptz)
language plpgsql volatile security definer
set search_path = ''
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

-- Records use at most once a minute per key. Takes the key hash, not an id,
-- so only a holder of the key can touch it.
create function api.touch_api_key(p_key_hash text) returns void
language sql volatile security definer
set search_path = ''
as $$
  update core.tenant_api_keys
  set last_used_at = now()
  where key_hash = p_key_hash
    and (last_used_at is null or last_used_at < now() - interval '1 minute')
$$;
comment on function api.touch_api_key(text) is 'Sets last_used_at of the key with this hash, at most once a minute';

grant execute on function api.create_api_key(text, text, text[], uuid, timestamptz),
  api.list_api_keys(integer, timestamptz, uuid), api.revoke_api_key(uuid),
  api.begin_request(text, text, text), api.touch_api_key(text) to app_user;

create function platform.create_api_key(
  p_tenant_id uuid,
  p_name text,
  p_permissions text[],
  p_user_id uuid default null,
  p_expires_at timestamptz default null
) returns table (
  key text, key_id uuid, tenant_id uuid, key_prefix text, name text, permissions text[], user_id uuid,
  expires_at timestamptz, revoked_at timestamptz, last_used_at timestamptz, created_at timestamptz,
  updated_at timestamptz
)
language plpgsql volatile
as $$
begin
  if not exists (select from core.tenants t where t.tenant_id = p_tenant_id and t.deactivated_at is null) then
    raise exception 'no active tenant %', p_tenant_id using errcode = 'no_data_found';
  end if;
  if p_expires_at is not null and p_expires_at <= now() then
    raise exception 'expires_at must be in the future' using errcode = 'check_violation';
  end if;
  return query select * from core.issue_api_key(p_tenant_id, p_name, p_permissions, p_user_id, p_expires_at);
end
$$;
comment on function platform.create_api_key(uuid, text, text[], uuid, timestamptz) is
  'Issues a key for any active tenant (platform operators); returns the key once';
grant execute on function platform.create_api_key(uuid, text, text[], uuid, timestamptz) to uber_admin;

-- migrate:down
set local lock_timeout = '5s';
set local statement_timeout = '60s';
drop function platform.create_api_key(uuid, text, text[], uuid, timestamptz);
drop function api.touch_api_key(text);
drop function api.begin_request(text, text, text);
drop function api.revoke_api_key(uuid);
drop function api.list_api_keys(integer, timestamptz, uuid);
drop function api.create_api_key(text, text, text[], uuid, timestamptz);
drop function core.issue_api_key(uuid, text, text[], uuid, timestamptz);
revoke execute on function extensions.gen_random_bytes(integer) from uber_admin;
drop view api.api_keys;
drop table core.tenant_api_keys;
drop function core.keep_revocation();
