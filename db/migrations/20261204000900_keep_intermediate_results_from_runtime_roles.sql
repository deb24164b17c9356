-- migrate:up
/*
 * Why: on Citus, whoever held the app_user password read the rows of
 * another session's subquery on a worker, with no key (issue 14; found by
 * the attack on migration 20261204000700). Citus keeps a subquery's rows on
 * a worker for a later command of the same transaction, in files named by
 * the role, the transaction's number (a counter) and the subquery; and in a
 * SELECT sent to a worker whole, app_user may assign itself any transaction
 * there and call read_intermediate_result, which Citus grants everyone.
 * Measured: with a DBA's transaction open as app_user (the README's way to
 * look at a tenant's data) running a query with a subquery, a scan of 200
 * transaction numbers found its rows in 0.57 s. The service's own
 * statements keep none (its Citus routing check, which calls every function
 * of the runtime roles, fails one whose commands read any).
 *
 * Now on the workers read_intermediate_result is the definers' owners'
 * alone (core.keep_intermediate_results_from_runtime_roles, a step of
 * core.distribute_on_citus, taken here too on a deployment distributed
 * already): a statement of the runtime roles that needs a subquery's rows
 * kept on a worker is refused there, so a DBA looking at a tenant's data as
 * app_user writes queries Citus sends whole (or looks as the superuser).
 * On one server nothing changes.
 */
set local lock_timeout = '5s';
set local statement_timeout = '60s';

create function core.keep_intermediate_results_from_runtime_roles() returns void
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
begin
  perform core.on_workers(
    'revoke execute on function pg_catalog.read_intermediate_result(text, pg_catalog.citus_copy_format) from public; '
    || 'grant execute on function pg_catalog.read_intermediate_result(text, pg_catalog.citus_copy_format) '
    || 'to tenancy_owner, tenancy_auth, tenancy_writer, tenancy_auditor, tenancy_meter, tenancy_reaper');
end
$$;
comment on function core.keep_intermediate_results_from_runtime_roles() is
  'On Citus, lets only the definers'' owners read the rows Citus keeps on a worker between the commands of a transaction (a step of core.distribute_on_citus)';
revoke execute on function core.keep_intermediate_results_from_runtime_roles() from public;
alter function core.keep_intermediate_results_from_runtime_roles() owner to tenancy_owner;

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
  perform core.keep_intermediate_results_from_runtime_roles();
  return v_result;
end
$$;

-- A deployment distributed before this migration is changed now.
do $$
begin
  -- (Nested: on one server there is no pg_dist_partition to plan a query on.)
  if core.on_citus() then
    if exists (select from pg_dist_partition p where p.logicalrelid = 'core.tenants'::regclass) then
      perform core.keep_intermediate_results_from_runtime_roles();
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
      perform core.on_workers(
        'grant execute on function pg_catalog.read_intermediate_result(text, pg_catalog.citus_copy_format) to public');
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
  perform core.hide_runtime_commands_on_workers();
  return v_result;
end
$$;
drop function core.keep_intermediate_results_from_runtime_roles();
