-- migrate:up
/*
 * Why: the Fintech Template says require_two_person_approval: true, and a
 * single key changed the configuration at once.
 *
 * With the setting true, four changes a tenant makes do not take effect at
 * once: issuing a key that may issue keys (keys:write or *), changing the
 * configuration, deleting a user, changing a user's role. The database
 * refuses them (PT428) unless they run inside the approval of a pending
 * request: triggers on core.tenant_api_keys, core.tenant_configs and
 * core.users check every such write made under a tenant key's request
 * context, whichever function or statement makes it. Operators (named and
 * audited) are the platform and are not held to a tenant's rule.
 *
 * api.request_approval(operation, payload) records a pending request
 * (core.approval_requests) when the setting asks for one; the HTTP layer
 * calls it first and answers 202 with it. api.decide_approval(id, approve)
 * approves or rejects it, by a key that:
 *   - is bound to a user other than the requester's, is still valid, and
 *     shares no issuer with the requesting key (whoever issued a key has
 *     seen its secret: keys with an issuer in common, or one issued by the
 *     other, may be one person's), so that nobody approves their own
 *     request with a second key of their own making;
 *   - may do the change itself (keys:write and every permission the key
 *     asks for; config:write; users:write, within the role rules).
 * Approval performs the change in the same transaction, exactly once (the
 * request's row is locked, and only a pending request is decided); a key
 * is issued as the requester's key would have issued it (its permissions,
 * user binding, expiry and the tenant's cap: core.check_key_issue, which
 * api.create_api_key now applies too), with the requester's key as its
 * issuer; its secret is made when it is asked for and shown to the
 * requester alone (an approver who saw it could act as the requester's
 * key), so it works from its approval on. Requests expire 24 hours after they are made. The request
 * and the decision are rows of a tenant table, so the audit trail has both,
 * naming the keys and users.
 *
 * A request is refused when the requesting key could not make the change
 * itself (its permissions, its user's role, the payload: settings that fail
 * their checks, a user that does not exist), and a pending request can no
 * longer be approved once the key that made it is revoked or expired.
 *
 * What this cannot stop: an administrator who can create users may get an
 * operator to issue a key to a second user of their own making. The rule
 * is two keys of two users with no issuer in common, not two people; the
 * trail shows who created and asked for whom.
 */
set local lock_timeout = '5s';
set local statement_timeout = '60s';

set local role tenancy_owner;
create table core.approval_requests (
  tenant_id uuid not null references core.tenants (tenant_id),
  approval_id uuid not null default gen_random_uuid(),
  operation text not null
    check (operation in ('create_api_key', 'update_tenant_config', 'delete_user', 'update_user_role')),
  payload jsonb not null check (jsonb_typeof(payload) = 'object'),
  status text not null default 'pending' check (status in ('pending', 'approved', 'rejected')),
  requested_by_key_id uuid not null,
  requested_by_user_id uuid,
  decided_by_key_id uuid,
  decided_by_user_id uuid,
  created_at timestamptz not null default now(),
  expires_at timestamptz not null default now() + interval '24 hours',
  decided_at timestamptz,
  -- The transaction performing the approved change, while it does.
  executing_xid xid8,
  -- A requested key's hash: its secret went to the requester alone.
  key_hash text check (key_hash ~ '^[0-9a-f]{64}$'),
  key_prefix text,
  primary key (tenant_id, approval_id),
  check ((status = 'pending') = (decided_at is null))
);
comment on table core.approval_requests is
  'Changes waiting for a second person''s approval (require_two_person_approval), and their decisions';
comment on column core.approval_requests.tenant_id is 'Tenant whose change it is';
comment on column core.approval_requests.approval_id is 'Identity of the request';
comment on column core.approval_requests.operation is 'What it will do: create_api_key, update_tenant_config, delete_user or update_user_role';
comment on column core.approval_requests.payload is 'The change''s arguments (never a secret)';
comment on column core.approval_requests.status is 'pending, approved or rejected (a pending request past expires_at is expired)';
comment on column core.approval_requests.requested_by_key_id is 'Key that asked for the change';
comment on column core.approval_requests.requested_by_user_id is 'User that key is bound to, if any';
comment on column core.approval_requests.decided_by_key_id is 'Key that approved or rejected it';
comment on column core.approval_requests.decided_by_user_id is 'User that key is bound to';
comment on column core.approval_requests.created_at is 'When it was asked for';
comment on column core.approval_requests.expires_at is 'After this it can no longer be decided';
comment on column core.approval_requests.decided_at is 'When it was approved or rejected';
comment on column core.approval_requests.executing_xid is 'Transaction performing the approved change, while it runs';
comment on column core.approval_requests.key_hash is 'SHA-256 of the requested key, whose secret only the requester was shown; never shown, cleared once the request is decided';
comment on column core.approval_requests.key_prefix is 'First characters of the requested key';
do $$
declare
  v_column name;
begin
  for v_column in
    select attname from pg_attribute
    where attrelid = 'core.approval_requests'::regclass and attnum > 0 and not attisdropped
  loop
    execute format('alter table core.approval_requests alter column %I set statistics 0', v_column);
  end loop;
end
$$;
alter table core.approval_requests enable row level security;
alter table core.approval_requests force row level security;
-- Any key of the tenant may read its requests (an approver has to); only
-- the functions below, as tenancy_auth, write them.
create policy select_own_tenant on core.approval_requests for select
  using (tenant_id = (select c.tenant_id from core.request_context c));
create policy insert_own_tenant on core.approval_requests for insert
  with check (tenant_id = (select c.tenant_id from core.request_context c));
create policy update_own_tenant on core.approval_requests for update
  using (tenant_id = (select c.tenant_id from core.request_context c))
  with check (tenant_id = (select c.tenant_id from core.request_context c));
create policy delete_own_tenant on core.approval_requests for delete
  using (tenant_id = (select c.tenant_id from core.request_context c));

create view api.approvals with (security_invoker = true) as
  select a.approval_id, a.tenant_id, a.operation, a.payload,
    case when a.status = 'pending' and a.expires_at <= now() then 'expired' else a.status end as status,
    a.requested_by_key_id, a.requested_by_user_id, a.decided_by_key_id, a.decided_by_user_id,
    a.created_at, a.expires_at, a.decided_at
  from core.approval_requests a;
comment on view api.approvals is 'The current tenant''s approval requests and their decisions';
reset role;
-- Not key_hash: with it and the app_user password, anyone could act as
-- the key once it is approved (api.begin_request takes a key's hash).
grant select (tenant_id, approval_id, operation, payload, status, requested_by_key_id, requested_by_user_id,
  decided_by_key_id, decided_by_user_id, created_at, expires_at, decided_at, executing_xid)
  on core.approval_requests to app_user;
grant select on api.approvals to app_user;
grant select, insert (tenant_id, operation, payload, requested_by_key_id, requested_by_user_id, key_hash, key_prefix),
  update (status, decided_by_key_id, decided_by_user_id, decided_at, executing_xid, key_hash)
  on core.approval_requests to tenancy_auth;
create trigger record_audit after insert or update or delete on core.approval_requests
  for each row execute function core.record_audit('approval_id');
alter table core.approval_requests enable always trigger record_audit;

set local role tenancy_owner;

-- Which writes need a second person.
create function core.needs_second_person(p_operation text, p_payload jsonb) returns boolean
language sql immutable
as $$
  select case p_operation
    when 'create_api_key' then 'keys:write' = any (core.effective_permissions(
      array(select jsonb_array_elements_text(coalesce(p_payload -> 'permissions', '[]'))), null))
    when 'update_user_role' then p_payload ? 'role'
    else p_operation in ('update_tenant_config', 'delete_user') end
$$;
comment on function core.needs_second_person(text, jsonb) is
  'Whether a change is one two-person approval holds back: a key that may issue keys, a configuration change, a user''s deletion or new role';
reset role;

-- Whether the request's tenant asks for two people (tenancy_auth may read
-- the settings whatever the key may read).
set local role tenancy_owner;
create function core.two_people_required(p_tenant_id uuid) returns boolean
language sql stable
security definer
set search_path = pg_catalog, pg_temp
as $$
  select coalesce((select c.settings -> 'require_two_person_approval' = 'true'::jsonb
                   from core.tenant_configs c where c.tenant_id = p_tenant_id), false)
$$;
comment on function core.two_people_required(uuid) is 'Whether the tenant''s settings say require_two_person_approval: true';

-- Whether this transaction is performing an approved request of this kind.
create function core.approved_now(p_tenant_id uuid, p_operation text) returns boolean
language sql stable
security definer
set search_path = pg_catalog, pg_temp
as $$
  select exists (select from core.approval_requests a
                 where a.tenant_id = p_tenant_id and a.operation = p_operation and a.status = 'approved'
                   and a.executing_xid = pg_current_xact_id())
$$;
comment on function core.approved_now(uuid, text) is
  'Whether this transaction is performing an approved request of that kind for the tenant';

-- The trigger: the tenant's own sessions make these changes only inside an
-- approval once the tenant asks for two people.
create function core.hold_for_approval() returns trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_operation text;
  v_tenant_id uuid := case when tg_op = 'DELETE' then old.tenant_id else new.tenant_id end;
begin
  -- A tenant's request (a key's context) is held to the tenant's rule; an
  -- operator's, or a DBA's without a context, is not. app_user without a
  -- verified context (one that lapsed mid-statement, say) is held too.
  if not exists (select from core.request_context c where c.api_key_id is not null)
     and session_user <> 'app_user' then
    return case when tg_op = 'DELETE' then old else new end;
  end if;
  -- (Nested: PL/pgSQL would look for each field on every table's row.)
  if tg_table_name = 'tenant_api_keys' then
    if 'keys:write' = any (core.effective_permissions(new.permissions, null)) then
      v_operation := 'create_api_key';
    end if;
  elsif tg_table_name = 'tenant_configs' then
    v_operation := 'update_tenant_config';
  elsif tg_op = 'DELETE' then
    v_operation := 'delete_user';
  elsif new.role is distinct from old.role then
    v_operation := 'update_user_role';
  end if;
  if v_operation is not null and core.two_people_required(v_tenant_id)
     and not core.approved_now(v_tenant_id, v_operation) then
    raise exception 'this change needs a second person''s approval (require_two_person_approval)'
      using errcode = 'PT428';
  end if;
  return case when tg_op = 'DELETE' then old else new end;
end
$$;
comment on function core.hold_for_approval() is
  'Trigger: refuses a change two-person approval holds back unless it runs inside an approval (PT428)';

-- The rules by which a key issues another (api.create_api_key's until now),
-- in one place: api.create_api_key, the approval of a key and the check of
-- a request for one all apply them. Returns the issuer.
create function core.check_key_issue(p_tenant_id uuid, p_issuer_key_id uuid, p_permissions text[], p_user_id uuid,
  p_expires_at timestamptz)
returns table (key_id uuid, user_id uuid, expires_at timestamptz)
language plpgsql stable
as $$
#variable_conflict use_column
declare
  v_issuer record;
begin
  select k.key_id, k.user_id, k.expires_at, core.effective_permissions(k.permissions, u.role) as permissions
  into v_issuer
  from core.tenant_api_keys k
  left join core.users u on u.tenant_id = k.tenant_id and u.user_id = k.user_id
  where k.tenant_id = p_tenant_id and k.key_id = p_issuer_key_id
    and k.revoked_at is null and (k.expires_at is null or k.expires_at > now());
  if not found then
    raise exception 'unknown, revoked or expired API key' using errcode = 'PT401';
  end if;
  if not 'keys:write' = any (v_issuer.permissions) then
    raise exception 'the API key lacks the permission keys:write' using errcode = 'PT403';
  end if;
  if not core.effective_permissions(coalesce(p_permissions, '{}'), null) <@ v_issuer.permissions then
    raise exception 'a key can only grant permissions it holds itself' using errcode = 'PT403';
  end if;
  if v_issuer.user_id is not null and coalesce(p_user_id, v_issuer.user_id) <> v_issuer.user_id then
    raise exception 'a key bound to a user can only issue keys bound to that user' using errcode = 'PT403';
  end if;
  if v_issuer.user_id is null and p_user_id is not null and core.role_rank(
       (select u.role from core.users u where u.tenant_id = p_tenant_id and u.user_id = p_user_id))
     > core.rank_of_caller(null, v_issuer.permissions) then
    raise exception 'a key cannot issue keys for a user whose role is above its own' using errcode = 'PT403';
  end if;
  if v_issuer.expires_at is not null and coalesce(p_expires_at, v_issuer.expires_at) > v_issuer.expires_at then
    raise exception 'a key that expires can only issue keys that expire no later' using errcode = 'PT403';
  end if;
  if p_expires_at is not null and p_expires_at <= now() then
    raise exception 'expires_at must be in the future' using errcode = 'check_violation';
  end if;
  return query select v_issuer.key_id, v_issuer.user_id, v_issuer.expires_at;
end
$$;
comment on function core.check_key_issue(uuid, uuid, text[], uuid, timestamptz) is
  'Refuses a key the issuing key may not issue (its permissions, user, role and expiry); returns the issuer';

-- A key issued as an existing key issues it, for the approval of a
-- request that key made.
create function core.issue_key_as(p_tenant_id uuid, p_issuer_key_id uuid, p_name text, p_permissions text[],
  p_user_id uuid, p_expires_at timestamptz, p_key_hash text, p_key_prefix text)
returns table (key text, key_id uuid, tenant_id uuid, key_prefix text, name text, permissions text[], user_id uuid,
  expires_at timestamptz, revoked_at timestamptz, last_used_at timestamptz, created_at timestamptz,
  updated_at timestamptz, issued_by_key_id uuid)
language plpgsql
as $$
#variable_conflict use_column
declare
  v_issuer record;
begin
  select * into v_issuer from core.check_key_issue(p_tenant_id, p_issuer_key_id, p_permissions, p_user_id, p_expires_at);
  -- The secret was made, and shown to the requester, when the key was
  -- asked for: only its hash is stored.
  return query
    with inserted as (
      insert into core.tenant_api_keys
        (tenant_id, key_hash, key_prefix, name, permissions, user_id, expires_at, issued_by_key_id)
      values (p_tenant_id, p_key_hash, p_key_prefix, p_name, coalesce(p_permissions, '{}'),
        coalesce(p_user_id, v_issuer.user_id),
        core.capped_expiry(p_tenant_id,
          coalesce(p_expires_at, least(v_issuer.expires_at, core.capped_expiry(p_tenant_id, null)))),
        v_issuer.key_id)
      returning tenant_api_keys.key_id, tenant_api_keys.tenant_id, tenant_api_keys.key_prefix, tenant_api_keys.name,
        tenant_api_keys.permissions, tenant_api_keys.user_id, tenant_api_keys.expires_at, tenant_api_keys.revoked_at,
        null::timestamptz, tenant_api_keys.created_at, tenant_api_keys.updated_at, tenant_api_keys.issued_by_key_id
    )
    select null::text, i.* from inserted i;
end
$$;
comment on function core.issue_key_as(uuid, uuid, text, text[], uuid, timestamptz, text, text) is
  'Issues a key, whose secret its requester holds, as another key of the tenant would (core.check_key_issue; the cap), naming it the issuer';

-- The tenant's own route, by the same rules (replaced as the superuser:
-- tenancy_auth owns it).
reset role;
create or replace function api.create_api_key(p_name text, p_permissions text[], p_user_id uuid default null, p_expires_at timestamptz default null)
returns table (key text, key_id uuid, tenant_id uuid, key_prefix text, name text, permissions text[], user_id uuid, expires_at timestamptz, revoked_at timestamptz, last_used_at timestamptz, created_at timestamptz, updated_at timestamptz, issued_by_key_id uuid)
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
#variable_conflict use_column
declare
  v_tenant_id uuid;
  v_key_id uuid;
  v_issuer record;
begin
  select c.tenant_id, c.api_key_id into v_tenant_id, v_key_id from core.request_context c;
  select * into v_issuer from core.check_key_issue(v_tenant_id, v_key_id, p_permissions, p_user_id, p_expires_at);
  return query
    select * from core.issue_api_key(v_tenant_id, p_name, p_permissions,
      coalesce(p_user_id, v_issuer.user_id),
      -- Asked for no expiry: its issuer's, or the tenant's cap if sooner.
      coalesce(p_expires_at, least(v_issuer.expires_at, core.capped_expiry(v_tenant_id, null))),
      v_issuer.key_id);
end
$$;
set local role tenancy_owner;

-- A key and every key that issued it, up to one an operator issued.
create function core.key_lineage(p_tenant_id uuid, p_key_id uuid) returns setof uuid
language sql stable
as $$
  with recursive lineage (key_id, issued_by) as (
    select k.key_id, k.issued_by_key_id from core.tenant_api_keys k
    where k.tenant_id = p_tenant_id and k.key_id = p_key_id
    union
    select k.key_id, k.issued_by_key_id from core.tenant_api_keys k
    join lineage l on k.key_id = l.issued_by
    where k.tenant_id = p_tenant_id
  )
  select key_id from lineage
$$;
comment on function core.key_lineage(uuid, uuid) is 'A key and the keys that issued it, transitively';

create function core.key_is_active(p_tenant_id uuid, p_key_id uuid) returns boolean
language sql stable
as $$
  select exists (select from core.tenant_api_keys k
                 where k.tenant_id = p_tenant_id and k.key_id = p_key_id and k.revoked_at is null
                   and (k.expires_at is null or k.expires_at > now()))
$$;
comment on function core.key_is_active(uuid, uuid) is 'Whether the key exists, is not revoked and has not expired';

-- Whether the key could make the change itself: its permissions, its
-- user's role and the role rules, and a payload that makes sense.
create function core.check_change_request(p_tenant_id uuid, p_key_id uuid, p_operation text, p_payload jsonb)
returns void
language plpgsql stable
as $$
declare
  v_key record;
  v_rank integer;
  v_target text;
begin
  select k.user_id, u.role, core.effective_permissions(k.permissions, u.role) as permissions into v_key
  from core.tenant_api_keys k left join core.users u on u.tenant_id = k.tenant_id and u.user_id = k.user_id
  where k.tenant_id = p_tenant_id and k.key_id = p_key_id;
  v_rank := core.rank_of_caller(v_key.role, v_key.permissions);
  if p_operation = 'update_tenant_config' then
    if not 'config:write' = any (v_key.permissions) then
      raise exception 'the API key lacks the permission config:write' using errcode = 'PT403';
    end if;
    if jsonb_typeof(p_payload -> 'settings') is distinct from 'object' then
      raise exception 'a configuration change names its settings' using errcode = 'PT422';
    end if;
    if core.settings_error(p_payload -> 'settings') is not null then
      raise exception '%', core.settings_error(p_payload -> 'settings') using errcode = 'PT422';
    end if;
  elsif p_operation = 'create_api_key' then
    if coalesce(char_length(p_payload ->> 'name'), 0) not between 1 and 200 then
      raise exception 'a key has a name of 1 to 200 characters' using errcode = 'PT422';
    end if;
    if jsonb_typeof(p_payload -> 'permissions') is distinct from 'array'
       or exists (select from jsonb_array_elements(p_payload -> 'permissions') e
                  where jsonb_typeof(e) <> 'string' or not (e #>> '{}') = any (core.all_permissions() || '*'::text)) then
      raise exception 'a key''s permissions are a list of known permissions' using errcode = 'PT422';
    end if;
    perform core.check_key_issue(p_tenant_id, p_key_id,
      array(select jsonb_array_elements_text(p_payload -> 'permissions')),
      (p_payload ->> 'user_id')::uuid, (p_payload ->> 'expires_at')::timestamptz);
    if p_payload ? 'user_id' and not exists (select from core.users u
                                             where u.tenant_id = p_tenant_id and u.user_id::text = p_payload ->> 'user_id') then
      raise exception 'a referenced user does not exist in this tenant' using errcode = 'P0002';
    end if;
  else
    if not 'users:write' = any (v_key.permissions) then
      raise exception 'the API key lacks the permission users:write' using errcode = 'PT403';
    end if;
    if p_operation = 'update_user_role'
       and not coalesce((p_payload ->> 'role') = any (array['tenant_admin', 'member', 'viewer']), false) then
      raise exception 'a role is tenant_admin, member or viewer' using errcode = 'PT422';
    end if;
    select u.role into v_target from core.users u where u.tenant_id = p_tenant_id and u.user_id::text = p_payload ->> 'user_id';
    if not found then
      raise exception 'no user with that id' using errcode = 'P0002';
    end if;
    if core.role_rank(v_target) > v_rank
       or (p_operation = 'update_user_role'
           and (v_rank < core.role_rank('tenant_admin') or core.role_rank(p_payload ->> 'role') > v_rank)) then
      raise exception 'a key cannot change or remove a user above its own role, and only an administrator changes roles'
        using errcode = 'PT403';
    end if;
  end if;
end
$$;
comment on function core.check_change_request(uuid, uuid, text, jsonb) is
  'Refuses a request for a change the requesting key could not make itself';

-- A pending request, when the change needs one; nothing otherwise.
create function api.request_approval(p_operation text, p_payload jsonb) returns table (approval jsonb, key text)
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_context record;
  v_approval_id uuid;
  v_secret text;
begin
  select c.tenant_id, c.api_key_id, c.user_id into v_context from core.request_context c;
  if v_context.tenant_id is null or not core.key_is_active(v_context.tenant_id, v_context.api_key_id) then
    raise exception 'unknown, revoked or expired API key' using errcode = 'PT401';
  end if;
  if p_operation not in ('create_api_key', 'update_tenant_config', 'delete_user', 'update_user_role')
     or jsonb_typeof(p_payload) is distinct from 'object' then
    raise exception 'no such operation to approve' using errcode = 'PT422';
  end if;
  if not (core.needs_second_person(p_operation, p_payload) and core.two_people_required(v_context.tenant_id)) then
    return;
  end if;
  -- The requester may make the change itself, as far as it can be told
  -- now (the approval checks again, under the approver's context): a
  -- request nobody could carry out is refused, not queued.
  perform core.check_change_request(v_context.tenant_id, v_context.api_key_id, p_operation, p_payload);
  -- A key asked for gets its secret now, shown to the requester alone: the
  -- approver, who sees only its hash's request, could otherwise act as the
  -- requester's key.
  if p_operation = 'create_api_key' then
    v_secret := 'tnk_' || rtrim(translate(encode(extensions.gen_random_bytes(32), 'base64'), '+/', '-_'), '=');
  end if;
  insert into core.approval_requests
    (tenant_id, operation, payload, requested_by_key_id, requested_by_user_id, key_hash, key_prefix)
  values (v_context.tenant_id, p_operation, p_payload, v_context.api_key_id, v_context.user_id,
    encode(sha256(convert_to(v_secret, 'UTF8')), 'hex'), left(v_secret, 12))
  returning approval_id into v_approval_id;
  return query select to_jsonb(a), v_secret from api.approvals a
    where a.tenant_id = v_context.tenant_id and a.approval_id = v_approval_id;
end
$$;
comment on function api.request_approval(text, jsonb) is
  'Records a pending request for a change two-person approval holds back, and returns it (with a requested key''s secret, shown only here); returns nothing when the change needs no approval';

-- Approves (performing the change) or rejects a pending request.
create function api.decide_approval(p_approval_id uuid, p_approve boolean)
returns table (approval jsonb, result jsonb)
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_context record;
  v_request core.approval_requests;
  v_result jsonb;
  v_needed text;
begin
  select c.tenant_id, c.api_key_id, c.user_id, c.permissions into v_context from core.request_context c;
  if v_context.tenant_id is null or not core.key_is_active(v_context.tenant_id, v_context.api_key_id) then
    raise exception 'unknown, revoked or expired API key' using errcode = 'PT401';
  end if;
  select * into v_request from core.approval_requests a
  where a.tenant_id = v_context.tenant_id and a.approval_id = p_approval_id
  for update;
  if not found then
    raise exception 'no approval request with that id' using errcode = 'P0002';
  end if;
  if v_request.status <> 'pending' then
    raise exception 'the request was % already', v_request.status using errcode = 'PT409';
  end if;
  if v_request.expires_at <= now() then
    raise exception 'the request has expired; ask again' using errcode = 'PT409';
  end if;
  -- A request lives no longer than the key that made it, nor than its
  -- right to ask for it.
  if not core.key_is_active(v_request.tenant_id, v_request.requested_by_key_id) then
    raise exception 'the key that asked for this change is revoked or expired' using errcode = 'PT409';
  end if;
  perform core.check_change_request(v_request.tenant_id, v_request.requested_by_key_id, v_request.operation,
    v_request.payload);
  -- Nobody decides their own request, nor with a key of their making.
  if v_context.user_id is null then
    raise exception 'a key deciding a request must be bound to a user' using errcode = 'PT403';
  end if;
  -- Whoever issued a key has seen its secret: two keys with an issuer in
  -- common (or one issued by the other) may be one person's.
  if v_context.api_key_id = v_request.requested_by_key_id
     or v_context.user_id is not distinct from v_request.requested_by_user_id
     or exists (select from core.key_lineage(v_context.tenant_id, v_context.api_key_id) a
                join core.key_lineage(v_request.tenant_id, v_request.requested_by_key_id) r on r = a) then
    raise exception 'a key cannot decide a request of its own user, or of a key it shares an issuer with'
      using errcode = 'PT403';
  end if;
  -- The decider may make the change itself.
  v_needed := case v_request.operation when 'create_api_key' then 'keys:write'
                                       when 'update_tenant_config' then 'config:write'
                                       else 'users:write' end;
  if not v_needed = any (v_context.permissions)
     or (v_request.operation = 'create_api_key' and not core.effective_permissions(
           array(select jsonb_array_elements_text(v_request.payload -> 'permissions')), null) <@ v_context.permissions) then
    raise exception 'the API key may not make this change itself' using errcode = 'PT403';
  end if;

  update core.approval_requests a
  set status = case when p_approve then 'approved' else 'rejected' end,
      decided_by_key_id = v_context.api_key_id, decided_by_user_id = v_context.user_id, decided_at = now(),
      executing_xid = case when p_approve then pg_current_xact_id() end,
      -- Decided, the request needs the key's hash no more (v_request has it).
      key_hash = null
  where a.tenant_id = v_request.tenant_id and a.approval_id = v_request.approval_id;
  if p_approve then
    if v_request.operation = 'create_api_key' then
      select to_jsonb(k) - 'key' into v_result from core.issue_key_as(v_request.tenant_id, v_request.requested_by_key_id,
        v_request.payload ->> 'name',
        array(select jsonb_array_elements_text(v_request.payload -> 'permissions')),
        (v_request.payload ->> 'user_id')::uuid, (v_request.payload ->> 'expires_at')::timestamptz,
        v_request.key_hash, v_request.key_prefix) k;
    elsif v_request.operation = 'update_tenant_config' then
      select to_jsonb(c) into v_result from api.update_tenant_config(v_request.payload -> 'settings') c;
    elsif v_request.operation = 'delete_user' then
      select to_jsonb(u) into v_result from api.delete_user((v_request.payload ->> 'user_id')::uuid) u;
    else
      update core.users u set role = v_request.payload ->> 'role', email = coalesce(v_request.payload ->> 'email', u.email)
      where u.tenant_id = v_request.tenant_id and u.user_id = (v_request.payload ->> 'user_id')::uuid
      returning jsonb_build_object('user_id', u.user_id, 'tenant_id', u.tenant_id, 'email', u.email, 'role', u.role,
        'created_at', u.created_at, 'updated_at', u.updated_at) into v_result;
    end if;
    if v_result is null then
      raise exception 'the change can no longer be made: its user is gone' using errcode = 'P0002';
    end if;
    update core.approval_requests a set executing_xid = null
    where a.tenant_id = v_request.tenant_id and a.approval_id = v_request.approval_id;
  end if;
  return query
    select to_jsonb(a), v_result from api.approvals a
    where a.tenant_id = v_request.tenant_id and a.approval_id = v_request.approval_id;
end
$$;
comment on function api.decide_approval(uuid, boolean) is
  'Approves a pending request (performing its change, once) or rejects it, by a key of another user that may make the change';
reset role;

-- Owners: tenancy_auth reads the settings and keys whatever the key may,
-- and writes the requests.
alter function core.two_people_required(uuid) owner to tenancy_auth;
alter function core.approved_now(uuid, text) owner to tenancy_auth;
alter function core.hold_for_approval() owner to tenancy_auth;
alter function api.request_approval(text, jsonb) owner to tenancy_auth;
alter function api.decide_approval(uuid, boolean) owner to tenancy_auth;
grant select on core.approval_requests, api.approvals to tenancy_auth;
grant update (role, email), select (email, created_at, updated_at) on core.users to tenancy_auth;
grant execute on function core.needs_second_person(text, jsonb), core.issue_key_as(uuid, uuid, text, text[], uuid, timestamptz, text, text),
  core.check_key_issue(uuid, uuid, text[], uuid, timestamptz),
  core.key_lineage(uuid, uuid), core.key_is_active(uuid, uuid), core.check_change_request(uuid, uuid, text, jsonb)
  to tenancy_auth;
grant execute on function api.update_tenant_config(jsonb), api.delete_user(uuid) to tenancy_auth;
set local role tenancy_auth;
revoke execute on function core.two_people_required(uuid), core.approved_now(uuid, text), core.hold_for_approval(),
  api.request_approval(text, jsonb), api.decide_approval(uuid, boolean) from public;
grant execute on function api.request_approval(text, jsonb), api.decide_approval(uuid, boolean) to app_user;
reset role;

create trigger hold_for_approval before insert on core.tenant_api_keys
  for each row execute function core.hold_for_approval();
create trigger hold_for_approval before update on core.tenant_configs
  for each row execute function core.hold_for_approval();
create trigger hold_for_approval before update of role or delete on core.users
  for each row execute function core.hold_for_approval();
alter table core.tenant_api_keys enable always trigger hold_for_approval;
alter table core.tenant_configs enable always trigger hold_for_approval;
alter table core.users enable always trigger hold_for_approval;

-- migrate:down
set local lock_timeout = '5s';
set local statement_timeout = '60s';

drop trigger hold_for_approval on core.users;
drop trigger hold_for_approval on core.tenant_configs;
drop trigger hold_for_approval on core.tenant_api_keys;
drop function api.decide_approval(uuid, boolean);
drop function api.request_approval(text, jsonb);
drop function core.issue_key_as(uuid, uuid, text, text[], uuid, timestamptz, text, text);
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
drop function core.check_key_issue(uuid, uuid, text[], uuid, timestamptz);
drop function core.check_change_request(uuid, uuid, text, jsonb);
drop function core.key_is_active(uuid, uuid);
drop function core.key_lineage(uuid, uuid);
drop function core.hold_for_approval();
drop function core.approved_now(uuid, text);
drop function core.two_people_required(uuid);
drop function core.needs_second_person(text, jsonb);
revoke update (role, email), select (email, created_at, updated_at) on core.users from tenancy_auth;
revoke execute on function api.update_tenant_config(jsonb), api.delete_user(uuid) from tenancy_auth;
drop view api.approvals;
drop table core.approval_requests;
