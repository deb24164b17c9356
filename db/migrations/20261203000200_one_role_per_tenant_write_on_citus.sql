-- migrate:up
/*
 * Why: on Citus a transaction reaches each node over one connection per
 * role (the role a statement runs as: a definer's owner inside a definer),
 * and once one role has written to a tenant's shards (or to the reference
 * tables) no other role's statement may touch them in that transaction:
 * Citus refuses it ("cannot perform query on placements that were modified
 * in this transaction by a different user"), or, when the other role's
 * statement waits for a row the first holds, cancels the transaction as a
 * distributed deadlock (issue 14). Run distributed, the service failed
 * wherever one request wrote as two roles. Each case is made one role's
 * write here, without changing what a function does on one server:
 * - An Idempotency-Key is claimed as tenancy_writer before the route
 *   writes as another role, and its response saved after. On Citus the two
 *   tables of Idempotency-Keys now sit in shard groups of their own
 *   (core.idempotency_keys distributed by tenant_id but co-located with no
 *   other table, core.platform_idempotency_keys by operator_id instead of a
 *   reference table), so that their writes touch no tenant's shards. Citus
 *   keeps foreign keys only within one shard group: there the keys to
 *   core.tenants and core.tenant_api_keys go. Nothing is lost by it: a
 *   claim is made only for the verified context's tenant and key, and
 *   neither tenants nor keys are ever deleted by the service.
 * - platform.create_tenant and platform.update_tenant wrote the tenant's
 *   row as uber_admin and its domain, through core.set_tenant_domain, as
 *   tenancy_auth, the registry's role. They now run as tenancy_auth
 *   throughout (definers, with the grants that takes). On Citus a worker
 *   sees the connection's role (tenancy_auth) as the session's, so the
 *   platform's rule (a named operator still active: core.record_audit)
 *   is checked by the functions themselves, on the coordinator, through
 *   the new core.require_active_operator(), as core.set_tenant_domain
 *   checked it.
 * - core.revoke_keys locked the tenant's counts and chain head first, as
 *   tenancy_meter and tenancy_auditor, then revoked as its caller, whose
 *   triggers then waited for those locks. On Citus it leaves the locks to
 *   the triggers (taken in the same order, counts then head).
 *   A platform claim drops a few of its operator's own expired claims (not
 *   anyone's, which would reach every shard; see below).
 * - The triggers that hold a change to its actor (core.record_audit,
 *   core.hold_for_approval, core.guard_user_roles) exempted every session
 *   but app_user's and uber_admin's; on a worker a definer's session with a
 *   context set apart for the workers went through (see below).
 * - On a worker an operator revoked earlier in the transaction still acted
 *   through the platform role's connection: every platform writer now
 *   checks its operator on the coordinator first.
 * - A context copied into a session of a worker's own raised an error in
 *   core.context_verifies there (a worker has no core.context_nonce): it
 *   now fails to verify, and the session reads no row, as on the
 *   coordinator. pgtap/citus/60_isolation_on_citus checks it on every shard.
 * The new functions are made as the migration's role and then given to
 * their owners: on a deployment distributed already, Citus makes a new
 * function on the workers as the role that made it, and no owner role may.
 * (scripts/test --citus runs the newest migration on a distributed database.)
 */
set local lock_timeout = '5s';
set local statement_timeout = '300s';

-- The platform's rule, in one place -------------------------------------------------

-- (Each new function is made as the migration's role and then given to its
-- owner: on a distributed deployment Citus makes it on the workers as the
-- role that made it, and tenancy_owner may not.)
create function core.require_active_operator() returns void
language plpgsql stable security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  -- The platform role changes nothing without a named operator who is still
  -- active (core.record_audit holds every audited change to it too, but on
  -- a Citus worker it reads the operators over the platform role's own
  -- connection, which does not see an operator revoked earlier in the
  -- transaction through the registry's; this reads them as the registry).
  if session_user = 'uber_admin' and not exists (
       select from core.request_context c join core.platform_operators o on o.operator_id = c.operator_id
       where o.revoked_at is null) then
    raise exception 'a platform change needs a named, active operator (platform.begin_request)' using errcode = 'PT401';
  end if;
end
$$;
alter function core.require_active_operator() owner to tenancy_auth;
comment on function core.require_active_operator() is
  'Raises PT401 unless a platform session (uber_admin) holds the context of a named operator still active';
revoke execute on function core.require_active_operator() from public;
grant execute on function core.require_active_operator() to uber_admin, tenancy_auth;

create or replace function core.set_tenant_domain(p_tenant_id uuid, p_domain text) returns void
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
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

-- A tenant is written as one role: tenancy_auth ------------------------------------

grant select on table core.templates to tenancy_auth;
grant select (name, subscription_tier, created_at, updated_at), insert (name, subscription_tier),
  update (name, subscription_tier) on table core.tenants to tenancy_auth;
grant insert (tenant_id, template_id, settings) on table core.tenant_configs to tenancy_auth;

-- The platform's functions run on the coordinator alone. On a deployment
-- distributed already, Citus would make each one replaced here on the
-- workers too, with PostgreSQL's default grant (anyone may execute it).
set local citus.enable_ddl_propagation = off;
create or replace function platform.create_tenant(
  p_name text,
  p_domain text default null,
  p_subscription_tier text default 'free',
  p_template_name text default null
) returns setof platform.tenants
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
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
alter function platform.create_tenant(text, text, text, text) owner to tenancy_auth;

create or replace function platform.update_tenant(
  p_tenant_id uuid,
  p_name text default null,
  p_domain text default null,
  p_clear_domain boolean default false,
  p_subscription_tier text default null
) returns setof platform.tenants
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
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
alter function platform.update_tenant(uuid, text, text, boolean, text) owner to tenancy_auth;

-- Every platform writer checks its operator on the coordinator ---------------------
-- On a single server core.record_audit refuses an operator revoked earlier
-- in the transaction; on a Citus worker the platform role's connection does
-- not see that revocation, made over the registry's: an operator that
-- revoked itself still deactivated tenants, revoked keys and changed plans
-- there. Each writer asks core.require_active_operator first, which reads
-- the operators as the registry does. (The Idempotency-Key pair writes no
-- audited row; it needs a named operator, and keeps a self-revocation's
-- response.)

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
reset citus.enable_ddl_propagation;

-- Revocations leave the locks to their triggers on Citus ---------------------------

create or replace function core.revoke_keys(p_tenant_id uuid, p_key_ids uuid[]) returns table (key_id uuid)
language plpgsql
as $$
#variable_conflict use_column
begin
  -- A session holding these rows, the tenant's counts or its chain head
  -- locked would otherwise keep the keys from being revoked. The counts
  -- first, then the head: the order every metered writer takes them in.
  -- On Citus they are left to the update's triggers, which take them in
  -- that order on the tenant's worker: seized here, they would be held over
  -- the connections of the seizing functions' owners, which the triggers
  -- would wait for (see above).
  perform core.end_stale_transactions();
  if not core.on_citus() then
    perform core.seize_usage_row(p_tenant_id);
    perform core.seize_chain_head(p_tenant_id);
  end if;
  return query
    with recursive doomed (key_id) as (
      select k.key_id from core.tenant_api_keys k where k.tenant_id = p_tenant_id and k.key_id = any (p_key_ids)
      union
      select k.key_id from core.tenant_api_keys k join doomed d on k.issued_by_key_id = d.key_id
      where k.tenant_id = p_tenant_id
    )
    update core.tenant_api_keys k
    set revoked_at = now()
    where k.tenant_id = p_tenant_id and k.key_id in (select d.key_id from doomed d) and k.revoked_at is null
    returning k.key_id;
end
$$;

-- Every change for a request has an actor on the node that makes it ------------------
-- The triggers told a request's change from a DBA's by session_user: app_user
-- (or uber_admin) needs the verified context, any other role none. On a
-- Citus worker the session is the role Citus connects as, a definer's owner
-- when the change runs in a definer, and its context is what reached that
-- node, which a caller can set apart from the coordinator's (SET LOCAL is
-- passed on, set_config is not): the definers' checks on the coordinator
-- passed, and on the worker the change went through with no actor in the
-- trail (a tenant made by the platform role), or past two-person approval
-- (a key that may issue keys). Now only a superuser's session (a DBA's, a
-- migration's) and the platform role's (held to its operator) change rows
-- without a key's context; any other session needs the row's tenant's key
-- or an active operator, on every node.

create function core.session_acts_for_a_request() returns boolean
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select session_user <> 'uber_admin'
     and not coalesce((select r.rolsuper from pg_catalog.pg_roles r where r.rolname = session_user), false)
$$;
comment on function core.session_acts_for_a_request() is
  'Whether this session acts for the service''s requests: app_user''s, or on a Citus worker a definer''s owner''s; not the platform role''s, not a superuser''s';
alter function core.session_acts_for_a_request() owner to tenancy_owner;
revoke execute on function core.session_acts_for_a_request() from public;
grant execute on function core.session_acts_for_a_request()
  to app_user, uber_admin, tenancy_auth, tenancy_auditor, tenancy_writer, tenancy_meter, tenancy_reaper;

create function core.request_has_actor(p_tenant_id uuid) returns boolean
language plpgsql stable security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  return exists (select from core.request_context c
                 where c.tenant_id = p_tenant_id
                    or exists (select from core.platform_operators o
                               where o.operator_id = c.operator_id and o.revoked_at is null));
end
$$;
alter function core.request_has_actor(uuid) owner to tenancy_auth;
comment on function core.request_has_actor(uuid) is
  'Whether the verified context names an actor for a change of this tenant''s rows: its key, or an active operator';
revoke execute on function core.request_has_actor(uuid) from public;
grant execute on function core.request_has_actor(uuid)
  to app_user, uber_admin, tenancy_auth, tenancy_auditor, tenancy_writer, tenancy_meter, tenancy_reaper;

CREATE OR REPLACE FUNCTION core.record_audit()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
declare
  v_old jsonb := case when tg_op <> 'INSERT' then to_jsonb(old) end;
  v_new jsonb := case when tg_op <> 'DELETE' then to_jsonb(new) end;
  v_row jsonb := coalesce(v_new, v_old);
  v_not_audited constant text[] := array['key_hash', 'token_hash', 'created_at', 'updated_at', 'last_used_at'];
  v_changed text[];
  v_context record;
  v_operator_id uuid;
  v_details jsonb;
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
    case when tg_argv[1] = 'platform_operators' and tg_op = 'INSERT'
              and v_new ->> 'created_by' = v_new ->> 'operator_id'
         then (v_new ->> 'operator_id')::uuid end);
  -- The platform role changes nothing, not even nothing, without a named
  -- operator who is still active now (an operator revoking itself is
  -- active until that change).
  if session_user = 'uber_admin' and not exists (
       select from core.platform_operators o
       where o.operator_id = v_operator_id
         and (o.revoked_at is null
              or (tg_argv[1] = 'platform_operators' and tg_op = 'UPDATE'
                  and (v_new ->> 'operator_id')::uuid = v_operator_id and v_old ->> 'revoked_at' is null))) then
    raise exception 'a platform change needs a named, active operator (platform.begin_request)'
      using errcode = 'PT401';
  end if;
  -- A session of another role that acts for a request (on a Citus worker,
  -- the role Citus connects as for a definer) changes rows with an actor
  -- too: the row's tenant's key, or an active operator.
  if session_user <> 'app_user' and core.session_acts_for_a_request()
     and not core.request_has_actor((v_row ->> 'tenant_id')::uuid) then
    raise exception 'a change in a session of % needs the verified context of the row''s tenant or of an active operator',
      session_user using errcode = 'insufficient_privilege';
  end if;

  -- An update that changed nothing an auditor cares about leaves no entry.
  if tg_op = 'UPDATE' and cardinality(v_changed) = 0 then
    return null;
  end if;

  -- Computed before the INSERT: Citus takes no subquery in an INSERT's VALUES.
  v_details := jsonb_build_object('changed', to_jsonb(v_changed), 'db_role', session_user)
    || case when v_old is null then '{}' else jsonb_build_object('old', (
         select coalesce(jsonb_object_agg(key, value), '{}') from jsonb_each(v_old) where key = any (v_changed))) end
    || case when v_new is null then '{}' else jsonb_build_object('new', (
         select coalesce(jsonb_object_agg(key, value), '{}') from jsonb_each(v_new) where key = any (v_changed))) end;

  insert into core.audit_logs
    (tenant_id, user_id, api_key_id, operator_id, action, resource_type, resource_id, details, request_id,
     client_request_id)
  values (
    coalesce((v_row ->> 'tenant_id')::uuid, '00000000-0000-0000-0000-000000000000'),
    v_context.user_id,
    v_context.api_key_id,
    v_operator_id,
    lower(tg_op),
    tg_argv[1],
    (v_row ->> tg_argv[0])::uuid,
    v_details,
    v_context.request_id::text,
    v_context.client_request_id
  );
  return null;
end
$function$;

CREATE OR REPLACE FUNCTION core.hold_for_approval()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
declare
  v_operation text;
  v_tenant_id uuid := case when tg_op = 'DELETE' then old.tenant_id else new.tenant_id end;
begin
  -- A tenant's request (a key's context) is held to the tenant's rule; an
  -- operator's, or a DBA's without a context, is not. app_user without a
  -- verified context (one that lapsed mid-statement, say) is held too.
  -- A session of another role that acts for a request (on a Citus worker,
  -- the role Citus connects as for a definer) is held too, unless it acts
  -- for an active operator.
  if not exists (select from core.request_context c where c.api_key_id is not null) then
    if not core.session_acts_for_a_request() then
      return case when tg_op = 'DELETE' then old else new end;
    end if;
    if session_user <> 'app_user' and core.request_has_actor(null) then
      return case when tg_op = 'DELETE' then old else new end;
    end if;
  end if;
  -- (Nested: PL/pgSQL would look for each field on every table's row.)
  if tg_argv[0] = 'tenant_api_keys' then
    if 'keys:write' = any (core.effective_permissions(new.permissions, null)) then
      v_operation := 'create_api_key';
    end if;
  elsif tg_argv[0] = 'tenant_configs' then
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
$function$;

CREATE OR REPLACE FUNCTION core.guard_user_roles()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
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
    -- Nor does another role acting for a request (on a Citus worker, the
    -- role Citus connects as for a definer), but for an active operator.
    if session_user <> 'app_user' and core.session_acts_for_a_request() and not core.request_has_actor(null) then
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
$function$;

-- A context fails to verify on a worker outside a distributed transaction ------------
-- It raised an error there (the worker has no core.context_nonce), closed
-- but not as "no context": now it reads no row, as anywhere else.

create or replace function core.context_verifies(p_signed text)
 RETURNS boolean
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
declare
  v_nonce bigint;
begin
  -- On Citus the context is bound to the distributed transaction alone: a
  -- worker cannot know which number the coordinator's session signed last.
  if core.distributed_transaction() is not null then
    v_nonce := 0;
  else
    begin
      v_nonce := currval('core.context_nonce');
    exception
      -- This session never signed: nothing it holds can verify.
      when object_not_in_prerequisite_state then
        return false;
      -- A Citus worker has no such sequence: outside a distributed
      -- transaction (a session of its own there) nothing verifies.
      when undefined_table then
        return false;
    end;
  end if;
  return encode(core.context_mac(left(p_signed, -65) || '|' || v_nonce,
                                 (select k.secret from core.context_signing_key k)), 'hex') = right(p_signed, 64);
end
$function$;

-- Idempotency-Keys in shard groups of their own on Citus ---------------------------

-- A platform claim drops a few of its own operator's expired claims, not
-- anyone's: on Citus a delete across operators would reach every shard of
-- core.platform_idempotency_keys, after which Citus takes no write to the
-- reference table it refers to (core.platform_operators) in the
-- transaction ("parallel DML access"). Claims of an operator who never
-- claims again stay (at most a day's worth of its claims).
-- (On the coordinator alone, as above.)
set local citus.enable_ddl_propagation = off;
create or replace function platform.claim_idempotency_key(p_idempotency_key text, p_request_hash text)
returns table (claimed boolean, request_hash text, response_status integer, response_body jsonb)
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
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
reset citus.enable_ddl_propagation;

create function core.separate_idempotency_keys_on_citus() returns void
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  v_foreign_key record;
begin
  if (select p.colocationid from pg_dist_partition p where p.logicalrelid = 'core.idempotency_keys'::regclass)
     = (select p.colocationid from pg_dist_partition p where p.logicalrelid = 'core.tenants'::regclass) then
    for v_foreign_key in
      select c.conname from pg_constraint c where c.conrelid = 'core.idempotency_keys'::regclass and c.contype = 'f'
    loop
      execute format('alter table core.idempotency_keys drop constraint %I', v_foreign_key.conname);
    end loop;
    perform update_distributed_table_colocation('core.idempotency_keys', colocate_with => 'none');
  end if;
  if exists (select from pg_dist_partition p
             where p.logicalrelid = 'core.platform_idempotency_keys'::regclass and p.partmethod = 'n') then
    perform set_config('citus.enable_unsafe_triggers', 'on', true);
    alter table core.platform_idempotency_keys drop constraint platform_idempotency_keys_operator_id_fkey;
    perform undistribute_table('core.platform_idempotency_keys');
    perform create_distributed_table('core.platform_idempotency_keys', 'operator_id', colocate_with => 'none');
    -- A distributed table may refer to a reference table.
    alter table core.platform_idempotency_keys add constraint platform_idempotency_keys_operator_id_fkey
      foreign key (operator_id) references core.platform_operators (operator_id);
  end if;
end
$$;
comment on function core.separate_idempotency_keys_on_citus() is
  'On Citus, puts the two tables of Idempotency-Keys in shard groups of their own (a step of core.distribute_on_citus)';
revoke execute on function core.separate_idempotency_keys_on_citus() from public;
alter function core.separate_idempotency_keys_on_citus() owner to tenancy_owner;

create or replace function core.distribute_on_citus() returns text
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  v_result text := core.distribute_tables_on_citus();
  v_function regprocedure;
begin
  if not core.on_citus() then
    return v_result;
  end if;
  perform core.separate_idempotency_keys_on_citus();
  for v_function in
    select p.oid::regprocedure from pg_proc p
    where 'plan_cache_mode=force_generic_plan' = any (p.proconfig)
  loop
    execute format('alter function %s set plan_cache_mode = force_custom_plan', v_function);
  end loop;
  -- Citus hides its shards from every read of pg_class, on the coordinator
  -- too, with a filter that calls relation_is_a_known_shard: a role that
  -- may not run it may not read pg_class (the service's /ready check
  -- could not). It says only whether a table is a shard.
  grant execute on function pg_catalog.relation_is_a_known_shard(regclass) to public;
  return v_result;
end
$$;

-- A deployment distributed before this migration is changed now: the
-- tables, and tenancy_auth's inserts, which reach a shard with every column.
do $$
begin
  -- (Nested: on one server there is no pg_dist_partition to plan a query on.)
  if core.on_citus() then
    if exists (select from pg_dist_partition p where p.logicalrelid = 'core.tenants'::regclass) then
      perform core.distribute_on_citus();
      grant insert on table core.tenants, core.tenant_configs to tenancy_auth;
      -- The triggers' new helpers, on the workers too.
      perform create_distributed_function(f)
      from unnest(array['core.session_acts_for_a_request()', 'core.request_has_actor(uuid)']::regprocedure[]) f
      where not exists (select from pg_dist_object o where o.classid = 'pg_proc'::regclass and o.objid = f);
    end if;
  end if;
end
$$;

-- migrate:down
set local lock_timeout = '5s';
set local statement_timeout = '60s';

create or replace function core.distribute_on_citus() returns text
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  v_result text := core.distribute_tables_on_citus();
  v_function regprocedure;
begin
  if not core.on_citus() then
    return v_result;
  end if;
  for v_function in
    select p.oid::regprocedure from pg_proc p
    where 'plan_cache_mode=force_generic_plan' = any (p.proconfig)
  loop
    execute format('alter function %s set plan_cache_mode = force_custom_plan', v_function);
  end loop;
  -- Citus hides its shards from every read of pg_class, on the coordinator
  -- too, with a filter that calls relation_is_a_known_shard: a role that
  -- may not run it may not read pg_class (the service's /ready check
  -- could not). It says only whether a table is a shard.
  grant execute on function pg_catalog.relation_is_a_known_shard(regclass) to public;
  return v_result;
end
$$;
-- A distributed deployment keeps its Idempotency-Keys where they are: their
-- tables' foreign keys could come back only within one shard group.
drop function core.separate_idempotency_keys_on_citus();

-- The platform's functions on the coordinator alone, as in the up section.
set local citus.enable_ddl_propagation = off;
create or replace function platform.claim_idempotency_key(p_idempotency_key text, p_request_hash text)
returns table (claimed boolean, request_hash text, response_status integer, response_body jsonb)
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_operator_id uuid := core.current_operator_id();
  v_now timestamptz := now();
  -- timestamptz + interval is stable, not immutable (time zones).
  v_expires_at timestamptz := now() + interval '24 hours';
begin
  if v_operator_id is null then
    raise exception 'a platform change needs a named operator' using errcode = 'PT401';
  end if;
  delete from core.platform_idempotency_keys k
  where k.expires_at < v_now and (k.operator_id, k.idempotency_key) in (
      select e.operator_id, e.idempotency_key from core.platform_idempotency_keys e
      where e.expires_at < v_now and (e.operator_id, e.idempotency_key) <> (v_operator_id, p_idempotency_key)
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
reset citus.enable_ddl_propagation;

create or replace function core.revoke_keys(p_tenant_id uuid, p_key_ids uuid[]) returns table (key_id uuid)
language plpgsql
as $$
#variable_conflict use_column
begin
  -- A session holding these rows, the tenant's counts or its chain head
  -- locked would otherwise keep the keys from being revoked. The counts
  -- first, then the head: the order every metered writer takes them in.
  perform core.end_stale_transactions();
  perform core.seize_usage_row(p_tenant_id);
  perform core.seize_chain_head(p_tenant_id);
  return query
    with recursive doomed (key_id) as (
      select k.key_id from core.tenant_api_keys k where k.tenant_id = p_tenant_id and k.key_id = any (p_key_ids)
      union
      select k.key_id from core.tenant_api_keys k join doomed d on k.issued_by_key_id = d.key_id
      where k.tenant_id = p_tenant_id
    )
    update core.tenant_api_keys k
    set revoked_at = now()
    where k.tenant_id = p_tenant_id and k.key_id in (select d.key_id from doomed d) and k.revoked_at is null
    returning k.key_id;
end
$$;

set local citus.enable_ddl_propagation = off;
alter function platform.update_tenant(uuid, text, text, boolean, text) owner to tenancy_owner;
create or replace function platform.update_tenant(
  p_tenant_id uuid,
  p_name text default null,
  p_domain text default null,
  p_clear_domain boolean default false,
  p_subscription_tier text default null
) returns setof platform.tenants
language plpgsql security invoker
as $$
begin
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

alter function platform.create_tenant(text, text, text, text) owner to tenancy_owner;
create or replace function platform.create_tenant(
  p_name text,
  p_domain text default null,
  p_subscription_tier text default 'free',
  p_template_name text default null
) returns setof platform.tenants
language plpgsql security invoker
as $$
declare
  v_tenant_id uuid;
  v_template core.templates;
begin
  if p_template_name is not null then
    select * into v_template from core.templates where name = p_template_name;
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

  return query select * from platform.tenants where tenant_id = v_tenant_id;
end
$$;
reset citus.enable_ddl_propagation;

revoke insert (tenant_id, template_id, settings) on table core.tenant_configs from tenancy_auth;
revoke select (name, subscription_tier, created_at, updated_at), insert (name, subscription_tier),
  update (name, subscription_tier) on table core.tenants from tenancy_auth;
revoke select on table core.templates from tenancy_auth;

do $$
begin
  if core.on_citus() then
    revoke insert on table core.tenants, core.tenant_configs from tenancy_auth;
  end if;
end
$$;

create or replace function core.set_tenant_domain(p_tenant_id uuid, p_domain text) returns void
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_old text;
begin
  -- The platform role's rule, as in core.record_audit (which records the
  -- row's change below): a named operator still active, or nothing.
  if session_user = 'uber_admin' and not exists (
       select from core.request_context c join core.platform_operators o on o.operator_id = c.operator_id
       where o.revoked_at is null) then
    raise exception 'a platform change needs a named, active operator (platform.begin_request)' using errcode = 'PT401';
  end if;
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
set local citus.enable_ddl_propagation = off;
CREATE OR REPLACE FUNCTION platform.deactivate_tenant(p_tenant_id uuid) RETURNS SETOF platform.tenants
    LANGUAGE plpgsql
    AS $$
declare
  v_now timestamptz := now();
  v_tenant platform.tenants;
begin
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

CREATE OR REPLACE FUNCTION platform.create_api_key(p_tenant_id uuid, p_name text, p_permissions text[], p_user_id uuid DEFAULT NULL::uuid, p_expires_at timestamp with time zone DEFAULT NULL::timestamp with time zone) RETURNS TABLE(key text, key_id uuid, tenant_id uuid, key_prefix text, name text, permissions text[], user_id uuid, expires_at timestamp with time zone, revoked_at timestamp with time zone, last_used_at timestamp with time zone, created_at timestamp with time zone, updated_at timestamp with time zone, issued_by_key_id uuid)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
begin
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
reset citus.enable_ddl_propagation;

drop function core.require_active_operator();

CREATE OR REPLACE FUNCTION core.record_audit()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
declare
  v_old jsonb := case when tg_op <> 'INSERT' then to_jsonb(old) end;
  v_new jsonb := case when tg_op <> 'DELETE' then to_jsonb(new) end;
  v_row jsonb := coalesce(v_new, v_old);
  v_not_audited constant text[] := array['key_hash', 'token_hash', 'created_at', 'updated_at', 'last_used_at'];
  v_changed text[];
  v_context record;
  v_operator_id uuid;
  v_details jsonb;
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
    case when tg_argv[1] = 'platform_operators' and tg_op = 'INSERT'
              and v_new ->> 'created_by' = v_new ->> 'operator_id'
         then (v_new ->> 'operator_id')::uuid end);
  -- The platform role changes nothing, not even nothing, without a named
  -- operator who is still active now (an operator revoking itself is
  -- active until that change).
  if session_user = 'uber_admin' and not exists (
       select from core.platform_operators o
       where o.operator_id = v_operator_id
         and (o.revoked_at is null
              or (tg_argv[1] = 'platform_operators' and tg_op = 'UPDATE'
                  and (v_new ->> 'operator_id')::uuid = v_operator_id and v_old ->> 'revoked_at' is null))) then
    raise exception 'a platform change needs a named, active operator (platform.begin_request)'
      using errcode = 'PT401';
  end if;

  -- An update that changed nothing an auditor cares about leaves no entry.
  if tg_op = 'UPDATE' and cardinality(v_changed) = 0 then
    return null;
  end if;

  -- Computed before the INSERT: Citus takes no subquery in an INSERT's VALUES.
  v_details := jsonb_build_object('changed', to_jsonb(v_changed), 'db_role', session_user)
    || case when v_old is null then '{}' else jsonb_build_object('old', (
         select coalesce(jsonb_object_agg(key, value), '{}') from jsonb_each(v_old) where key = any (v_changed))) end
    || case when v_new is null then '{}' else jsonb_build_object('new', (
         select coalesce(jsonb_object_agg(key, value), '{}') from jsonb_each(v_new) where key = any (v_changed))) end;

  insert into core.audit_logs
    (tenant_id, user_id, api_key_id, operator_id, action, resource_type, resource_id, details, request_id,
     client_request_id)
  values (
    coalesce((v_row ->> 'tenant_id')::uuid, '00000000-0000-0000-0000-000000000000'),
    v_context.user_id,
    v_context.api_key_id,
    v_operator_id,
    lower(tg_op),
    tg_argv[1],
    (v_row ->> tg_argv[0])::uuid,
    v_details,
    v_context.request_id::text,
    v_context.client_request_id
  );
  return null;
end
$function$;

CREATE OR REPLACE FUNCTION core.hold_for_approval()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
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
  if tg_argv[0] = 'tenant_api_keys' then
    if 'keys:write' = any (core.effective_permissions(new.permissions, null)) then
      v_operation := 'create_api_key';
    end if;
  elsif tg_argv[0] = 'tenant_configs' then
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
$function$;

CREATE OR REPLACE FUNCTION core.guard_user_roles()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
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
$function$;

drop function core.request_has_actor(uuid);
drop function core.session_acts_for_a_request();

create or replace function core.context_verifies(p_signed text)
 RETURNS boolean
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
declare
  v_nonce bigint;
begin
  -- On Citus the context is bound to the distributed transaction alone: a
  -- worker cannot know which number the coordinator's session signed last.
  if core.distributed_transaction() is not null then
    v_nonce := 0;
  else
    begin
      v_nonce := currval('core.context_nonce');
    exception
      -- This session never signed: nothing it holds can verify.
      when object_not_in_prerequisite_state then
        return false;
    end;
  end if;
  return encode(core.context_mac(left(p_signed, -65) || '|' || v_nonce,
                                 (select k.secret from core.context_signing_key k)), 'hex') = right(p_signed, 64);
end
$function$;
