-- migrate:up
/*
 * Why: on Citus, whoever held the app_user password read another tenant's
 * rows with no key of it (issue 14; found by the attack on migration
 * 20261204000600). A context reaching a worker is bound to the distributed
 * transaction alone (core.distributed_transaction, in core.context_mac), so
 * on a worker it is as secret as its text. And there the text was shown:
 * - Citus begins each transaction on a worker with one command that sets the
 *   context and assigns the transaction (SET LOCAL app.context = ...;
 *   SELECT assign_distributed_transaction_id(...)), and pg_stat_activity
 *   shows a session's command to every session of the same role.
 * - A SELECT that reads one shard is sent to its worker whole, with the
 *   functions it calls; there the runtime roles may execute
 *   assign_distributed_transaction_id, as Citus calls it as them.
 * Measured on a coordinator and two workers: a SELECT of app_user's, routed
 * to a tenant's shard, read from pg_stat_activity a context another session
 * had begun a transaction with; a second one set it with set_config,
 * assigned itself that transaction and read that tenant's rows. It worked
 * minutes after the transaction ended, and after its key was revoked.
 *
 * (Refusing a context in a worker statement that assigned its own
 * transaction was tried first: a statement does not show it, as Citus sends
 * an autocommit statement in several protocol messages, so its
 * statement_timestamp() is past its transaction_timestamp(), as in a
 * transaction Citus began; measured 153 us.)
 *
 * Now the workers record no command of the runtime roles' sessions
 * (track_activities off for app_user and uber_admin there, a setting only a
 * superuser changes; core.hide_runtime_commands_on_workers, a step of
 * core.distribute_on_citus, taken here too on a deployment distributed
 * already, which ends those roles' sessions on the workers so that each
 * starts again with it; their requests are retried or answered 503).
 * The definers' owners' sessions, which carry contexts too, show their
 * commands to no runtime role (none is a member of them or of
 * pg_read_all_stats: pgtap/10_rls_invariants). What a worker still records
 * of those sessions: which transaction, lock and wait each is in (the
 * enders read those, not the commands). On one server nothing changes.
 */
set local lock_timeout = '5s';
set local statement_timeout = '60s';

create function core.hide_runtime_commands_on_workers() returns void
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
begin
  perform core.on_workers('alter role app_user set track_activities = off; '
    || 'alter role uber_admin set track_activities = off; '
    -- A session keeps what it started with: each starts again.
    || 'select pg_terminate_backend(a.pid) from pg_stat_activity a '
    || 'where a.usename in (''app_user'', ''uber_admin'') and a.pid <> pg_backend_pid()');
end
$$;
comment on function core.hide_runtime_commands_on_workers() is
  'On Citus, has the workers record no command of app_user''s and uber_admin''s sessions, where another session of the role would read the contexts Citus begins transactions with (a step of core.distribute_on_citus)';
revoke execute on function core.hide_runtime_commands_on_workers() from public;
alter function core.hide_runtime_commands_on_workers() owner to tenancy_owner;

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
  perform core.keep_insert_columns_on_coordinator();
  perform core.hide_runtime_commands_on_workers();
  return v_result;
end
$$;

-- A deployment distributed before this migration is changed now.
do $$
begin
  -- (Nested: on one server there is no pg_dist_partition to plan a query on.)
  if core.on_citus() then
    if exists (select from pg_dist_partition p where p.logicalrelid = 'core.tenants'::regclass) then
      perform core.hide_runtime_commands_on_workers();
    end if;
  end if;
end
$$;

-- migrate:down
set local lock_timeout = '5s';
set local statement_timeout = '60s';

do $$
begin
  if core.on_citus() then
    if exists (select from pg_dist_partition p where p.logicalrelid = 'core.tenants'::regclass) then
      perform core.on_workers('alter role app_user reset track_activities; '
        || 'alter role uber_admin reset track_activities');
    end if;
  end if;
end
$$;

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
  perform core.keep_insert_columns_on_coordinator();
  return v_result;
end
$$;
drop function core.hide_runtime_commands_on_workers();
