-- migrate:up
/*
 * Why: on Citus the coordinator must see which shard a statement is for
 * before it runs it, and it plans a function's statements in ways one
 * server never asks about (issue 14). Run distributed, the service failed on
 * every route but a few, for these reasons, each fixed here without changing
 * what a function does on one server:
 * - Citus plans no parameterized statement of an SQL-language function over
 *   a distributed table ("parameterized queries for SQL functions
 *   referencing distributed tables are not supported"). Every such function
 *   that reads or writes a tenant's rows is now PL/pgSQL, whose statements
 *   Citus plans with the arguments' values. 10_rls_invariants keeps it so:
 *   no SQL-language function with arguments reads a table or view (what
 *   one reads is found by compiling its body as an SQL-standard body).
 * - A statement filtered by row-level security alone names no tenant, so
 *   Citus sends it to all 32 shards, and a list function planned once for
 *   every call (plan_cache_mode = force_generic_plan) cannot be planned at
 *   all. Each tenant's statement now also says tenant_id = the context's
 *   tenant, a variable computed before it: Citus routes it to the one shard,
 *   and on one server it is the same index condition the policy gives. The
 *   policies stay what guarantees isolation; the filter only repeats them.
 *   The service's reads of one user, document or approval request and its
 *   list of approval requests, views read by id or whole, go through the
 *   new api.get_user, api.get_document, api.get_approval and
 *   api.list_approvals for the same reason.
 *   On Citus the list functions are planned for each call instead
 *   (core.distribute_on_citus now switches them): Citus cannot prune a
 *   generic plan under row-level security. scripts/test --citus checks that
 *   every stable api function reaches only the tenant's shards.
 * - Citus filters its shards out of every read of pg_class with
 *   relation_is_a_known_shard, revoked from everyone on the coordinator
 *   until now: no runtime role could read pg_class there.
 * - Citus evaluates a non-immutable function on the coordinator, once, and
 *   refuses one where it cannot (inside COALESCE or CASE, in ON CONFLICT DO
 *   UPDATE SET): now() is read into a variable first. A subquery that
 *   selects no column is refused too ("a column definition list is
 *   required"): such EXISTS tests select 1.
 */
set local lock_timeout = '5s';
set local statement_timeout = '60s';

-- Keys and approvals ------------------------------------------------------------------

create or replace function core.key_is_active(p_tenant_id uuid, p_key_id uuid) returns boolean
language plpgsql stable
as $$
begin
  return exists (select 1 from core.tenant_api_keys k
                 where k.tenant_id = p_tenant_id and k.key_id = p_key_id and k.revoked_at is null
                   and (k.expires_at is null or k.expires_at > now()));
end
$$;

create or replace function core.key_lineage(p_tenant_id uuid, p_key_id uuid) returns setof uuid
language plpgsql stable
as $$
begin
  return query
    with recursive lineage (key_id, issued_by) as (
      select k.key_id, k.issued_by_key_id from core.tenant_api_keys k
      where k.tenant_id = p_tenant_id and k.key_id = p_key_id
      union
      select k.key_id, k.issued_by_key_id from core.tenant_api_keys k
      join lineage l on k.key_id = l.issued_by
      where k.tenant_id = p_tenant_id
    )
    select l.key_id from lineage l;
end
$$;

create or replace function core.two_people_required(p_tenant_id uuid) returns boolean
language plpgsql stable security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  return coalesce((select c.settings -> 'require_two_person_approval' = 'true'::jsonb
                   from core.tenant_configs c where c.tenant_id = p_tenant_id), false);
end
$$;

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

-- The audit trail ---------------------------------------------------------------------

create or replace function core.audit_export(p_tenant_id uuid, p_from_seq bigint, p_limit integer, p_permissions text[])
returns table (
  seq bigint, log_id uuid, tenant_id uuid, user_id uuid, api_key_id uuid, operator_id uuid, action text,
  resource_type text, resource_id uuid, details jsonb, details_text text, details_salt text, details_sha256 text,
  request_id text, client_request_id text, "timestamp" text, recorded_at text, prev_hash text, chain_hash text
)
language plpgsql stable
as $$
#variable_conflict use_column
declare
  v_from_seq bigint := greatest(coalesce(p_from_seq, 1), 1);
  v_limit integer := least(greatest(coalesce(p_limit, 1000), 1), 1000);
begin
  return query
    select a.seq, a.log_id, a.tenant_id, a.user_id, a.api_key_id, a.operator_id, a.action, a.resource_type,
           a.resource_id,
           case when p_permissions is null or core.audit_details_readable(a.resource_type, p_permissions)
                then a.details else a.details - 'old' - 'new' end,
           case when p_permissions is null or core.audit_details_readable(a.resource_type, p_permissions)
                then a.details::text end,
           case when p_permissions is null or core.audit_details_readable(a.resource_type, p_permissions)
                then encode(a.details_salt, 'hex') end,
           encode(a.details_sha256, 'hex'), a.request_id, a.client_request_id, core.audit_time(a."timestamp"),
           core.audit_time(a.recorded_at),
           encode(a.prev_hash, 'hex'), encode(a.chain_hash, 'hex')
    from (
      -- A page ends at 1,000 rows or once 4 MB of details are in it, so a page
      -- of large entries still fits in memory and a statement's time.
      select a.*, sum(octet_length(a.details::text)) over (order by a.seq) - octet_length(a.details::text) as before
      from core.audit_logs a
      where a.tenant_id = p_tenant_id and a.seq >= v_from_seq
      order by a.seq
      limit v_limit
    ) a
    where a.before < 4194304
    order by a.seq;
end
$$;

create or replace function api.export_audit_logs(p_from_seq bigint default 1, p_limit integer default 1000)
returns table (
  seq bigint, log_id uuid, tenant_id uuid, user_id uuid, api_key_id uuid, operator_id uuid, action text,
  resource_type text, resource_id uuid, details jsonb, details_text text, details_salt text, details_sha256 text,
  request_id text, client_request_id text, "timestamp" text, recorded_at text, prev_hash text, chain_hash text
)
language plpgsql stable security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_context record;
begin
  -- Row-level security gives tenancy_writer the rows of the context's
  -- tenant, and only with audit:read.
  select c.tenant_id, c.permissions into v_context from core.request_context c;
  if 'audit:read' = any (v_context.permissions) then
    return query select * from core.audit_export(v_context.tenant_id, p_from_seq, p_limit, v_context.permissions);
  end if;
end
$$;

create or replace function api.verify_audit_chain(
  p_from_seq bigint default 1, p_max_rows integer default 100000, p_anchor_seq bigint default null,
  p_anchor_hash text default null
)
returns table (
  verified boolean, from_seq bigint, to_seq bigint, rows_checked bigint, complete boolean, head_seq bigint,
  head_hash text, broken_at_seq bigint, reason text
)
language plpgsql stable security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_context record;
begin
  select c.tenant_id, c.permissions into v_context from core.request_context c;
  if 'audit:read' = any (v_context.permissions) then
    return query select * from core.verify_audit_chain(v_context.tenant_id, p_from_seq, p_max_rows, p_anchor_seq,
      decode(p_anchor_hash, 'hex'));
  end if;
end
$$;

create or replace function core.record_audit_purge(
  p_tenant_id uuid, p_through_seq bigint, p_through_hash bytea, p_partition text, p_retention_days integer
) returns bigint
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_operator_id uuid := core.current_operator_id();
  v_details jsonb := jsonb_build_object('through_seq', p_through_seq, 'through_hash', encode(p_through_hash, 'hex'),
    'partition', p_partition, 'retention_days', p_retention_days, 'db_role', session_user);
  v_seq bigint;
begin
  insert into core.audit_logs (tenant_id, operator_id, action, resource_type, resource_id, details)
  values (p_tenant_id, v_operator_id, 'audit.purged', 'audit_logs', p_tenant_id, v_details)
  returning seq into v_seq;
  return v_seq;
end
$$;

create or replace function core.audit_partition_tenants(p_from timestamptz, p_to timestamptz)
returns table (tenant_id uuid, through_seq bigint, through_hash bytea, retention_days integer, floor_seq bigint)
language plpgsql stable security definer
set search_path = pg_catalog, pg_temp
as $$
#variable_conflict use_column
begin
  return query
    with recursive tenants (tenant_id) as (
      (select a.tenant_id from core.audit_logs a
       where a."timestamp" >= p_from and a."timestamp" < p_to order by a.tenant_id limit 1)
      union all
      select (select a.tenant_id from core.audit_logs a
              where a."timestamp" >= p_from and a."timestamp" < p_to and a.tenant_id > t.tenant_id
              order by a.tenant_id limit 1)
      from tenants t where t.tenant_id is not null
    )
    select t.tenant_id, last.seq, last.chain_hash,
      case when s.days::text ~ '^[1-9][0-9]{2,4}$' and s.days::text::int between 365 and 36500 then s.days::text::int end,
      (select (a.details ->> 'through_seq')::bigint from core.audit_logs a
       where a.tenant_id = t.tenant_id and a.action = 'audit.purged' and a.details ->> 'through_seq' ~ '^[0-9]{1,18}$'
       order by a.seq desc limit 1)
    from tenants t
    cross join lateral (
      select a.seq, a.chain_hash from core.audit_logs a
      where a.tenant_id = t.tenant_id and a."timestamp" >= p_from and a."timestamp" < p_to
      order by a.seq desc limit 1) last
    left join lateral (
      select c.settings -> 'audit_retention_days' as days from core.tenant_configs c where c.tenant_id = t.tenant_id) s
      on true
    where t.tenant_id is not null;
end
$$;

-- A tenant's users, documents and idempotency keys ------------------------------------

create or replace function api.create_user(p_email text, p_role text default 'member') returns setof api.users
language plpgsql
as $$
declare
  v_user api.users;
begin
  insert into core.users (email, role)
  values (p_email, coalesce(p_role, 'member'))
  returning user_id, tenant_id, email, role, created_at, updated_at into v_user;
  return next v_user;
end
$$;

create or replace function api.update_user(p_user_id uuid, p_email text default null, p_role text default null)
returns setof api.users
language plpgsql
as $$
declare
  v_tenant_id uuid := core.current_tenant_id();
  v_user api.users;
begin
  update core.users
  set email = coalesce(p_email, email),
      role = coalesce(p_role, role)
  where tenant_id = v_tenant_id and user_id = p_user_id
  returning user_id, tenant_id, email, role, created_at, updated_at into v_user;
  if found then
    return next v_user;
  end if;
end
$$;

create or replace function api.delete_user(p_user_id uuid) returns setof api.users
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
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

create or replace function api.update_document(
  p_document_id uuid, p_title text default null, p_content_hash text default null, p_metadata jsonb default null
) returns setof api.documents
language plpgsql
as $$
declare
  v_tenant_id uuid := core.current_tenant_id();
begin
  return query
    update core.documents
    set title = coalesce(p_title, title),
        content_hash = coalesce(p_content_hash, content_hash),
        metadata = coalesce(p_metadata, metadata)
    where tenant_id = v_tenant_id and document_id = p_document_id
    returning document_id, tenant_id, user_id, title, content_hash, metadata, created_at, updated_at;
  if not found and exists (select 1 from core.documents d
                           where d.tenant_id = v_tenant_id and d.document_id = p_document_id) then
    raise exception 'a key of a member changes only the documents its user authors' using errcode = 'PT403';
  end if;
end
$$;

create or replace function api.delete_document(p_document_id uuid) returns setof api.documents
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
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

create or replace function api.claim_idempotency_key(p_idempotency_key text, p_request_hash text)
returns table (claimed boolean, request_hash text, response_status integer, response_body jsonb)
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
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

create or replace function api.save_idempotent_response(p_idempotency_key text, p_status integer, p_body jsonb)
returns void
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_tenant_id uuid := core.current_tenant_id();
begin
  update core.idempotency_keys
  set response_status = p_status, response_body = p_body
  where tenant_id = v_tenant_id and idempotency_key = p_idempotency_key;
end
$$;

-- The platform's ------------------------------------------------------------------------

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

create or replace function platform.save_idempotent_response(p_idempotency_key text, p_status integer, p_body jsonb)
returns void
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_operator_id uuid := core.current_operator_id();
begin
  update core.platform_idempotency_keys
  set response_status = p_status, response_body = p_body
  where operator_id = v_operator_id and idempotency_key = p_idempotency_key;
end
$$;

create or replace function platform.list_tenants(
  p_limit integer default 20, p_after_created_at timestamptz default null, p_after_tenant_id uuid default null
) returns setof platform.tenants
language plpgsql stable
as $$
begin
  return query
    select *
    from platform.tenants t
    where p_after_created_at is null
       or (t.created_at, t.tenant_id) < (p_after_created_at, p_after_tenant_id)
    order by t.created_at desc, t.tenant_id desc
    limit least(greatest(coalesce(p_limit, 20), 1), 100);
end
$$;

create or replace function platform.deactivate_tenant(p_tenant_id uuid) returns setof platform.tenants
language plpgsql
as $$
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

create or replace function platform.list_audit_logs(
  p_limit integer default 50, p_after_timestamp timestamptz default null, p_after_log_id uuid default null,
  p_tenant_id uuid default null
) returns setof platform.audit_logs
language plpgsql stable
as $$
begin
  return query
    select *
    from platform.audit_logs a
    where (p_after_timestamp is null or (a."timestamp", a.log_id) < (p_after_timestamp, p_after_log_id))
      and (p_tenant_id is null or a.tenant_id = p_tenant_id)
    order by a."timestamp" desc, a.log_id desc
    limit least(greatest(coalesce(p_limit, 50), 1), 100);
end
$$;

create or replace function platform.update_plan(
  p_plan_id uuid, p_max_documents integer default null, p_max_users integer default null,
  p_max_api_keys integer default null, p_max_metadata_bytes integer default null,
  p_requests_per_minute integer default null
) returns setof platform.plans
language plpgsql
as $$
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

create or replace function platform.revoke_operator(p_operator_id uuid)
returns table (operator_id uuid, revoked_at timestamptz)
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
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

-- The list functions ------------------------------------------------------------------
-- Planned once per session as before (migration 20261124000900): the
-- context's tenant is one more variable of the generic plan, which Citus
-- routes to its shard as each call runs.

create or replace function api.list_users(
  p_limit integer default 20, p_after_created_at timestamptz default null, p_after_user_id uuid default null
) returns setof api.users
language plpgsql stable
set plan_cache_mode = force_generic_plan
set enable_sort = off
set enable_bitmapscan = off
as $$
declare
  v_tenant_id uuid := core.current_tenant_id();
  v_below_at timestamptz;
  v_below_id uuid;
begin
  select bound_at, bound_id into v_below_at, v_below_id
  from core.page_upper_bound(p_after_created_at, p_after_user_id, null);
  return query
    select * from api.users u
    where u.tenant_id = v_tenant_id and (u.created_at, u.user_id) < (v_below_at, v_below_id)
    order by u.created_at desc, u.user_id desc
    limit least(greatest(coalesce(p_limit, 20), 1), 100);
end
$$;

create or replace function api.list_documents(
  p_limit integer default 20, p_after_created_at timestamptz default null, p_after_document_id uuid default null,
  p_user_id uuid default null, p_created_after timestamptz default null, p_created_before timestamptz default null
) returns setof api.documents
language plpgsql stable
set plan_cache_mode = force_generic_plan
set enable_sort = off
set enable_bitmapscan = off
as $$
declare
  v_tenant_id uuid := core.current_tenant_id();
  v_below_at timestamptz;
  v_below_id uuid;
  v_from timestamptz := coalesce(p_created_after, '-infinity');
  v_limit integer := least(greatest(coalesce(p_limit, 20), 1), 100);
begin
  select bound_at, bound_id into v_below_at, v_below_id
  from core.page_upper_bound(p_after_created_at, p_after_document_id, p_created_before);
  if p_user_id is null then
    return query
      select * from api.documents d
      where d.tenant_id = v_tenant_id
        and (d.created_at, d.document_id) < (v_below_at, v_below_id) and d.created_at >= v_from
      order by d.created_at desc, d.document_id desc
      limit v_limit;
  else
    return query
      select * from api.documents d
      where d.tenant_id = v_tenant_id and d.user_id = p_user_id
        and (d.created_at, d.document_id) < (v_below_at, v_below_id) and d.created_at >= v_from
      order by d.created_at desc, d.document_id desc
      limit v_limit;
  end if;
end
$$;

create or replace function api.list_api_keys(
  p_limit integer default 20, p_after_created_at timestamptz default null, p_after_key_id uuid default null
) returns setof api.api_keys
language plpgsql stable
set plan_cache_mode = force_generic_plan
set enable_sort = off
set enable_bitmapscan = off
as $$
declare
  v_tenant_id uuid := core.current_tenant_id();
  v_below_at timestamptz;
  v_below_id uuid;
begin
  select bound_at, bound_id into v_below_at, v_below_id
  from core.page_upper_bound(p_after_created_at, p_after_key_id, null);
  return query
    select * from api.api_keys k
    where k.tenant_id = v_tenant_id and (k.created_at, k.key_id) < (v_below_at, v_below_id)
    order by k.created_at desc, k.key_id desc
    limit least(greatest(coalesce(p_limit, 20), 1), 100);
end
$$;

create or replace function api.list_audit_logs(
  p_limit integer default 50, p_after_timestamp timestamptz default null, p_after_log_id uuid default null,
  p_user_id uuid default null, p_action text default null, p_resource_type text default null,
  p_since timestamptz default null, p_until timestamptz default null
) returns setof api.audit_logs
language plpgsql stable security definer
set plan_cache_mode = force_generic_plan
set enable_sort = off
set enable_bitmapscan = off
set search_path = pg_catalog, pg_temp
as $$
declare
  v_tenant_id uuid := core.current_tenant_id();
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
      where a.tenant_id = v_tenant_id
        and (a."timestamp", a.log_id) < (v_below_at, v_below_id) and a."timestamp" >= v_since
        and (p_action is null or a.action = p_action)
        and (p_resource_type is null or a.resource_type = p_resource_type)
      order by a."timestamp" desc, a.log_id desc
      limit v_limit;
  else
    return query
      select * from api.audit_logs a
      where a.tenant_id = v_tenant_id and a.user_id = p_user_id
        and (a."timestamp", a.log_id) < (v_below_at, v_below_id) and a."timestamp" >= v_since
        and (p_action is null or a.action = p_action)
        and (p_resource_type is null or a.resource_type = p_resource_type)
      order by a."timestamp" desc, a.log_id desc
      limit v_limit;
  end if;
end
$$;



-- Reads of one row ---------------------------------------------------------------------
-- A read of a view by id (api.users where user_id = ...) names no tenant:
-- Citus asks all 32 shards. The service reads one row through these
-- functions instead, which name the context's tenant.

create function api.get_user(p_user_id uuid) returns setof api.users
language plpgsql stable
as $$
declare
  v_tenant_id uuid := core.current_tenant_id();
begin
  return query select * from api.users u where u.tenant_id = v_tenant_id and u.user_id = p_user_id;
end
$$;
alter function api.get_user(uuid) owner to tenancy_owner;
comment on function api.get_user(uuid) is 'One user of the current tenant, or none';
grant execute on function api.get_user(uuid) to app_user;

create function api.get_document(p_document_id uuid) returns setof api.documents
language plpgsql stable
as $$
declare
  v_tenant_id uuid := core.current_tenant_id();
begin
  return query select * from api.documents d where d.tenant_id = v_tenant_id and d.document_id = p_document_id;
end
$$;
alter function api.get_document(uuid) owner to tenancy_owner;
comment on function api.get_document(uuid) is 'One document of the current tenant, or none';
grant execute on function api.get_document(uuid) to app_user;

create function api.get_approval(p_approval_id uuid) returns setof api.approvals
language plpgsql stable
as $$
declare
  v_tenant_id uuid := core.current_tenant_id();
begin
  return query select * from api.approvals a where a.tenant_id = v_tenant_id and a.approval_id = p_approval_id;
end
$$;
alter function api.get_approval(uuid) owner to tenancy_owner;
comment on function api.get_approval(uuid) is 'One approval request of the current tenant, or none';
grant execute on function api.get_approval(uuid) to app_user;

create function api.list_approvals() returns setof api.approvals
language plpgsql stable
as $$
declare
  v_tenant_id uuid := core.current_tenant_id();
begin
  return query select * from api.approvals a where a.tenant_id = v_tenant_id
    order by a.created_at desc, a.approval_id desc limit 100;
end
$$;
alter function api.list_approvals() owner to tenancy_owner;
comment on function api.list_approvals() is 'The current tenant''s approval requests, newest first (at most 100)';
grant execute on function api.list_approvals() to app_user;

create or replace function api.current_tenant() returns setof api.tenant
language plpgsql stable security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_tenant_id uuid := core.current_tenant_id();
begin
  return query select * from api.tenant t where t.tenant_id = v_tenant_id;
end
$$;

create or replace function api.current_tenant_config() returns setof api.tenant_config
language plpgsql stable security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_tenant_id uuid := core.current_tenant_id();
begin
  return query select * from api.tenant_config c where c.tenant_id = v_tenant_id;
end
$$;

create or replace function api.current_plan() returns jsonb
language plpgsql stable security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_tenant_id uuid := core.current_tenant_id();
begin
  return (
    select jsonb_build_object(
      'tier', p.tier,
      'limits', jsonb_build_object('documents', p.max_documents, 'users', p.max_users, 'api_keys', p.max_api_keys,
                                   'metadata_bytes', p.max_metadata_bytes, 'requests_per_minute', p.requests_per_minute),
      'usage', jsonb_build_object('documents', u.documents, 'users', u.users, 'api_keys', u.api_keys))
    from core.tenant_usage u
    join core.tenants t on t.tenant_id = u.tenant_id
    join core.plans p on p.tier = t.subscription_tier
    where u.tenant_id = v_tenant_id and t.tenant_id = v_tenant_id);
end
$$;

-- Planned for each call on Citus ------------------------------------------------------
-- Citus cannot plan a list function's generic plan (with row-level
-- security, no statement is a "fast path" it can prune at run time), and
-- plans a custom one for the tenant's shard. Distributing now switches
-- every function planned once for every call to a plan for each call: those
-- found in the catalog, so a list function added later is switched too.
-- Then, on one server, nothing changes.

alter function core.distribute_on_citus() rename to distribute_tables_on_citus;
comment on function core.distribute_tables_on_citus() is
  'The tables distributed on Citus, the first step of core.distribute_on_citus()';

create function core.distribute_on_citus() returns text
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
comment on function core.distribute_on_citus() is
  'Distributes every table on Citus and plans the functions planned once for each call instead (run as a superuser on the coordinator once the workers have joined); does nothing without the citus extension';
revoke execute on function core.distribute_on_citus() from public;
alter function core.distribute_on_citus() owner to tenancy_owner;

-- A deployment distributed before this migration is switched now.
select core.distribute_on_citus();

-- migrate:down
set local lock_timeout = '5s';
set local statement_timeout = '60s';

drop function api.get_user(uuid);
drop function api.get_document(uuid);
drop function api.get_approval(uuid);
drop function api.list_approvals();
drop function core.distribute_on_citus();
-- Revoked again on the coordinator, as the earlier core.distribute_on_citus()
-- left it (the workers had it before this migration too).
do $$
begin
  if to_regprocedure('pg_catalog.relation_is_a_known_shard(regclass)') is not null then
    revoke execute on function pg_catalog.relation_is_a_known_shard(regclass) from public;
  end if;
end
$$;
alter function core.distribute_tables_on_citus() rename to distribute_on_citus;
comment on function core.distribute_on_citus() is
  'Distributes every table on Citus (run as a superuser on the coordinator once the workers have joined); does nothing without the citus extension';

create or replace function core.key_is_active(p_tenant_id uuid, p_key_id uuid)
 RETURNS boolean
 LANGUAGE sql
 STABLE
AS $function$
  select exists (select from core.tenant_api_keys k
                 where k.tenant_id = p_tenant_id and k.key_id = p_key_id and k.revoked_at is null
                   and (k.expires_at is null or k.expires_at > now()))
$function$
;
create or replace function core.key_lineage(p_tenant_id uuid, p_key_id uuid)
 RETURNS SETOF uuid
 LANGUAGE sql
 STABLE
AS $function$
  with recursive lineage (key_id, issued_by) as (
    select k.key_id, k.issued_by_key_id from core.tenant_api_keys k
    where k.tenant_id = p_tenant_id and k.key_id = p_key_id
    union
    select k.key_id, k.issued_by_key_id from core.tenant_api_keys k
    join lineage l on k.key_id = l.issued_by
    where k.tenant_id = p_tenant_id
  )
  select key_id from lineage
$function$
;
create or replace function core.two_people_required(p_tenant_id uuid)
 RETURNS boolean
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  select coalesce((select c.settings -> 'require_two_person_approval' = 'true'::jsonb
                   from core.tenant_configs c where c.tenant_id = p_tenant_id), false)
$function$
;
create or replace function core.approved_now(p_tenant_id uuid, p_operation text)
 RETURNS boolean
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  select exists (select from core.approval_requests a
                 where a.tenant_id = p_tenant_id and a.operation = p_operation and a.status = 'approved'
                   and a.executing_xid = pg_current_xact_id())
$function$
;
create or replace function core.audit_export(p_tenant_id uuid, p_from_seq bigint, p_limit integer, p_permissions text[])
 RETURNS TABLE(seq bigint, log_id uuid, tenant_id uuid, user_id uuid, api_key_id uuid, operator_id uuid, action text, resource_type text, resource_id uuid, details jsonb, details_text text, details_salt text, details_sha256 text, request_id text, client_request_id text, "timestamp" text, recorded_at text, prev_hash text, chain_hash text)
 LANGUAGE sql
 STABLE
AS $function$
  select a.seq, a.log_id, a.tenant_id, a.user_id, a.api_key_id, a.operator_id, a.action, a.resource_type,
         a.resource_id,
         case when p_permissions is null or core.audit_details_readable(a.resource_type, p_permissions)
              then a.details else a.details - 'old' - 'new' end,
         case when p_permissions is null or core.audit_details_readable(a.resource_type, p_permissions)
              then a.details::text end,
         case when p_permissions is null or core.audit_details_readable(a.resource_type, p_permissions)
              then encode(a.details_salt, 'hex') end,
         encode(a.details_sha256, 'hex'), a.request_id, a.client_request_id, core.audit_time(a."timestamp"),
         core.audit_time(a.recorded_at),
         encode(a.prev_hash, 'hex'), encode(a.chain_hash, 'hex')
  from (
    -- A page ends at 1,000 rows or once 4 MB of details are in it, so a page
    -- of large entries still fits in memory and a statement's time.
    select a.*, sum(octet_length(a.details::text)) over (order by a.seq) - octet_length(a.details::text) as before
    from core.audit_logs a
    where a.tenant_id = p_tenant_id and a.seq >= greatest(coalesce(p_from_seq, 1), 1)
    order by a.seq
    limit least(greatest(coalesce(p_limit, 1000), 1), 1000)
  ) a
  where a.before < 4194304
  order by a.seq
$function$
;
create or replace function api.export_audit_logs(p_from_seq bigint DEFAULT 1, p_limit integer DEFAULT 1000)
 RETURNS TABLE(seq bigint, log_id uuid, tenant_id uuid, user_id uuid, api_key_id uuid, operator_id uuid, action text, resource_type text, resource_id uuid, details jsonb, details_text text, details_salt text, details_sha256 text, request_id text, client_request_id text, "timestamp" text, recorded_at text, prev_hash text, chain_hash text)
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  -- Row-level security gives tenancy_writer the rows of the context's
  -- tenant, and only with audit:read.
  select e.* from core.request_context c
  cross join lateral core.audit_export(c.tenant_id, p_from_seq, p_limit, c.permissions) e
  where 'audit:read' = any (c.permissions)
$function$
;
create or replace function api.verify_audit_chain(p_from_seq bigint DEFAULT 1, p_max_rows integer DEFAULT 100000, p_anchor_seq bigint DEFAULT NULL::bigint, p_anchor_hash text DEFAULT NULL::text)
 RETURNS TABLE(verified boolean, from_seq bigint, to_seq bigint, rows_checked bigint, complete boolean, head_seq bigint, head_hash text, broken_at_seq bigint, reason text)
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  select v.* from core.request_context c
  cross join lateral core.verify_audit_chain(c.tenant_id, p_from_seq, p_max_rows, p_anchor_seq,
    decode(p_anchor_hash, 'hex')) v
  where 'audit:read' = any (c.permissions)
$function$
;
create or replace function core.record_audit_purge(p_tenant_id uuid, p_through_seq bigint, p_through_hash bytea, p_partition text, p_retention_days integer)
 RETURNS bigint
 LANGUAGE sql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  insert into core.audit_logs (tenant_id, operator_id, action, resource_type, resource_id, details)
  values (p_tenant_id, core.current_operator_id(), 'audit.purged', 'audit_logs', p_tenant_id,
    jsonb_build_object('through_seq', p_through_seq, 'through_hash', encode(p_through_hash, 'hex'),
      'partition', p_partition, 'retention_days', p_retention_days, 'db_role', session_user))
  returning seq
$function$
;
create or replace function core.audit_partition_tenants(p_from timestamp with time zone, p_to timestamp with time zone)
 RETURNS TABLE(tenant_id uuid, through_seq bigint, through_hash bytea, retention_days integer, floor_seq bigint)
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  with recursive tenants (tenant_id) as (
    (select a.tenant_id from core.audit_logs a
     where a."timestamp" >= p_from and a."timestamp" < p_to order by a.tenant_id limit 1)
    union all
    select (select a.tenant_id from core.audit_logs a
            where a."timestamp" >= p_from and a."timestamp" < p_to and a.tenant_id > t.tenant_id
            order by a.tenant_id limit 1)
    from tenants t where t.tenant_id is not null
  )
  select t.tenant_id, last.seq, last.chain_hash,
    case when s.days::text ~ '^[1-9][0-9]{2,4}$' and s.days::text::int between 365 and 36500 then s.days::text::int end,
    (select (a.details ->> 'through_seq')::bigint from core.audit_logs a
     where a.tenant_id = t.tenant_id and a.action = 'audit.purged' and a.details ->> 'through_seq' ~ '^[0-9]{1,18}$'
     order by a.seq desc limit 1)
  from tenants t
  cross join lateral (
    select a.seq, a.chain_hash from core.audit_logs a
    where a.tenant_id = t.tenant_id and a."timestamp" >= p_from and a."timestamp" < p_to
    order by a.seq desc limit 1) last
  left join lateral (
    select c.settings -> 'audit_retention_days' as days from core.tenant_configs c where c.tenant_id = t.tenant_id) s
    on true
  where t.tenant_id is not null
$function$
;
create or replace function api.create_user(p_email text, p_role text DEFAULT 'member'::text)
 RETURNS SETOF api.users
 LANGUAGE sql
AS $function$
  insert into core.users (email, role)
  values (p_email, coalesce(p_role, 'member'))
  returning user_id, tenant_id, email, role, created_at, updated_at
$function$
;
create or replace function api.update_user(p_user_id uuid, p_email text DEFAULT NULL::text, p_role text DEFAULT NULL::text)
 RETURNS SETOF api.users
 LANGUAGE sql
AS $function$
  update core.users
  set email = coalesce(p_email, email),
      role = coalesce(p_role, role)
  where user_id = p_user_id
  returning user_id, tenant_id, email, role, created_at, updated_at
$function$
;
create or replace function api.delete_user(p_user_id uuid)
 RETURNS SETOF api.users
 LANGUAGE sql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  delete from core.users
  where user_id = p_user_id
  returning user_id, tenant_id, email, role, created_at, updated_at
$function$
;
create or replace function api.update_document(p_document_id uuid, p_title text DEFAULT NULL::text, p_content_hash text DEFAULT NULL::text, p_metadata jsonb DEFAULT NULL::jsonb)
 RETURNS SETOF api.documents
 LANGUAGE plpgsql
AS $function$
begin
  return query
    update core.documents
    set title = coalesce(p_title, title),
        content_hash = coalesce(p_content_hash, content_hash),
        metadata = coalesce(p_metadata, metadata)
    where document_id = p_document_id
    returning document_id, tenant_id, user_id, title, content_hash, metadata, created_at, updated_at;
  if not found and exists (select from core.documents d where d.document_id = p_document_id) then
    raise exception 'a key of a member changes only the documents its user authors' using errcode = 'PT403';
  end if;
end
$function$
;
create or replace function api.delete_document(p_document_id uuid)
 RETURNS SETOF api.documents
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
begin
  return query
    delete from core.documents
    where document_id = p_document_id
    returning document_id, tenant_id, user_id, title, content_hash, metadata, created_at, updated_at;
  if not found and exists (select from core.documents d where d.document_id = p_document_id) then
    raise exception 'a key of a member deletes only the documents its user authors' using errcode = 'PT403';
  end if;
end
$function$
;
create or replace function api.claim_idempotency_key(p_idempotency_key text, p_request_hash text)
 RETURNS TABLE(claimed boolean, request_hash text, response_status integer, response_body jsonb)
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
begin
  -- Keep the table small: drop a few of this key's expired claims.
  delete from core.idempotency_keys k
  where k.tenant_id = (select core.current_tenant_id())
    and k.expires_at < now()
    and k.idempotency_key <> p_idempotency_key
    and k.idempotency_key in (
      select e.idempotency_key from core.idempotency_keys e
      where e.tenant_id = (select core.current_tenant_id()) and e.expires_at < now()
      limit 10);

  return query
    insert into core.idempotency_keys as k (idempotency_key, request_hash)
    values (p_idempotency_key, p_request_hash)
    on conflict (tenant_id, api_key_id, idempotency_key) do update
      set request_hash = excluded.request_hash, response_status = null, response_body = null,
          created_at = now(), expires_at = now() + interval '24 hours'
      where k.expires_at < now()
    returning true, k.request_hash, k.response_status, k.response_body;
  if not found then
    return query
      select false, k.request_hash, k.response_status, k.response_body
      from core.idempotency_keys k
      where k.idempotency_key = p_idempotency_key;
  end if;
end
$function$
;
create or replace function api.save_idempotent_response(p_idempotency_key text, p_status integer, p_body jsonb)
 RETURNS void
 LANGUAGE sql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  update core.idempotency_keys
  set response_status = p_status, response_body = p_body
  where idempotency_key = p_idempotency_key
$function$
;
create or replace function platform.claim_idempotency_key(p_idempotency_key text, p_request_hash text)
 RETURNS TABLE(claimed boolean, request_hash text, response_status integer, response_body jsonb)
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
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
$function$
;
create or replace function platform.save_idempotent_response(p_idempotency_key text, p_status integer, p_body jsonb)
 RETURNS void
 LANGUAGE sql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  update core.platform_idempotency_keys
  set response_status = p_status, response_body = p_body
  where operator_id = core.current_operator_id() and idempotency_key = p_idempotency_key
$function$
;
create or replace function platform.list_tenants(p_limit integer DEFAULT 20, p_after_created_at timestamp with time zone DEFAULT NULL::timestamp with time zone, p_after_tenant_id uuid DEFAULT NULL::uuid)
 RETURNS SETOF platform.tenants
 LANGUAGE sql
 STABLE
AS $function$
  select *
  from platform.tenants t
  where p_after_created_at is null
     or (t.created_at, t.tenant_id) < (p_after_created_at, p_after_tenant_id)
  order by t.created_at desc, t.tenant_id desc
  limit least(greatest(coalesce(p_limit, 20), 1), 100)
$function$
;
create or replace function platform.deactivate_tenant(p_tenant_id uuid)
 RETURNS SETOF platform.tenants
 LANGUAGE sql
AS $function$
  update core.tenants
  set deactivated_at = coalesce(deactivated_at, now())
  where tenant_id = p_tenant_id
  returning tenant_id, name, domain, subscription_tier, deactivated_at, created_at, updated_at
$function$
;
create or replace function platform.list_audit_logs(p_limit integer DEFAULT 50, p_after_timestamp timestamp with time zone DEFAULT NULL::timestamp with time zone, p_after_log_id uuid DEFAULT NULL::uuid, p_tenant_id uuid DEFAULT NULL::uuid)
 RETURNS SETOF platform.audit_logs
 LANGUAGE sql
 STABLE
AS $function$
  select *
  from platform.audit_logs a
  where (p_after_timestamp is null or (a."timestamp", a.log_id) < (p_after_timestamp, p_after_log_id))
    and (p_tenant_id is null or a.tenant_id = p_tenant_id)
  order by a."timestamp" desc, a.log_id desc
  limit least(greatest(coalesce(p_limit, 50), 1), 100)
$function$
;
create or replace function platform.update_plan(p_plan_id uuid, p_max_documents integer DEFAULT NULL::integer, p_max_users integer DEFAULT NULL::integer, p_max_api_keys integer DEFAULT NULL::integer, p_max_metadata_bytes integer DEFAULT NULL::integer, p_requests_per_minute integer DEFAULT NULL::integer)
 RETURNS SETOF platform.plans
 LANGUAGE sql
AS $function$
  update core.plans p
  set max_documents = coalesce(p_max_documents, p.max_documents),
      max_users = coalesce(p_max_users, p.max_users),
      max_api_keys = coalesce(p_max_api_keys, p.max_api_keys),
      max_metadata_bytes = coalesce(p_max_metadata_bytes, p.max_metadata_bytes),
      requests_per_minute = coalesce(p_requests_per_minute, p.requests_per_minute)
  where p.plan_id = p_plan_id
  returning p.plan_id, p.tier, p.max_documents, p.max_users, p.max_api_keys, p.max_metadata_bytes,
    p.requests_per_minute, p.created_at, p.updated_at
$function$
;
create or replace function platform.revoke_operator(p_operator_id uuid)
 RETURNS TABLE(operator_id uuid, revoked_at timestamp with time zone)
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
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
  perform core.end_stale_transactions();
  perform from core.platform_operators o where o.revoked_at is null for update;
  -- The operators' rows first, then the chain head, in the order every
  -- writer of operators takes them.
  perform core.seize_chain_head('00000000-0000-0000-0000-000000000000');
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
$function$
;
create or replace function api.list_users(p_limit integer DEFAULT 20, p_after_created_at timestamp with time zone DEFAULT NULL::timestamp with time zone, p_after_user_id uuid DEFAULT NULL::uuid)
 RETURNS SETOF api.users
 LANGUAGE plpgsql
 STABLE
 SET plan_cache_mode TO 'force_generic_plan'
 SET enable_sort TO 'off'
 SET enable_bitmapscan TO 'off'
AS $function$
declare
  v_below_at timestamptz;
  v_below_id uuid;
begin
  select bound_at, bound_id into v_below_at, v_below_id
  from core.page_upper_bound(p_after_created_at, p_after_user_id, null);
  return query
    select * from api.users u
    where (u.created_at, u.user_id) < (v_below_at, v_below_id)
    order by u.created_at desc, u.user_id desc
    limit least(greatest(coalesce(p_limit, 20), 1), 100);
end
$function$
;
create or replace function api.list_documents(p_limit integer DEFAULT 20, p_after_created_at timestamp with time zone DEFAULT NULL::timestamp with time zone, p_after_document_id uuid DEFAULT NULL::uuid, p_user_id uuid DEFAULT NULL::uuid, p_created_after timestamp with time zone DEFAULT NULL::timestamp with time zone, p_created_before timestamp with time zone DEFAULT NULL::timestamp with time zone)
 RETURNS SETOF api.documents
 LANGUAGE plpgsql
 STABLE
 SET plan_cache_mode TO 'force_generic_plan'
 SET enable_sort TO 'off'
 SET enable_bitmapscan TO 'off'
AS $function$
declare
  v_below_at timestamptz;
  v_below_id uuid;
  v_from timestamptz := coalesce(p_created_after, '-infinity');
  v_limit integer := least(greatest(coalesce(p_limit, 20), 1), 100);
begin
  select bound_at, bound_id into v_below_at, v_below_id
  from core.page_upper_bound(p_after_created_at, p_after_document_id, p_created_before);
  if p_user_id is null then
    return query
      select * from api.documents d
      where (d.created_at, d.document_id) < (v_below_at, v_below_id) and d.created_at >= v_from
      order by d.created_at desc, d.document_id desc
      limit v_limit;
  else
    return query
      select * from api.documents d
      where d.user_id = p_user_id
        and (d.created_at, d.document_id) < (v_below_at, v_below_id) and d.created_at >= v_from
      order by d.created_at desc, d.document_id desc
      limit v_limit;
  end if;
end
$function$
;
create or replace function api.list_api_keys(p_limit integer DEFAULT 20, p_after_created_at timestamp with time zone DEFAULT NULL::timestamp with time zone, p_after_key_id uuid DEFAULT NULL::uuid)
 RETURNS SETOF api.api_keys
 LANGUAGE plpgsql
 STABLE
 SET plan_cache_mode TO 'force_generic_plan'
 SET enable_sort TO 'off'
 SET enable_bitmapscan TO 'off'
AS $function$
declare
  v_below_at timestamptz;
  v_below_id uuid;
begin
  select bound_at, bound_id into v_below_at, v_below_id
  from core.page_upper_bound(p_after_created_at, p_after_key_id, null);
  return query
    select * from api.api_keys k
    where (k.created_at, k.key_id) < (v_below_at, v_below_id)
    order by k.created_at desc, k.key_id desc
    limit least(greatest(coalesce(p_limit, 20), 1), 100);
end
$function$
;
create or replace function api.list_audit_logs(p_limit integer DEFAULT 50, p_after_timestamp timestamp with time zone DEFAULT NULL::timestamp with time zone, p_after_log_id uuid DEFAULT NULL::uuid, p_user_id uuid DEFAULT NULL::uuid, p_action text DEFAULT NULL::text, p_resource_type text DEFAULT NULL::text, p_since timestamp with time zone DEFAULT NULL::timestamp with time zone, p_until timestamp with time zone DEFAULT NULL::timestamp with time zone)
 RETURNS SETOF api.audit_logs
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
 SET plan_cache_mode TO 'force_generic_plan'
 SET enable_sort TO 'off'
 SET enable_bitmapscan TO 'off'
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
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
$function$
;

create or replace function api.current_plan()
 RETURNS jsonb
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  select jsonb_build_object(
    'tier', p.tier,
    'limits', jsonb_build_object('documents', p.max_documents, 'users', p.max_users, 'api_keys', p.max_api_keys,
                                 'metadata_bytes', p.max_metadata_bytes, 'requests_per_minute', p.requests_per_minute),
    'usage', jsonb_build_object('documents', u.documents, 'users', u.users, 'api_keys', u.api_keys))
  from core.tenant_usage u
  join core.tenants t on t.tenant_id = u.tenant_id
  join core.plans p on p.tier = t.subscription_tier
  where u.tenant_id = (select c.tenant_id from core.request_context c)
$function$
;
create or replace function api.current_tenant()
 RETURNS SETOF api.tenant
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  select * from api.tenant
$function$
;
create or replace function api.current_tenant_config()
 RETURNS SETOF api.tenant_config
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  select * from api.tenant_config
$function$
;
