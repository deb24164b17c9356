-- migrate:up
/*
 * Why: on Citus every context signed in one distributed transaction
 * verifies on every node (it is bound to the distributed transaction, and a
 * worker cannot tell which of two was signed last), and a caller chooses
 * what each node holds: SET LOCAL reaches the workers, set_config only the
 * coordinator. Holding two keys of a tenant (or two operators' tokens), a
 * caller signed both and left one on each side: a definer checked one key
 * on the coordinator while its write, made on a worker as the definer's
 * owner, was filed in the trail under the other (found by the attack on
 * migration 20261203000200; refusing a second signing in the transaction was
 * tried and given up: DISCARD SEQUENCES, which any role may run inside a
 * transaction, clears whatever a session could remember of the first).
 *
 * What a definer decides on the coordinator is now what its writes are
 * filed under on the workers: each SECURITY DEFINER function the runtime
 * roles may call and that changes rows starts with
 * core.carry_context_to_workers(), which passes the coordinator's context on
 * to every node of the transaction (SET LOCAL). An invoker function, or a
 * statement of app_user's or uber_admin's own, needs none: its writes are
 * checked on the worker (policies, triggers) against the context there, so
 * it does no more than that context's key could by SQL, and is filed under
 * it. The platform's own invoker functions carry the context too: they
 * check their operator on the coordinator (core.require_active_operator),
 * and on a worker the platform role's connection would take another
 * context's operator, one revoked earlier in the transaction included, for
 * active. The signers (api.begin_request, platform.begin_request) pass their
 * context on themselves. Left as they are, since they change no row a
 * request's actor is filed for: core.context_verifies (the check itself,
 * run inside statements, where no SET may run), platform.bootstrap_operator
 * (its operator is its own actor), core.end_stale_transactions,
 * core.seize_chain_head, core.seize_usage_row (they lock rows and end stale
 * sessions) and core.maintain_audit_partitions (it makes partitions).
 * pgtap/15_definer_hijack finds the functions in the catalog; on one server
 * nothing changes.
 */
set local lock_timeout = '5s';
set local statement_timeout = '60s';

create function core.carry_context_to_workers() returns void
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
begin
  -- Without Citus loaded there is no other node (and no such setting).
  if current_setting('citus.propagate_set_commands', true) is null or not core.on_citus() then
    return;
  end if;
  perform set_config('citus.propagate_set_commands', 'local', true);
  execute format('set local app.context = %L', coalesce(current_setting('app.context', true), ''));
end
$$;
alter function core.carry_context_to_workers() owner to tenancy_owner;
comment on function core.carry_context_to_workers() is
  'On Citus, passes the coordinator''s request context on to every node of the transaction; on one server, nothing';
revoke execute on function core.carry_context_to_workers() from public;
grant execute on function core.carry_context_to_workers() to uber_admin, tenancy_auth, tenancy_writer, tenancy_meter;

-- The api's and the platform's functions run on the coordinator alone: on a
-- deployment distributed already, Citus would make each one replaced here on
-- the workers too, with PostgreSQL's default grant (anyone may execute it).
set local citus.enable_ddl_propagation = off;

CREATE OR REPLACE FUNCTION api.update_tenant_config(p_settings_patch jsonb) RETURNS SETOF api.tenant_config
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
  v_error text := core.settings_error(p_settings_patch);
begin
  perform core.carry_context_to_workers();
  if v_error is not null then
    raise exception '%', v_error using errcode = 'PT422';
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

CREATE OR REPLACE FUNCTION api.delete_user(p_user_id uuid) RETURNS SETOF api.users
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
  v_tenant_id uuid := core.current_tenant_id();
  v_user api.users;
begin
  perform core.carry_context_to_workers();
  delete from core.users
  where tenant_id = v_tenant_id and user_id = p_user_id
  returning user_id, tenant_id, email, role, created_at, updated_at into v_user;
  if found then
    return next v_user;
  end if;
end
$$;

CREATE OR REPLACE FUNCTION api.delete_document(p_document_id uuid) RETURNS SETOF api.documents
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
  v_tenant_id uuid := core.current_tenant_id();
begin
  perform core.carry_context_to_workers();
  return query
    delete from core.documents
    where tenant_id = v_tenant_id and document_id = p_document_id
    returning document_id, tenant_id, user_id, title, content_hash, metadata, created_at, updated_at;
  if not found and exists (select 1 from core.documents d
                           where d.tenant_id = v_tenant_id and d.document_id = p_document_id) then
    raise exception 'a key of a member deletes only the documents its user authors' using errcode = 'PT403';
  end if;
end
$$;

CREATE OR REPLACE FUNCTION api.touch_api_key(p_key_hash text) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
  v_claim record;
begin
  perform core.carry_context_to_workers();
  select h.tenant_id, h.key_id into v_claim from core.api_key_hashes h where h.key_hash = p_key_hash;
  if not found then
    return;
  end if;
  update core.api_key_usage u
  set last_used_at = now()
  where (u.tenant_id, u.key_id) = (
    select s.tenant_id, s.key_id
    from core.api_key_usage s
    where s.tenant_id = v_claim.tenant_id and s.key_id = v_claim.key_id
      and (s.last_used_at is null or s.last_used_at < now() - interval '1 minute')
    for update skip locked);
end
$$;

CREATE OR REPLACE FUNCTION api.claim_idempotency_key(p_idempotency_key text, p_request_hash text) RETURNS TABLE(claimed boolean, request_hash text, response_status integer, response_body jsonb)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
  v_tenant_id uuid := core.current_tenant_id();
  v_now timestamptz := now();
  -- timestamptz + interval is stable, not immutable (time zones).
  v_expires_at timestamptz := now() + interval '24 hours';
begin
  perform core.carry_context_to_workers();
  -- Keep the table small: drop a few of this key's expired claims.
  delete from core.idempotency_keys k
  where k.tenant_id = v_tenant_id
    and k.expires_at < v_now
    and k.idempotency_key <> p_idempotency_key
    and k.idempotency_key in (
      select e.idempotency_key from core.idempotency_keys e
      where e.tenant_id = v_tenant_id and e.expires_at < v_now
      limit 10);

  return query
    insert into core.idempotency_keys as k (idempotency_key, request_hash)
    values (p_idempotency_key, p_request_hash)
    on conflict (tenant_id, api_key_id, idempotency_key) do update
      set request_hash = excluded.request_hash, response_status = null, response_body = null,
          created_at = v_now, expires_at = v_expires_at
      where k.expires_at < v_now
    returning true, k.request_hash, k.response_status, k.response_body;
  if not found then
    return query
      select false, k.request_hash, k.response_status, k.response_body
      from core.idempotency_keys k
      where k.tenant_id = v_tenant_id and k.idempotency_key = p_idempotency_key;
  end if;
end
$$;

CREATE OR REPLACE FUNCTION api.save_idempotent_response(p_idempotency_key text, p_status integer, p_body jsonb) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
  v_tenant_id uuid := core.current_tenant_id();
begin
  perform core.carry_context_to_workers();
  update core.idempotency_keys
  set response_status = p_status, response_body = p_body
  where tenant_id = v_tenant_id and idempotency_key = p_idempotency_key;
end
$$;

CREATE OR REPLACE FUNCTION api.create_api_key(p_name text, p_permissions text[], p_user_id uuid DEFAULT NULL::uuid, p_expires_at timestamp with time zone DEFAULT NULL::timestamp with time zone) RETURNS TABLE(key text, key_id uuid, tenant_id uuid, key_prefix text, name text, permissions text[], user_id uuid, expires_at timestamp with time zone, revoked_at timestamp with time zone, last_used_at timestamp with time zone, created_at timestamp with time zone, updated_at timestamp with time zone, issued_by_key_id uuid)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
#variable_conflict use_column
declare
  v_tenant_id uuid;
  v_key_id uuid;
  v_issuer record;
begin
  perform core.carry_context_to_workers();
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

CREATE OR REPLACE FUNCTION api.revoke_api_key(p_key_id uuid) RETURNS SETOF api.api_keys
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
  v_caller record;
  v_target record;
begin
  perform core.carry_context_to_workers();
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

CREATE OR REPLACE FUNCTION api.request_approval(p_operation text, p_payload jsonb) RETURNS TABLE(approval jsonb, key text)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
  v_context record;
  v_approval_id uuid;
  v_secret text;
begin
  perform core.carry_context_to_workers();
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

CREATE OR REPLACE FUNCTION api.lease_requests(p_most integer DEFAULT NULL::integer) RETURNS TABLE(tenant_id uuid, granted integer, request_limit integer, remaining integer, resets_in_ms integer)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
#variable_conflict use_column
declare
  v_tenant_id uuid := (select c.tenant_id from core.request_context c);
  v_limit integer;
  v_start timestamptz;
  v_leased integer;
  v_now timestamptz;
  v_window timestamptz;
  v_left integer;
  v_granted integer;
  v_lock_timeout text;
  v_attempt integer;
begin
  perform core.carry_context_to_workers();
  if v_tenant_id is null then
    raise exception 'a lease of requests needs a tenant''s request context (api.begin_request)' using errcode = 'PT401';
  end if;
  select p.requests_per_minute into strict v_limit
  from core.tenants t join core.plans p on p.tier = t.subscription_tier
  where t.tenant_id = v_tenant_id;
  -- Leases of the tenant take turns on its row (made with the tenant), as
  -- its writers do on its counts: a session holding it past any request's
  -- lifetime is ended first, so no session keeps a tenant's leases waiting
  -- for good. (No INSERT ... ON CONFLICT here: it would wait for whoever
  -- holds the row before anything could end them.)
  perform from core.request_windows w where w.tenant_id = v_tenant_id for update skip locked;
  if not found then
    if not exists (select from core.request_windows w where w.tenant_id = v_tenant_id) then
      -- A tenant made while this migration ran, by a transaction that
      -- began before it: its row is made here, once.
      insert into core.request_windows (tenant_id, window_start, leased) values (v_tenant_id, '-infinity', 0)
      on conflict (tenant_id) do nothing;
    else
      -- Another lease holds the row for a moment. Whoever holds it longer
      -- than that is ended, whatever the age of its transaction, so that
      -- sessions taking turns at the row cannot keep the tenant's leases
      -- waiting either.
      v_lock_timeout := current_setting('lock_timeout');
      perform set_config('lock_timeout', '200ms', true);
      begin
        perform from core.request_windows w where w.tenant_id = v_tenant_id for update;
      exception when lock_not_available then
        null;
      end;
      perform set_config('lock_timeout', v_lock_timeout, true);
      for v_attempt in 1..100 loop
        perform from core.request_windows w where w.tenant_id = v_tenant_id for update skip locked;
        exit when found;
        perform core.end_window_holders(v_tenant_id);
      end loop;
    end if;
  end if;
  select w.window_start, w.leased into strict v_start, v_leased
  from core.request_windows w where w.tenant_id = v_tenant_id
  for update;
  -- The minute is read once the row is locked: a lease that waited for
  -- another never takes its window back to an earlier minute.
  v_now := clock_timestamp();
  v_window := greatest(date_bin('1 minute', v_now, timestamptz '2000-01-01 00:00:00+00'), v_start);
  if v_start < v_window then
    v_leased := 0;
  end if;
  -- A limit lowered within the minute leaves nothing to lease.
  v_left := greatest(v_limit - v_leased, 0);
  v_granted := least(ceil(v_limit / 20.0), ceil(v_left / 4.0), greatest(coalesce(p_most, v_limit), 0))::integer;
  update core.request_windows w
  set window_start = v_window, leased = v_leased + v_granted
  where w.tenant_id = v_tenant_id;
  return query select v_tenant_id, v_granted, v_limit, v_left - v_granted,
    greatest(ceil(extract(epoch from v_window + interval '1 minute' - v_now) * 1000), 1)::integer;
end
$$;

CREATE OR REPLACE FUNCTION platform.create_tenant(p_name text, p_domain text DEFAULT NULL::text, p_subscription_tier text DEFAULT 'free'::text, p_template_name text DEFAULT NULL::text) RETURNS SETOF platform.tenants
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
  v_tenant_id uuid;
  v_template core.templates;
begin
  perform core.carry_context_to_workers();
  perform core.require_active_operator();
  if p_template_name is not null then
    select * into v_template from core.templates t where t.name = p_template_name;
    if not found then
      raise exception 'unknown template "%"', p_template_name
        using errcode = 'no_data_found', hint = 'list templates with GET /v1/templates';
    end if;
  end if;

  insert into core.tenants (name, subscription_tier)
  values (p_name, coalesce(p_subscription_tier, 'free'))
  returning tenant_id into v_tenant_id;
  -- A taken domain fails here, as a unique violation.
  if p_domain is not null then
    perform core.set_tenant_domain(v_tenant_id, p_domain);
  end if;

  insert into core.tenant_configs (tenant_id, template_id, settings)
  values (v_tenant_id, v_template.template_id, coalesce(v_template.default_config, '{}'));

  return query
    select t.tenant_id, t.name, t.domain, t.subscription_tier, t.deactivated_at, t.created_at, t.updated_at
    from core.tenants t where t.tenant_id = v_tenant_id;
end
$$;

CREATE OR REPLACE FUNCTION platform.update_tenant(p_tenant_id uuid, p_name text DEFAULT NULL::text, p_domain text DEFAULT NULL::text, p_clear_domain boolean DEFAULT false, p_subscription_tier text DEFAULT NULL::text) RETURNS SETOF platform.tenants
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
begin
  perform core.carry_context_to_workers();
  perform core.require_active_operator();
  if p_clear_domain or p_domain is not null then
    perform core.set_tenant_domain(p_tenant_id, case when p_clear_domain then null else p_domain end);
  end if;
  return query
    update core.tenants t
    set name = coalesce(p_name, t.name),
        subscription_tier = coalesce(p_subscription_tier, t.subscription_tier)
    where t.tenant_id = p_tenant_id
    returning t.tenant_id, t.name, t.domain, t.subscription_tier, t.deactivated_at, t.created_at, t.updated_at;
end
$$;

CREATE OR REPLACE FUNCTION platform.claim_idempotency_key(p_idempotency_key text, p_request_hash text) RETURNS TABLE(claimed boolean, request_hash text, response_status integer, response_body jsonb)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
  v_operator_id uuid := core.current_operator_id();
  v_now timestamptz := now();
  -- timestamptz + interval is stable, not immutable (time zones).
  v_expires_at timestamptz := now() + interval '24 hours';
begin
  perform core.carry_context_to_workers();
  if v_operator_id is null then
    raise exception 'a platform change needs a named operator' using errcode = 'PT401';
  end if;
  -- Keep the table small: drop a few of this operator's expired claims.
  delete from core.platform_idempotency_keys k
  where k.operator_id = v_operator_id and k.expires_at < v_now and k.idempotency_key in (
      select e.idempotency_key from core.platform_idempotency_keys e
      where e.operator_id = v_operator_id and e.expires_at < v_now and e.idempotency_key <> p_idempotency_key
      limit 10);
  return query
    insert into core.platform_idempotency_keys as k (operator_id, idempotency_key, request_hash)
    values (v_operator_id, p_idempotency_key, p_request_hash)
    on conflict (operator_id, idempotency_key) do update
      set request_hash = excluded.request_hash, response_status = null, response_body = null,
          created_at = v_now, expires_at = v_expires_at
      where k.expires_at < v_now
    returning true, k.request_hash, k.response_status, k.response_body;
  if not found then
    return query
      select false, k.request_hash, k.response_status, k.response_body
      from core.platform_idempotency_keys k
      where k.operator_id = v_operator_id and k.idempotency_key = p_idempotency_key;
  end if;
end
$$;

CREATE OR REPLACE FUNCTION platform.save_idempotent_response(p_idempotency_key text, p_status integer, p_body jsonb) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
  v_operator_id uuid := core.current_operator_id();
begin
  perform core.carry_context_to_workers();
  update core.platform_idempotency_keys
  set response_status = p_status, response_body = p_body
  where operator_id = v_operator_id and idempotency_key = p_idempotency_key;
end
$$;

CREATE OR REPLACE FUNCTION platform.create_api_key(p_tenant_id uuid, p_name text, p_permissions text[], p_user_id uuid DEFAULT NULL::uuid, p_expires_at timestamp with time zone DEFAULT NULL::timestamp with time zone) RETURNS TABLE(key text, key_id uuid, tenant_id uuid, key_prefix text, name text, permissions text[], user_id uuid, expires_at timestamp with time zone, revoked_at timestamp with time zone, last_used_at timestamp with time zone, created_at timestamp with time zone, updated_at timestamp with time zone, issued_by_key_id uuid)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
begin
  perform core.carry_context_to_workers();
  perform core.require_active_operator();
  if not exists (select from core.tenants t where t.tenant_id = p_tenant_id and t.deactivated_at is null) then
    raise exception 'no active tenant %', p_tenant_id using errcode = 'no_data_found';
  end if;
  if p_expires_at is not null and p_expires_at <= now() then
    raise exception 'expires_at must be in the future' using errcode = 'check_violation';
  end if;
  return query select * from core.issue_api_key(p_tenant_id, p_name, p_permissions, p_user_id, p_expires_at, null);
end
$$;

CREATE OR REPLACE FUNCTION platform.create_operator(p_name text) RETURNS TABLE(operator_id uuid, name text, token text, token_prefix text, created_by uuid, created_at timestamp with time zone, revoked_at timestamp with time zone, revoked_by uuid)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
#variable_conflict use_column
declare
  v_caller uuid := core.current_operator_id();
  v_token text := 'tnop_' || rtrim(translate(encode(extensions.gen_random_bytes(32), 'base64'), '+/', '-_'), '=');
begin
  perform core.carry_context_to_workers();
  if v_caller is null then
    raise exception 'a platform change needs a named operator' using errcode = 'PT401';
  end if;
  perform core.require_active_operator();
  return query
    insert into core.platform_operators as o (name, token_hash, token_prefix, created_by)
    values (p_name, encode(sha256(convert_to(v_token, 'UTF8')), 'hex'), left(v_token, 12), v_caller)
    returning o.operator_id, o.name, v_token, o.token_prefix, o.created_by, o.created_at, o.revoked_at, o.revoked_by;
end
$$;

CREATE OR REPLACE FUNCTION platform.revoke_operator(p_operator_id uuid) RETURNS TABLE(operator_id uuid, revoked_at timestamp with time zone)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
#variable_conflict use_column
declare
  v_caller uuid := core.current_operator_id();
  v_now timestamptz := now();
begin
  perform core.carry_context_to_workers();
  if v_caller is null then
    raise exception 'a platform change needs a named operator' using errcode = 'PT401';
  end if;
  perform core.require_active_operator();
  -- Serialises revocations, so two operators cannot revoke each other as
  -- the last two: each locks every active operator's row first. (Row locks
  -- only tenancy_auth can take, where an advisory lock anyone can hold.)
  perform core.end_stale_transactions();
  perform from core.platform_operators o where o.revoked_at is null for update;
  -- The operators' rows first, then the chain head, in the order every
  -- writer of operators takes them.
  perform core.seize_chain_head('00000000-0000-0000-0000-000000000000');
  if exists (select 1 from core.platform_operators o where o.operator_id = p_operator_id and o.revoked_at is null)
     and not exists (select 1 from core.platform_operators o
                     where o.revoked_at is null and o.operator_id <> p_operator_id) then
    raise exception 'the last active operator cannot be revoked; create another first' using errcode = 'PT409';
  end if;
  return query
    update core.platform_operators o
    set revoked_at = coalesce(o.revoked_at, v_now), revoked_by = coalesce(o.revoked_by, v_caller)
    where o.operator_id = p_operator_id
    returning o.operator_id, o.revoked_at;
end
$$;
CREATE OR REPLACE FUNCTION platform.deactivate_tenant(p_tenant_id uuid) RETURNS SETOF platform.tenants
    LANGUAGE plpgsql
    AS $$
declare
  v_now timestamptz := now();
  v_tenant platform.tenants;
begin
  perform core.carry_context_to_workers();
  perform core.require_active_operator();
  update core.tenants
  set deactivated_at = coalesce(deactivated_at, v_now)
  where tenant_id = p_tenant_id
  returning tenant_id, name, domain, subscription_tier, deactivated_at, created_at, updated_at into v_tenant;
  if found then
    return next v_tenant;
  end if;
end
$$;

CREATE OR REPLACE FUNCTION platform.revoke_api_key(p_tenant_id uuid, p_key_id uuid) RETURNS TABLE(tenant_id uuid, key_id uuid, revoked_at timestamp with time zone)
    LANGUAGE plpgsql
    AS $$
#variable_conflict use_column
begin
  perform core.carry_context_to_workers();
  perform core.require_active_operator();
  perform core.revoke_keys(p_tenant_id, array[p_key_id]);
  return query
    select k.tenant_id, k.key_id, k.revoked_at from core.tenant_api_keys k
    where k.tenant_id = p_tenant_id and k.key_id = p_key_id;
end
$$;

CREATE OR REPLACE FUNCTION platform.update_plan(p_plan_id uuid, p_max_documents integer DEFAULT NULL::integer, p_max_users integer DEFAULT NULL::integer, p_max_api_keys integer DEFAULT NULL::integer, p_max_metadata_bytes integer DEFAULT NULL::integer, p_requests_per_minute integer DEFAULT NULL::integer) RETURNS SETOF platform.plans
    LANGUAGE plpgsql
    AS $$
declare
  v_plan platform.plans;
begin
  perform core.carry_context_to_workers();
  perform core.require_active_operator();
  update core.plans p
  set max_documents = coalesce(p_max_documents, p.max_documents),
      max_users = coalesce(p_max_users, p.max_users),
      max_api_keys = coalesce(p_max_api_keys, p.max_api_keys),
      max_metadata_bytes = coalesce(p_max_metadata_bytes, p.max_metadata_bytes),
      requests_per_minute = coalesce(p_requests_per_minute, p.requests_per_minute)
  where p.plan_id = p_plan_id
  returning p.plan_id, p.tier, p.max_documents, p.max_users, p.max_api_keys, p.max_metadata_bytes,
    p.requests_per_minute, p.created_at, p.updated_at into v_plan;
  if found then
    return next v_plan;
  end if;
end
$$;
reset citus.enable_ddl_propagation;

CREATE OR REPLACE FUNCTION core.set_tenant_domain(p_tenant_id uuid, p_domain text) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
  v_old text;
begin
  perform core.carry_context_to_workers();
  perform core.require_active_operator();
  -- The Platform tenant, which no listing shows, holds no domain: one there
  -- would be taken from every tenant, out of sight.
  if p_tenant_id = '00000000-0000-0000-0000-000000000000' and p_domain is not null then
    raise exception 'the Platform tenant has no domain' using errcode = 'check_violation';
  end if;
  select t.domain into v_old from core.tenants t where t.tenant_id = p_tenant_id for update;
  if not found or v_old is not distinct from p_domain then
    return;
  end if;
  delete from core.tenant_domains d where d.domain = v_old and d.tenant_id = p_tenant_id;
  -- A taken domain fails here, as a unique violation.
  if p_domain is not null then
    insert into core.tenant_domains (domain, tenant_id) values (p_domain, p_tenant_id);
  end if;
  update core.tenants t set domain = p_domain where t.tenant_id = p_tenant_id;
end
$$;


-- migrate:down
set local lock_timeout = '5s';
set local statement_timeout = '60s';

set local citus.enable_ddl_propagation = off;

CREATE OR REPLACE FUNCTION api.update_tenant_config(p_settings_patch jsonb) RETURNS SETOF api.tenant_config
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
  v_error text := core.settings_error(p_settings_patch);
begin
  if v_error is not null then
    raise exception '%', v_error using errcode = 'PT422';
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

CREATE OR REPLACE FUNCTION api.delete_user(p_user_id uuid) RETURNS SETOF api.users
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
  v_tenant_id uuid := core.current_tenant_id();
  v_user api.users;
begin
  delete from core.users
  where tenant_id = v_tenant_id and user_id = p_user_id
  returning user_id, tenant_id, email, role, created_at, updated_at into v_user;
  if found then
    return next v_user;
  end if;
end
$$;

CREATE OR REPLACE FUNCTION api.delete_document(p_document_id uuid) RETURNS SETOF api.documents
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
  v_tenant_id uuid := core.current_tenant_id();
begin
  return query
    delete from core.documents
    where tenant_id = v_tenant_id and document_id = p_document_id
    returning document_id, tenant_id, user_id, title, content_hash, metadata, created_at, updated_at;
  if not found and exists (select 1 from core.documents d
                           where d.tenant_id = v_tenant_id and d.document_id = p_document_id) then
    raise exception 'a key of a member deletes only the documents its user authors' using errcode = 'PT403';
  end if;
end
$$;

CREATE OR REPLACE FUNCTION api.touch_api_key(p_key_hash text) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
  v_claim record;
begin
  select h.tenant_id, h.key_id into v_claim from core.api_key_hashes h where h.key_hash = p_key_hash;
  if not found then
    return;
  end if;
  update core.api_key_usage u
  set last_used_at = now()
  where (u.tenant_id, u.key_id) = (
    select s.tenant_id, s.key_id
    from core.api_key_usage s
    where s.tenant_id = v_claim.tenant_id and s.key_id = v_claim.key_id
      and (s.last_used_at is null or s.last_used_at < now() - interval '1 minute')
    for update skip locked);
end
$$;

CREATE OR REPLACE FUNCTION api.claim_idempotency_key(p_idempotency_key text, p_request_hash text) RETURNS TABLE(claimed boolean, request_hash text, response_status integer, response_body jsonb)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
  v_tenant_id uuid := core.current_tenant_id();
  v_now timestamptz := now();
  -- timestamptz + interval is stable, not immutable (time zones).
  v_expires_at timestamptz := now() + interval '24 hours';
begin
  -- Keep the table small: drop a few of this key's expired claims.
  delete from core.idempotency_keys k
  where k.tenant_id = v_tenant_id
    and k.expires_at < v_now
    and k.idempotency_key <> p_idempotency_key
    and k.idempotency_key in (
      select e.idempotency_key from core.idempotency_keys e
      where e.tenant_id = v_tenant_id and e.expires_at < v_now
      limit 10);

  return query
    insert into core.idempotency_keys as k (idempotency_key, request_hash)
    values (p_idempotency_key, p_request_hash)
    on conflict (tenant_id, api_key_id, idempotency_key) do update
      set request_hash = excluded.request_hash, response_status = null, response_body = null,
          created_at = v_now, expires_at = v_expires_at
      where k.expires_at < v_now
    returning true, k.request_hash, k.response_status, k.response_body;
  if not found then
    return query
      select false, k.request_hash, k.response_status, k.response_body
      from core.idempotency_keys k
      where k.tenant_id = v_tenant_id and k.idempotency_key = p_idempotency_key;
  end if;
end
$$;

CREATE OR REPLACE FUNCTION api.save_idempotent_response(p_idempotency_key text, p_status integer, p_body jsonb) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
  v_tenant_id uuid := core.current_tenant_id();
begin
  update core.idempotency_keys
  set response_status = p_status, response_body = p_body
  where tenant_id = v_tenant_id and idempotency_key = p_idempotency_key;
end
$$;

CREATE OR REPLACE FUNCTION api.create_api_key(p_name text, p_permissions text[], p_user_id uuid DEFAULT NULL::uuid, p_expires_at timestamp with time zone DEFAULT NULL::timestamp with time zone) RETURNS TABLE(key text, key_id uuid, tenant_id uuid, key_prefix text, name text, permissions text[], user_id uuid, expires_at timestamp with time zone, revoked_at timestamp with time zone, last_used_at timestamp with time zone, created_at timestamp with time zone, updated_at timestamp with time zone, issued_by_key_id uuid)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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

CREATE OR REPLACE FUNCTION api.revoke_api_key(p_key_id uuid) RETURNS SETOF api.api_keys
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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

CREATE OR REPLACE FUNCTION api.request_approval(p_operation text, p_payload jsonb) RETURNS TABLE(approval jsonb, key text)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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

CREATE OR REPLACE FUNCTION api.lease_requests(p_most integer DEFAULT NULL::integer) RETURNS TABLE(tenant_id uuid, granted integer, request_limit integer, remaining integer, resets_in_ms integer)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
#variable_conflict use_column
declare
  v_tenant_id uuid := (select c.tenant_id from core.request_context c);
  v_limit integer;
  v_start timestamptz;
  v_leased integer;
  v_now timestamptz;
  v_window timestamptz;
  v_left integer;
  v_granted integer;
  v_lock_timeout text;
  v_attempt integer;
begin
  if v_tenant_id is null then
    raise exception 'a lease of requests needs a tenant''s request context (api.begin_request)' using errcode = 'PT401';
  end if;
  select p.requests_per_minute into strict v_limit
  from core.tenants t join core.plans p on p.tier = t.subscription_tier
  where t.tenant_id = v_tenant_id;
  -- Leases of the tenant take turns on its row (made with the tenant), as
  -- its writers do on its counts: a session holding it past any request's
  -- lifetime is ended first, so no session keeps a tenant's leases waiting
  -- for good. (No INSERT ... ON CONFLICT here: it would wait for whoever
  -- holds the row before anything could end them.)
  perform from core.request_windows w where w.tenant_id = v_tenant_id for update skip locked;
  if not found then
    if not exists (select from core.request_windows w where w.tenant_id = v_tenant_id) then
      -- A tenant made while this migration ran, by a transaction that
      -- began before it: its row is made here, once.
      insert into core.request_windows (tenant_id, window_start, leased) values (v_tenant_id, '-infinity', 0)
      on conflict (tenant_id) do nothing;
    else
      -- Another lease holds the row for a moment. Whoever holds it longer
      -- than that is ended, whatever the age of its transaction, so that
      -- sessions taking turns at the row cannot keep the tenant's leases
      -- waiting either.
      v_lock_timeout := current_setting('lock_timeout');
      perform set_config('lock_timeout', '200ms', true);
      begin
        perform from core.request_windows w where w.tenant_id = v_tenant_id for update;
      exception when lock_not_available then
        null;
      end;
      perform set_config('lock_timeout', v_lock_timeout, true);
      for v_attempt in 1..100 loop
        perform from core.request_windows w where w.tenant_id = v_tenant_id for update skip locked;
        exit when found;
        perform core.end_window_holders(v_tenant_id);
      end loop;
    end if;
  end if;
  select w.window_start, w.leased into strict v_start, v_leased
  from core.request_windows w where w.tenant_id = v_tenant_id
  for update;
  -- The minute is read once the row is locked: a lease that waited for
  -- another never takes its window back to an earlier minute.
  v_now := clock_timestamp();
  v_window := greatest(date_bin('1 minute', v_now, timestamptz '2000-01-01 00:00:00+00'), v_start);
  if v_start < v_window then
    v_leased := 0;
  end if;
  -- A limit lowered within the minute leaves nothing to lease.
  v_left := greatest(v_limit - v_leased, 0);
  v_granted := least(ceil(v_limit / 20.0), ceil(v_left / 4.0), greatest(coalesce(p_most, v_limit), 0))::integer;
  update core.request_windows w
  set window_start = v_window, leased = v_leased + v_granted
  where w.tenant_id = v_tenant_id;
  return query select v_tenant_id, v_granted, v_limit, v_left - v_granted,
    greatest(ceil(extract(epoch from v_window + interval '1 minute' - v_now) * 1000), 1)::integer;
end
$$;

CREATE OR REPLACE FUNCTION platform.create_tenant(p_name text, p_domain text DEFAULT NULL::text, p_subscription_tier text DEFAULT 'free'::text, p_template_name text DEFAULT NULL::text) RETURNS SETOF platform.tenants
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
  v_tenant_id uuid;
  v_template core.templates;
begin
  perform core.require_active_operator();
  if p_template_name is not null then
    select * into v_template from core.templates t where t.name = p_template_name;
    if not found then
      raise exception 'unknown template "%"', p_template_name
        using errcode = 'no_data_found', hint = 'list templates with GET /v1/templates';
    end if;
  end if;

  insert into core.tenants (name, subscription_tier)
  values (p_name, coalesce(p_subscription_tier, 'free'))
  returning tenant_id into v_tenant_id;
  -- A taken domain fails here, as a unique violation.
  if p_domain is not null then
    perform core.set_tenant_domain(v_tenant_id, p_domain);
  end if;

  insert into core.tenant_configs (tenant_id, template_id, settings)
  values (v_tenant_id, v_template.template_id, coalesce(v_template.default_config, '{}'));

  return query
    select t.tenant_id, t.name, t.domain, t.subscription_tier, t.deactivated_at, t.created_at, t.updated_at
    from core.tenants t where t.tenant_id = v_tenant_id;
end
$$;

CREATE OR REPLACE FUNCTION platform.update_tenant(p_tenant_id uuid, p_name text DEFAULT NULL::text, p_domain text DEFAULT NULL::text, p_clear_domain boolean DEFAULT false, p_subscription_tier text DEFAULT NULL::text) RETURNS SETOF platform.tenants
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
begin
  perform core.require_active_operator();
  if p_clear_domain or p_domain is not null then
    perform core.set_tenant_domain(p_tenant_id, case when p_clear_domain then null else p_domain end);
  end if;
  return query
    update core.tenants t
    set name = coalesce(p_name, t.name),
        subscription_tier = coalesce(p_subscription_tier, t.subscription_tier)
    where t.tenant_id = p_tenant_id
    returning t.tenant_id, t.name, t.domain, t.subscription_tier, t.deactivated_at, t.created_at, t.updated_at;
end
$$;

CREATE OR REPLACE FUNCTION platform.claim_idempotency_key(p_idempotency_key text, p_request_hash text) RETURNS TABLE(claimed boolean, request_hash text, response_status integer, response_body jsonb)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
  v_operator_id uuid := core.current_operator_id();
  v_now timestamptz := now();
  -- timestamptz + interval is stable, not immutable (time zones).
  v_expires_at timestamptz := now() + interval '24 hours';
begin
  if v_operator_id is null then
    raise exception 'a platform change needs a named operator' using errcode = 'PT401';
  end if;
  -- Keep the table small: drop a few of this operator's expired claims.
  delete from core.platform_idempotency_keys k
  where k.operator_id = v_operator_id and k.expires_at < v_now and k.idempotency_key in (
      select e.idempotency_key from core.platform_idempotency_keys e
      where e.operator_id = v_operator_id and e.expires_at < v_now and e.idempotency_key <> p_idempotency_key
      limit 10);
  return query
    insert into core.platform_idempotency_keys as k (operator_id, idempotency_key, request_hash)
    values (v_operator_id, p_idempotency_key, p_request_hash)
    on conflict (operator_id, idempotency_key) do update
      set request_hash = excluded.request_hash, response_status = null, response_body = null,
          created_at = v_now, expires_at = v_expires_at
      where k.expires_at < v_now
    returning true, k.request_hash, k.response_status, k.response_body;
  if not found then
    return query
      select false, k.request_hash, k.response_status, k.response_body
      from core.platform_idempotency_keys k
      where k.operator_id = v_operator_id and k.idempotency_key = p_idempotency_key;
  end if;
end
$$;

CREATE OR REPLACE FUNCTION platform.save_idempotent_response(p_idempotency_key text, p_status integer, p_body jsonb) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
  v_operator_id uuid := core.current_operator_id();
begin
  update core.platform_idempotency_keys
  set response_status = p_status, response_body = p_body
  where operator_id = v_operator_id and idempotency_key = p_idempotency_key;
end
$$;

CREATE OR REPLACE FUNCTION platform.create_api_key(p_tenant_id uuid, p_name text, p_permissions text[], p_user_id uuid DEFAULT NULL::uuid, p_expires_at timestamp with time zone DEFAULT NULL::timestamp with time zone) RETURNS TABLE(key text, key_id uuid, tenant_id uuid, key_prefix text, name text, permissions text[], user_id uuid, expires_at timestamp with time zone, revoked_at timestamp with time zone, last_used_at timestamp with time zone, created_at timestamp with time zone, updated_at timestamp with time zone, issued_by_key_id uuid)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
begin
  perform core.require_active_operator();
  if not exists (select from core.tenants t where t.tenant_id = p_tenant_id and t.deactivated_at is null) then
    raise exception 'no active tenant %', p_tenant_id using errcode = 'no_data_found';
  end if;
  if p_expires_at is not null and p_expires_at <= now() then
    raise exception 'expires_at must be in the future' using errcode = 'check_violation';
  end if;
  return query select * from core.issue_api_key(p_tenant_id, p_name, p_permissions, p_user_id, p_expires_at, null);
end
$$;

CREATE OR REPLACE FUNCTION platform.create_operator(p_name text) RETURNS TABLE(operator_id uuid, name text, token text, token_prefix text, created_by uuid, created_at timestamp with time zone, revoked_at timestamp with time zone, revoked_by uuid)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
#variable_conflict use_column
declare
  v_caller uuid := core.current_operator_id();
  v_token text := 'tnop_' || rtrim(translate(encode(extensions.gen_random_bytes(32), 'base64'), '+/', '-_'), '=');
begin
  if v_caller is null then
    raise exception 'a platform change needs a named operator' using errcode = 'PT401';
  end if;
  perform core.require_active_operator();
  return query
    insert into core.platform_operators as o (name, token_hash, token_prefix, created_by)
    values (p_name, encode(sha256(convert_to(v_token, 'UTF8')), 'hex'), left(v_token, 12), v_caller)
    returning o.operator_id, o.name, v_token, o.token_prefix, o.created_by, o.created_at, o.revoked_at, o.revoked_by;
end
$$;

CREATE OR REPLACE FUNCTION platform.revoke_operator(p_operator_id uuid) RETURNS TABLE(operator_id uuid, revoked_at timestamp with time zone)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
#variable_conflict use_column
declare
  v_caller uuid := core.current_operator_id();
  v_now timestamptz := now();
begin
  if v_caller is null then
    raise exception 'a platform change needs a named operator' using errcode = 'PT401';
  end if;
  perform core.require_active_operator();
  -- Serialises revocations, so two operators cannot revoke each other as
  -- the last two: each locks every active operator's row first. (Row locks
  -- only tenancy_auth can take, where an advisory lock anyone can hold.)
  perform core.end_stale_transactions();
  perform from core.platform_operators o where o.revoked_at is null for update;
  -- The operators' rows first, then the chain head, in the order every
  -- writer of operators takes them.
  perform core.seize_chain_head('00000000-0000-0000-0000-000000000000');
  if exists (select 1 from core.platform_operators o where o.operator_id = p_operator_id and o.revoked_at is null)
     and not exists (select 1 from core.platform_operators o
                     where o.revoked_at is null and o.operator_id <> p_operator_id) then
    raise exception 'the last active operator cannot be revoked; create another first' using errcode = 'PT409';
  end if;
  return query
    update core.platform_operators o
    set revoked_at = coalesce(o.revoked_at, v_now), revoked_by = coalesce(o.revoked_by, v_caller)
    where o.operator_id = p_operator_id
    returning o.operator_id, o.revoked_at;
end
$$;
CREATE OR REPLACE FUNCTION platform.deactivate_tenant(p_tenant_id uuid) RETURNS SETOF platform.tenants
    LANGUAGE plpgsql
    AS $$
declare
  v_now timestamptz := now();
  v_tenant platform.tenants;
begin
  perform core.require_active_operator();
  update core.tenants
  set deactivated_at = coalesce(deactivated_at, v_now)
  where tenant_id = p_tenant_id
  returning tenant_id, name, domain, subscription_tier, deactivated_at, created_at, updated_at into v_tenant;
  if found then
    return next v_tenant;
  end if;
end
$$;

CREATE OR REPLACE FUNCTION platform.revoke_api_key(p_tenant_id uuid, p_key_id uuid) RETURNS TABLE(tenant_id uuid, key_id uuid, revoked_at timestamp with time zone)
    LANGUAGE plpgsql
    AS $$
#variable_conflict use_column
begin
  perform core.require_active_operator();
  perform core.revoke_keys(p_tenant_id, array[p_key_id]);
  return query
    select k.tenant_id, k.key_id, k.revoked_at from core.tenant_api_keys k
    where k.tenant_id = p_tenant_id and k.key_id = p_key_id;
end
$$;

CREATE OR REPLACE FUNCTION platform.update_plan(p_plan_id uuid, p_max_documents integer DEFAULT NULL::integer, p_max_users integer DEFAULT NULL::integer, p_max_api_keys integer DEFAULT NULL::integer, p_max_metadata_bytes integer DEFAULT NULL::integer, p_requests_per_minute integer DEFAULT NULL::integer) RETURNS SETOF platform.plans
    LANGUAGE plpgsql
    AS $$
declare
  v_plan platform.plans;
begin
  perform core.require_active_operator();
  update core.plans p
  set max_documents = coalesce(p_max_documents, p.max_documents),
      max_users = coalesce(p_max_users, p.max_users),
      max_api_keys = coalesce(p_max_api_keys, p.max_api_keys),
      max_metadata_bytes = coalesce(p_max_metadata_bytes, p.max_metadata_bytes),
      requests_per_minute = coalesce(p_requests_per_minute, p.requests_per_minute)
  where p.plan_id = p_plan_id
  returning p.plan_id, p.tier, p.max_documents, p.max_users, p.max_api_keys, p.max_metadata_bytes,
    p.requests_per_minute, p.created_at, p.updated_at into v_plan;
  if found then
    return next v_plan;
  end if;
end
$$;
reset citus.enable_ddl_propagation;

CREATE OR REPLACE FUNCTION core.set_tenant_domain(p_tenant_id uuid, p_domain text) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
  v_old text;
begin
  perform core.require_active_operator();
  -- The Platform tenant, which no listing shows, holds no domain: one there
  -- would be taken from every tenant, out of sight.
  if p_tenant_id = '00000000-0000-0000-0000-000000000000' and p_domain is not null then
    raise exception 'the Platform tenant has no domain' using errcode = 'check_violation';
  end if;
  select t.domain into v_old from core.tenants t where t.tenant_id = p_tenant_id for update;
  if not found or v_old is not distinct from p_domain then
    return;
  end if;
  delete from core.tenant_domains d where d.domain = v_old and d.tenant_id = p_tenant_id;
  -- A taken domain fails here, as a unique violation.
  if p_domain is not null then
    insert into core.tenant_domains (domain, tenant_id) values (p_domain, p_tenant_id);
  end if;
  update core.tenants t set domain = p_domain where t.tenant_id = p_tenant_id;
end
$$;

drop function core.carry_context_to_workers();
