-- Isolation on Citus (scripts/test --citus): every table with a tenant_id,
-- found in the catalog, checked from the coordinator and on the workers'
-- shards directly.
--
-- Why a suite of its own: Citus reaches a node over one connection per
-- role, and once one role has written to a tenant's shards in a
-- transaction no other role may touch them in it (migration
-- 20261203000200). The single-server suites switch roles inside one
-- transaction and roll back; here every write is committed in a
-- transaction of one role, as the service's requests are, and the
-- transactions that mix roles only read. (The test database is made afresh
-- for each run.)
\set ON_ERROR_STOP 1
\set QUIET 1
-- Citus warns of every function made in pg_temp that it makes only here.
set client_min_messages = error;

-- pgTAP's functions, for the roles the checks switch to; taken back at the end.
grant execute on all functions in schema public to app_user, uber_admin;
\ir ../lib/context.psql

-- The tables: every table of core with a tenant_id that Citus holds,
-- distributed or whole on every node, partitions too (a partition read on
-- its own is checked on its own policies).
create temporary table tenant_tables as
  select c.oid::regclass as rel, p.partmethod,
         (select string_agg(quote_ident(a.attname), ', ' order by k.ord)
          from pg_index i cross join lateral unnest(i.indkey) with ordinality k (attnum, ord)
          join pg_attribute a on a.attrelid = c.oid and a.attnum = k.attnum
          where i.indrelid = c.oid and i.indisprimary) as key_columns,
         has_any_column_privilege('app_user', c.oid, 'select') as readable, c.relispartition as is_partition
  from pg_class c join pg_dist_partition p on p.logicalrelid = c.oid
  where c.relnamespace = 'core'::regnamespace
    and exists (select from pg_attribute a where a.attrelid = c.oid and a.attname = 'tenant_id' and not a.attisdropped);
grant select on pg_temp.tenant_tables to app_user;

select plan((select count(*)::integer * 13 from pg_temp.tenant_tables) + 23);

select cmp_ok((select count(*) from pg_temp.tenant_tables where partmethod = 'h'), '>=', 12::bigint,
  'the catalog finds the distributed tenant tables');
select is((select count(*) from pg_temp.tenant_tables where key_columns is null), 0::bigint,
  'every tenant table has a primary key to find a tenant''s rows by');

-- Fixtures, each transaction one role's ---------------------------------------------

-- An operator, made as a DBA makes one. (The credential and the domains are
-- new for each run, so that the suite runs again on the same database.)
select 'pgtap-on-citus-' || gen_random_uuid() as operator_token, left(md5(random()::text), 8) as run \gset
begin;
insert into core.platform_operators (name, token_hash, token_prefix)
values ('pgTAP on Citus ' || :'run', pg_temp.hash_of(:'operator_token'), 'tnop_pgtap')
returning operator_id, token_hash as operator_hash \gset
commit;

-- Two tenants that require two people (the Fintech Template), as the operator.
begin;
set local role uber_admin;
select platform.begin_request(:'operator_hash', gen_random_uuid(), null, false) \gset ignored_
select tenant_id as tenant_a from platform.create_tenant('Citus A', 'a-' || :'run' || '.citus.example', 'pro', 'Fintech Template') \gset
select tenant_id as tenant_b from platform.create_tenant('Citus B', 'b-' || :'run' || '.citus.example', 'pro', 'Fintech Template') \gset
commit;

-- Their first users, as a DBA.
begin;
insert into core.users (tenant_id, email, role) values (:'tenant_a', 'alice@a.citus.example', 'tenant_admin')
returning user_id as user_a \gset
insert into core.users (tenant_id, email, role) values (:'tenant_b', 'bob@b.citus.example', 'tenant_admin')
returning user_id as user_b \gset
commit;

-- A key of each holding every permission, bound to that user.
begin;
set local role uber_admin;
select platform.begin_request(:'operator_hash', gen_random_uuid(), null, false) \gset ignored_
select key as secret_a, key_id as key_a from platform.create_api_key(:'tenant_a', 'A root', '{*}', :'user_a') \gset
select key as secret_b from platform.create_api_key(:'tenant_b', 'B root', '{*}', :'user_b') \gset
select key as secret_a2 from platform.create_api_key(:'tenant_a', 'A reader', '{documents:read}', :'user_a') \gset
commit;
select pg_temp.hash_of(:'secret_a') as hash_a, pg_temp.hash_of(:'secret_b') as hash_b,
       pg_temp.hash_of(:'secret_a2') as hash_a2 \gset

-- Two contexts in one transaction, one left on the workers (SET LOCAL is
-- passed on to them) and the other on the coordinator (set_config is not):
-- a definer checks the coordinator's, and its write on the worker is filed
-- under that one too (migration 20261203000300). For two keys of a tenant,
-- and for two operators.
begin;
set local role app_user;
select pg_temp.begin_as(:'hash_a2') \gset ignored_
select current_setting('app.context') as reader_context \gset
select pg_temp.begin_as(:'hash_a') \gset ignored_
select current_setting('app.context') as root_context \gset
set local app.context = :'reader_context';
select set_config('app.context', :'root_context', true) \gset ignored_
select key_id as swapped_key from api.create_api_key('Swapped', '{documents:read}') \gset
commit;
select coalesce(array_agg(a.api_key_id order by a.seq)::text, 'none') as swapped_key_actors
from core.audit_logs a where a.tenant_id = :'tenant_a' and a.resource_id = :'swapped_key' \gset
select is(:'swapped_key_actors', format('{%s}', :'key_a'),
  'with the reader key''s context on the workers and the root key''s on the coordinator, the key the root key issued is filed under the root key');

begin;
insert into core.platform_operators (name, token_hash, token_prefix)
values ('pgTAP on Citus second ' || :'run', pg_temp.hash_of(:'operator_token' || '-2'), 'tnop_pgtap')
returning operator_id as second_operator_id, token_hash as second_operator_hash \gset
commit;
begin;
set local session authorization uber_admin;
select platform.begin_request(:'second_operator_hash', gen_random_uuid(), null, false) \gset ignored_
select current_setting('app.context') as second_operator_context \gset
select platform.begin_request(:'operator_hash', gen_random_uuid(), null, false) \gset ignored_
select current_setting('app.context') as first_operator_context \gset
set local app.context = :'second_operator_context';
select set_config('app.context', :'first_operator_context', true) \gset ignored_
select tenant_id as swapped_tenant from platform.create_tenant('Swapped tenant') \gset
commit;
select coalesce(array_agg(distinct a.operator_id)::text, 'none') as swapped_tenant_actors
from core.audit_logs a where a.tenant_id = :'swapped_tenant' \gset
select is(:'swapped_tenant_actors', format('{%s}', :'operator_id'),
  '...and with another operator''s context on the workers, the tenant an operator made is filed under that operator');

begin;
set local session authorization uber_admin;
select platform.begin_request(:'second_operator_hash', gen_random_uuid(), null, false) \gset ignored_
select current_setting('app.context') as second_operator_context \gset
select platform.begin_request(:'operator_hash', gen_random_uuid(), null, false) \gset ignored_
select current_setting('app.context') as first_operator_context \gset
set local app.context = :'second_operator_context';
select set_config('app.context', :'first_operator_context', true) \gset ignored_
select tenant_id from platform.deactivate_tenant(:'swapped_tenant') \gset ignored_
commit;
select coalesce(array_agg(a.operator_id order by a.seq)::text, 'none') as deactivation_actors
from core.audit_logs a where a.tenant_id = :'swapped_tenant' and a.resource_type = 'tenants' and a.action = 'update' \gset
select is(:'deactivation_actors', format('{%s}', :'operator_id'),
  '...and so is its deactivation through platform.deactivate_tenant, an invoker that checks its operator on the coordinator');

-- With garbage on the workers, a key that may issue keys still waits for a
-- second person.
begin;
set local role app_user;
select pg_temp.begin_as(:'hash_a') \gset ignored_
select current_setting('app.context') as key_context \gset
set local app.context = 'garbage';
select set_config('app.context', :'key_context', true) \gset ignored_
select throws_ok($$ select * from api.create_api_key('Escalation', '{keys:write}') $$, 'PT428', null,
  'with garbage for a context on the workers, a key that may issue keys still waits for a second person');
rollback;

-- An operator that revoked itself acts no more in that transaction, on the
-- workers either (where the platform role's connection does not see the
-- revocation, made over the registry's). As the service's platform pool
-- does, with session_user uber_admin.
select plan_id as free_plan from core.plans where tier = 'free' \gset
begin;
set local session authorization uber_admin;
select platform.begin_request(:'operator_hash', gen_random_uuid(), null, false) \gset ignored_
select operator_id from platform.revoke_operator(:'operator_id') \gset ignored_
select throws_ok(format('select * from platform.deactivate_tenant(%L)', :'tenant_b'), 'PT401', null,
  'an operator revoked earlier in the transaction deactivates no tenant');
rollback;
begin;
set local session authorization uber_admin;
select platform.begin_request(:'operator_hash', gen_random_uuid(), null, false) \gset ignored_
select operator_id from platform.revoke_operator(:'operator_id') \gset ignored_
select throws_ok(format('select * from platform.revoke_api_key(%L, %L)', :'tenant_a', :'key_a'), 'PT401', null,
  '...revokes no key');
rollback;
begin;
set local session authorization uber_admin;
select platform.begin_request(:'operator_hash', gen_random_uuid(), null, false) \gset ignored_
select operator_id from platform.revoke_operator(:'operator_id') \gset ignored_
select throws_ok(format('select * from platform.update_plan(%L, p_max_users => 7)', :'free_plan'), 'PT401', null,
  '...and changes no plan');
rollback;
begin;
update core.platform_operators set revoked_at = now(), revoked_by = operator_id where operator_id = :'second_operator_id';
commit;

-- The operator is revoked again: while one is active, the service would not
-- bootstrap its own (the HTTP suites that follow use the service's).
begin;
update core.platform_operators set revoked_at = now(), revoked_by = operator_id where operator_id = :'operator_id';
commit;

-- The rest of each tenant's rows through the api, as app_user, one request
-- (one definer's owner) per transaction.
begin;
set local role app_user;
select pg_temp.begin_as(:'hash_a') \gset ignored_
select user_id as spare_a from api.create_user('spare@a.citus.example') \gset
select document_id as doc_a from api.create_document(:'user_a', 'A ledger', repeat('a', 64)) \gset
commit;
begin;
set local role app_user;
select pg_temp.begin_as(:'hash_a') \gset ignored_
select approval from api.request_approval('delete_user', jsonb_build_object('user_id', :'spare_a')) \gset ignored_
commit;
begin;
set local role app_user;
select pg_temp.begin_as(:'hash_a') \gset ignored_
select granted from api.lease_requests() \gset ignored_
commit;
begin;
set local role app_user;
select pg_temp.begin_as(:'hash_a') \gset ignored_
select claimed from api.claim_idempotency_key('citus-a', repeat('a', 64)) \gset ignored_
commit;
begin;
set local role app_user;
select pg_temp.begin_as(:'hash_b') \gset ignored_
select user_id as spare_b from api.create_user('spare@b.citus.example') \gset
select document_id as doc_b from api.create_document(:'user_b', 'B ledger', repeat('b', 64)) \gset
commit;
begin;
set local role app_user;
select pg_temp.begin_as(:'hash_b') \gset ignored_
select approval from api.request_approval('delete_user', jsonb_build_object('user_id', :'spare_b')) \gset ignored_
commit;
begin;
set local role app_user;
select pg_temp.begin_as(:'hash_b') \gset ignored_
select granted from api.lease_requests() \gset ignored_
commit;
begin;
set local role app_user;
select pg_temp.begin_as(:'hash_b') \gset ignored_
select claimed from api.claim_idempotency_key('citus-b', repeat('b', 64)) \gset ignored_
commit;

-- The checks -----------------------------------------------------------------------

create function pg_temp.rows_of(p_rel regclass, p_key_columns text, p_tenant_id uuid)
returns table (tenant_id uuid, row_count bigint, keys jsonb, one_row jsonb)
language plpgsql
as $$
begin
  return query execute format(
    'select %L::uuid, count(*), coalesce(jsonb_agg(jsonb_build_array(%s)), ''[]''), (array_agg(to_jsonb(r)))[1]
     from %s r where r.tenant_id = %L', p_tenant_id, p_key_columns, p_rel, p_tenant_id);
end
$$;

-- Each table's rows of one tenant, as the superuser sees them: their
-- primary keys as JSON, and a whole row.
create temporary table tenant_rows as
  select t.rel, x.tenant_id, x.row_count, x.keys, x.one_row
  from pg_temp.tenant_tables t
  cross join lateral (values (:'tenant_a'::uuid), (:'tenant_b'::uuid)) v (tenant_id)
  cross join lateral pg_temp.rows_of(t.rel, t.key_columns, v.tenant_id) x;
grant select on pg_temp.tenant_rows to app_user;


-- How many of a table's rows app_user sees with the context it has, as
-- text: the count, or the SQLSTATE it is refused with. p_keys: only the
-- rows with these primary keys; p_tenant_id: only that tenant's.
create function pg_temp.seen_by_app_user(p_rel regclass, p_key_columns text, p_keys jsonb default null,
                                         p_tenant_id uuid default null) returns text
language plpgsql
as $$
declare
  v_count bigint;
begin
  perform set_config('role', 'app_user', true);
  execute format('select count(*) from (select %s from %s r where %s and %s) s', p_key_columns, p_rel,
    case when p_tenant_id is null then 'true' else format('r.tenant_id = %L', p_tenant_id) end,
    case when p_keys is null then 'true'
         else format('jsonb_build_array(%s) in (select e from jsonb_array_elements(%L::jsonb) e)', p_key_columns, p_keys) end)
  into v_count;
  perform set_config('role', 'none', true);
  return v_count::text;
exception when others then
  perform set_config('role', 'none', true);
  return 'refused ' || sqlstate;
end
$$;

-- What app_user is told when it writes a tenant's row: the SQLSTATE, or
-- 'written' when the write went through.
create function pg_temp.app_user_writes(p_sql text) returns text
language plpgsql
as $$
begin
  perform set_config('role', 'app_user', true);
  execute p_sql;
  perform set_config('role', 'none', true);
  return 'written';
exception when others then
  perform set_config('role', 'none', true);
  return sqlstate;
end
$$;

-- An INSERT of a row given as JSON, each value a literal of its column's
-- type (Citus plans no INSERT ... SELECT from a function by a shard).
create function pg_temp.insert_of(p_rel regclass, p_row jsonb) returns text
language plpgsql stable
as $$
declare
  v_columns text[];
  v_values text[];
  v_column record;
  v_value text;
begin
  for v_column in
    select a.attname, format_type(a.atttypid, a.atttypmod) as type from pg_attribute a
    where a.attrelid = p_rel and a.attnum > 0 and not a.attisdropped and a.attgenerated = '' and p_row ? a.attname
    order by a.attnum
  loop
    execute format('select (jsonb_populate_record(null::%s, %L)).%I::text', p_rel, p_row, v_column.attname) into v_value;
    v_columns := v_columns || quote_ident(v_column.attname);
    v_values := v_values || format('%s::%s', quote_nullable(v_value), v_column.type);
  end loop;
  return format('insert into %s (%s) values (%s)', p_rel, array_to_string(v_columns, ', '), array_to_string(v_values, ', '));
end
$$;

-- The number of tasks Citus plans for a statement, as app_user when it may
-- read the table (its policies then in the plan), else as the superuser.
create function pg_temp.tasks_of(p_sql text, p_as_app_user boolean) returns integer
language plpgsql
as $$
declare
  v_plan json;
begin
  if p_as_app_user then
    perform set_config('role', 'app_user', true);
  end if;
  execute 'explain (format json) ' || p_sql into v_plan;
  perform set_config('role', 'none', true);
  return (select (j.value ->> 'Task Count')::integer
          from json_array_elements(v_plan) p0
          cross join lateral (select p0 -> 'Plan' -> 'Distributed Query' -> 'Job' as value) j);
end
$$;

-- Under A's context: its own rows exactly, none of B's, one task.
begin;
set local role app_user;
select pg_temp.begin_as(:'hash_a') \gset ignored_
-- (Not RESET ROLE: Citus would pass it on to the workers with the context.)
select set_config('role', 'none', true) \gset ignored_
select current_setting('app.context') as context_a \gset
-- (The trail's partitions of other months hold none: the rows are this month's.)
select ok((select bool_and((r.row_count > 0) = (not t.is_partition or t.rel = to_regclass(
                                                   format('core.audit_logs_y%sm%s', to_char(now(), 'YYYY'), to_char(now(), 'MM')))))
           from pg_temp.tenant_rows r where r.rel = t.rel),
          format('%s holds rows of both tenants%s', t.rel,
                 case when t.is_partition then ' if it is this month''s partition of the trail, else of neither' else '' end))
from pg_temp.tenant_tables t order by t.rel::text;
select is(pg_temp.seen_by_app_user(t.rel, t.key_columns),
          case when t.readable then (select r.row_count::text from pg_temp.tenant_rows r where r.rel = t.rel and r.tenant_id = :'tenant_a')
               else 'refused 42501' end,
          format('under A''s context app_user reads exactly A''s rows of %s%s', t.rel,
                 case when t.readable then '' else ' (none: it may not read the table)' end))
from pg_temp.tenant_tables t order by t.rel::text;
select is(pg_temp.seen_by_app_user(t.rel, t.key_columns,
                                   (select r.keys from pg_temp.tenant_rows r where r.rel = t.rel and r.tenant_id = :'tenant_b')),
          case when t.readable then '0' else 'refused 42501' end,
          format('under A''s context app_user reads none of B''s rows of %s by their ids', t.rel))
from pg_temp.tenant_tables t order by t.rel::text;
select is(pg_temp.seen_by_app_user(t.rel, t.key_columns, null, :'tenant_b'),
          case when t.readable then '0' else 'refused 42501' end,
          format('under A''s context app_user reads none of B''s rows of %s by B''s tenant_id', t.rel))
from pg_temp.tenant_tables t order by t.rel::text;
select is(pg_temp.tasks_of(format('select %s from %s r where r.tenant_id = %L', t.key_columns, t.rel, :'tenant_a'), t.readable),
          1, format('a read of A''s rows of %s is planned as one task', t.rel))
from pg_temp.tenant_tables t order by t.rel::text;
commit;

-- No context, and an empty one passed on to the workers: no rows.
begin;
select is(pg_temp.seen_by_app_user(t.rel, t.key_columns), case when t.readable then '0' else 'refused 42501' end,
          format('without a context app_user reads no row of %s', t.rel))
from pg_temp.tenant_tables t order by t.rel::text;
commit;
begin;
set local citus.propagate_set_commands = 'local';
set local app.context = '';
select is(pg_temp.seen_by_app_user(t.rel, t.key_columns), case when t.readable then '0' else 'refused 42501' end,
          format('with an empty context on every node app_user reads no row of %s', t.rel))
from pg_temp.tenant_tables t order by t.rel::text;
commit;

-- Under A's context, app_user writes none of B's rows: a copy of one is
-- refused, and an update or delete of them is refused or changes none.
begin;
set local role app_user;
select pg_temp.begin_as(:'hash_a') \gset ignored_
-- (Not RESET ROLE: Citus would pass it on to the workers with the context.)
select set_config('role', 'none', true) \gset ignored_
select is(pg_temp.app_user_writes(pg_temp.insert_of(t.rel,
            -- (a partition of another month, empty: B's row of the whole trail)
            coalesce((select r.one_row from pg_temp.tenant_rows r where r.rel = t.rel and r.tenant_id = :'tenant_b'),
                     (select r.one_row from pg_temp.tenant_rows r join pg_inherits i on i.inhparent = r.rel
                      where i.inhrelid = t.rel and r.tenant_id = :'tenant_b')))),
          '42501', format('under A''s context app_user may not insert a row of B into %s', t.rel))
from pg_temp.tenant_tables t order by t.rel::text;
select ok(pg_temp.app_user_writes(format(
            'with changed as (update %1$s r set tenant_id = r.tenant_id where r.tenant_id = %2$L returning 1), '
            || 'removed as (delete from %1$s r where r.tenant_id = %2$L returning 1) '
            || 'select 1 / (select count(*) from changed union all select count(*) from removed order by 1 desc limit 1)::integer',
            t.rel, :'tenant_b')) in ('42501', '22012'),
          format('under A''s context app_user changes and deletes none of B''s rows of %s', t.rel))
from pg_temp.tenant_tables t order by t.rel::text;
commit;

-- Without a context, app_user writes none of A's rows either.
begin;
select is(pg_temp.app_user_writes(pg_temp.insert_of(t.rel,
            -- (a partition of another month, empty: A's row of the whole trail)
            coalesce((select r.one_row from pg_temp.tenant_rows r where r.rel = t.rel and r.tenant_id = :'tenant_a'),
                     (select r.one_row from pg_temp.tenant_rows r join pg_inherits i on i.inhparent = r.rel
                      where i.inhrelid = t.rel and r.tenant_id = :'tenant_a')))),
          '42501', format('without a context app_user may not insert a row of A into %s', t.rel))
from pg_temp.tenant_tables t order by t.rel::text;
commit;

-- On the workers directly: A's context, copied from its transaction into a
-- session of the superuser's own on each worker, lets app_user read no row
-- of any shard (a context is bound to its distributed transaction); the
-- superuser's count there shows that the command reached the rows.
create function pg_temp.on_shards_as_app_user(p_rel regclass, p_context text) returns text
language sql
as $$
  select string_agg(distinct case when s.success then s.result
                                  when s.result ~ 'permission denied' then 'refused' else s.result end, ', ')
  from run_command_on_shards(p_rel::text, format(
    'select (xpath(''/row/c/text()'', query_to_xml(''select count(*) as c from %%s'', false, true, '''')))[1]::text '
    || 'from (select %s set_config(''role'', ''app_user'', false)) s',
    case when p_context is null then '' else format('set_config(''app.context'', %L, false),', p_context) end)) s
$$;
create function pg_temp.count_all(p_rel regclass) returns bigint
language plpgsql
as $$
declare
  v_count bigint;
begin
  execute format('select count(*) from %s', p_rel) into v_count;
  return v_count;
end
$$;
select is(pg_temp.on_shards_as_app_user(t.rel, :'context_a'), case when t.readable then '0' else 'refused' end,
          format('on the workers, app_user holding A''s context from another transaction reads no row of a shard of %s', t.rel))
from pg_temp.tenant_tables t order by t.rel::text;
select is(pg_temp.on_shards_as_app_user(t.rel, null), case when t.readable then '0' else 'refused' end,
          format('on the workers, app_user without a context reads no row of a shard of %s', t.rel))
from pg_temp.tenant_tables t order by t.rel::text;
select is((select sum(s.result::bigint)::bigint from run_command_on_shards(t.rel::text, 'select count(*) from %s') s where s.success),
          pg_temp.count_all(t.rel),
          format('...while the superuser there reads every row of %s on its shards', t.rel))
from pg_temp.tenant_tables t order by t.rel::text;

-- The audit trail: A's writes are in A's trail with A's key and user as
-- their actor, the chain verifies, and a row changed on its shard fails it.
-- (Read into a variable first: Citus would run a test in the same query on
-- the worker, where pgTAP has no plan.)
select count(*) as document_entries from core.audit_logs a
where a.tenant_id = :'tenant_a' and a.resource_type = 'documents' and a.resource_id = :'doc_a'
  and a.action = 'insert' and a.api_key_id = :'key_a' and a.user_id = :'user_a' \gset
select is(:'document_entries'::bigint, 1::bigint, 'A''s new document is in A''s trail once, with A''s key and user as its actor');
begin;
set local role app_user;
select pg_temp.begin_as(:'hash_a') \gset ignored_
select verified as chain_verified, coalesce(reason, 'no break') as chain_reason from api.verify_audit_chain() \gset
commit;
select is(:'chain_verified'::boolean, true, 'A''s chain verifies through api.verify_audit_chain (' || :'chain_reason' || ')');
begin;
-- As a superuser can: the trigger that keeps the trail append-only taken
-- off (on every shard, for this transaction), a row changed.
set local citus.enable_unsafe_triggers = on;
alter table core.audit_logs disable trigger reject_update_delete;
update core.audit_logs a set details = a.details || '{"forged": true}'
where a.tenant_id = :'tenant_a' and a.seq = 2;
select verified as forged_verified from core.verify_audit_chain(:'tenant_a') \gset
select is(:'forged_verified'::boolean, false, 'an audit row of A changed on its shard fails the chain''s verification');
rollback;

-- Keys: a key A issues opens A's context until A revokes it, then none.
begin;
set local role app_user;
select pg_temp.begin_as(:'hash_a') \gset ignored_
select key_id as child_id, key as child_secret from api.create_api_key('A reader', '{documents:read}') \gset
commit;
begin;
set local role app_user;
select is(pg_temp.begin_as(pg_temp.hash_of(:'child_secret')), :'tenant_a'::uuid, 'a key A issued opens A''s context');
commit;
begin;
set local role app_user;
select pg_temp.begin_as(:'hash_a') \gset ignored_
select isnt((select revoked_at from api.revoke_api_key(:'child_id')), null, 'A revokes the key it issued');
commit;
begin;
set local role app_user;
select throws_ok(format('select pg_temp.begin_as(%L)', pg_temp.hash_of(:'child_secret')), 'PT401', null,
  'the revoked key opens no context at once');
commit;

-- The commands Citus sends a worker carry contexts, which are bound there to
-- the distributed transaction alone, and app_user may run functions there in
-- a pushed-down SELECT: no session of a runtime role may read another's
-- commands on a worker (migration 20261204000700).
select count(*) as workers, count(*) filter (where w.success and w.result = 't') as hiding
from run_command_on_workers($$
  select count(*) = 2 from pg_roles r
  where r.rolname in ('app_user', 'uber_admin')
    and exists (select from pg_db_role_setting s
                where s.setrole = r.oid and s.setdatabase = 0 and 'track_activities=off' = any (s.setconfig))$$) w \gset
select ok(:'workers'::bigint = 2 and :'hiding'::bigint = 2,
  format('on each worker app_user''s and uber_admin''s sessions record no command (%s of %s)', :'hiding', :'workers'));
select sum(split_part(w.result, ' ', 1)::bigint) as runtime_sessions, sum(split_part(w.result, ' ', 2)::bigint) as shown
from run_command_on_workers($$
  select count(*) || ' ' || count(*) filter (where coalesce(a.query, '') <> '')
  from pg_stat_activity a where a.usename in ('app_user', 'uber_admin')$$) w \gset
select ok(:'runtime_sessions'::bigint > 0 and :'shown'::bigint = 0,
  format('of the %s sessions this suite''s requests left on the workers, %s show a command', :'runtime_sessions', :'shown'));

-- A context taken from one of A's requests, with its distributed
-- transaction, and set again on a worker by a SELECT sent there whole
-- (which may assign itself that transaction there): worth nothing 30 s
-- after it was signed (migration 20261204000800).
begin;
set local role app_user;
select pg_temp.begin_as(:'hash_a') \gset ignored_
select current_setting('app.context') as old_context, t.initiator_node_identifier as old_node,
       t.transaction_number as old_number, t.transaction_stamp as old_stamp
from get_current_transaction_id() t \gset
commit;
select pg_sleep(31) \gset ignored_
set role app_user;
select count(*) as outer_rows,
       (select assign_distributed_transaction_id(:'old_node', :'old_number', :'old_stamp')) is null as assigned,
       (select set_config('app.context', :'old_context', true)) is not null as set_again,
       (select count(*) from core.documents d2 where d2.tenant_id = :'tenant_a') as replayed
from core.documents d where d.tenant_id = :'tenant_a' \gset
reset role;
select is(:'replayed'::bigint, 0::bigint,
  'a context of A''s set again on a worker with its transaction 31 s after its signing reads none of A''s documents');

-- Columns a role may not insert (migration 20261204000600): a shard gets
-- every column of an insert, so there a role granted INSERT on some columns
-- needs the whole table's; the coordinator, which the runtime roles reach
-- alone, checks the columns a statement names itself.
create temporary table column_inserters as
  select distinct d.logicalrelid as rel, a.grantee::regrole as role
  from pg_dist_partition d
  join pg_attribute att on att.attrelid = d.logicalrelid and att.attnum > 0 and not att.attisdropped
  cross join lateral aclexplode(att.attacl) a
  where a.privilege_type = 'INSERT' and a.grantee <> 0;
select cmp_ok((select count(*) from pg_temp.column_inserters where role = 'app_user'::regrole), '>=', 2::bigint,
  'the catalog finds the columns the runtime roles may insert');
select is_empty($$
  select i.rel::text, i.role::text from pg_temp.column_inserters i
  where has_table_privilege(i.role, i.rel, 'insert') $$,
  'on the coordinator no role granted INSERT on some columns of a distributed table may insert the rest');
-- A shard Citus moves or splits is made with the coordinator's grants of its
-- table, the column grants alone; running core.distribute_on_citus again
-- grants it the whole table's INSERT (README).
select count(*) filter (where p.success) as stripped
from run_command_on_placements('core.documents', 'revoke insert on table %s from app_user') p \gset
select count(*) filter (where p.result = 't') as still_granted
from run_command_on_placements('core.documents', $$select has_table_privilege('app_user', '%s', 'insert')$$) p \gset
select is(:'still_granted'::bigint, 0::bigint,
  format('%s placements of core.documents made as a moved shard is: app_user may not insert there', :'stripped'));
select core.distribute_on_citus() as redistributed \gset
select count(*) as placements, count(*) filter (where not p.success or p.result <> 't') as lacking
from pg_temp.column_inserters i
cross join lateral run_command_on_placements(i.rel,
  format('select has_table_privilege(%L, %L, ''insert'')', i.role, '%s')) p \gset
select ok(:'placements'::bigint > 0 and :'lacking'::bigint = 0,
  format('distributed again, on each of the %s shard placements the role may insert the whole table (%s may not)', :'placements', :'lacking'));
begin;
set local role app_user;
select pg_temp.begin_as(:'hash_a') \gset ignored_
select throws_ok(format(
  'insert into core.documents (user_id, title, content_hash, created_at) values (%L, ''Backdated'', repeat(''e'', 64), ''2001-01-01'')',
  :'user_a'), '42501', null, 'app_user under A''s context gives a document no created_at of its own');
commit;

select * from finish();
revoke execute on all functions in schema public from app_user, uber_admin;
