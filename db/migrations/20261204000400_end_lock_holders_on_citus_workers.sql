-- migrate:up
/*
 * Why: on Citus a session holding a tenant's row of leased requests, usage
 * counts or audit chain head locked was not ended by the next lease or by a
 * revocation, as it is on one server (issue 14). Holding one takes the
 * app_user password and a key of the tenant; then every request of that
 * tenant answered 503 for as long as the session stayed open (measured: 20
 * in a row over 100 s), and a revocation of the holder's own key waited 15
 * to 23 s until the holder was stale. The enders (core.end_window_holders,
 * end_usage_holders, end_chain_holders) read the row's lockers with
 * pgrowlocks on the coordinator, where a distributed table holds no rows;
 * the row and its lock are on a worker. And the lease's 200 ms wait for a
 * holder was set with set_config, which Citus does not pass on: the worker
 * waited until the statement's timeout.
 *
 * Now, on Citus:
 * - Each ender reads the tenant's row through the request's context (so the
 *   tenant's shard alone is read) and calls core.row_lock_holders with the
 *   row's shard and position, which Citus runs on that worker: the
 *   distributed transactions of the sessions holding the row there
 *   (pgrowlocks, and the transaction Citus assigned each session). Then
 *   core.end_distributed_holders ends the coordinator's sessions in those
 *   transactions that are app_user's or uber_admin's, as on one server.
 *   Ending the coordinator's session ends its connections to the workers,
 *   and with them the lock. (Not by the global process id Citus puts in a
 *   worker session's application name: a caller names its own session, and
 *   Citus names the worker sessions after it, so an attacker holding a row
 *   had another session ended, an operator's, and kept its lock: found by
 *   the attack on the first version of this migration.)
 * - tenancy_reaper may read the distributed transactions of every node's
 *   sessions (get_all_active_transactions, which says only which
 *   transaction each session is in): core.let_reaper_see_transactions, a
 *   step of core.distribute_on_citus, taken here too on a deployment
 *   distributed already.
 * - core.revoke_keys ends the holders of the tenant's counts and chain head
 *   before its update waits for them (on Citus it seizes neither: see
 *   migration 20261203000200); so tenancy_auth and uber_admin, who revoke,
 *   may call those two enders.
 * - api.lease_requests sets its 200 ms wait with SET LOCAL.
 * On one server nothing changes: the enders return to their own query, and
 * SET LOCAL is what set_config(..., true) does.
 */
set local lock_timeout = '5s';
set local statement_timeout = '60s';

-- Run on the worker holding the row (pushed down with the row's shard and
-- position); tenancy_reaper's alone, which may read every session's
-- transaction there.
create function core.row_lock_holders(p_shard oid, p_row tid) returns bigint[]
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
begin
  perform pg_stat_clear_snapshot();
  -- As the enders on one server: the sessions pgrowlocks names, and for a
  -- lock taken inside a savepoint (pid 0) every session holding the table
  -- whose transaction began before it. Of each, the distributed transaction
  -- Citus assigned it, begun on the coordinator (which no runtime role can
  -- set: assign_distributed_transaction_id is revoked from them there).
  return array(
    select distinct t.transaction_number
    from (
      select r.pids[i] as pid
      from extensions.pgrowlocks(p_shard::regclass::text) r
      cross join lateral generate_subscripts(r.xids, 1) as i
      where r.locked_row = p_row and r.pids[i] <> 0
      union
      select l.pid
      from extensions.pgrowlocks(p_shard::regclass::text) r
      cross join lateral generate_subscripts(r.xids, 1) as i
      join pg_locks l on l.locktype = 'relation' and l.relation = p_shard
        and l.database = (select d.oid from pg_database d where d.datname = current_database())
      join pg_stat_activity s on s.pid = l.pid
      where r.locked_row = p_row and r.pids[i] = 0
        and s.backend_xid::text::bigint <= r.xids[i]::text::bigint
    ) holder
    join pg_catalog.get_all_active_transactions() t on t.process_id = holder.pid
    where holder.pid <> pg_backend_pid() and t.transaction_number <> 0
      and t.initiator_node_identifier = (select n.nodeid from pg_dist_node n where n.groupid = 0));
end
$$;
alter function core.row_lock_holders(oid, tid) owner to tenancy_reaper;
comment on function core.row_lock_holders(oid, tid) is
  'On a Citus worker: the distributed transactions (begun on the coordinator) of the sessions holding a row of a shard locked (run pushed down from the enders)';
revoke execute on function core.row_lock_holders(oid, tid) from public;
grant execute on function core.row_lock_holders(oid, tid) to tenancy_reaper;

create function core.end_distributed_holders(p_transactions bigint[]) returns integer
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  v_ended integer;
begin
  perform pg_stat_clear_snapshot();
  -- The coordinator's sessions are ended on the coordinator alone.
  -- (Nested: on one server there is no pg_dist_node to plan a query on.)
  if to_regclass('pg_catalog.pg_dist_node') is null or not core.on_coordinator() then
    return 0;
  end if;
  select count(*) filter (where pg_terminate_backend(a.pid)) into v_ended
  from pg_catalog.get_all_active_transactions() t
  join pg_stat_activity a on a.pid = t.process_id
  where t.transaction_number = any (p_transactions)
    and t.initiator_node_identifier = (select n.nodeid from pg_dist_node n where n.groupid = 0)
    and a.usename in ('app_user', 'uber_admin') and a.pid <> pg_backend_pid() and a.datname = current_database();
  return v_ended;
end
$$;
alter function core.end_distributed_holders(bigint[]) owner to tenancy_reaper;
comment on function core.end_distributed_holders(bigint[]) is
  'On Citus: ends the coordinator''s app_user and uber_admin sessions in the distributed transactions row_lock_holders names; returns how many';
revoke execute on function core.end_distributed_holders(bigint[]) from public;
grant execute on function core.end_distributed_holders(bigint[]) to tenancy_reaper;
grant execute on function core.on_coordinator() to tenancy_reaper;

create function core.let_reaper_see_transactions() returns void
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
begin
  grant execute on function pg_catalog.get_all_active_transactions() to tenancy_reaper;
  perform core.on_workers('grant execute on function pg_catalog.get_all_active_transactions() to tenancy_reaper');
end
$$;
comment on function core.let_reaper_see_transactions() is
  'On Citus, lets tenancy_reaper read which distributed transaction each session of every node is in (a step of core.distribute_on_citus)';
revoke execute on function core.let_reaper_see_transactions() from public;
alter function core.let_reaper_see_transactions() owner to tenancy_owner;

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
  perform core.let_owner_make_shards_on_workers();
  perform core.let_reaper_see_transactions();
  return v_result;
end
$$;

-- A deployment distributed before this migration is changed now.
do $$
begin
  -- (Nested: on one server there is no pg_dist_partition to plan a query on.)
  if core.on_citus() then
    if exists (select from pg_dist_partition p where p.logicalrelid = 'core.tenants'::regclass) then
      perform core.let_reaper_see_transactions();
    end if;
  end if;
end
$$;

CREATE OR REPLACE FUNCTION core.end_window_holders(p_tenant_id uuid)
 RETURNS integer
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
declare
  v_ended integer;
  v_holders bigint[];
begin
  -- On Citus the row and its lock are on a worker, which the coordinator's
  -- pgrowlocks cannot see into: the holders' transactions are found there
  -- (the row read through the tenant's context, the call pushed down with
  -- it), then their sessions ended here. (Two statements: as one, Citus
  -- pushed the ending down too.)
  if core.on_citus() then
    v_holders := array(
      select g from core.request_windows t cross join lateral unnest(core.row_lock_holders(t.tableoid, t.ctid)) g
      where t.tenant_id = p_tenant_id);
    return core.end_distributed_holders(v_holders);
  end if;
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
$function$;

CREATE OR REPLACE FUNCTION core.end_usage_holders(p_tenant_id uuid)
 RETURNS integer
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
declare
  v_ended integer;
  v_holders bigint[];
begin
  -- On Citus the row and its lock are on a worker, which the coordinator's
  -- pgrowlocks cannot see into: the holders' transactions are found there
  -- (the row read through the tenant's context, the call pushed down with
  -- it), then their sessions ended here. (Two statements: as one, Citus
  -- pushed the ending down too.)
  if core.on_citus() then
    v_holders := array(
      select g from core.tenant_usage t cross join lateral unnest(core.row_lock_holders(t.tableoid, t.ctid)) g
      where t.tenant_id = p_tenant_id);
    return core.end_distributed_holders(v_holders);
  end if;
  perform pg_stat_clear_snapshot();
  -- pgrowlocks names the sessions holding the row's lock, except one taken
  -- inside a savepoint (released or not): its subtransaction's id maps to
  -- no session SQL can see (pid 0). Then every session that could hold it
  -- is ended: those of the service's roles that hold core.tenant_usage
  -- itself and began their transaction before that id. The service never
  -- uses savepoints, so this happens only when someone does, and a request
  -- caught with it is retried.
  select count(*) filter (where pg_terminate_backend(a.pid)) into v_ended
  from (
    select r.pids[i] as pid
    from core.tenant_usage u
    join extensions.pgrowlocks('core.tenant_usage') r on r.locked_row = u.ctid
    cross join lateral generate_subscripts(r.xids, 1) as i
    where u.tenant_id = p_tenant_id and r.pids[i] <> 0
    union
    select l.pid
    from core.tenant_usage u
    join extensions.pgrowlocks('core.tenant_usage') r on r.locked_row = u.ctid
    cross join lateral generate_subscripts(r.xids, 1) as i
    join pg_locks l on l.locktype = 'relation' and l.relation = 'core.tenant_usage'::regclass
      and l.database = (select d.oid from pg_database d where d.datname = current_database())
    join pg_stat_activity s on s.pid = l.pid
    where u.tenant_id = p_tenant_id and r.pids[i] = 0
      and s.backend_xid::text::bigint <= r.xids[i]::text::bigint
  ) holder
  join pg_stat_activity a on a.pid = holder.pid
  where a.usename in ('app_user', 'uber_admin') and a.pid <> pg_backend_pid() and a.datname = current_database();
  return v_ended;
end
$function$;

CREATE OR REPLACE FUNCTION core.end_chain_holders(p_tenant_id uuid)
 RETURNS integer
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
declare
  v_ended integer;
  v_holders bigint[];
begin
  -- On Citus the row and its lock are on a worker, which the coordinator's
  -- pgrowlocks cannot see into: the holders' transactions are found there
  -- (the row read through the tenant's context, the call pushed down with
  -- it), then their sessions ended here. (Two statements: as one, Citus
  -- pushed the ending down too.)
  if core.on_citus() then
    v_holders := array(
      select g from core.audit_chain_heads t cross join lateral unnest(core.row_lock_holders(t.tableoid, t.ctid)) g
      where t.tenant_id = p_tenant_id);
    return core.end_distributed_holders(v_holders);
  end if;
  perform pg_stat_clear_snapshot();
  -- pgrowlocks names the backends that hold a row's lock, whether they took
  -- it in a subtransaction or share it with others (a multixact): a row's
  -- xmax alone names neither reliably.
  select count(*) filter (where pg_terminate_backend(a.pid)) into v_ended
  from core.audit_chain_heads h
  join extensions.pgrowlocks('core.audit_chain_heads') r on r.locked_row = h.ctid
  cross join lateral unnest(r.pids) as holder (pid)
  join pg_stat_activity a on a.pid = holder.pid
  where h.tenant_id = p_tenant_id and a.usename in ('app_user', 'uber_admin') and a.pid <> pg_backend_pid()
    and a.datname = current_database();
  return v_ended;
end
$function$;

CREATE OR REPLACE FUNCTION core.revoke_keys(p_tenant_id uuid, p_key_ids uuid[])
 RETURNS TABLE(key_id uuid)
 LANGUAGE plpgsql
AS $function$
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
  else
    -- Their holders are ended all the same, before the update waits for them.
    perform core.end_usage_holders(p_tenant_id);
    perform core.end_chain_holders(p_tenant_id);
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
$function$;

grant execute on function core.end_usage_holders(uuid), core.end_chain_holders(uuid) to tenancy_auth, uber_admin;

-- The api's functions run on the coordinator alone: on a deployment
-- distributed already, Citus would make the one replaced here on the workers
-- too, with PostgreSQL's default grant.
set local citus.enable_ddl_propagation = off;

CREATE OR REPLACE FUNCTION api.lease_requests(p_most integer DEFAULT NULL::integer)
 RETURNS TABLE(tenant_id uuid, granted integer, request_limit integer, remaining integer, resets_in_ms integer)
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
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
      -- (SET LOCAL, which Citus passes on to the worker that waits; set_config
      -- it does not, and there the wait lasted until the statement's timeout.)
      execute 'set local lock_timeout = ''200ms''';
      begin
        perform from core.request_windows w where w.tenant_id = v_tenant_id for update;
      exception when lock_not_available then
        null;
      end;
      execute format('set local lock_timeout = %L', v_lock_timeout);
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
$function$;

reset citus.enable_ddl_propagation;

-- migrate:down
set local lock_timeout = '5s';
set local statement_timeout = '60s';

set local citus.enable_ddl_propagation = off;

CREATE OR REPLACE FUNCTION api.lease_requests(p_most integer DEFAULT NULL::integer)
 RETURNS TABLE(tenant_id uuid, granted integer, request_limit integer, remaining integer, resets_in_ms integer)
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
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
$function$;

reset citus.enable_ddl_propagation;

revoke execute on function core.end_usage_holders(uuid), core.end_chain_holders(uuid) from tenancy_auth, uber_admin;

CREATE OR REPLACE FUNCTION core.revoke_keys(p_tenant_id uuid, p_key_ids uuid[])
 RETURNS TABLE(key_id uuid)
 LANGUAGE plpgsql
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION core.end_chain_holders(p_tenant_id uuid)
 RETURNS integer
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
declare
  v_ended integer;
begin
  perform pg_stat_clear_snapshot();
  -- pgrowlocks names the backends that hold a row's lock, whether they took
  -- it in a subtransaction or share it with others (a multixact): a row's
  -- xmax alone names neither reliably.
  select count(*) filter (where pg_terminate_backend(a.pid)) into v_ended
  from core.audit_chain_heads h
  join extensions.pgrowlocks('core.audit_chain_heads') r on r.locked_row = h.ctid
  cross join lateral unnest(r.pids) as holder (pid)
  join pg_stat_activity a on a.pid = holder.pid
  where h.tenant_id = p_tenant_id and a.usename in ('app_user', 'uber_admin') and a.pid <> pg_backend_pid()
    and a.datname = current_database();
  return v_ended;
end
$function$;

CREATE OR REPLACE FUNCTION core.end_usage_holders(p_tenant_id uuid)
 RETURNS integer
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
declare
  v_ended integer;
begin
  perform pg_stat_clear_snapshot();
  -- pgrowlocks names the sessions holding the row's lock, except one taken
  -- inside a savepoint (released or not): its subtransaction's id maps to
  -- no session SQL can see (pid 0). Then every session that could hold it
  -- is ended: those of the service's roles that hold core.tenant_usage
  -- itself and began their transaction before that id. The service never
  -- uses savepoints, so this happens only when someone does, and a request
  -- caught with it is retried.
  select count(*) filter (where pg_terminate_backend(a.pid)) into v_ended
  from (
    select r.pids[i] as pid
    from core.tenant_usage u
    join extensions.pgrowlocks('core.tenant_usage') r on r.locked_row = u.ctid
    cross join lateral generate_subscripts(r.xids, 1) as i
    where u.tenant_id = p_tenant_id and r.pids[i] <> 0
    union
    select l.pid
    from core.tenant_usage u
    join extensions.pgrowlocks('core.tenant_usage') r on r.locked_row = u.ctid
    cross join lateral generate_subscripts(r.xids, 1) as i
    join pg_locks l on l.locktype = 'relation' and l.relation = 'core.tenant_usage'::regclass
      and l.database = (select d.oid from pg_database d where d.datname = current_database())
    join pg_stat_activity s on s.pid = l.pid
    where u.tenant_id = p_tenant_id and r.pids[i] = 0
      and s.backend_xid::text::bigint <= r.xids[i]::text::bigint
  ) holder
  join pg_stat_activity a on a.pid = holder.pid
  where a.usename in ('app_user', 'uber_admin') and a.pid <> pg_backend_pid() and a.datname = current_database();
  return v_ended;
end
$function$;

CREATE OR REPLACE FUNCTION core.end_window_holders(p_tenant_id uuid)
 RETURNS integer
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
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
$function$;

revoke execute on function core.on_coordinator() from tenancy_reaper;
drop function core.end_distributed_holders(bigint[]);
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
  perform core.let_owner_make_shards_on_workers();
  return v_result;
end
$$;
-- (The grants of get_all_active_transactions stay, as those of migration
-- 20261204000200 do: they say only which transaction a session is in.)
drop function core.let_reaper_see_transactions();
drop function core.row_lock_holders(oid, tid);
