-- migrate:up
/*
 * Why: each plan names the requests per minute its tenants may make, and
 * nothing enforced it; a tenant could take as much of the service as its
 * keys could send. Counting each request in the database would add a write
 * to every read, so the budget is leased instead.
 *
 * A tenant's budget is its plan's requests_per_minute in each minute of the
 * database's clock (fixed windows, aligned to the minute). A service
 * process asks api.lease_requests() for a slice of the tenant's budget in a
 * short transaction of its own (authenticated by api.begin_request, as any
 * request is) and spends the slice locally, one request at a time; it asks
 * again only when its slice is spent. core.request_windows holds, per
 * tenant, the window and how much of its budget has been leased; a lease
 * locks the tenant's row, so leases of one tenant take turns and never hand
 * out more than the budget, however many processes ask. A slice is at most
 * a twentieth of the budget and at most a quarter of what is left (at least
 * one request), so the leases shrink as the budget runs out and little is
 * stranded in processes that stop asking.
 *
 * What this guarantees with N processes: within one window a tenant is
 * never served more requests than its limit; once it has sent more than
 * that, it has been served at least the limit less what the other N - 1
 * processes still hold unspent: at most a twentieth of the limit each.
 *
 * A process that has requests of the tenant left but meets a key it has
 * not seen for a minute leases nothing (p_most = 0): the lease then only
 * authenticates the key and names its tenant.
 *
 * A lease locks the tenant's row for a moment. A lease that finds it
 * locked waits that moment (200 ms), then ends the sessions of the
 * service's roles that hold it (core.end_window_holders), however young
 * their transactions: a service lease never holds the row longer, and
 * sessions taking turns at it would otherwise keep every lease waiting.
 *
 * The function runs as tenancy_meter (which already keeps the usage
 * counts, cannot log in and bypasses row-level security); no other role
 * may write the windows, so a key cannot give its tenant a fresh budget.
 * The windows are not audited: a lease changes nothing a tenant owns.
 */
set local lock_timeout = '5s';
set local statement_timeout = '120s';

set local role tenancy_owner;

create table core.request_windows (
  tenant_id uuid primary key references core.tenants (tenant_id),
  window_start timestamptz not null,
  -- A minute's budget is at most 10,000,000 requests (core.plans).
  -- squawk-ignore prefer-bigint-over-int
  leased integer not null check (leased >= 0)
);
comment on table core.request_windows is
  'How much of each tenant''s requests-per-minute budget has been leased to service processes in the current minute';
comment on column core.request_windows.tenant_id is 'The tenant';
comment on column core.request_windows.window_start is 'The minute (of the database''s clock) the lease count is for';
comment on column core.request_windows.leased is 'Requests leased to service processes in that minute';
alter table core.request_windows enable row level security;
alter table core.request_windows force row level security;
-- As for every tenant table: no statistics, so that no plan's estimate
-- shows another tenant's ids or values.
alter table core.request_windows alter column tenant_id set statistics 0;
alter table core.request_windows alter column window_start set statistics 0;
alter table core.request_windows alter column leased set statistics 0;
-- Written only by tenancy_meter, which bypasses row-level security; no
-- other role is granted anything on the table. The policies say whose row
-- it would be.
create policy select_own_tenant on core.request_windows for select
  using (tenant_id = (select c.tenant_id from core.request_context c));
create policy insert_own_tenant on core.request_windows for insert
  with check (tenant_id = (select c.tenant_id from core.request_context c));
create policy update_own_tenant on core.request_windows for update
  using (tenant_id = (select c.tenant_id from core.request_context c))
  with check (tenant_id = (select c.tenant_id from core.request_context c));
create policy delete_own_tenant on core.request_windows for delete
  using (tenant_id = (select c.tenant_id from core.request_context c));
reset role;

-- Every tenant has its row from the start, made by the trigger that makes
-- its usage counts; today's tenants get theirs here (as the superuser:
-- forced row-level security would show tenancy_owner none of them).
insert into core.request_windows (tenant_id, window_start, leased)
select t.tenant_id, '-infinity', 0 from core.tenants t;

create or replace function core.create_tenant_usage() returns trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  insert into core.tenant_usage (tenant_id) values (new.tenant_id) on conflict (tenant_id) do nothing;
  insert into core.request_windows (tenant_id, window_start, leased) values (new.tenant_id, '-infinity', 0)
  on conflict (tenant_id) do nothing;
  return null;
end
$$;
comment on function core.create_tenant_usage() is
  'Trigger: gives a new tenant its usage counts, all zero, and its row of leased requests';

-- The sessions of the service's roles that hold a tenant's row locked, as
-- core.end_usage_holders finds them for the usage counts (pgrowlocks, and a
-- lock taken inside a savepoint through the table lock of whoever could
-- have taken it).
set local role tenancy_owner;
create function core.end_window_holders(p_tenant_id uuid) returns integer
language plpgsql volatile
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_ended integer;
begin
  perform pg_stat_clear_snapshot();
  select count(*) filter (where pg_terminate_backend(a.pid)) into v_ended
  from (
    select r.pids[i] as pid
    from core.request_windows w
    join extensions.pgrowlocks('core.request_windows') r on r.locked_row = w.ctid
    cross join lateral generate_subscripts(r.xids, 1) as i
    where w.tenant_id = p_tenant_id and r.pids[i] <> 0
    union
    select l.pid
    from core.request_windows w
    join extensions.pgrowlocks('core.request_windows') r on r.locked_row = w.ctid
    cross join lateral generate_subscripts(r.xids, 1) as i
    join pg_locks l on l.locktype = 'relation' and l.relation = 'core.request_windows'::regclass
      and l.database = (select d.oid from pg_database d where d.datname = current_database())
    join pg_stat_activity s on s.pid = l.pid
    where w.tenant_id = p_tenant_id and r.pids[i] = 0
      and s.backend_xid::text::bigint <= r.xids[i]::text::bigint
  ) holder
  join pg_stat_activity a on a.pid = holder.pid
  where a.usename in ('app_user', 'uber_admin') and a.pid <> pg_backend_pid() and a.datname = current_database();
  return v_ended;
end
$$;
comment on function core.end_window_holders(uuid) is
  'Ends the app_user or uber_admin sessions that hold this tenant''s row of leased requests locked; returns how many';
reset role;
alter function core.end_window_holders(uuid) owner to tenancy_reaper;
-- pgrowlocks wants SELECT on the whole table.
grant select on core.request_windows to tenancy_reaper;
revoke execute on function core.end_window_holders(uuid) from public;
grant execute on function core.end_window_holders(uuid) to tenancy_meter;

set local role tenancy_owner;
create function api.lease_requests(p_most integer default null)
returns table (tenant_id uuid, granted integer, request_limit integer, remaining integer, resets_in_ms integer)
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
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
comment on function api.lease_requests(integer) is
  'Leases a slice of the current tenant''s requests-per-minute budget to the calling service process (at most p_most requests; NULL: a slice): how many it may serve, the limit, what is left to lease, and when the minute ends';
reset role;
alter function api.lease_requests(integer) owner to tenancy_meter;
grant select, insert (tenant_id, window_start, leased), update (window_start, leased) on core.request_windows
  to tenancy_meter;
-- The lease reads the verified context, which checks its signature.
grant select on core.request_context to tenancy_meter;
grant execute on function core.context_verifies(text) to tenancy_meter;
-- As the superuser, the grants are made as the function's owner's (which
-- has no USAGE on the schema api to name it by).
revoke execute on function api.lease_requests(integer) from public;
grant execute on function api.lease_requests(integer) to app_user;

-- migrate:down
set local lock_timeout = '5s';
set local statement_timeout = '120s';

drop function api.lease_requests(integer);
drop function core.end_window_holders(uuid);
revoke select on core.request_windows from tenancy_reaper;
create or replace function core.create_tenant_usage() returns trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  insert into core.tenant_usage (tenant_id) values (new.tenant_id) on conflict (tenant_id) do nothing;
  return null;
end
$$;
comment on function core.create_tenant_usage() is 'Trigger: gives a new tenant its usage counts, all zero';
revoke execute on function core.context_verifies(text) from tenancy_meter;
revoke select on core.request_context from tenancy_meter;
drop table core.request_windows;
