-- migrate:up
/*
 * Why: of two keys approving one user's deletion at the same moment, the
 * slower could be told "no user with that id" (404) instead of "decided
 * meanwhile" (409). api.decide_approval reads the request, then checks that
 * the change could still be asked for (core.check_change_request, which
 * looks the user up), each statement at its own snapshot: when the faster
 * decision committed between the two, the request had been read as pending
 * and the user was found gone. The one way found, by reading, for CI's run
 * of tests/approvals_test.ts to fail as it did once (two deciders at once
 * expect 200 and 409; the run printed only the test's name); not
 * reproduced in 38 runs here, the window being between two statements of
 * one function.
 *
 * Now a user found gone while the request is checked is answered as a
 * decision made meanwhile when the request, read again, is no longer
 * pending; otherwise as before (the user is gone, the request still pending:
 * 404). Nothing else changes: the decision itself is still made only while
 * the request is pending (core.decide_request).
 */
set local lock_timeout = '5s';
set local statement_timeout = '60s';

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
  begin
    perform core.check_change_request(v_request.tenant_id, v_request.requested_by_key_id, v_request.operation,
      v_request.payload);
  exception when no_data_found then
    -- The request's user may be gone because a concurrent decision of this
    -- very request removed it, after the request was read above.
    if exists (select from core.approval_requests a
               where a.tenant_id = v_request.tenant_id and a.approval_id = v_request.approval_id
                 and a.status <> 'pending') then
      raise exception 'the request was decided meanwhile' using errcode = 'PT409';
    end if;
    raise;
  end;
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
