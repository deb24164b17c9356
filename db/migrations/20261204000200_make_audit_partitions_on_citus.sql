-- migrate:up
/*
 * Why: on Citus the trail's coming partitions could not be made once the
 * tables were distributed (issue 14). core.maintain_audit_partitions, which
 * the service runs as it starts and every ten minutes, makes the partition
 * of three months ahead and attaches it to core.audit_logs, and Citus
 * distributes a table attached to a distributed one. It refused: "cannot
 * distribute relation audit_logs_y2027m03 because it has triggers". Allowed
 * to, it was refused on the workers, where the partition's owner may run
 * none of the Citus functions that make a table's shards and record them
 * (every Citus function is revoked from everyone there: migration
 * 20261202000300). The service logged the failure and went on; once the
 * partitions made ahead ran out, every audited write would have been
 * refused. Found by running tests/system_test.ts on Citus, which now runs
 * there.
 *
 * Now:
 * - core.create_audit_partition allows Citus the trail's triggers while it
 *   attaches the partition (they run on the shards: migration
 *   20261202000200), and only then. It also pins the Citus settings that
 *   decide whether the partition is made on the workers at all: any role
 *   may set them, and with the DDL's propagation or the metadata's sync
 *   turned off by its caller (app_user, or uber_admin) the partition was
 *   made on the coordinator only, or its shards without their triggers and
 *   not attached (found by the attack on the first version of this
 *   migration).
 * - On each worker, tenancy_owner (the trail's owner, which the
 *   maintenance runs as) may run the Citus functions that Citus calls
 *   there, over the owner's own connection, to make and record a new
 *   partition's shards: core.let_owner_make_shards_on_workers, a step of
 *   core.distribute_on_citus, taken here too on a deployment distributed
 *   already. tenancy_owner has no password, no worker takes one, and no
 *   runtime role may become it: only the nodes' own connections reach these.
 * - core.maintain_audit_partitions refuses to run on a worker, where any
 *   role may have Citus run it (found by the same attack).
 * On one server nothing changes.
 * (Dropping a partition on Citus, core.purge_audit_partitions, needs more of
 * Citus's functions, on the coordinator too: on Citus it is run as the
 * superuser, as the README says.)
 */
set local lock_timeout = '5s';
set local statement_timeout = '60s';

create or replace function core.create_audit_partition(p_month timestamptz) returns text
language plpgsql
set search_path = pg_catalog, pg_temp
set timezone = 'UTC'
set datestyle = 'ISO, MDY'
set default_tablespace = ''
set default_table_access_method = 'heap'
-- On Citus the partition is distributed as it is attached, triggers and
-- all, which Citus does only when told the triggers are safe on shards; and
-- only with its DDL passed on and its metadata synced to the workers. None
-- of the caller's settings go with it to the owner's connections to the
-- workers. (On one server the citus settings are settings no one reads.)
set citus.enable_unsafe_triggers = 'on'
set citus.enable_ddl_propagation = 'on'
set citus.enable_metadata_sync = 'on'
set citus.create_object_propagation = 'immediate'
set citus.propagate_set_commands = 'none'
set row_security = 'on'
as $$
declare
  v_from timestamptz := date_trunc('month', p_month);
  v_name text := format('audit_logs_y%sm%s', to_char(v_from, 'YYYY'), to_char(v_from, 'MM'));
  v_column name;
  v_trigger name;
begin
  if to_regclass(format('core.%I', v_name)) is not null then
    return null;
  end if;
  execute format('create table core.%I (like core.audit_logs including defaults including constraints)', v_name);
  for v_column in
    select attname from pg_attribute where attrelid = 'core.audit_logs'::regclass and attnum > 0 and not attisdropped
  loop
    execute format('alter table core.%I alter column %I set statistics 0', v_name, v_column);
  end loop;
  execute format('alter table core.%I enable row level security, force row level security', v_name);
  execute format('create trigger reject_truncate before truncate on core.%I for each statement execute function core.reject_audit_change()', v_name);
  execute format('alter table core.audit_logs attach partition core.%I for values from (%L) to (%L)',
    v_name, v_from, v_from + interval '1 month');
  -- Cloned row triggers start enabled on origin only.
  for v_trigger in
    select tgname from pg_trigger where tgrelid = format('core.%I', v_name)::regclass and not tgisinternal and tgenabled <> 'A'
  loop
    execute format('alter table core.%I enable always trigger %I', v_name, v_trigger);
  end loop;
  execute format('comment on table core.%I is %L', v_name,
    format('Audit entries whose transaction began in %s (UTC); a partition of core.audit_logs', to_char(v_from, 'YYYY-MM')));
  return v_name;
end
$$;

CREATE OR REPLACE FUNCTION core.maintain_audit_partitions()
 RETURNS TABLE(action text, partition_name text)
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
 SET "TimeZone" TO 'UTC'
 SET "DateStyle" TO 'ISO, MDY'
 SET "IntervalStyle" TO 'postgres'
 SET default_tablespace TO ''
 SET default_table_access_method TO 'heap'
 SET row_security TO 'on'
 SET lock_timeout TO '2s'
AS $function$
#variable_conflict use_column
declare
  v_month timestamptz;
  v_name text;
begin
  -- The coordinator makes them. (Any role may have Citus run this on a
  -- worker, as a call pushed down with a query of a reference table; there
  -- it would end sessions and then fail.)
  if not core.on_coordinator() then
    raise exception 'the trail''s partitions are made on the coordinator' using errcode = 'feature_not_supported';
  end if;
  -- One maintainer at a time: attaching a partition takes this lock anyway,
  -- and the next caller, once it has it, finds nothing left to do. (Not an
  -- advisory lock, which any role could take first and hold.) A service
  -- session in the way (one that called this and never committed) is ended.
  perform core.end_stale_transactions();
  perform core.end_audit_lock_holders(array['ShareUpdateExclusiveLock', 'ShareLock', 'ShareRowExclusiveLock',
    'ExclusiveLock', 'AccessExclusiveLock']);
  lock table core.audit_logs in share update exclusive mode;
  for v_month in
    select generate_series(date_trunc('month', now()), date_trunc('month', now()) + interval '3 months', interval '1 month')
  loop
    v_name := core.create_audit_partition(v_month);
    if v_name is not null then
      return query select 'created', v_name;
    end if;
  end loop;
  -- Dropping is not done here: see core.purge_audit_partitions.
  return query select 'expired', e.name from core.expired_audit_partitions() e;
end
$function$;

create function core.let_owner_make_shards_on_workers() returns void
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
begin
  -- What Citus runs on a worker to make a new partition's shards, attach
  -- them and record them (measured with Citus 13.2: refused one by one
  -- until each was granted). The recording ones by both their names:
  -- citus_internal.add_*, and citus_internal_add_* in pg_catalog, which
  -- Citus 12 calls.
  perform core.on_workers((
    select string_agg(format('grant execute on function %s to tenancy_owner', p.oid::regprocedure), '; ')
    from pg_proc p
    join pg_namespace n on n.oid = p.pronamespace
    join pg_depend d on d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e'
    join pg_extension e on e.oid = d.refobjid and e.extname = 'citus'
    where (n.nspname = 'pg_catalog'
           and p.proname in ('worker_apply_shard_ddl_command', 'worker_apply_inter_shard_ddl_command',
                             'worker_create_truncate_trigger', 'worker_fix_partition_shard_index_names',
                             'citus_run_local_command', 'citus_internal_add_partition_metadata',
                             'citus_internal_add_shard_metadata', 'citus_internal_add_placement_metadata',
                             'citus_internal_add_object_metadata'))
       or (n.nspname = 'citus_internal'
           and p.proname in ('add_partition_metadata', 'add_shard_metadata', 'add_placement_metadata',
                             'add_object_metadata'))));
end
$$;
comment on function core.let_owner_make_shards_on_workers() is
  'On Citus, lets tenancy_owner run on the workers the Citus functions that make a new audit partition''s shards (a step of core.distribute_on_citus)';
revoke execute on function core.let_owner_make_shards_on_workers() from public;
alter function core.let_owner_make_shards_on_workers() owner to tenancy_owner;

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

-- A deployment distributed before this migration is changed now.
do $$
begin
  -- (Nested: on one server there is no pg_dist_partition to plan a query on.)
  if core.on_citus() then
    if exists (select from pg_dist_partition p where p.logicalrelid = 'core.tenants'::regclass) then
      perform core.let_owner_make_shards_on_workers();
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
-- (The grants on the workers stay: a distributed deployment keeps its
-- partitions, and the next ones are made as before.)
drop function core.let_owner_make_shards_on_workers();

create or replace function core.create_audit_partition(p_month timestamptz) returns text
language plpgsql
set search_path = pg_catalog, pg_temp
set timezone = 'UTC'
set datestyle = 'ISO, MDY'
set default_tablespace = ''
set default_table_access_method = 'heap'
as $$
declare
  v_from timestamptz := date_trunc('month', p_month);
  v_name text := format('audit_logs_y%sm%s', to_char(v_from, 'YYYY'), to_char(v_from, 'MM'));
  v_column name;
  v_trigger name;
begin
  if to_regclass(format('core.%I', v_name)) is not null then
    return null;
  end if;
  execute format('create table core.%I (like core.audit_logs including defaults including constraints)', v_name);
  for v_column in
    select attname from pg_attribute where attrelid = 'core.audit_logs'::regclass and attnum > 0 and not attisdropped
  loop
    execute format('alter table core.%I alter column %I set statistics 0', v_name, v_column);
  end loop;
  execute format('alter table core.%I enable row level security, force row level security', v_name);
  execute format('create trigger reject_truncate before truncate on core.%I for each statement execute function core.reject_audit_change()', v_name);
  execute format('alter table core.audit_logs attach partition core.%I for values from (%L) to (%L)',
    v_name, v_from, v_from + interval '1 month');
  -- Cloned row triggers start enabled on origin only.
  for v_trigger in
    select tgname from pg_trigger where tgrelid = format('core.%I', v_name)::regclass and not tgisinternal and tgenabled <> 'A'
  loop
    execute format('alter table core.%I enable always trigger %I', v_name, v_trigger);
  end loop;
  execute format('comment on table core.%I is %L', v_name,
    format('Audit entries whose transaction began in %s (UTC); a partition of core.audit_logs', to_char(v_from, 'YYYY-MM')));
  return v_name;
end
$$;

CREATE OR REPLACE FUNCTION core.maintain_audit_partitions()
 RETURNS TABLE(action text, partition_name text)
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
 SET "TimeZone" TO 'UTC'
 SET "DateStyle" TO 'ISO, MDY'
 SET "IntervalStyle" TO 'postgres'
 SET default_tablespace TO ''
 SET default_table_access_method TO 'heap'
 SET row_security TO 'on'
 SET lock_timeout TO '2s'
AS $function$
#variable_conflict use_column
declare
  v_month timestamptz;
  v_name text;
begin
  -- One maintainer at a time: attaching a partition takes this lock anyway,
  -- and the next caller, once it has it, finds nothing left to do. (Not an
  -- advisory lock, which any role could take first and hold.) A service
  -- session in the way (one that called this and never committed) is ended.
  perform core.end_stale_transactions();
  perform core.end_audit_lock_holders(array['ShareUpdateExclusiveLock', 'ShareLock', 'ShareRowExclusiveLock',
    'ExclusiveLock', 'AccessExclusiveLock']);
  lock table core.audit_logs in share update exclusive mode;
  for v_month in
    select generate_series(date_trunc('month', now()), date_trunc('month', now()) + interval '3 months', interval '1 month')
  loop
    v_name := core.create_audit_partition(v_month);
    if v_name is not null then
      return query select 'created', v_name;
    end if;
  end loop;
  -- Dropping is not done here: see core.purge_audit_partitions.
  return query select 'expired', e.name from core.expired_audit_partitions() e;
end
$function$;
