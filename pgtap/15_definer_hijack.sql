-- The pg_temp hijack, from app_user's side. PostgreSQL searches the
-- session's temporary schema first for types and relations unless
-- search_path names pg_temp, and last when it is named last. A SECURITY
-- DEFINER function that left pg_temp out of its path would resolve "jsonb"
-- or "text" to a domain its caller planted there, and the domain's CHECK
-- would run the caller's code with the definer's rights.
--
-- The attack is staged in full: app_user tries to plant the shadows (and
-- may not); then the superuser plants them anyway, as if TEMP had been
-- granted back, with a CHECK that records current_user; then every definer
-- function app_user or uber_admin may call is called and every audit trigger
-- fires. No code of the attacker may run as another role. A control with the
-- old pinning (search_path = '') shows the trap does catch a hijack.
--
-- The shadows are planted before anything else runs in this session, so no
-- function has a plan cached from before them.
begin;
select plan(41);

-- The chain's head moves when a transaction commits (a deferred trigger);
-- this suite never commits, so it moves at the end of each statement.
set constraints core.advance_chain_head immediate;

grant execute on all functions in schema public to app_user, uber_admin, tenancy_writer;

-- app_user cannot even plant them ----------------------------------------------------

set local role app_user;
select throws_ok('create domain pg_temp.jsonb as pg_catalog.jsonb', '42501', null,
  'app_user cannot create a domain in pg_temp: it has no TEMPORARY privilege');
select throws_ok('create temp table shadow (id int)', '42501', null,
  'app_user cannot create a temporary table');
select throws_ok('create function pg_temp.payload() returns boolean language sql as $$ select true $$', '42501', null,
  'app_user cannot create a function in pg_temp');
reset role;
set local role uber_admin;
select throws_ok('create domain pg_temp.jsonb as pg_catalog.jsonb', '42501', null,
  'uber_admin cannot create a domain in pg_temp either');
reset role;

-- The shadows, planted regardless -------------------------------------------------

create table pg_temp.hijack_log (ran_as name not null, code text not null);
grant insert, select on pg_temp.hijack_log to public;
create function pg_temp.record_caller(p_code text) returns boolean
language plpgsql volatile
as $$
begin
  insert into pg_temp.hijack_log values (current_user, p_code);
  return true;
end
$$;
grant execute on function pg_temp.record_caller(text) to public;

create domain pg_temp.text as pg_catalog.text check (pg_temp.record_caller('text'));
create domain pg_temp.jsonb as pg_catalog.jsonb check (pg_temp.record_caller('jsonb'));
create domain pg_temp.uuid as pg_catalog.uuid check (pg_temp.record_caller('uuid'));
create domain pg_temp.timestamptz as pg_catalog.timestamptz check (pg_temp.record_caller('timestamptz'));
create domain pg_temp.bytea as pg_catalog.bytea check (pg_temp.record_caller('bytea'));
create domain pg_temp.record_audit as pg_catalog.int4 check (pg_temp.record_caller('record_audit'));
-- And a view shadowing every table and view of the project's schemas by
-- name, for any relation a definer named without its schema.
do $$
declare
  v_rel record;
begin
  for v_rel in
    select distinct c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where n.nspname in ('core', 'api', 'platform', 'extensions') and c.relkind in ('r', 'p', 'v')
  loop
    execute format('create view pg_temp.%I as select 1 as shadowed where pg_temp.record_caller(%L)',
      v_rel.relname, 'relation ' || v_rel.relname);
    execute format('grant select on pg_temp.%I to public', v_rel.relname);
  end loop;
end
$$;
-- The suite's own statements resolve names as a careful caller would.
set local search_path = public, pg_catalog, pg_temp;

select ok(to_regtype('pg_temp.jsonb') is not null and to_regclass('pg_temp.tenant_api_keys') is not null,
  'the shadow types and relations are in place');

-- Every definer function app_user or uber_admin may call, called -------------------

-- What this suite calls, checked against the catalog at the end.
create table pg_temp.definers_called (fn regprocedure not null);

-- A platform request needs a named operator: the first one, bootstrapped.
delete from core.platform_operators;
set local role uber_admin;
select platform.bootstrap_operator(encode(sha256(convert_to('hijack-operator-token', 'UTF8')), 'hex')) \gset ignored_
select platform.begin_request(encode(sha256(convert_to('hijack-operator-token', 'UTF8')), 'hex'), gen_random_uuid(),
  'hijack-1') \gset ignored_
select operator_id as second_operator from platform.create_operator('Second operator') \gset
select operator_id from platform.revoke_operator(:'second_operator') \gset ignored_
reset role;
insert into pg_temp.definers_called values ('platform.begin_request(text,uuid,text,boolean)'),
  ('platform.bootstrap_operator(text)'), ('platform.create_operator(text)'), ('platform.revoke_operator(uuid)');
set local role uber_admin;
select tenant_id as tenant_a from platform.create_tenant('Hijacked', 'hijacked.example', 'pro', 'Fintech Template') \gset
select key as key_a from platform.create_api_key(:'tenant_a', 'Root', '{*}') \gset
reset role;
select is((select domain from core.tenant_domains where tenant_id = :'tenant_a'), 'hijacked.example',
  'core.set_tenant_domain claims the tenant''s domain with the shadows in place');
insert into pg_temp.definers_called values ('core.set_tenant_domain(uuid,text)'),
  ('platform.create_tenant(text,text,text,text)'), ('platform.update_tenant(uuid,text,text,boolean,text)');
-- One person first; two-person approval is exercised at the end.
update core.tenant_configs set settings = settings || '{"require_two_person_approval": false}' where tenant_id = :'tenant_a';
set local role uber_admin;
select tenant_id from platform.update_tenant(:'tenant_a', p_name => 'Hijacked, renamed') \gset ignored_
select is((select name from platform.tenants where tenant_id = :'tenant_a'), 'Hijacked, renamed',
  'platform.update_tenant renames the tenant with the shadows in place');
select is((select claimed from platform.claim_idempotency_key('hijack-platform-retry', repeat('d', 64))), true,
  'platform.claim_idempotency_key claims a key with the shadows in place');
select platform.save_idempotent_response('hijack-platform-retry', 201, '{"ok": true}') \gset ignored_
select is(core.end_stale_transactions(), 0, 'core.end_stale_transactions finds no stale transaction with the shadows in place');
select lives_ok(format('select core.seize_chain_head(%L)', :'tenant_a'), 'core.seize_chain_head takes the head with the shadows in place');
select lives_ok(format('select core.seize_usage_row(%L)', :'tenant_a'), 'core.seize_usage_row takes the counts with the shadows in place');
select is(core.end_chain_holders(:'tenant_a'), 0, 'core.end_chain_holders ends no one with the shadows in place (this session holds the head)');
select is(core.end_usage_holders(:'tenant_a'), 0, 'core.end_usage_holders ends no one with the shadows in place (this session holds the counts)');
select is((select max_documents from platform.update_plan((select plan_id from platform.plans where tier = 'free'),
  p_max_documents => 10001)), 10001,
  'platform.update_plan changes a plan with the shadows in place');
select lives_ok('select core.require_active_operator()',
  'core.require_active_operator finds the active operator with the shadows in place');
reset role;
insert into pg_temp.definers_called values ('core.seize_usage_row(uuid)'), ('core.require_active_operator()'),
  ('core.end_chain_holders(uuid)'), ('core.end_usage_holders(uuid)');
insert into pg_temp.definers_called values ('platform.create_api_key(uuid,text,text[],uuid,timestamp with time zone)'),
  ('platform.claim_idempotency_key(text,text)'), ('platform.save_idempotent_response(text,integer,jsonb)'),
  ('core.end_stale_transactions()'), ('core.seize_chain_head(uuid)');

set local role app_user;
select throws_ok($$ select * from api.begin_request(repeat('0', 64), null, gen_random_uuid()) $$, 'PT401', null,
  'api.begin_request refuses an unknown key, shadows or not');
select is(
  (select tenant_id from api.begin_request(encode(sha256(convert_to(:'key_a', 'UTF8')), 'hex'), 'users:write',
     gen_random_uuid(), 'hijack-2')),
  :'tenant_a'::uuid,
  'api.begin_request authenticates a real key with the shadows in place');
reset role;
insert into pg_temp.definers_called values ('api.begin_request(text,text,uuid,text,boolean)');
set local role app_user;
select user_id as user_a from api.create_user('victim@hijack.example', 'tenant_admin') \gset
select user_id from api.update_user(:'user_a', p_role => 'member') \gset ignored_
select document_id as doc_a from api.create_document(:'user_a', 'Ledger', repeat('a', 64), '{"n": 1}') \gset
select document_id from api.update_document(:'doc_a', p_metadata => '{"n": 2}') \gset ignored_
select tenant_id from api.update_tenant_config('{"currency": "CHF"}') \gset ignored_
select key_id as key_b from api.create_api_key('Issued', '{documents:read}') \gset
select is((select tenant_id from api.current_tenant()), :'tenant_a'::uuid,
  'api.current_tenant reads the caller''s tenant with the shadows in place');
select is((select settings ->> 'currency' from api.current_tenant_config()), 'CHF',
  'api.current_tenant_config reads the configuration just changed');
select isnt_empty('select 1 from api.list_audit_logs()', 'api.list_audit_logs reads the caller''s trail');
select is(api.current_plan() -> 'usage' ->> 'documents', '1', 'api.current_plan counts the caller''s document with the shadows in place');
select ok(core.context_verifies(current_setting('app.context')), 'core.context_verifies verifies the session''s context');
select is((select verified from api.verify_audit_chain()), true, 'api.verify_audit_chain verifies the caller''s chain');
select isnt_empty('select 1 from api.export_audit_logs()', 'api.export_audit_logs reads the caller''s chain');
select results_eq('select tenant_id, granted > 0 from api.lease_requests()', format($$ values (%L::uuid, true) $$, :'tenant_a'),
  'api.lease_requests leases the caller''s tenant''s requests with the shadows in place');
reset role;
insert into pg_temp.definers_called values ('api.create_api_key(text,text[],uuid,timestamp with time zone)'),
  ('api.verify_audit_chain(bigint,integer,bigint,text)'), ('api.export_audit_logs(bigint,integer)'),
  ('api.current_tenant()'), ('api.current_tenant_config()'), ('api.update_tenant_config(jsonb)'),
  ('core.context_verifies(text)'), ('api.current_plan()'), ('api.lease_requests(integer)'),
  ('api.list_audit_logs(integer,timestamp with time zone,uuid,uuid,text,text,timestamp with time zone,timestamp with time zone)');
-- The partition maintenance runs as tenancy_owner: with the furthest
-- partition gone, app_user's call makes it again, in core, whatever the
-- shadows say.
select format('core.audit_logs_y%s', to_char(date_trunc('month', now() at time zone 'UTC') + interval '3 months', 'YYYY"m"MM'))
  as furthest_partition \gset
alter table core.audit_logs detach partition :furthest_partition;
drop table :furthest_partition;
set local role app_user;
select results_eq('select action, partition_name from core.maintain_audit_partitions()',
  format($$ values ('created', %L) $$, split_part(:'furthest_partition', '.', 2)),
  'core.maintain_audit_partitions makes the missing partition with the shadows in place');
reset role;
select is((select relowner::regrole::text from pg_class where oid = to_regclass(:'furthest_partition')), 'tenancy_owner',
  '...in core, owned by tenancy_owner');
insert into pg_temp.definers_called values ('core.maintain_audit_partitions()');
set local role app_user;
select key_id from api.revoke_api_key(:'key_b') \gset ignored_
select claimed from api.claim_idempotency_key('hijack-retry', repeat('c', 64)) \gset ignored_
select api.save_idempotent_response('hijack-retry', 201, '{"ok": true}') \gset ignored_
select document_id from api.delete_document(:'doc_a') \gset ignored_
select user_id from api.delete_user(:'user_a') \gset ignored_
select api.touch_api_key(encode(sha256(convert_to(:'key_a', 'UTF8')), 'hex')) \gset ignored_
reset role;
-- Two-person approval, with the shadows in place: the held-back changes are
-- refused outright, asked for, and not decided by the key that asked.
update core.tenant_configs set settings = settings || '{"require_two_person_approval": true}' where tenant_id = :'tenant_a';
set local role app_user;
select tenant_id from api.begin_request(encode(sha256(convert_to(:'key_a', 'UTF8')), 'hex'), null, gen_random_uuid(),
  'hijack-3') \gset ignored_
select throws_ok($$ select 1 from api.update_tenant_config('{"currency": "USD"}') $$, 'PT428', null,
  'core.hold_for_approval holds a configuration change back with the shadows in place');
select throws_ok($$ select 1 from api.create_api_key('Issuer', '{keys:write}') $$, 'PT428', null,
  '...and a key that may issue keys');
select approval ->> 'approval_id' as approval_a from api.request_approval('update_tenant_config', '{"settings": {"currency": "USD"}}') \gset
select throws_ok(format('select * from api.decide_approval(%L, true)', :'approval_a'), 'PT403', null,
  'api.decide_approval refuses the key that asked, with the shadows in place');
select ok(core.request_has_actor(:'tenant_a'), 'core.request_has_actor finds the key''s tenant with the shadows in place');
reset role;
insert into pg_temp.definers_called values ('api.request_approval(text,jsonb)'), ('api.decide_approval(uuid,boolean)'),
  ('core.request_has_actor(uuid)');
insert into pg_temp.definers_called values ('api.touch_api_key(text)'), ('api.revoke_api_key(uuid)'),
  ('api.claim_idempotency_key(text,text)'), ('api.save_idempotent_response(text,integer,jsonb)'),
  ('api.delete_document(uuid)'), ('api.delete_user(uuid)');

select is(
  array(select p.oid::regprocedure::text from pg_proc p
        where p.prosecdef and p.prorettype <> 'trigger'::regtype
          and (has_function_privilege('app_user', p.oid, 'EXECUTE') or has_function_privilege('uber_admin', p.oid, 'EXECUTE'))
          and p.oid not in (select fn from pg_temp.definers_called)
        order by 1),
  '{}'::text[],
  'every SECURITY DEFINER function app_user or uber_admin may execute was called above');
-- On Citus a caller may leave one of its contexts on the workers and another
-- on the coordinator: each definer that changes rows, and each platform
-- function that does, passes the coordinator's on first, so that what it
-- checked is what the trail names (migration 20261203000300, which says why
-- the others need not; the holders' enders, which uber_admin may call to
-- revoke, end sessions and change no row: migration 20261204000400).
select is(
  array(select p.oid::regprocedure::text from pg_proc p
        where p.provolatile = 'v' and p.prorettype <> 'trigger'::regtype
          and (p.prosecdef or p.pronamespace = 'platform'::regnamespace)
          and (has_function_privilege('app_user', p.oid, 'EXECUTE') or has_function_privilege('uber_admin', p.oid, 'EXECUTE'))
          and p.oid not in ('api.begin_request(text,text,uuid,text,boolean)'::regprocedure,
                            'platform.begin_request(text,uuid,text,boolean)'::regprocedure,
                            'core.context_verifies(text)'::regprocedure, 'platform.bootstrap_operator(text)'::regprocedure,
                            'core.end_stale_transactions()'::regprocedure, 'core.seize_chain_head(uuid)'::regprocedure,
                            'core.seize_usage_row(uuid)'::regprocedure, 'core.maintain_audit_partitions()'::regprocedure,
                            'core.end_chain_holders(uuid)'::regprocedure, 'core.end_usage_holders(uuid)'::regprocedure)
          and p.prosrc !~ '\mbegin\s+perform core\.carry_context_to_workers\(\);'
        order by 1),
  '{}'::text[],
  'every definer the runtime roles may call that changes rows, and every platform function that does, first passes its context on to the workers');
select is(
  array(select t.tgname || ' on ' || t.tgrelid::regclass from pg_trigger t join pg_proc p on p.oid = t.tgfoid
        -- A partition's clone of a trigger runs its parent's function
        -- (pgtap/33_audit_partitions.sql): the parent's trigger speaks for it.
        where p.prosecdef and p.proname <> 'record_audit' and t.tgparentid = 0
          and not case
            -- A trigger on the trail itself shows in the chain's head.
            when t.tgrelid = 'core.audit_logs'::regclass then exists (
              select from core.audit_chain_heads h
              join core.audit_logs a on a.tenant_id = h.tenant_id and a.seq = h.seq and a.chain_hash = h.hash
              where h.tenant_id = :'tenant_a'
                and not exists (select from core.audit_logs b where b.tenant_id = h.tenant_id and b.seq > h.seq))
            -- Two-person approval's refusals were seen above.
            when p.proname = 'hold_for_approval' then exists (
              select from core.approval_requests r where r.tenant_id = :'tenant_a')
            -- The usage counts show theirs: tenant A has counts, and its key counted.
            when p.proname in ('meter_usage', 'create_tenant_usage') then exists (
              select from core.tenant_usage u where u.tenant_id = :'tenant_a' and u.api_keys >= 1)
            else exists (select from core.audit_logs a
                         where a.resource_type = (select relname from pg_class where oid = t.tgrelid)
                           and a.action = 'delete' and a."timestamp" = now()) end
        order by 1),
  '{}'::text[],
  'every other SECURITY DEFINER trigger (the revocation of a deleted user''s keys, the chain head''s advance) fired above too');
select is(
  array(select t.tgrelid::regclass::text from pg_trigger t
        where t.tgfoid = 'core.record_audit'::regproc
          and not exists (select from core.audit_logs a
                          where a.resource_type = (select relname from pg_class where oid = t.tgrelid)
                            and a."timestamp" = now())
        order by 1),
  '{}'::text[],
  'the audit trigger fired on every table it guards, as app_user and as uber_admin');

-- No code of the attacker ran as anyone else --------------------------------------

select is(
  array(select distinct format('%s ran as %s', code, ran_as) from pg_temp.hijack_log
        where ran_as not in ('app_user', 'uber_admin', session_user) order by 1),
  '{}'::text[],
  'no shadow in pg_temp ran as tenancy_auth, tenancy_auditor, tenancy_owner or any role but its caller');
select is(
  array(select distinct format('%s ran as %s', code, ran_as) from pg_temp.hijack_log
        where ran_as in (select r.rolname from pg_roles r join pg_proc p on p.proowner = r.oid where p.prosecdef)
        order by 1),
  '{}'::text[],
  'no shadow ran as the owner of any SECURITY DEFINER function');

-- The control: a definer with the old pinning is hijacked --------------------------

-- Two roles of its own (gone at the rollback), so what they log is theirs alone.
create role hijack_probe_empty nologin;
create role hijack_probe_last nologin;

create function pg_temp.pinned_to_nothing() returns text
language plpgsql volatile security definer
set search_path = ''
as $$
begin
  return 'hijacked'::text;
end
$$;
alter function pg_temp.pinned_to_nothing() owner to hijack_probe_empty;
grant execute on function pg_temp.pinned_to_nothing() to app_user;
set local role app_user;
select is(pg_temp.pinned_to_nothing(), 'hijacked', 'app_user calls a definer whose search_path is empty');
reset role;
select is(
  array(select distinct format('%s ran as %s', code, ran_as) from pg_temp.hijack_log where ran_as = 'hijack_probe_empty'),
  array['text ran as hijack_probe_empty'],
  'with search_path = '''' the shadow text domain ran as the definer''s owner: the trap catches what pinning prevents');

create function pg_temp.pinned_last() returns text
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  return 'safe'::text;
end
$$;
alter function pg_temp.pinned_last() owner to hijack_probe_last;
grant execute on function pg_temp.pinned_last() to app_user;
set local role app_user;
select is(pg_temp.pinned_last(), 'safe', 'app_user calls the same definer pinned to pg_catalog, pg_temp');
reset role;
select is_empty($$ select 1 from pg_temp.hijack_log where ran_as = 'hijack_probe_last' $$,
  'with pg_temp named last the same cast resolved to pg_catalog.text and ran nothing of the attacker''s');

select * from finish();
rollback;
