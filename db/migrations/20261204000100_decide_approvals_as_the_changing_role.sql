-- migrate:up
/*
 * Why: on Citus two-person approval did not work (issue 14). Approving a
 * configuration change or a user's deletion answered 500: api.decide_approval
 * marked the request as tenancy_auth, then made the change through
 * api.update_tenant_config or api.delete_user as tenancy_writer, and Citus
 * refuses a second role on a tenant's shards once one has written to them
 * ("cannot perform query on placements that were modified in this
 * transaction by a different user"; migration 20261203000200). Approving a
 * key that may issue keys was refused as unapproved (PT428): the request was
 * marked with the coordinator's transaction id, and the trigger that checks
 * it (core.hold_for_approval) runs on a worker, whose transaction id is its
 * own. (Citus also refused the mark itself: it takes no volatile function
 * inside a CASE of an UPDATE.)
 *
 * Now:
 * - The request is marked with core.this_transaction(), which every node
 *   of the transaction reads alike: the distributed transaction on Citus,
 *   the transaction id on one server. It replaces executing_xid
 *   (executing_in; only ever set inside the transaction that performs the
 *   change, so no row holds one once committed).
 * - api.decide_approval checks the decider and the request as before, then
 *   decides it through core.decide_request as the role that makes the
 *   change: tenancy_auth for keys and roles (as before), tenancy_writer for
 *   the configuration and deletions (core.decide_as_writer, a definer that
 *   tenancy_auth alone may call). The request is marked only while still
 *   pending (the update waits for a concurrent decision and then finds the
 *   request decided), so each is decided once, as before.
 * - A request's expiry is read from the clock, not from the start of the
 *   deciding transaction (which may have begun before the request expired).
 * On one server the behaviour is otherwise unchanged.
 * The new functions are made as the migration's role and then given to
 * their owners (on a distributed deployment Citus makes a new function on
 * the workers as the role that made it).
 */
set local lock_timeout = '5s';
set local statement_timeout = '60s';
-- (On Citus: the table's change and the functions' go over one connection
-- per node, which Citus needs to make a function in the same transaction.)
set local citus.multi_shard_modify_mode = 'sequential';

-- The mark (a change of the table: Citus passes it on to the shards) -------------

-- (Changed in place, not added anew: Citus takes no SET STATISTICS on a
-- distributed table, and the column keeps its statistics target of 0 and
-- its grants. Only api.decide_approval's functions read or write it, and
-- the table is small: the rewrite's lock is brief. Each statement through
-- EXECUTE: Citus passes these on to the shards as the text they came in,
-- and dbmate sends a migration as one text of many statements, which the
-- workers refuse.)
do $$
begin
  execute 'alter table core.approval_requests alter column executing_xid type text using null';
  execute 'alter table core.approval_requests rename column executing_xid to executing_in';
  execute $comment$comment on column core.approval_requests.executing_in is
    'Transaction performing the approved change (core.this_transaction), while it runs'$comment$;
end
$$;

create function core.this_transaction() returns text
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
begin
  return coalesce(core.distributed_transaction(), 'xid:' || pg_current_xact_id()::text);
end
$$;
alter function core.this_transaction() owner to tenancy_owner;
comment on function core.this_transaction() is
  'The current transaction, as every node taking part in it reads it: the distributed transaction on Citus, else the transaction id';
revoke execute on function core.this_transaction() from public;
grant execute on function core.this_transaction() to tenancy_auth, tenancy_writer;

create or replace function core.approved_now(p_tenant_id uuid, p_operation text) returns boolean
language plpgsql stable security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  -- (Read first: Citus plans the statement below on the worker it runs on.)
  v_transaction text := core.this_transaction();
begin
  return exists (select 1 from core.approval_requests a
                 where a.tenant_id = p_tenant_id and a.operation = p_operation and a.status = 'approved'
                   and a.executing_in = v_transaction);
end
$$;

-- Deciding, as the role that makes the change -------------------------------------

-- The decision itself, run by api.decide_approval once it has checked the
-- decider: as tenancy_auth, or as tenancy_writer through core.decide_as_writer.
create function core.decide_request(p_tenant_id uuid, p_approval_id uuid, p_approve boolean,
  p_decided_by_key_id uuid, p_decided_by_user_id uuid)
returns table (approval jsonb, result jsonb)
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  -- The clock, not the transaction's start: a request expires while a
  -- transaction waits to decide it.
  v_now timestamptz := clock_timestamp();
  v_executing_in text := case when p_approve then core.this_transaction() end;
  v_request core.approval_requests;
  v_user core.users;
  v_result jsonb;
begin
  -- Only a pending request is decided: the update waits for a concurrent
  -- decision of it and then finds it decided.
  update core.approval_requests a
  set status = case when p_approve then 'approved' else 'rejected' end,
      decided_by_key_id = p_decided_by_key_id, decided_by_user_id = p_decided_by_user_id, decided_at = v_now,
      executing_in = v_executing_in,
      -- Decided, the request needs the key's hash no more (once it is issued).
      key_hash = case when p_approve then a.key_hash end
  where a.tenant_id = p_tenant_id and a.approval_id = p_approval_id and a.status = 'pending' and a.expires_at > v_now
  returning a.* into v_request;
  if not found then
    raise exception 'the request was decided meanwhile, or has expired' using errcode = 'PT409';
  end if;
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
      -- (The row made JSON after the update: Citus takes only immutable
      -- functions in its RETURNING.)
      update core.users u set role = v_request.payload ->> 'role', email = coalesce(v_request.payload ->> 'email', u.email)
      where u.tenant_id = v_request.tenant_id and u.user_id = (v_request.payload ->> 'user_id')::uuid
      returning u.* into v_user;
      if found then
        v_result := jsonb_build_object('user_id', v_user.user_id, 'tenant_id', v_user.tenant_id, 'email', v_user.email,
          'role', v_user.role, 'created_at', v_user.created_at, 'updated_at', v_user.updated_at);
      end if;
    end if;
    if v_result is null then
      raise exception 'the change can no longer be made: its user is gone' using errcode = 'P0002';
    end if;
    update core.approval_requests a set executing_in = null, key_hash = null
    where a.tenant_id = v_request.tenant_id and a.approval_id = v_request.approval_id;
    -- (Its policies read the context: one that ended during the change
    -- would leave the mark, were it not refused.)
    if not found then
      raise exception 'the request context ended during the decision' using errcode = 'PT401';
    end if;
  end if;
  return query
    select to_jsonb(a), v_result from api.approvals a
    where a.tenant_id = v_request.tenant_id and a.approval_id = v_request.approval_id;
end
$$;
alter function core.decide_request(uuid, uuid, boolean, uuid, uuid) owner to tenancy_owner;
comment on function core.decide_request(uuid, uuid, boolean, uuid, uuid) is
  'Approves (making the change) or rejects a pending request as its caller, once api.decide_approval has checked the decider; PT409 when no longer pending';
revoke execute on function core.decide_request(uuid, uuid, boolean, uuid, uuid) from public;
grant execute on function core.decide_request(uuid, uuid, boolean, uuid, uuid) to tenancy_auth, tenancy_writer;

create function core.decide_as_writer(p_tenant_id uuid, p_approval_id uuid, p_approve boolean,
  p_decided_by_key_id uuid, p_decided_by_user_id uuid)
returns table (approval jsonb, result jsonb)
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  perform core.carry_context_to_workers();
  return query select d.approval, d.result
    from core.decide_request(p_tenant_id, p_approval_id, p_approve, p_decided_by_key_id, p_decided_by_user_id) d;
end
$$;
alter function core.decide_as_writer(uuid, uuid, boolean, uuid, uuid) owner to tenancy_writer;
comment on function core.decide_as_writer(uuid, uuid, boolean, uuid, uuid) is
  'core.decide_request as tenancy_writer, the role that changes the configuration and deletes users (api.decide_approval''s alone)';
revoke execute on function core.decide_as_writer(uuid, uuid, boolean, uuid, uuid) from public;
grant execute on function core.decide_as_writer(uuid, uuid, boolean, uuid, uuid) to tenancy_auth;
-- tenancy_writer decides those requests (its policies are the tenant's).
grant select, update (status, decided_by_key_id, decided_by_user_id, decided_at, executing_in, key_hash)
  on core.approval_requests to tenancy_writer;
grant select on api.approvals to tenancy_writer;

-- The api's functions run on the coordinator alone: on a deployment
-- distributed already, Citus would make the one replaced here on the workers
-- too, with PostgreSQL's default grant.
set local citus.enable_ddl_propagation = off;

CREATE OR REPLACE FUNCTION api.decide_approval(p_approval_id uuid, p_approve boolean) RETURNS TABLE(approval jsonb, result jsonb)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
  v_context record;
  v_request core.approval_requests;
  v_needed text;
begin
  perform core.carry_context_to_workers();
  select c.tenant_id, c.api_key_id, c.user_id, c.permissions into v_context from core.request_context c;
  if v_context.tenant_id is null or not core.key_is_active(v_context.tenant_id, v_context.api_key_id) then
    raise exception 'unknown, revoked or expired API key' using errcode = 'PT401';
  end if;
  select * into v_request from core.approval_requests a
  where a.tenant_id = v_context.tenant_id and a.approval_id = p_approval_id;
  if not found then
    raise exception 'no approval request with that id' using errcode = 'P0002';
  end if;
  if v_request.status <> 'pending' then
    raise exception 'the request was % already', v_request.status using errcode = 'PT409';
  end if;
  if v_request.expires_at <= clock_timestamp() then
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

  -- Decided as the role that makes the change: on Citus one role writes a
  -- tenant's shards in a transaction (tenancy_writer changes the
  -- configuration and deletes users; keys and roles are tenancy_auth's).
  if p_approve and v_request.operation in ('update_tenant_config', 'delete_user') then
    return query select d.approval, d.result from core.decide_as_writer(v_request.tenant_id, v_request.approval_id,
      p_approve, v_context.api_key_id, v_context.user_id) d;
  else
    return query select d.approval, d.result from core.decide_request(v_request.tenant_id, v_request.approval_id,
      p_approve, v_context.api_key_id, v_context.user_id) d;
  end if;
end
$$;

reset citus.enable_ddl_propagation;

-- migrate:down
set local lock_timeout = '5s';
set local statement_timeout = '60s';
set local citus.multi_shard_modify_mode = 'sequential';

set local citus.enable_ddl_propagation = off;

CREATE OR REPLACE FUNCTION api.decide_approval(p_approval_id uuid, p_approve boolean) RETURNS TABLE(approval jsonb, result jsonb)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
  v_context record;
  v_request core.approval_requests;
  v_result jsonb;
  v_needed text;
begin
  perform core.carry_context_to_workers();
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


reset citus.enable_ddl_propagation;

revoke select on api.approvals from tenancy_writer;
revoke select, update on core.approval_requests from tenancy_writer;
drop function core.decide_as_writer(uuid, uuid, boolean, uuid, uuid);
drop function core.decide_request(uuid, uuid, boolean, uuid, uuid);

create or replace function core.approved_now(p_tenant_id uuid, p_operation text) returns boolean
language plpgsql stable security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  return exists (select 1 from core.approval_requests a
                 where a.tenant_id = p_tenant_id and a.operation = p_operation and a.status = 'approved'
                   and a.executing_xid = pg_current_xact_id());
end
$$;
drop function core.this_transaction();

-- (No row holds a mark once committed. Through EXECUTE, as above.)
do $$
begin
  execute 'alter table core.approval_requests rename column executing_in to executing_xid';
  execute 'alter table core.approval_requests alter column executing_xid type xid8 using null';
  execute $comment$comment on column core.approval_requests.executing_xid is
    'Transaction performing the approved change, while it runs'$comment$;
end
$$;
