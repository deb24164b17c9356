-- migrate:up
/*
 * Why: the list functions were SQL functions that PostgreSQL inlines into the
 * caller's statement. The service binds their arguments as parameters, and for
 * such a statement PostgreSQL kept choosing a custom plan, so every request
 * re-parsed the function body and re-planned it: about 150 µs of the
 * database's CPU for each page, more than running it.
 *
 * Now each list function is PL/pgSQL with plan_cache_mode = force_generic_plan.
 * Each session plans each query once and reuses the plan. A generic plan is
 * built without the argument values, so it has to be good for all of them:
 *   - Absent bounds are replaced by values that are never NULL: "infinity" and
 *     the largest UUID. With those, the keyset condition stays an index
 *     condition. A condition of the form "p is null or ..." could only be a
 *     filter.
 *   - The replacement values are computed into variables before the query
 *     runs. An expression such as COALESCE(p, ...) inside the query cannot be
 *     an index condition under row-level security, because PostgreSQL 15 does
 *     not count COALESCE as leak-proof.
 *   - The author filter has its own query, on the (tenant_id, user_id, ...)
 *     index.
 *   - created_before and the cursor are merged into one upper bound, so the
 *     scan starts at that bound instead of at the tenant's newest row.
 * pgtap/50_query_plans.sql checks that a page reads a handful of buffers,
 * however deep it lies.
 */
set local lock_timeout = '5s';
set local statement_timeout = '60s';

create function core.page_upper_bound(
  p_after_at timestamptz,
  p_after_id uuid,
  p_before timestamptz,
  out bound_at timestamptz,
  out bound_id uuid
)
language plpgsql immutable
as $$
begin
  -- No cursor and no end time: a bound above every row.
  bound_at := 'infinity';
  bound_id := 'ffffffff-ffff-ffff-ffff-ffffffffffff';
  if p_after_at is not null then
    bound_at := p_after_at;
    -- A cursor without an id means "strictly before that time".
    bound_id := coalesce(p_after_id, '00000000-0000-0000-0000-000000000000');
  end if;
  -- "Before p_before" is the bound (p_before, nil uuid); keep the lower one.
  if (p_before, '00000000-0000-0000-0000-000000000000'::uuid) < (bound_at, bound_id) then
    bound_at := p_before;
    bound_id := '00000000-0000-0000-0000-000000000000';
  end if;
end
$$;
comment on function core.page_upper_bound(timestamptz, uuid, timestamptz) is
  'Exclusive upper (time, id) bound of a newest-first page: the keyset cursor or the end time, whichever is lower; never NULL';
grant execute on function core.page_upper_bound(timestamptz, uuid, timestamptz) to app_user;

create or replace function api.list_documents(
  p_limit integer default 20,
  p_after_created_at timestamptz default null,
  p_after_document_id uuid default null,
  p_user_id uuid default null,
  p_created_after timestamptz default null,
  p_created_before timestamptz default null
) returns setof api.documents
language plpgsql stable
set plan_cache_mode = force_generic_plan
as $$
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
$$;

create or replace function api.list_audit_logs(
  p_limit integer default 50,
  p_after_timestamp timestamptz default null,
  p_after_log_id uuid default null,
  p_user_id uuid default null,
  p_action text default null,
  p_resource_type text default null,
  p_since timestamptz default null,
  p_until timestamptz default null
) returns setof api.audit_logs
language plpgsql stable
set plan_cache_mode = force_generic_plan
as $$
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
$$;

create or replace function api.list_users(
  p_limit integer default 20,
  p_after_created_at timestamptz default null,
  p_after_user_id uuid default null
) returns setof api.users
language plpgsql stable
set plan_cache_mode = force_generic_plan
as $$
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
$$;

create or replace function api.list_api_keys(
  p_limit integer default 20,
  p_after_created_at timestamptz default null,
  p_after_key_id uuid default null
) returns setof api.api_keys
language plpgsql stable
set plan_cache_mode = force_generic_plan
as $$
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
$$;

-- migrate:down
set local lock_timeout = '5s';
set local statement_timeout = '60s';
-- The SQL definitions of migrations 0300, 0500, 0600 and 0700, as they were.

create or replace function api.list_documents(
  p_limit integer default 20,
  p_after_created_at timestamptz default null,
  p_after_document_id uuid default null,
  p_user_id uuid default null,
  p_created_after timestamptz default null,
  p_created_before timestamptz default null
) returns setof api.documents
language sql stable
as $$
  select *
  from api.documents d
  where (p_after_created_at is null or (d.created_at, d.document_id) < (p_after_created_at, p_after_document_id))
    and (p_user_id is null or d.user_id = p_user_id)
    and (p_created_after is null or d.created_at >= p_created_after)
    and (p_created_before is null or d.created_at < p_created_before)
  order by d.created_at desc, d.document_id desc
  limit least(greatest(coalesce(p_limit, 20), 1), 100)
$$;

create or replace function api.list_audit_logs(
  p_limit integer default 50,
  p_after_timestamp timestamptz default null,
  p_after_log_id uuid default null,
  p_user_id uuid default null,
  p_action text default null,
  p_resource_type text default null,
  p_since timestamptz default null,
  p_until timestamptz default null
) returns setof api.audit_logs
language sql stable
as $$
  select *
  from api.audit_logs a
  where (p_after_timestamp is null or (a."timestamp", a.log_id) < (p_after_timestamp, p_after_log_id))
    and (p_user_id is null or a.user_id = p_user_id)
    and (p_action is null or a.action = p_action)
    and (p_resource_type is null or a.resource_type = p_resource_type)
    and (p_since is null or a."timestamp" >= p_since)
    and (p_until is null or a."timestamp" < p_until)
  order by a."timestamp" desc, a.log_id desc
  limit least(greatest(coalesce(p_limit, 50), 1), 100)
$$;

create or replace function api.list_users(
  p_limit integer default 20,
  p_after_created_at timestamptz default null,
  p_after_user_id uuid default null
) returns setof api.users
language sql stable
as $$
  select *
  from api.users u
  where p_after_created_at is null
     or (u.created_at, u.user_id) < (p_after_created_at, p_after_user_id)
  order by u.created_at desc, u.user_id desc
  limit least(greatest(coalesce(p_limit, 20), 1), 100)
$$;

create or replace function api.list_api_keys(
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

drop function core.page_upper_bound(timestamptz, uuid, timestamptz);
