-- The audit trail's partitions and their retention (migration
-- 20261201001300), from the side of the strongest attacker the chain must
-- expose, a superuser: every partition is made alike and closed to direct
-- access; a chain over several partitions verifies and names the first
-- seq a rewrite breaks, a dropped partition among them; the maintenance
-- makes the months ahead, drops a month only once every row in it is past
-- its tenant's retention, and leaves each tenant's chain verifiable from a
-- checkpoint in the chain itself.
begin;
select plan(42);
-- The chain head moves at commit; these tests never commit, so it moves
-- after each statement instead.
set constraints core.advance_chain_head immediate;

\ir lib/audit_partitions.psql
-- pgTAP is installed by the superuser after `alter default privileges revoke
-- execute on functions from public`: granted for this transaction only.
grant execute on all functions in schema public to app_user, uber_admin;

-- Every partition, from the catalog -----------------------------------------------------

create temp view partitions as
  select c.oid, c.oid::regclass::text as rel, c.relname::text as name, pg_get_expr(c.relpartbound, c.oid) as bound
  from pg_inherits i join pg_class c on c.oid = i.inhrelid
  where i.inhparent = 'core.audit_logs'::regclass;

select is(
  (select format('%s on %s', partstrat, (select attname from pg_attribute
                                          where attrelid = partrelid and attnum = partattrs[0]))
   from pg_partitioned_table where partrelid = 'core.audit_logs'::regclass),
  'r on timestamp',
  'core.audit_logs is partitioned by range of "timestamp"');
select set_eq(
  $$ select name from partitions $$,
  $$ select format('audit_logs_y%s', to_char(m, 'YYYY"m"MM'))
     from generate_series(date_trunc('month', now() at time zone 'UTC'),
                          date_trunc('month', now() at time zone 'UTC') + interval '3 months', interval '1 month') as m $$,
  'after the migrations the partitions are this month''s (UTC) and the next three''s');
select is(
  array(select rel from partitions where not pg_temp.is_audit_partition(oid) order by 1),
  '{}'::text[],
  'every partition is named audit_logs_yYYYYmMM, in core');
set local timezone = 'UTC';
select is(
  array(select rel || ' ' || bound from partitions
        where bound <> format('FOR VALUES FROM (%L) TO (%L)',
                              make_timestamptz(substr(name, 13, 4)::int, substr(name, 18, 2)::int, 1, 0, 0, 0, 'UTC'),
                              make_timestamptz(substr(name, 13, 4)::int, substr(name, 18, 2)::int, 1, 0, 0, 0, 'UTC')
                                + interval '1 month')
        order by 1),
  '{}'::text[],
  'every partition holds exactly the month (UTC) its name says');
reset timezone;
select is(
  array(select rel from partitions p join pg_class c on c.oid = p.oid
        where c.relowner <> 'tenancy_owner'::regrole or not c.relrowsecurity or not c.relforcerowsecurity
        order by 1),
  '{}'::text[],
  'every partition belongs to tenancy_owner and forces row-level security');
select is(
  array(select rel from partitions p where exists (select from pg_policy where polrelid = p.oid) order by 1),
  '{}'::text[],
  'no partition has a policy: read or written directly, it shows and takes no row, not even to its owner');
select is(
  array(select format('%s may %s %s', r.rolname, priv, p.rel)
        from partitions p cross join pg_roles r
        cross join unnest(array['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']) as priv
        where not r.rolsuper and r.rolname <> 'tenancy_owner' and r.rolname !~ '^pg_'
          and has_table_privilege(r.oid, p.oid, priv)
        order by 1),
  '{}'::text[],
  'no role but the owner holds any privilege on a partition: the service''s roles reach the trail through core.audit_logs only');
-- The row triggers a partition has are the parent's, cloned (so the checks
-- of the parent's triggers in pgtap/10 and 15 speak for them); its one
-- trigger of its own refuses TRUNCATE, which the parent's does not cover.
select is(
  array(select format('%s lacks %s', p.rel, t.tgname) from partitions p
        cross join pg_trigger t
        where t.tgrelid = 'core.audit_logs'::regclass and t.tgtype & 1 = 1 and not t.tgisinternal
          and not exists (select from pg_trigger c where c.tgrelid = p.oid and c.tgparentid = t.oid
                          and c.tgfoid = t.tgfoid and c.tgenabled = 'A')
        order by 1),
  '{}'::text[],
  'every partition has every row trigger of the parent, cloned, running the same function, enabled ALWAYS');
select is(
  array(select format('%s has %s', p.rel, t.tgname) from partitions p join pg_trigger t on t.tgrelid = p.oid
        where not t.tgisinternal and t.tgparentid = 0
          and not (t.tgname = 'reject_truncate' and t.tgfoid = 'core.reject_audit_change'::regproc
                   and t.tgtype & 32 = 32 and t.tgtype & 2 = 2 and t.tgenabled = 'A')
        order by 1),
  '{}'::text[],
  'besides the clones a partition has one trigger, BEFORE TRUNCATE, refusing it, enabled ALWAYS');
select is(
  array(select p.rel from partitions p
        where not exists (select from pg_trigger t where t.tgrelid = p.oid and t.tgname = 'reject_truncate')
        order by 1),
  '{}'::text[],
  'every partition has it');

select format('core.audit_logs_y%s', to_char(now() at time zone 'UTC', 'YYYY"m"MM')) as this_month \gset
select throws_ok(format('truncate %s', :'this_month'), '42501', 'audit_logs is append-only: TRUNCATE is not allowed',
  'truncating this month''s partition is refused, even for the superuser');
set local role app_user;
select throws_ok(format('select * from %s', :'this_month'), '42501', null,
  'app_user cannot read a partition directly');
reset role;
set local role uber_admin;
select throws_ok(format('select * from %s', :'this_month'), '42501', null,
  'uber_admin, who bypasses row-level security, cannot read a partition directly either');
reset role;

-- The maintenance function ---------------------------------------------------------

select is(
  (select format('%s %s %s %s', pronargs, prosecdef, proowner::regrole, array_to_string(proconfig, ' ') )
   from pg_proc where oid = 'core.maintain_audit_partitions()'::regprocedure),
  '0 t tenancy_owner search_path=pg_catalog, pg_temp TimeZone=UTC DateStyle=ISO, MDY IntervalStyle=postgres default_tablespace= default_table_access_method=heap row_security=on lock_timeout=2s',
  'core.maintain_audit_partitions takes no argument, runs as tenancy_owner, and pins every setting that changes what its DDL does');
select is(
  array(select r from unnest(array['app_user', 'uber_admin', 'tenancy_writer', 'tenancy_auth', 'tenancy_reaper', 'tenancy_auditor']) as r
        where has_function_privilege(r, 'core.purge_audit_partitions()', 'EXECUTE')),
  '{}'::text[],
  'only the owner''s members may drop partitions: no role the service or an operator logs in as could hold the trail locked after one');
select is(
  array(select format('%s may call %s', r, f) from unnest(array['app_user', 'uber_admin', 'tenancy_writer', 'tenancy_auth',
                                                               'tenancy_reaper', 'tenancy_auditor']) as r
        cross join unnest(array['core.create_audit_partition(timestamptz)'::regprocedure,
                                'core.expired_audit_partitions()',
                                'core.record_audit_purge(uuid,bigint,bytea,text,integer)',
                                'core.audit_partition_tenants(timestamptz,timestamptz)',
                                'core.end_audit_lock_holders(text[])']) as f
        where has_function_privilege(r, f, 'EXECUTE')
          and r::regrole <> (select proowner from pg_proc where oid = f)
        order by 1),
  '{}'::text[],
  'the functions it calls (making a partition, reading which tenants one holds, writing a checkpoint, ending sessions in its way) are its own: no other role may call them');

create temp table relations_before as
  select c.oid, c.oid::regclass::text as rel from pg_class c where c.relnamespace = 'core'::regnamespace;
select format('core.audit_logs_y%s', to_char(date_trunc('month', now() at time zone 'UTC') + interval '3 months', 'YYYY"m"MM'))
  as furthest \gset
alter table core.audit_logs detach partition :furthest;
drop table :furthest;
set local role app_user;
-- Settings app_user may give its session (or its role's defaults) that
-- would put the partition elsewhere or make the DDL fail: pinned.
set local default_tablespace = 'pg_global';
set local row_security = off;
set local datestyle = 'SQL, DMY';
select results_eq('select action, partition_name from core.maintain_audit_partitions()',
  format($$ values ('created', %L) $$, split_part(:'furthest', '.', 2)),
  'called by app_user, whatever its session settings, it makes the furthest month again');
reset default_tablespace;
reset row_security;
reset datestyle;
select is_empty('select * from core.maintain_audit_partitions()', 'called again, it does nothing');
reset role;
select is(
  array(select c.oid::regclass::text from pg_class c
        where c.relnamespace = 'core'::regnamespace
          and c.oid not in (select oid from relations_before)
          and not (c.oid = :'furthest'::regclass
                   or exists (select from pg_index i where i.indexrelid = c.oid and i.indrelid = :'furthest'::regclass))
        order by 1),
  '{}'::text[],
  'it made nothing in core but that partition and its indexes');
select is(
  array(select rel from relations_before b where not exists (select from pg_class c where c.oid = b.oid)
          and rel not like :'furthest' || '%' order by 1),
  '{}'::text[],
  '...and dropped nothing but the one removed before');

-- A chain over four months, written as the trigger would -------------------------------

-- Tenant A's 2,000 rows lie four years back, 500 a month; tenant B's ten
-- are in the first of those months. Written with the chaining off, seq and
-- hashes computed as the trigger computes them, and the head moved along.
select tenant_id as tenant_a from platform.create_tenant('Years of trail A', null, 'pro', 'Fintech Template') \gset
select tenant_id as tenant_b from platform.create_tenant('Years of trail B', null, 'pro', 'Fintech Template') \gset
select date_trunc('month', now() at time zone 'UTC') at time zone 'UTC' - interval '48 months' as m1 \gset
select core.create_audit_partition(:'m1'::timestamptz + m * interval '1 month') from generate_series(0, 3) as m;
alter table core.audit_logs disable trigger chain_audit_row;
alter table core.audit_logs disable trigger advance_chain_head;
alter table core.audit_logs disable trigger reject_update_delete;
delete from core.audit_logs where tenant_id in (:'tenant_a', :'tenant_b');
update core.audit_chain_heads set seq = 0, hash = '\x0000000000000000000000000000000000000000000000000000000000000000'
  where tenant_id in (:'tenant_a', :'tenant_b');
alter table core.audit_logs enable always trigger reject_update_delete;

create function pg_temp.append_row(p_tenant_id uuid, p_at timestamptz) returns void
language plpgsql
as $$
declare
  v_head record;
  v_row core.audit_logs;
begin
  select seq, hash into v_head from core.audit_chain_heads where tenant_id = p_tenant_id;
  v_row.log_id := gen_random_uuid();
  v_row.tenant_id := p_tenant_id;
  v_row.action := 'update';
  v_row.resource_type := 'documents';
  v_row.resource_id := gen_random_uuid();
  v_row.details := jsonb_build_object('changed', jsonb_build_array('title'), 'db_role', 'app_user');
  v_row."timestamp" := p_at;
  v_row.recorded_at := p_at;
  v_row.seq := v_head.seq + 1;
  v_row.details_salt := extensions.gen_random_bytes(16);
  v_row.details_sha256 := sha256(v_row.details_salt || convert_to(v_row.details::text, 'UTF8'));
  v_row.prev_hash := v_head.hash;
  v_row.chain_hash := sha256(v_row.prev_hash || core.audit_record(v_row));
  insert into core.audit_logs select v_row.*;
  update core.audit_chain_heads set seq = v_row.seq, hash = v_row.chain_hash where tenant_id = p_tenant_id;
end
$$;
select pg_temp.append_row(:'tenant_a', :'m1'::timestamptz + (g / 500) * interval '1 month' + (g % 500) * interval '1 hour')
from generate_series(0, 1999) as g order by g;
select pg_temp.append_row(:'tenant_b', :'m1'::timestamptz + g * interval '1 minute') from generate_series(1, 10) as g order by g;
alter table core.audit_logs enable always trigger chain_audit_row;
alter table core.audit_logs enable always trigger advance_chain_head;

select is((select count(distinct tableoid)::int from core.audit_logs where tenant_id = :'tenant_a'), 4,
  'tenant A''s 2,000 rows lie in four partitions');
select results_eq(format('select verified, head_seq, rows_checked from core.verify_audit_chain(%L)', :'tenant_a'),
  $$ values (true, 2000::bigint, 2000::bigint) $$,
  'the untouched chain over four partitions verifies, all 2,000 rows');
select head_hash as anchor_a from core.verify_audit_chain(:'tenant_a') \gset
select throws_ok(
  format($$ insert into core.audit_logs (tenant_id, action, resource_type, resource_id, "timestamp")
            values (%L, 'update', 'documents', gen_random_uuid(),
                    case when now() - interval '1 second' >= date_trunc('month', now() at time zone 'UTC') at time zone 'UTC'
                         then now() - interval '1 second' else now() + interval '1 second' end) $$, :'tenant_a'),
  '23514', 'an audit row''s timestamp is the start of its transaction',
  'with the chaining on, a row stamped a second off its transaction''s start is refused, even for the superuser');

-- A superuser's rewrites, each undone before the next ------------------------------------

create function pg_temp.broken(p_tenant_id uuid) returns table (broken_at_seq bigint, reason text)
language sql
as $$ select broken_at_seq, reason from core.verify_audit_chain(p_tenant_id) $$;
-- A row hashed right after an existing one, as the trigger would have
-- written it, but beside the row that is there.
create function pg_temp.forge_after(p_tenant_id uuid, p_seq bigint) returns void
language plpgsql
as $$
declare
  v_row core.audit_logs;
begin
  select * into v_row from core.audit_logs where tenant_id = p_tenant_id and seq = p_seq;
  v_row.log_id := gen_random_uuid();
  v_row.action := 'forged';
  v_row.seq := p_seq + 1;
  v_row.prev_hash := v_row.chain_hash;
  v_row.chain_hash := sha256(v_row.prev_hash || core.audit_record(v_row));
  insert into core.audit_logs select v_row.*;
end
$$;
alter table core.audit_logs disable trigger reject_update_delete;
savepoint tamper;
update core.audit_logs set details = details || '{"db_role": "someone else"}' where tenant_id = :'tenant_a' and seq = 700;
select results_eq(format('select * from pg_temp.broken(%L)', :'tenant_a'), $$ values (700::bigint, 'row changed') $$,
  'details changed in the second month: row changed, at its seq');
rollback to savepoint tamper;
delete from core.audit_logs where tenant_id = :'tenant_a' and seq = 1200;
select results_eq(format('select * from pg_temp.broken(%L)', :'tenant_a'), $$ values (1200::bigint, 'row missing') $$,
  'a row deleted from the third month: row missing, at its seq');
rollback to savepoint tamper;
alter table core.audit_logs disable trigger chain_audit_row;
select pg_temp.forge_after(:'tenant_a', 1500);
select results_eq(format('select * from pg_temp.broken(%L)', :'tenant_a'), $$ values (1501::bigint, 'row inserted') $$,
  'a forged row between 1,500 and 1,501: row inserted, at 1,501');
rollback to savepoint tamper;
update core.audit_logs set seq = case seq when 300 then 301 else 300 end where tenant_id = :'tenant_a' and seq in (300, 301);
select results_eq(format('select * from pg_temp.broken(%L)', :'tenant_a'), $$ values (300::bigint, 'order changed') $$,
  'two rows'' seqs swapped: order changed, at the first');
rollback to savepoint tamper;
select format('core.audit_logs_y%s', to_char(:'m1'::timestamptz at time zone 'UTC' + interval '2 months', 'YYYY"m"MM'))
  as third_month \gset
alter table :third_month disable trigger reject_truncate;
truncate :third_month;
select results_eq(format('select * from pg_temp.broken(%L)', :'tenant_a'), $$ values (1001::bigint, 'row missing') $$,
  'the third month''s partition truncated: row missing, at its first seq');
rollback to savepoint tamper;
alter table core.audit_logs enable always trigger reject_update_delete;
select is((select verified from core.verify_audit_chain(:'tenant_a')), true, 'undone, the chain verifies again');

-- Retention ----------------------------------------------------------------------------

-- A keeps its trail for the whole number of days from the end of the
-- second month to now: the first two months are past it, the third is not.
select format('core.audit_logs_y%s', to_char(:'m1'::timestamptz at time zone 'UTC', 'YYYY"m"MM')) as first_month,
       format('core.audit_logs_y%s', to_char(:'m1'::timestamptz at time zone 'UTC' + interval '1 month', 'YYYY"m"MM')) as second_month,
       floor(extract(epoch from now() - (:'m1'::timestamptz + interval '2 months')) / 86400)::int as days_a \gset
select chain_hash as hash_500 from core.audit_logs where tenant_id = :'tenant_a' and seq = 500 \gset
select chain_hash as hash_1000 from core.audit_logs where tenant_id = :'tenant_a' and seq = 1000 \gset
select chain_hash as hash_1500 from core.audit_logs where tenant_id = :'tenant_a' and seq = 1500 \gset
update core.tenant_configs set settings = settings || jsonb_build_object('audit_retention_days', :days_a)
  where tenant_id = :'tenant_a';
update core.tenant_configs set settings = settings || '{"audit_retention_days": 36500}' where tenant_id = :'tenant_b';
select is_empty($$ select * from core.purge_audit_partitions() $$,
  'while B, with a row in the first month, keeps its trail for 100 years, nothing is dropped');
update core.tenant_configs set settings = settings - 'audit_retention_days' where tenant_id = :'tenant_b';
select is_empty($$ select * from core.purge_audit_partitions() $$,
  'nor while B has no retention at all (kept for ever)');
-- The settings check (migration 20261201001400) refuses such a value from
-- anyone; a superuser who drops it finds the maintenance reads it as no
-- retention at all.
alter table core.tenant_configs drop constraint tenant_configs_known_settings_check;
update core.tenant_configs set settings = settings || '{"audit_retention_days": "30"}' where tenant_id = :'tenant_b';
select is_empty($$ select * from core.purge_audit_partitions() $$,
  'nor while B''s retention is no number of days (a string)');
select is((select count(*)::int from core.audit_logs where tenant_id = :'tenant_a' and action = 'update' and resource_type = 'documents'), 2000,
  '...and A''s rows past its own retention are all kept meanwhile');
update core.tenant_configs set settings = settings || jsonb_build_object('audit_retention_days', :days_a)
  where tenant_id = :'tenant_b';
set local role app_user;
select results_eq($$ select action, partition_name from core.maintain_audit_partitions() $$,
  format($$ values ('expired', %L), ('expired', %L) $$, split_part(:'first_month', '.', 2), split_part(:'second_month', '.', 2)),
  'with both past their retention, the service''s maintenance names the first two months as expired, and drops nothing');
reset role;
select results_eq($$ select action, partition_name from core.purge_audit_partitions() $$,
  format($$ values ('dropped', %L), ('dropped', %L) $$, split_part(:'first_month', '.', 2), split_part(:'second_month', '.', 2)),
  'the owner''s purge drops them, oldest first, and the third (not yet past) stays');
select ok(to_regclass(:'third_month') is not null and to_regclass(:'first_month') is null, 'the third month''s partition is there, the first''s is gone');
select results_eq(
  format($$ select details ->> 'through_seq', details ->> 'through_hash', details ->> 'partition'
            from core.audit_logs where tenant_id = %L and action = 'audit.purged' order by seq $$, :'tenant_a'),
  format($$ values ('500', %L, %L), ('1000', %L, %L) $$,
         encode(:'hash_500'::bytea, 'hex'), split_part(:'first_month', '.', 2),
         encode(:'hash_1000'::bytea, 'hex'), split_part(:'second_month', '.', 2)),
  'A''s chain records each purge: the last seq and hash that went, and the partition');
select results_eq(format('select verified, from_seq, head_seq from core.verify_audit_chain(%L)', :'tenant_a'),
  $$ values (true, 1001::bigint, 2003::bigint) $$,
  'A''s chain verifies from the checkpoint (seq 1,001) to its head, its retention''s change and the two purge rows included');
select results_eq(format('select verified, from_seq, head_seq from core.verify_audit_chain(%L)', :'tenant_b'),
  $$ values (true, 11::bigint, 15::bigint) $$,
  'so does B''s, whose ten rows all went: its four retention changes and its purge row are left');
select results_eq(
  format($$ select verified, broken_at_seq, reason from core.verify_audit_chain(%L, 1, 100000, 2000, %L) $$,
         :'tenant_a', decode(:'anchor_a', 'hex')),
  $$ values (true, null::bigint, null::text) $$,
  'an anchor stored before the purge still verifies');
select throws_ok(
  format($$ select * from core.verify_audit_chain(%L, 1, 100000, 900, sha256('')) $$, :'tenant_a'), 'PT422', null,
  'an anchor in the purged part is refused: nothing is left to compare it with');

-- A checkpoint forged by a superuser: the third month truncated, and a purge
-- row claiming it, appended and hashed right, with a retention it is not past.
alter table :third_month disable trigger reject_truncate;
truncate :third_month;
alter table :third_month enable always trigger reject_truncate;
select core.record_audit_purge(:'tenant_a', 1500, :'hash_1500'::bytea,
  split_part(:'third_month', '.', 2), :days_a) as forged_seq \gset
select results_eq(format('select verified, broken_at_seq, reason from core.verify_audit_chain(%L)', :'tenant_a'),
  format($$ values (false, %s::bigint, 'row inserted') $$, :forged_seq),
  'a purge row for a month not yet past the retention it names was not written by the maintenance: row inserted');

select * from finish();
rollback;
