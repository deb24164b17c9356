-- migrate:up
/*
 * Why: on Citus the runtime roles could give values of their own to the
 * columns their INSERT grants leave out (issue 14). With the app_user
 * password and a tenant's key, a document went in with a created_at of
 * 2001-01-01 and an id of its inserter's choosing; with the uber_admin
 * password and an operator's credential, a tenant with a created_at and a
 * deactivated_at of its own (measured on a coordinator and two workers). On
 * one server the column grants refuse both.
 *
 * The cause: an INSERT reaches a shard with every column, the defaults
 * filled in by the coordinator, so on a shard a role that may insert some
 * columns needs INSERT on the whole table. Migration 20261202000300 granted
 * that on every node, the coordinator too. But the coordinator checks a
 * statement's privileges against the columns the statement itself names,
 * before Citus fills in the rest; and the runtime roles reach no worker but
 * through the coordinator (the workers refuse their passwords:
 * scripts/lib/citus.sh).
 *
 * Now core.keep_insert_columns_on_coordinator, a step of
 * core.distribute_on_citus, and taken here too on a deployment distributed
 * already, grants each role that the coordinator grants INSERT on some
 * columns of a distributed table INSERT on the whole table on every node
 * (so on every shard placement), then takes it back on the coordinator's
 * table alone and grants it those columns again (revoking a table's INSERT
 * revokes its columns' too). Measured: an insert naming created_at as
 * app_user is then refused ("permission denied for table documents"), and
 * the one api.create_document makes goes in. On one server nothing changes.
 */
set local lock_timeout = '5s';
set local statement_timeout = '60s';

create function core.keep_insert_columns_on_coordinator() returns void
language plpgsql volatile
set search_path = pg_catalog, pg_temp
-- Grants on tables with foreign keys to reference tables, over one
-- connection per node (Citus refuses them after parallel work otherwise).
set citus.multi_shard_modify_mode = 'sequential'
as $$
declare
  v_grant record;
  v_propagating text := current_setting('citus.enable_ddl_propagation');
begin
  for v_grant in
    select c.oid::regclass as rel, a.grantee::regrole as role,
           string_agg(quote_ident(att.attname), ', ' order by att.attnum) as columns
    from pg_dist_partition d
    join pg_class c on c.oid = d.logicalrelid
    join pg_attribute att on att.attrelid = c.oid and att.attnum > 0 and not att.attisdropped
    cross join lateral aclexplode(att.attacl) a
    where a.privilege_type = 'INSERT' and a.grantee <> 0
    group by 1, 2
  loop
    -- The whole table's on every node, Citus passing it on to each shard
    -- placement in this transaction (shards made here too). Citus makes a
    -- placement (a moved or split shard's too) with the coordinator's
    -- grants of its table: running core.distribute_on_citus again after
    -- moving shards grants it here.
    perform set_config('citus.enable_ddl_propagation', 'on', true);
    execute format('grant insert on table %s to %s', v_grant.rel, v_grant.role);
    -- Then on the coordinator's table alone, the columns again.
    perform set_config('citus.enable_ddl_propagation', 'off', true);
    execute format('revoke insert on table %s from %s', v_grant.rel, v_grant.role);
    execute format('grant insert (%s) on table %s to %s', v_grant.columns, v_grant.rel, v_grant.role);
  end loop;
  perform set_config('citus.enable_ddl_propagation', v_propagating, true);
end
$$;
comment on function core.keep_insert_columns_on_coordinator() is
  'On Citus, gives each role granted INSERT on some columns of a distributed table no INSERT on the rest on the coordinator, as on one server, and INSERT on the whole of every shard placement of it, which Citus sends every column (a step of core.distribute_on_citus)';
revoke execute on function core.keep_insert_columns_on_coordinator() from public;
alter function core.keep_insert_columns_on_coordinator() owner to tenancy_owner;

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

-- A deployment distributed before this migration is changed now.
do $$
begin
  -- (Nested: on one server there is no pg_dist_partition to plan a query on.)
  if core.on_citus() then
    if exists (select from pg_dist_partition p where p.logicalrelid = 'core.tenants'::regclass) then
      perform core.keep_insert_columns_on_coordinator();
    end if;
  end if;
end
$$;

-- migrate:down
set local lock_timeout = '5s';
set local statement_timeout = '60s';

-- The coordinator's grants as migration 20261202000300 left them.
do $$
declare
  v_grant record;
begin
  if core.on_citus() then
    if exists (select from pg_dist_partition p where p.logicalrelid = 'core.tenants'::regclass) then
      set local citus.enable_ddl_propagation = off;
      for v_grant in
        select distinct c.oid::regclass as rel, a.grantee::regrole as role
        from pg_dist_partition d
        join pg_class c on c.oid = d.logicalrelid
        join pg_attribute att on att.attrelid = c.oid and att.attnum > 0 and not att.attisdropped
        cross join lateral aclexplode(att.attacl) a
        where a.privilege_type = 'INSERT' and a.grantee <> 0
      loop
        execute format('grant insert on table %s to %s', v_grant.rel, v_grant.role);
      end loop;
      reset citus.enable_ddl_propagation;
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
  return v_result;
end
$$;
drop function core.keep_insert_columns_on_coordinator();
