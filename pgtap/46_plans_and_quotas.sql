-- Plans and quotas (migration 20261201001400): every limit at its boundary,
-- the last write it allows succeeds and the next is refused with what the
-- HTTP layer shows; deleting or revoking frees capacity; one tenant's usage
-- never limits another; a tier change applies at once; the counts equal the
-- rows; and the settings the database acts on have types and bounds.
begin;
select plan(30);

grant execute on all functions in schema public to app_user, uber_admin, tenancy_writer;
do $$ begin execute format('grant temporary on database %I to app_user, uber_admin, tenancy_writer', current_database()); end $$;
set constraints core.advance_chain_head immediate;

-- A small plan for the free tier, so its edges are reached quickly.
update core.plans set max_documents = 3, max_users = 2, max_api_keys = 3, max_metadata_bytes = 40 where tier = 'free';

set local role uber_admin;
select tenant_id as tenant_a from platform.create_tenant('Quota A', null, 'free') \gset
select tenant_id as tenant_b from platform.create_tenant('Quota B', null, 'free') \gset
select key as key_a from platform.create_api_key(:'tenant_a', 'Root', '{*}') \gset
select key as key_b from platform.create_api_key(:'tenant_b', 'Root', '{*}') \gset
reset role;
\ir lib/context.psql

-- The detail of a refusal: SQLSTATE and the JSON object the HTTP layer shows.
create function pg_temp.refusal(p_sql text) returns text
language plpgsql volatile
as $$
declare
  v_state text;
  v_detail text;
begin
  begin
    execute p_sql;
  exception when others then
    get stacked diagnostics v_state = returned_sqlstate, v_detail = pg_exception_detail;
    return v_state || ' ' || coalesce(v_detail, '');
  end;
  return 'accepted';
end
$$;
grant execute on function pg_temp.refusal(text) to app_user, uber_admin;

set local role app_user;
select pg_temp.begin_as(pg_temp.hash_of(:'key_a')) \gset ignored_
select results_eq($$ select api.current_plan() $$,
  $$ values ('{"tier": "free", "usage": {"users": 0, "api_keys": 1, "documents": 0}, "limits": {"users": 2, "api_keys": 3, "documents": 3, "metadata_bytes": 40, "requests_per_minute": 6000}}'::jsonb) $$,
  'api.current_plan shows the tier, its limits and the tenant''s usage (its one key)');

-- Users: two allowed.
select user_id as user_1 from api.create_user('one@quota.example') \gset
select isnt_empty($$ select 1 from api.create_user('two@quota.example') $$, 'the second user, the last the plan allows, is created');
select is(pg_temp.refusal($$ select api.create_user('three@quota.example') $$),
  'PTQ09 {"quota" : "users", "limit" : 2, "usage" : 2}',
  'the third is refused with the quota, its limit and the usage');

-- Documents: three allowed.
select document_id as doc_1 from api.create_document(:'user_1', 'D1', repeat('a', 64)) \gset
select document_id from api.create_document(:'user_1', 'D2', repeat('a', 64)) \gset ignored_
select isnt_empty(format($$ select 1 from api.create_document(%L, 'D3', repeat('a', 64)) $$, :'user_1'),
  'the third document, the last the plan allows, is created');
select is(pg_temp.refusal(format($$ select api.create_document(%L, 'D4', repeat('a', 64)) $$, :'user_1')),
  'PTQ09 {"quota" : "documents", "limit" : 3, "usage" : 3}',
  'the fourth is refused');
select isnt_empty(format($$ select 1 from api.delete_document(%L) $$, :'doc_1'), 'a document is deleted');
select isnt_empty(format($$ select 1 from api.create_document(%L, 'D4', repeat('a', 64)) $$, :'user_1'),
  '...which frees room for the next');

-- Metadata: 40 bytes of JSON text allowed.
select is(octet_length('{"note": "abcdefghijklmnopqrstuvwxyz12"}'::jsonb::text), 40, 'the fixture metadata is 40 bytes');
select is(pg_temp.refusal(format($$ select api.update_document(document_id, p_metadata => '{"note": "abcdefghijklmnopqrstuvwxyz12"}')
                                   from api.documents where title = 'D4' $$)),
  'accepted', 'metadata of exactly the limit is stored');
select is(pg_temp.refusal(format($$ select api.update_document(document_id, p_metadata => '{"note": "abcdefghijklmnopqrstuvwxyz123"}')
                                   from api.documents where title = 'D4' $$)),
  'PTQ13 {"quota" : "metadata_bytes", "limit" : 40, "usage" : 41}', 'one byte more is refused');

-- API keys: three allowed, the root key among them.
select key_id as key_2 from api.create_api_key('Second', '{documents:read}') \gset
select isnt_empty($$ select 1 from api.create_api_key('Third', '{documents:read}') $$, 'the third key, the last allowed, is issued');
select is(pg_temp.refusal($$ select api.create_api_key('Fourth', '{documents:read}') $$),
  'PTQ09 {"quota" : "api_keys", "limit" : 3, "usage" : 3}', 'the fourth is refused');
select isnt_empty(format($$ select 1 from api.revoke_api_key(%L) $$, :'key_2'), 'a key is revoked');
select isnt_empty($$ select 1 from api.create_api_key('Fourth', '{documents:read}') $$,
  '...and its place is free for another');
reset role;
select is(pg_temp.refusal(format($$ select platform.create_api_key(%L, 'Operator''s', '{*}') $$, :'tenant_a')),
  'PTQ09 {"quota" : "api_keys", "limit" : 3, "usage" : 3}', 'an operator''s key counts against the same limit');

-- Another tenant's usage limits nothing of this one.
set local role app_user;
select pg_temp.begin_as(pg_temp.hash_of(:'key_b')) \gset ignored_
select isnt_empty($$ select 1 from api.create_user('one@b.example') $$, 'tenant B creates users while A is at its limit');
select isnt_empty($$ select 1 from api.create_user('two@b.example') $$, '...up to its own limit');
reset role;

-- A tier change applies to the next write.
update core.tenants set subscription_tier = 'pro' where tenant_id = :'tenant_a';
set local role app_user;
select pg_temp.begin_as(pg_temp.hash_of(:'key_a')) \gset ignored_
select isnt_empty($$ select 1 from api.create_user('three@quota.example') $$, 'on the pro tier A''s third user is created');
select is(api.current_plan() ->> 'tier', 'pro', 'and api.current_plan names the new tier');
reset role;

-- The counts are the rows, for every tenant.
select is(
  array(select t.tenant_id::text from core.tenants t join core.tenant_usage u on u.tenant_id = t.tenant_id
        where u.documents <> (select count(*) from core.documents d where d.tenant_id = t.tenant_id)
           or u.users <> (select count(*) from core.users s where s.tenant_id = t.tenant_id)
           or u.api_keys <> (select count(*) from core.tenant_api_keys k where k.tenant_id = t.tenant_id and k.revoked_at is null)
        order by 1),
  '{}'::text[],
  'after the mixed run every tenant''s counts equal its documents, users and unrevoked keys');
select is((select count(*)::int from core.tenants t where not exists (select from core.tenant_usage u where u.tenant_id = t.tenant_id)),
  0, 'every tenant has counts');

-- Only the trigger writes the counts and only operators the plans.
set local role app_user;
select pg_temp.begin_as(pg_temp.hash_of(:'key_a')) \gset ignored_
select throws_ok(format('update core.tenant_usage set documents = 0 where tenant_id = %L', :'tenant_a'), '42501', null,
  'app_user cannot set its tenant''s counts');
select throws_ok($$ update core.plans set max_documents = 1000000000 $$, '42501', null, 'app_user cannot change a plan');
reset role;
set local role uber_admin;
select throws_ok(format('update core.tenant_usage set documents = 0 where tenant_id = %L', :'tenant_a'), '42501', null,
  'uber_admin cannot set a tenant''s counts either');
reset role;

-- Settings ----------------------------------------------------------------------------------

set local role app_user;
select pg_temp.begin_as(pg_temp.hash_of(:'key_a')) \gset ignored_
select throws_ok($$ select * from api.update_tenant_config('{"audit_retention_days": "2555"}') $$, 'PT422',
  'audit_retention_days is a whole number of days from 365 to 36,500', 'a number of days given as a string is refused, naming the key');
select throws_ok($$ select * from api.update_tenant_config('{"audit_retention_days": 364}') $$, 'PT422', null,
  'less than a year of retention is refused: a key cannot have its own recent trail dropped');
select is((select settings -> 'audit_retention_days' from api.update_tenant_config('{"audit_retention_days": 365}')), '365'::jsonb,
  'a year exactly is stored');
select throws_ok($$ select * from api.update_tenant_config('{"require_two_person_approval": "yes"}') $$, 'PT422',
  'require_two_person_approval is true or false', 'a yes-or-no setting given as text is refused');
select throws_ok($$ select * from api.update_tenant_config('{"currency": "euro"}') $$, 'PT422',
  'currency is three capital letters (ISO 4217)', 'a currency that is no ISO 4217 code is refused');
select is(
  (select settings from api.update_tenant_config(
     '{"audit_retention_days": 36500, "require_two_person_approval": false, "currency": "CHF", "data_residency": "eu-central", "theme": {"dark": true}}')),
  '{"audit_retention_days": 36500, "require_two_person_approval": false, "currency": "CHF", "data_residency": "eu-central", "theme": {"dark": true}}'::jsonb,
  'settings at their bounds are stored, and a key the database does not know is kept as sent');
reset role;

select * from finish();
rollback;
