-- Query plans: with a realistic table the tenant-scoped reads the API serves
-- seek straight to the tenant through an index led by tenant_id, and the
-- tenant helper in the policies is evaluated once per statement (an InitPlan),
-- not once per row. Nothing is forced: enable_seqscan stays on, and the
-- planner chooses between the indexes and a sequential scan on real
-- statistics.
--
-- The list functions plan their queries once per session (generic plans, see
-- migration 20261124000900), and EXPLAIN cannot show the plans inside a
-- PL/pgSQL function. For them the suite counts the buffers a page touches
-- instead. A seek reads a handful of pages. A scan through the tenant's
-- 3,000 rows would read around a hundred, whether the page is the first,
-- the 145th, or a time window far in the past.
begin;
select plan(35);

-- pgTAP is installed by the superuser after `alter default privileges revoke
-- execute on functions from public`, so its functions are not executable by
-- the roles the suites switch to. Granted for this transaction only.
grant execute on all functions in schema public to app_user, uber_admin, tenancy_writer;
-- pgTAP's set and result comparisons build temporary tables as the role that
-- runs them, and the runtime roles have no TEMPORARY privilege (checked by
-- 10_rls_invariants and 15_definer_hijack, which do without it): lent to
-- them for this transaction only.
do $$ begin execute format('grant temporary on database %I to app_user, uber_admin, tenancy_writer', current_database()); end $$;

-- Fixtures ---------------------------------------------------------------------------

set local role uber_admin;
select tenant_id as tenant_a from platform.create_tenant('Busy A') \gset
select tenant_id as tenant_b from platform.create_tenant('Busy B') \gset
select key as secret_a from platform.create_api_key(:'tenant_a', 'Reader', '{*}') \gset
select key as secret_b from platform.create_api_key(:'tenant_b', 'Reader', '{*}') \gset
reset role;
\ir lib/context.psql
select pg_temp.hash_of(:'secret_a') as hash_a, pg_temp.hash_of(:'secret_b') as hash_b \gset

set local role app_user;
select pg_temp.begin_as(:'hash_a') \gset ignored_
select user_id as user_a from api.create_user('writer@a.example.com') \gset
select user_id as user_a2 from api.create_user('editor@a.example.com') \gset
select pg_temp.begin_as(:'hash_b') \gset ignored_
select user_id as user_b from api.create_user('writer@b.example.com') \gset
reset role;

-- 3,000 documents for each tenant, a minute apart, written in bulk; in
-- tenant A every third one is by a second author.
insert into core.documents (tenant_id, user_id, title, content_hash, created_at)
select v.tenant_id, case when g % 3 = 0 then v.other_user_id else v.user_id end, format('Document %s', g),
       encode(sha256(convert_to(g::text, 'UTF8')), 'hex'), now() - g * interval '1 minute'
from (values (:'tenant_a'::uuid, :'user_a'::uuid, :'user_a2'::uuid),
             (:'tenant_b'::uuid, :'user_b'::uuid, :'user_b'::uuid)) as v(tenant_id, user_id, other_user_id)
cross join generate_series(1, 3000) as g;
-- And 3,000 audit entries for tenant A, 48 minutes apart, over the 100 days
-- before this transaction: four monthly partitions at least (the entries
-- the trigger just wrote all carry this transaction's time). The chain
-- refuses a timestamp other than the transaction's, so these go in with the
-- chaining off, as placeholders a page reads like any other.
select core.create_audit_partition(now() - m * interval '1 month') from generate_series(1, 4) as m;
alter table core.audit_logs disable trigger chain_audit_row;
alter table core.audit_logs disable trigger advance_chain_head;
insert into core.audit_logs (tenant_id, action, resource_type, resource_id, "timestamp", seq, recorded_at,
  details_salt, details_sha256, prev_hash, chain_hash)
select :'tenant_a', 'update', 'documents', gen_random_uuid(), now() - g * interval '48 minutes', -g,
  now() - g * interval '48 minutes', '\x00', '\x00', '\x00', '\x00'
from generate_series(1, 3000) as g;
alter table core.audit_logs enable always trigger chain_audit_row;
alter table core.audit_logs enable always trigger advance_chain_head;
select cmp_ok((select count(distinct tableoid)::int from core.audit_logs where tenant_id = :'tenant_a'), '>=', 4,
  'tenant A''s trail lies in four partitions or more');
-- The new statistics roll back with the transaction; the row estimate ANALYZE
-- writes into pg_class is updated in place and stays, harmlessly, in the
-- throwaway test database.
analyze core.documents;
analyze core.users;
analyze core.audit_logs;

select document_id as doc_a from core.documents where tenant_id = :'tenant_a' order by created_at limit 1 \gset
select document_id as doc_b from core.documents where tenant_id = :'tenant_b' order by created_at limit 1 \gset

-- The plan of p_sql, as the calling role sees it.
create function pg_temp.plan_of(p_sql text) returns text
language plpgsql volatile
as $$
declare
  v_line record;
  v_plan text := '';
begin
  for v_line in execute 'explain (costs off) ' || p_sql loop
    v_plan := v_plan || v_line."QUERY PLAN" || E'\n';
  end loop;
  return v_plan;
end
$$;

-- The conditions and filters of every node of p_sql's plan that is not part
-- of an InitPlan: what runs per row or per index probe, rather than once per
-- statement.
create function pg_temp.per_row_conditions(p_sql text) returns text
language plpgsql volatile
as $$
declare
  v_plan json;
begin
  execute 'explain (costs off, format json) ' || p_sql into v_plan;
  return (
    with recursive nodes(node) as (
      select v_plan -> 0 -> 'Plan'
      union all
      select child from nodes, json_array_elements(coalesce(node -> 'Plans', '[]')) as child
      where child ->> 'Parent Relationship' is distinct from 'InitPlan'
    )
    select string_agg(concat_ws(' ', node ->> 'Node Type', node ->> 'Index Cond', node ->> 'Filter',
                                node ->> 'Recheck Cond', node ->> 'One-Time Filter'), E'\n')
    from nodes);
end
$$;
grant execute on function pg_temp.per_row_conditions(text) to app_user;

-- Indexes of core.documents that p_plan scans and whose first column is tenant_id.
create function pg_temp.tenant_led_document_indexes(p_plan text) returns text[]
language sql stable
as $$
  select coalesce(array_agg(distinct c.relname::text order by c.relname::text), '{}')
  from regexp_matches(p_plan, '(?:Index Scan|Index Only Scan)(?: Backward)? using (\w+) on documents|Bitmap Index Scan on (\w+)', 'g')
    as m(names)
  join pg_class c on c.relname = coalesce(m.names[1], m.names[2])
                 and c.relnamespace = 'core'::regnamespace
  join pg_index i on i.indexrelid = c.oid and i.indrelid = 'core.documents'::regclass
  join pg_attribute a on a.attrelid = i.indrelid and a.attnum = i.indkey[0]
  where a.attname = 'tenant_id'
$$;

-- ok(), printing the plan when it fails.
create function pg_temp.plan_ok(p_pass boolean, p_plan text, p_description text) returns text
language sql volatile
as $$ select ok(p_pass, p_description) || case when p_pass then '' else E'\n' || diag(p_plan) end $$;

grant execute on function pg_temp.plan_of(text), pg_temp.tenant_led_document_indexes(text),
  pg_temp.plan_ok(boolean, text, text) to app_user;

-- Shared buffers (hit or read) one call of p_sql touches, including those of
-- the queries inside the function it calls. It runs once first, so that the
-- session's plans are already made and catalog reads are not counted.
create function pg_temp.buffers_of(p_sql text) returns integer
language plpgsql volatile
as $$
declare
  v_plan json;
begin
  execute p_sql;
  execute 'explain (analyze, buffers, format json) ' || p_sql into v_plan;
  return (v_plan -> 0 -> 'Plan' ->> 'Shared Hit Blocks')::integer
       + (v_plan -> 0 -> 'Plan' ->> 'Shared Read Blocks')::integer;
end
$$;

grant execute on function pg_temp.buffers_of(text) to app_user;

-- The superuser bypasses row-level security, so its plan has no tenant filter.
select pg_temp.plan_of(format('select * from api.documents where document_id = %L', :'doc_a'))
  as superuser_get_plan \gset

-- Pages of documents and audit entries --------------------------------------------------

set local role app_user;
select pg_temp.begin_as(:'hash_a') \gset ignored_

-- Tenant A's documents, newest first, numbered from 1, to name pages by position.
create temp table ordered_a as
  select row_number() over (order by created_at desc, document_id desc) as n, document_id, created_at, user_id
  from api.documents;
select created_at as cursor_at, document_id as cursor_id from ordered_a where n = 2900 \gset
select created_at as before_at from ordered_a where n = 2500 \gset

select results_eq('select count(*)::int, count(*) filter (where tenant_id = core.current_tenant_id())::int
                   from api.list_documents(20)',
  'values (20, 20)', 'api.list_documents(20) returns a full page, all of it tenant A''s');
select results_eq('select document_id from api.list_documents(20)',
  'select document_id from ordered_a where n <= 20 order by n',
  'api.list_documents(20) returns the 20 newest documents, newest first');
select cmp_ok(pg_temp.buffers_of('select * from api.list_documents(20)'), '<=', 20,
  'the first page of documents reads a handful of buffers');
-- The control: the same first page read by a scan instead of the index
-- touches far more than that, so the bound above tells a seek from a scan.
select cmp_ok(pg_temp.buffers_of('select * from api.documents order by created_at desc, document_id desc limit 20'),
  '<=', 20, 'the same page as a plain query reads a handful of buffers through the index');
set local enable_indexscan = off;
set local enable_bitmapscan = off;
select cmp_ok(pg_temp.buffers_of('select * from api.documents order by created_at desc, document_id desc limit 20'),
  '>', 60, 'with index scans switched off the same page reads every page of the table: the bound is no formality');
reset enable_indexscan;
reset enable_bitmapscan;

select results_eq(format('select document_id from api.list_documents(20, %L, %L)', :'cursor_at', :'cursor_id'),
  'select document_id from ordered_a where n between 2901 and 2920 order by n',
  'a page after a cursor 2,900 documents deep continues right after the cursor');
select cmp_ok(pg_temp.buffers_of(format('select * from api.list_documents(20, %L, %L)', :'cursor_at', :'cursor_id')),
  '<=', 20, 'a page 2,900 documents deep reads a handful of buffers, not the documents before it');

select results_eq(format('select document_id from api.list_documents(20, p_created_before => %L)', :'before_at'),
  'select document_id from ordered_a where n between 2501 and 2520 order by n',
  'created_before starts the page at the newest document older than that time');
select cmp_ok(pg_temp.buffers_of(format('select * from api.list_documents(20, p_created_before => %L)', :'before_at')),
  '<=', 20, 'a page with created_before far in the past reads a handful of buffers');

select results_eq(format('select document_id from api.list_documents(20, p_user_id => %L)', :'user_a2'),
  format('select document_id from ordered_a where user_id = %L order by n limit 20', :'user_a2'),
  'api.list_documents filtered by author returns that author''s newest documents');
select cmp_ok(pg_temp.buffers_of(format('select * from api.list_documents(20, p_user_id => %L)', :'user_a2')),
  '<=', 20, 'a page filtered by author reads a handful of buffers');

reset role;
select "timestamp" as audit_until from core.audit_logs where tenant_id = :'tenant_a'
  order by "timestamp" desc, log_id desc offset 5000 limit 1 \gset
set local role app_user;
-- The newest 50 entries are the trigger's, which share one timestamp, so they
-- come in log_id order from all over the heap: up to one buffer per entry.
select cmp_ok(pg_temp.buffers_of('select * from api.list_audit_logs(50)'), '<=', 70,
  'the first page of 50 audit entries reads about one buffer per entry (and the index pages of the partitions it opens), not the tenant''s 6,000');
select cmp_ok(pg_temp.buffers_of(format('select * from api.list_audit_logs(50, p_until => %L)', :'audit_until')),
  '<=', 20, 'a page of audit entries 5,000 entries deep reads a handful of buffers');

-- The generic plan of a page query, as the list functions hold it: the
-- statement of api.list_documents without author, prepared here because
-- EXPLAIN cannot look inside a PL/pgSQL function. Its bounds are parameters
-- that are never NULL, so they seek in the index.
set local plan_cache_mode = force_generic_plan;
prepare documents_page(timestamptz, uuid, timestamptz, integer) as
  select * from api.documents d
  where (d.created_at, d.document_id) < ($1, $2) and d.created_at >= $3
  order by d.created_at desc, d.document_id desc
  limit $4;
select pg_temp.plan_of($$execute documents_page('infinity', 'ffffffff-ffff-ffff-ffff-ffffffffffff', '-infinity', 20)$$)
  as page_plan \gset
reset plan_cache_mode;

select pg_temp.plan_ok(:'page_plan' ~ 'Index Cond: \(+tenant_id = \$\d+\) AND \(ROW\(created_at, document_id\) < ROW\(\$1, \$2\)\)',
  :'page_plan', 'the generic page plan seeks on the tenant and the keyset bound together in the index condition');
select pg_temp.plan_ok(:'page_plan' ~ 'InitPlan \d+ \(returns \$\d+\)', :'page_plan',
  'the generic page plan evaluates the tenant helper once per statement, in an InitPlan');
select pg_temp.plan_ok(:'page_plan' ~ 'InitPlan[^\n]*\n(\s+->[^\n]*\n|\s+[A-Z][^\n]*\n)*[^\n]*core\.context_verifies', :'page_plan',
  'the generic page plan''s InitPlan is the signature check of the verified context');
select pg_temp.plan_ok(
  pg_temp.per_row_conditions($$execute documents_page('infinity', 'ffffffff-ffff-ffff-ffff-ffffffffffff', '-infinity', 20)$$)
    !~ 'current_setting|hmac|current_tenant_id|request_context',
  :'page_plan', 'the generic page plan does not read or check the context per row or per index probe');
select pg_temp.plan_ok(:'page_plan' !~ 'Sort', :'page_plan',
  'the generic page plan reads in index order, without sorting the tenant''s documents');

-- The page bound: cursor or end time, whichever is lower; never NULL.
select results_eq('select * from core.page_upper_bound(null, null, null)',
  $$ values ('infinity'::timestamptz, 'ffffffff-ffff-ffff-ffff-ffffffffffff'::uuid) $$,
  'without cursor or end time the bound lies above every row');
select results_eq($$ select * from core.page_upper_bound('2026-01-02', '11111111-1111-1111-1111-111111111111', null) $$,
  $$ values ('2026-01-02'::timestamptz, '11111111-1111-1111-1111-111111111111'::uuid) $$,
  'a cursor is the bound');
select results_eq($$ select * from core.page_upper_bound('2026-01-02', null, null) $$,
  $$ values ('2026-01-02'::timestamptz, '00000000-0000-0000-0000-000000000000'::uuid) $$,
  'a cursor without an id means strictly before its time');
select results_eq($$ select * from core.page_upper_bound(null, null, '2026-01-01') $$,
  $$ values ('2026-01-01'::timestamptz, '00000000-0000-0000-0000-000000000000'::uuid) $$,
  'an end time alone means strictly before it');
select results_eq($$ select * from core.page_upper_bound('2026-01-02', '11111111-1111-1111-1111-111111111111', '2026-01-01') $$,
  $$ values ('2026-01-01'::timestamptz, '00000000-0000-0000-0000-000000000000'::uuid) $$,
  'an end time before the cursor is the bound');
select results_eq($$ select * from core.page_upper_bound('2026-01-02', '11111111-1111-1111-1111-111111111111', '2026-01-02') $$,
  $$ values ('2026-01-02'::timestamptz, '00000000-0000-0000-0000-000000000000'::uuid) $$,
  'an end time equal to the cursor''s time is the bound: nothing from that instant is on the page');
select results_eq($$ select * from core.page_upper_bound('2026-01-02', '11111111-1111-1111-1111-111111111111', '2026-01-03') $$,
  $$ values ('2026-01-02'::timestamptz, '11111111-1111-1111-1111-111111111111'::uuid) $$,
  'an end time after the cursor leaves the cursor as the bound');

-- One document by id ---------------------------------------------------------------------

select pg_temp.plan_of(format('select * from api.documents where document_id = %L', :'doc_a')) as get_plan \gset

select pg_temp.plan_ok(cardinality(pg_temp.tenant_led_document_indexes(:'get_plan')) > 0, :'get_plan',
  'api.documents by document_id reads core.documents through an index whose first column is tenant_id');
select pg_temp.plan_ok(:'get_plan' ~ 'Index Cond: \(+tenant_id = \$\d+\) AND \(document_id = ', :'get_plan',
  'api.documents by document_id seeks on tenant_id and document_id together in the index condition');
select pg_temp.plan_ok(:'get_plan' ~ 'InitPlan \d+ \(returns \$\d+\)', :'get_plan',
  'api.documents by document_id evaluates the tenant helper once per statement, in an InitPlan');
select pg_temp.plan_ok(
  pg_temp.per_row_conditions(format('select * from api.documents where document_id = %L', :'doc_a'))
    !~ 'current_setting|hmac|current_tenant_id|request_context',
  :'get_plan', 'api.documents by document_id does not read or check the context per row');
select pg_temp.plan_ok(:'get_plan' !~ 'Seq Scan on documents', :'get_plan',
  'api.documents by document_id does not scan the whole documents table');
select results_eq(format('select document_id from api.documents where document_id = %L', :'doc_a'),
  format('values (%L::uuid)', :'doc_a'), 'tenant A fetches its own document by id');
select is_empty(format('select 1 from api.documents where document_id = %L', :'doc_b'),
  'the same lookup for tenant B''s document returns nothing');

reset role;

-- The InitPlan comes from the policy ---------------------------------------------------------

select pg_temp.plan_ok(:'superuser_get_plan' !~ 'InitPlan', :'superuser_get_plan',
  'without row-level security (superuser) the same query has no InitPlan, so the one above is the policy''s tenant helper');
select pg_temp.plan_ok(:'superuser_get_plan' !~ 'tenant_id = ', :'superuser_get_plan',
  'without row-level security the plan has no tenant condition at all, so the one above is the policy''s');

select * from finish();
rollback;
