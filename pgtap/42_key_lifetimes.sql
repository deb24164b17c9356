-- Key lifetimes: a tenant's api_key_max_lifetime_days caps the expiry of
-- every key issued for it, by an operator or by the tenant's own keys, at
-- exactly that many days; a key asked to live longer is refused, and a
-- setting that is not a number of days issues no key rather than an
-- unlimited one.
begin;
select plan(13);

grant execute on all functions in schema public to app_user, uber_admin, tenancy_writer;
do $$ begin execute format('grant temporary on database %I to app_user, uber_admin, tenancy_writer', current_database()); end $$;

-- The Fintech Template says 90 days; a tenant without a template sets nothing.
set local role uber_admin;
select tenant_id as capped from platform.create_tenant('Capped', null, 'pro', 'Fintech Template') \gset
select tenant_id as uncapped from platform.create_tenant('Uncapped', null, 'pro') \gset
-- As text, 'never' for none: psql unsets a variable \gset reads as null.
select key as root, coalesce(expires_at::text, 'never') as root_expires
from platform.create_api_key(:'capped', 'Root', '{*}') \gset
reset role;
-- These suites are about one person's changes; two-person approval has
-- pgtap/47_two_person_approval.sql.
update core.tenant_configs set settings = settings || '{"require_two_person_approval": false}'
  where tenant_id = :'capped';
select is(:'root_expires', (now() + interval '90 days')::text,
  'an operator''s key issued without expires_at expires at the cap, 90 days on');
select is((select expires_at from platform.create_api_key(:'uncapped', 'Forever', '{*}')), null,
  'without the setting a key may live without expiry, as before');
select isnt_empty(
  format($$ select 1 from platform.create_api_key(%L, 'Exactly', '{*}', null, now() + interval '90 days') $$, :'capped'),
  'a key that expires exactly at the cap is issued');
select throws_ok(
  format($$ select 1 from platform.create_api_key(%L, 'Longer', '{*}', null, now() + interval '90 days 1 second') $$, :'capped'),
  'PT422', null,
  'one second beyond the cap is refused');
select throws_ok(
  format($$ select 1 from platform.create_api_key(%L, 'Year 9999', '{*}', null, '9999-12-31') $$, :'capped'),
  'PT422', null,
  'the year 9999 is refused');

\ir lib/context.psql
set local role app_user;
select pg_temp.begin_as(pg_temp.hash_of(:'root')) \gset ignored_
select is((select coalesce(expires_at::text, 'never') from api.create_api_key('Tenant issued', '{documents:read}')),
  :'root_expires',
  'a key the tenant issues itself is capped the same way (and by its issuer''s expiry, which here is the same)');
select throws_ok($$ select 1 from api.create_api_key('Longer', '{documents:read}', null, '9999-12-31') $$,
  'PT403', null,
  'beyond its issuer''s own expiry the tenant route refuses first');
reset role;

-- Lower the cap: new keys follow it, old ones keep what they were issued with.
update core.tenant_configs set settings = settings || '{"api_key_max_lifetime_days": 7}' where tenant_id = :'capped';
select is((select expires_at from platform.create_api_key(:'capped', 'Week', '{*}')), now() + interval '7 days',
  'after the cap is lowered to 7 days a new key expires in 7 days');
select is((select count(*)::int from core.tenant_api_keys where tenant_id = :'capped' and expires_at > now() + interval '7 days'), 3,
  'keys issued before keep their expiry: not extended, not cut short');

select throws_ok(
  format($$ update core.tenant_configs set settings = settings || '{"api_key_max_lifetime_days": "90"}' where tenant_id = %L $$, :'capped'),
  '23514', null,
  'a cap that is not a number of days cannot be stored, by anyone (tenant_configs_known_settings_check)');
-- Were it stored anyway (a superuser dropping the check), it issues no key.
alter table core.tenant_configs drop constraint tenant_configs_known_settings_check;
update core.tenant_configs set settings = settings || '{"api_key_max_lifetime_days": "90"}' where tenant_id = :'capped';
select throws_ok(format($$ select 1 from platform.create_api_key(%L, 'Text', '{*}') $$, :'capped'),
  'PT422', null,
  'a setting that is not a number of days issues no key, rather than one without a limit');

set local role app_user;
select pg_temp.begin_as(pg_temp.hash_of(:'root')) \gset ignored_
select throws_ok($$ select * from api.update_tenant_config('{"api_key_max_lifetime_days": "ninety"}') $$,
  'PT422', 'api_key_max_lifetime_days is a whole number of days from 1 to 36,500',
  'the tenant cannot store a cap that is not a number of days');
select throws_ok($$ select * from api.update_tenant_config('{"api_key_max_lifetime_days": 0}') $$,
  'PT422', null, 'nor one of 0 days');
reset role;

select * from finish();
rollback;
