-- Query plans: with a realistic table the tenant-scoped reads the API serves
-- seek straight to the tenant through an index led by tenant_id, and the
-- tenant helper in the policies is evaluated once per statement (an InitPlan),
-- not once per row. Nothing is forced: enable_seqscan stays on, and the
-- planner chooses between the indexes and a sequential scan on real
-- statistics.
begin;
select plan(19);

-- pgTAP is installed by the superuser after `alter default privileges revoke
-- execute on functions from public`, so its functions are not executable by
-- the roles the suites switch to. Granted for this transaction only.
grant execute on all functions in schema public to app_user, uber_admin;

-- Fixtures ---------------------------------------------------------------------------

set local role uber_admin;
select tenant_id as tenant_a from platform.create_tenant('Busy A') \gset
select tenant_id as tenant_b from platform.create_tenant('Busy B') \gset
reset role;

set local role app_user;
set local app.tenant_id = :'tenant_a';
select user_id as user_a from api.create_user('writer@a.example.com') \gset
set local app.tenant_id = :'tenant_b';
select user_id as user_b from api.create_user('writer@b.example.com') \gset
reset role;

-- 3,000 documents for each tenant, a minute apart, written in bulk.
insert into core.documents (tenant_id, user_id, title, content_hash, created_at)
select v.tenant_id, v.user_id, format('Document %s', g), encode(sha256(convert_to(g::text, 'UTF8')), 'hex'),
       now() - g * interval '1 minute'
from (values (:'tenant_a'::uuid, :'user_a'::uuid), (:'tenant_b'::uuid, :'user_b'::uuid)) as v(tenant_id, user_id)
cross join generate_series(1, 3000) as g;
-- The new statistics roll back with the transaction; the row estimate ANALYZE
-- writes into pg_class is updated in place and stays, harmlessly, in the
-- throwaway test database.
analyze core.documents;
analyze core.users;

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

-- The superuser bypasses row-level security, so its plan has no tenant filter.
select pg_temp.plan_of('select * from api.list_documents(20)') as superuser_list_plan \gset

-- A page of documents ---------------------------------------------------------------------

set local role app_user;
set local app.tenant_id = :'tenant_a';
select pg_temp.plan_of('select * from api.list_documents(20)') as list_plan \gset

select pg_temp.plan_ok(cardinality(pg_temp.tenant_led_document_indexes(:'list_plan')) > 0, :'list_plan',
  'api.list_documents(20) reads core.documents through an index whose first column is tenant_id');
select pg_temp.plan_ok(:'list_plan' ~ 'Index Cond: \(+tenant_id = \$\d+', :'list_plan',
  'api.list_documents(20) seeks to the tenant in the index condition instead of filtering rows');
select pg_temp.plan_ok(:'list_plan' ~ 'InitPlan \d+ \(returns \$\d+\)', :'list_plan',
  'api.list_documents(20) evaluates the tenant helper once per statement, in an InitPlan');
select pg_temp.plan_ok(:'list_plan' !~ 'current_setting', :'list_plan',
  'api.list_documents(20) does not evaluate current_setting() per row or per index probe');
select pg_temp.plan_ok(:'list_plan' !~ 'Seq Scan on documents', :'list_plan',
  'api.list_documents(20) does not scan the whole documents table');
select pg_temp.plan_ok(:'list_plan' !~ 'Sort', :'list_plan',
  'api.list_documents(20) reads the page in index order, without sorting the tenant''s documents');
select results_eq('select count(*)::int, count(*) filter (where tenant_id = core.current_tenant_id())::int
                   from api.list_documents(20)',
  'values (20, 20)', 'api.list_documents(20) returns a full page, all of it tenant A''s');

-- One document by id ---------------------------------------------------------------------

select pg_temp.plan_of(format('select * from api.documents where document_id = %L', :'doc_a')) as get_plan \gset

select pg_temp.plan_ok(cardinality(pg_temp.tenant_led_document_indexes(:'get_plan')) > 0, :'get_plan',
  'api.documents by document_id reads core.documents through an index whose first column is tenant_id');
select pg_temp.plan_ok(:'get_plan' ~ 'Index Cond: \(+tenant_id = \$\d+\) AND \(document_id = ', :'get_plan',
  'api.documents by document_id seeks on tenant_id and document_id together in the index condition');
select pg_temp.plan_ok(:'get_plan' ~ 'InitPlan \d+ \(returns \$\d+\)', :'get_plan',
  'api.documents by document_id evaluates the tenant helper once per statement, in an InitPlan');
select pg_temp.plan_ok(:'get_plan' !~ 'current_setting', :'get_plan',
  'api.documents by document_id does not evaluate current_setting() per row');
select pg_temp.plan_ok(:'get_plan' !~ 'Seq Scan on documents', :'get_plan',
  'api.documents by document_id does not scan the whole documents table');
select results_eq(format('select document_id from api.documents where document_id = %L', :'doc_a'),
  format('values (%L::uuid)', :'doc_a'), 'tenant A fetches its own document by id');
select is_empty(format('select 1 from api.documents where document_id = %L', :'doc_b'),
  'the same lookup for tenant B''s document returns nothing');

-- Filtered by author -----------------------------------------------------------------------

select pg_temp.plan_of(format('select * from api.list_documents(20, p_user_id => %L)', :'user_a')) as author_plan \gset

select pg_temp.plan_ok(cardinality(pg_temp.tenant_led_document_indexes(:'author_plan')) > 0, :'author_plan',
  'api.list_documents filtered by author reads through an index whose first column is tenant_id');
select pg_temp.plan_ok(:'author_plan' ~ 'InitPlan \d+ \(returns \$\d+\)', :'author_plan',
  'api.list_documents filtered by author evaluates the tenant helper once, in an InitPlan');
select pg_temp.plan_ok(:'author_plan' !~ 'Seq Scan on documents', :'author_plan',
  'api.list_documents filtered by author does not scan the whole documents table');
reset role;

-- The InitPlan comes from the policy ---------------------------------------------------------

select pg_temp.plan_ok(:'superuser_list_plan' !~ 'InitPlan', :'superuser_list_plan',
  'without row-level security (superuser) the same query has no InitPlan, so the one above is the policy''s tenant helper');
select pg_temp.plan_ok(:'superuser_list_plan' !~ 'tenant_id = ', :'superuser_list_plan',
  'without row-level security the plan has no tenant condition at all, so the one above is the policy''s');

select * from finish();
rollback;
