-- migrate:up
/*
 * Why: a second attack with the app_user password and a few keys found that
 * a signed context, though unforgeable, could be swapped in the middle of a
 * statement, and that key rows could be held hostage.
 *
 * 1. Several verified contexts could coexist in one transaction (each
 *    api.begin_request signs a new one, and set_config puts any of them
 *    back). A policy's context check runs once per statement and is reused,
 *    but a trigger reads the context for every row, and a function in the
 *    statement could switch it in between: one users:write key made a viewer
 *    tenant_admin (core.guard_user_roles let a change through when the
 *    context was gone), a write was recorded with no actor or with another
 *    key as its actor, and api.audit_logs redacted by the permissions of a
 *    context of another tenant. Now a context verifies only
 *      - if it is the latest one this session signed: the payload carries a
 *        nonce from a sequence only tenancy_auth may advance, and the view
 *        compares it with currval(), which nothing else can move; and
 *      - from the statement after the one that signed it: the payload
 *        carries the time it was signed, which must be before the current
 *        statement began.
 *    So within one statement every read of the context sees the same one
 *    or none. Contexts signed in the middle of a statement, and older ones
 *    put back, verify as nothing. This also ends the replay of a context in
 *    a later transaction of the same multi-statement message: a context
 *    never verifies in the message that signed it.
 * 2. And a change with no context is refused where it could slip through:
 *    in an app_user session, core.record_audit refuses any change without a
 *    verified context of the row's own tenant, and core.guard_user_roles
 *    any change to users without one (the policies see to the tenant and
 *    the permission, under the same context now).
 * 3. Under REPEATABLE READ, or with a snapshot exported earlier and imported
 *    by hand, api.begin_request saw a key as it was before its revocation,
 *    and a revoked key minted a new one. A context is now signed only in a
 *    READ COMMITTED transaction, where each statement sees what committed
 *    before it.
 * 4. api.touch_api_key (which needs no context) row-locked the key to set
 *    last_used_at. A session holding that lock made the key impossible to
 *    revoke (503 "busy" on both revocation routes) and tied up the
 *    service's connections. last_used_at now lives in core.api_key_usage,
 *    a row per key created with the key; a revocation never waits on it,
 *    and the touch skips a row another session holds.
 * 5. The planner still kept statistics of index expressions (lower(email)
 *    of core.users_tenant_email_key: EXPLAIN told whether an e-mail address
 *    existed in any tenant) and of tenant_id (bisecting EXPLAIN estimates
 *    found the largest tenant's id). No column or index expression of a
 *    tenant-scoped table is analyzed any more; the list functions plan
 *    without sorts and bitmap scans whatever the estimates (pgtap/50).
 * 6. uber_admin could insert a key row with a hash of its choosing and any
 *    issued_by_key_id, faking a key's provenance. It now issues keys only
 *    through platform.create_api_key, a definer owned by tenancy_auth.
 */
set local lock_timeout = '5s';
set local statement_timeout = '60s';
set local role tenancy_owner;

-- 1. One context at a time, fixed for the statement ------------------------------

create sequence core.context_nonce as bigint;
comment on sequence core.context_nonce is
  'Numbers each signed context; only the one numbered currval() in its session verifies';

drop function core.sign_context(uuid, uuid, uuid, text, text[], uuid, text);
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

-- Fields 9 and 10 are the nonce and the signing time in microseconds. They
-- are compared only once the signature holds (CASE fixes the order), so a
-- session that never signed one does not call currval() at all.
create or replace view core.request_context with (security_barrier = true) as
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

-- 2. Changes through app_user need the context of the row's tenant -------------------

create or replace function core.guard_user_roles() returns trigger
language plpgsql volatile
as $$
declare
  v_context record;
  v_rank integer;
begin
  select c.tenant_id, c.user_role, c.permissions into v_context from core.request_context c;
  -- Platform operations and migrations carry no tenant context; the
  -- service's role always does.
  if v_context.tenant_id is null then
    if session_user = 'app_user' then
      raise exception 'a change to users needs a verified request context' using errcode = 'insufficient_privilege';
    end if;
    return coalesce(new, old);
  end if;
  v_rank := core.rank_of_caller(v_context.user_role, v_context.permissions);
  if tg_op in ('UPDATE', 'DELETE') and core.role_rank(old.role) > v_rank then
    raise exception 'a key cannot change or remove a user whose role is above its own' using errcode = 'PT403';
  end if;
  if tg_op = 'INSERT' and core.role_rank(new.role) > v_rank then
    raise exception 'a key cannot add a user with a role above its own' using errcode = 'PT403';
  end if;
  if tg_op = 'UPDATE' and new.role is distinct from old.role then
    -- "is not distinct from": for a key bound to no user the role is NULL,
    -- and NULL = 'tenant_admin' would make the whole condition NULL.
    if not (v_context.user_role is not distinct from 'tenant_admin'
            or (v_context.user_role is null and v_context.permissions @> core.all_permissions())) then
      raise exception 'a key changes roles only when bound to a tenant_admin or holding every permission'
        using errcode = 'PT403';
    end if;
    if core.role_rank(new.role) > v_rank then
      raise exception 'a key cannot raise a user above its own role' using errcode = 'PT403';
    end if;
  end if;
  return coalesce(new, old);
end
$$;

-- 4. Key use in a table of its own ---------------------------------------------------

create table core.api_key_usage (
  tenant_id uuid not null,
  key_id uuid not null,
  last_used_at timestamptz,
  primary key (tenant_id, key_id),
  foreign key (tenant_id, key_id) references core.tenant_api_keys (tenant_id, key_id) on delete cascade
);
comment on table core.api_key_usage is
  'When each API key was last used; apart from the key so that recording a use never blocks its revocation';
comment on column core.api_key_usage.tenant_id is 'Tenant of the key';
comment on column core.api_key_usage.key_id is 'The key';
comment on column core.api_key_usage.last_used_at is 'Last successful use, recorded at most once a minute';
alter table core.api_key_usage enable row level security;
alter table core.api_key_usage force row level security;
alter table core.api_key_usage alter column key_id set statistics 0;
alter table core.api_key_usage alter column last_used_at set statistics 0;
-- Read like the keys themselves; written only by tenancy_auth, which
-- bypasses row-level security, so no key writes it through these.
create policy select_own_tenant on core.api_key_usage for select
  using (tenant_id = (select c.tenant_id from core.request_context c where 'keys:read' = any (c.permissions)));
create policy insert_own_tenant on core.api_key_usage for insert
  with check (tenant_id = (select c.tenant_id from core.request_context c where 'keys:write' = any (c.permissions)));
create policy update_own_tenant on core.api_key_usage for update
  using (tenant_id = (select c.tenant_id from core.request_context c where 'keys:write' = any (c.permissions)))
  with check (tenant_id = (select c.tenant_id from core.request_context c where 'keys:write' = any (c.permissions)));
create policy delete_own_tenant on core.api_key_usage for delete
  using (tenant_id = (select c.tenant_id from core.request_context c where 'keys:write' = any (c.permissions)));

-- However a key is created, its usage row is created with it.
create function core.create_key_usage() returns trigger
language plpgsql volatile
as $$
begin
  insert into core.api_key_usage (tenant_id, key_id) values (new.tenant_id, new.key_id);
  return null;
end
$$;
comment on function core.create_key_usage() is 'Trigger: creates the usage row of a new API key';
create trigger create_key_usage after insert on core.tenant_api_keys
  for each row execute function core.create_key_usage();
alter table core.tenant_api_keys enable always trigger create_key_usage;

create or replace view api.api_keys with (security_invoker = true) as
  select k.key_id, k.tenant_id, k.key_prefix, k.name, k.permissions, k.user_id, k.expires_at, k.revoked_at,
         u.last_used_at, k.created_at, k.updated_at, k.issued_by_key_id
  from core.tenant_api_keys k
  left join core.api_key_usage u on u.tenant_id = k.tenant_id and u.key_id = k.key_id;

create or replace function core.issue_api_key(
  p_tenant_id uuid,
  p_name text,
  p_permissions text[],
  p_user_id uuid,
  p_expires_at timestamptz,
  p_issued_by_key_id uuid
) returns table (
  key text, key_id uuid, tenant_id uuid, key_prefix text, name text, permissions text[], user_id uuid,
  expires_at timestamptz, revoked_at timestamptz, last_used_at timestamptz, created_at timestamptz,
  updated_at timestamptz, issued_by_key_id uuid
)
language sql volatile
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

reset role;

-- Superuser from here: rows the forced policies would hide from the owner,
-- the old column, statistics, grants and definer owners.

-- Functions owned by the definer roles are replaced here, keeping their owners.
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

-- Numbering a context (nextval) needs a transaction that may write, so a
-- read-only request begins read-write and turns read-only here, right after.
drop function api.begin_request(text, text, uuid, text);
create function api.begin_request(
  p_key_hash text,
  p_permission text,
  p_request_id uuid,
  p_client_request_id text default null,
  p_read_only boolean default false
) returns table (tenant_id uuid, key_id uuid, user_id uuid, permissions text[], last_used_at timestamptz)
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_key record;
  v_permissions text[];
begin
  -- key_hash is unique (tenant_api_keys_key_hash_key): one row or none.
  select k.tenant_id, k.key_id, k.user_id, u.role, k.permissions, s.last_used_at
  into v_key
  from core.tenant_api_keys k
  join core.tenants t on t.tenant_id = k.tenant_id
  left join core.users u on u.tenant_id = k.tenant_id and u.user_id = k.user_id
  left join core.api_key_usage s on s.tenant_id = k.tenant_id and s.key_id = k.key_id
  where k.key_hash = p_key_hash
    and k.revoked_at is null
    and (k.expires_at is null or k.expires_at > now())
    and t.deactivated_at is null;
  if not found then
    raise exception 'unknown, revoked or expired API key' using errcode = 'PT401';
  end if;
  v_permissions := core.effective_permissions(v_key.permissions, v_key.role);
  if p_permission is not null and not p_permission = any (v_permissions) then
    raise exception 'the API key lacks the permission %', p_permission using errcode = 'PT403';
  end if;
  perform core.sign_context(v_key.tenant_id, v_key.key_id, v_key.user_id, v_key.role, v_permissions,
    p_request_id, p_client_request_id);
  if p_read_only then
    perform set_config('transaction_read_only', 'on', true);
  end if;
  return query select v_key.tenant_id, v_key.key_id, v_key.user_id, v_permissions, v_key.last_used_at;
end
$$;
comment on function api.begin_request(text, text, uuid, text, boolean) is
  'Authenticates a key hash, checks one permission against what the key may do, signs the transaction''s request context, and makes the rest of the transaction read-only if asked';

drop function platform.begin_request(uuid, text);
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

-- Skips a usage row another session holds: that session records the use.
create or replace function api.touch_api_key(p_key_hash text) returns void
language sql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
  update core.api_key_usage u
  set last_used_at = now()
  where (u.tenant_id, u.key_id) = (
    select s.tenant_id, s.key_id
    from core.tenant_api_keys k
    join core.api_key_usage s on s.tenant_id = k.tenant_id and s.key_id = k.key_id
    where k.key_hash = p_key_hash
      and (s.last_used_at is null or s.last_used_at < now() - interval '1 minute')
    for update of s skip locked)
$$;

create or replace function api.revoke_api_key(p_key_id uuid) returns setof api.api_keys
language plpgsql volatile security definer
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


insert into core.api_key_usage (tenant_id, key_id, last_used_at)
select tenant_id, key_id, last_used_at from core.tenant_api_keys;
-- Its values moved to core.api_key_usage above.
-- squawk-ignore ban-drop-column
alter table core.tenant_api_keys drop column last_used_at;

-- 5. No statistics of tenant data at all.
do $$
declare
  v_object record;
begin
  for v_object in
    select a.attrelid::regclass as tab, a.attname as col
    from pg_attribute a join pg_class c on c.oid = a.attrelid
    where c.relnamespace = 'core'::regnamespace and c.relkind = 'r' and a.attnum > 0 and not a.attisdropped
      and a.attstattarget <> 0
      and exists (select from pg_attribute t where t.attrelid = c.oid and t.attname = 'tenant_id')
  loop
    execute format('alter table %s alter column %I set statistics 0', v_object.tab, v_object.col);
  end loop;
  -- Only expression columns of an index have statistics of their own.
  for v_object in
    select i.indexrelid::regclass as idx, k.ord as col
    from pg_index i
    cross join lateral unnest(i.indkey::int2[]) with ordinality as k (attnum, ord)
    where i.indrelid in (select c.oid from pg_class c
                         where c.relnamespace = 'core'::regnamespace and c.relkind = 'r'
                           and exists (select from pg_attribute t where t.attrelid = c.oid and t.attname = 'tenant_id'))
      and k.attnum = 0
  loop
    execute format('alter index %s alter column %s set statistics 0', v_object.idx, v_object.col);
  end loop;
end
$$;
delete from pg_catalog.pg_statistic s
where s.starelid in (
  select c.oid from pg_catalog.pg_class c
  where c.relnamespace = 'core'::regnamespace and c.relkind in ('r', 'i'));

grant usage on sequence core.context_nonce to tenancy_auth;
grant select on sequence core.context_nonce
  to app_user, uber_admin, tenancy_owner, tenancy_auth, tenancy_auditor, tenancy_writer;
grant execute on function core.sign_context(uuid, uuid, uuid, text, text[], uuid, text) to tenancy_auth;
-- Created here by the superuser, to whom the default privileges of
-- tenancy_owner do not apply: PUBLIC's EXECUTE goes explicitly.
revoke execute on function api.begin_request(text, text, uuid, text, boolean),
  platform.begin_request(uuid, text, boolean) from public;
alter function api.begin_request(text, text, uuid, text, boolean) owner to tenancy_auth;
alter function platform.begin_request(uuid, text, boolean) owner to tenancy_auth;
grant execute on function api.begin_request(text, text, uuid, text, boolean) to app_user;
grant execute on function platform.begin_request(uuid, text, boolean) to uber_admin;

grant select on core.api_key_usage to app_user, uber_admin, tenancy_auth;
grant insert (tenant_id, key_id), update (last_used_at) on core.api_key_usage to tenancy_auth;

-- 6. Keys are issued by the definer alone.
revoke insert on core.tenant_api_keys from uber_admin;
revoke execute on function core.issue_api_key(uuid, text, text[], uuid, timestamptz, uuid) from uber_admin;
alter function platform.create_api_key(uuid, text, text[], uuid, timestamptz) security definer;
alter function platform.create_api_key(uuid, text, text[], uuid, timestamptz) set search_path = pg_catalog, pg_temp;
alter function platform.create_api_key(uuid, text, text[], uuid, timestamptz) owner to tenancy_auth;

-- migrate:down
set local lock_timeout = '5s';
set local statement_timeout = '60s';

alter function platform.create_api_key(uuid, text, text[], uuid, timestamptz) owner to tenancy_owner;
alter function platform.create_api_key(uuid, text, text[], uuid, timestamptz) security invoker;
alter function platform.create_api_key(uuid, text, text[], uuid, timestamptz) reset search_path;
grant insert (tenant_id, key_hash, key_prefix, name, permissions, user_id, expires_at, issued_by_key_id)
  on core.tenant_api_keys to uber_admin;
grant execute on function core.issue_api_key(uuid, text, text[], uuid, timestamptz, uuid) to uber_admin;

-- Statistics come back with the next ANALYZE.
do $$
declare
  v_object record;
begin
  for v_object in
    select a.attrelid::regclass as tab, a.attname as col
    from pg_attribute a join pg_class c on c.oid = a.attrelid
    where c.relnamespace = 'core'::regnamespace and c.relkind = 'r' and a.attname = 'tenant_id'
  loop
    execute format('alter table %s alter column %I set statistics -1', v_object.tab, v_object.col);
  end loop;
  for v_object in
    select i.indexrelid::regclass as idx, k.ord as col
    from pg_index i
    cross join lateral unnest(i.indkey::int2[]) with ordinality as k (attnum, ord)
    where i.indrelid in (select c.oid from pg_class c where c.relnamespace = 'core'::regnamespace)
      and k.attnum = 0
  loop
    execute format('alter index %s alter column %s set statistics -1', v_object.idx, v_object.col);
  end loop;
end
$$;

alter table core.tenant_api_keys add column last_used_at timestamptz;
alter table core.tenant_api_keys alter column last_used_at set statistics 0;
comment on column core.tenant_api_keys.last_used_at is 'Last successful use, recorded at most once a minute';
update core.tenant_api_keys k set last_used_at = u.last_used_at
from core.api_key_usage u where u.tenant_id = k.tenant_id and u.key_id = k.key_id and u.last_used_at is not null;
grant select (last_used_at) on core.tenant_api_keys to app_user, uber_admin;
grant select (last_used_at), update (last_used_at) on core.tenant_api_keys to tenancy_auth;

drop function api.begin_request(text, text, uuid, text, boolean);
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
  v_permissions text[];
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
  v_permissions := core.effective_permissions(v_key.permissions, v_key.role);
  if p_permission is not null and not p_permission = any (v_permissions) then
    raise exception 'the API key lacks the permission %', p_permission using errcode = 'PT403';
  end if;
  perform core.sign_context(v_key.tenant_id, v_key.key_id, v_key.user_id, v_key.role, v_permissions,
    p_request_id, p_client_request_id);
  return query select v_key.tenant_id, v_key.key_id, v_key.user_id, v_permissions, v_key.last_used_at;
end
$$;
comment on function api.begin_request(text, text, uuid, text) is
  'Authenticates a key hash, checks one permission against what the key may do, and signs the transaction''s request context';
revoke execute on function api.begin_request(text, text, uuid, text) from public;
alter function api.begin_request(text, text, uuid, text) owner to tenancy_auth;
grant execute on function api.begin_request(text, text, uuid, text) to app_user;

drop function platform.begin_request(uuid, text, boolean);
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
revoke execute on function platform.begin_request(uuid, text) from public;
alter function platform.begin_request(uuid, text) owner to tenancy_auth;
grant execute on function platform.begin_request(uuid, text) to uber_admin;

create or replace function api.touch_api_key(p_key_hash text) returns void
language sql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
  update core.tenant_api_keys
  set last_used_at = now()
  where key_hash = p_key_hash
    and (last_used_at is null or last_used_at < now() - interval '1 minute')
$$;

create or replace function api.revoke_api_key(p_key_id uuid) returns setof api.api_keys
language plpgsql volatile security definer
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
           k.last_used_at, k.created_at, k.updated_at, k.issued_by_key_id
    from core.tenant_api_keys k where k.tenant_id = v_caller.tenant_id and k.key_id = p_key_id;
end
$$;

-- The trigger as 20261201000400 left it.
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
  if tg_op = 'UPDATE' and cardinality(v_changed) = 0 then
    return null;
  end if;
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

set local role tenancy_owner;

create or replace view api.api_keys with (security_invoker = true) as
  select key_id, tenant_id, key_prefix, name, permissions, user_id, expires_at, revoked_at,
         last_used_at, created_at, updated_at, issued_by_key_id
  from core.tenant_api_keys;

create or replace function core.issue_api_key(
  p_tenant_id uuid,
  p_name text,
  p_permissions text[],
  p_user_id uuid,
  p_expires_at timestamptz,
  p_issued_by_key_id uuid
) returns table (
  key text, key_id uuid, tenant_id uuid, key_prefix text, name text, permissions text[], user_id uuid,
  expires_at timestamptz, revoked_at timestamptz, last_used_at timestamptz, created_at timestamptz,
  updated_at timestamptz, issued_by_key_id uuid
)
language sql volatile
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
              last_used_at, created_at, updated_at, issued_by_key_id
  )
  select n.secret, i.*
  from new_key n, inserted i
$$;

drop trigger create_key_usage on core.tenant_api_keys;
drop function core.create_key_usage();
drop table core.api_key_usage;

create or replace function core.guard_user_roles() returns trigger
language plpgsql volatile
as $$
declare
  v_context record;
  v_rank integer;
begin
  select c.tenant_id, c.user_role, c.permissions into v_context from core.request_context c;
  -- Platform operations and migrations carry no tenant context.
  if v_context.tenant_id is null then
    return coalesce(new, old);
  end if;
  v_rank := core.rank_of_caller(v_context.user_role, v_context.permissions);
  if tg_op in ('UPDATE', 'DELETE') and core.role_rank(old.role) > v_rank then
    raise exception 'a key cannot change or remove a user whose role is above its own' using errcode = 'PT403';
  end if;
  if tg_op = 'INSERT' and core.role_rank(new.role) > v_rank then
    raise exception 'a key cannot add a user with a role above its own' using errcode = 'PT403';
  end if;
  if tg_op = 'UPDATE' and new.role is distinct from old.role then
    -- "is not distinct from": for a key bound to no user the role is NULL,
    -- and NULL = 'tenant_admin' would make the whole condition NULL.
    if not (v_context.user_role is not distinct from 'tenant_admin'
            or (v_context.user_role is null and v_context.permissions @> core.all_permissions())) then
      raise exception 'a key changes roles only when bound to a tenant_admin or holding every permission'
        using errcode = 'PT403';
    end if;
    if core.role_rank(new.role) > v_rank then
      raise exception 'a key cannot raise a user above its own role' using errcode = 'PT403';
    end if;
  end if;
  return coalesce(new, old);
end
$$;

-- The context as 20261201000200 signed it.
create or replace view core.request_context with (security_barrier = true) as
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

drop function core.sign_context(uuid, uuid, uuid, text, text[], uuid, text);
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
drop sequence core.context_nonce;

reset role;
grant execute on function core.sign_context(uuid, uuid, uuid, text, text[], uuid, text) to tenancy_auth;
