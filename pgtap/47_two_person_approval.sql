-- Two-person approval (migration 20261201001500): with the tenant's
-- require_two_person_approval true, the changes it holds back are refused
-- outright, asked for as a pending request, and made only when a key of
-- another user that may make them approves, once; the asker, its user, a
-- key it issued, an unbound key and a narrow key cannot approve; a rejected
-- or expired request changes nothing; the trail has request and decision.
begin;
select plan(46);

grant execute on all functions in schema public to app_user, uber_admin, tenancy_writer, tenancy_auth;
do $$ begin execute format('grant temporary on database %I to app_user, uber_admin, tenancy_writer', current_database()); end $$;
set constraints core.advance_chain_head immediate;

set local role uber_admin;
select tenant_id as t from platform.create_tenant('Two people', null, 'pro', 'Fintech Template') \gset
reset role;
insert into core.users (tenant_id, email, role) values
  (:'t', 'alice@two.example', 'tenant_admin'), (:'t', 'bob@two.example', 'tenant_admin'),
  (:'t', 'carol@two.example', 'member');
select user_id as alice from core.users where email = 'alice@two.example' \gset
select user_id as bob from core.users where email = 'bob@two.example' \gset
select user_id as carol from core.users where email = 'carol@two.example' \gset
set local role uber_admin;
select key_id as root_id, key as root from platform.create_api_key(:'t', 'Root', '{*}') \gset
select key_id as alice_key_id, key as alice_key from platform.create_api_key(:'t', 'Alice', '{*}', :'alice') \gset
select key_id as bob_key_id, key as bob_key from platform.create_api_key(:'t', 'Bob', '{*}', :'bob') \gset
select key as bob_reader from platform.create_api_key(:'t', 'Bob reads', '{documents:read}', :'bob') \gset
reset role;
\ir lib/context.psql

-- Held back ---------------------------------------------------------------------------------

set local role app_user;
select pg_temp.begin_as(pg_temp.hash_of(:'alice_key')) \gset ignored_
select throws_ok($$ select 1 from api.update_tenant_config('{"currency": "USD"}') $$, 'PT428', null,
  'a configuration change is refused outright: it needs a second person');
select throws_ok($$ select 1 from api.create_api_key('Issuer', '{keys:write}') $$, 'PT428', null,
  'so is a key that may issue keys');
select throws_ok(format('select 1 from api.update_user(%L, p_role => %L)', :'carol', 'viewer'), 'PT428', null,
  'and a new role');
select throws_ok(format('select 1 from api.delete_user(%L)', :'carol'), 'PT428', null, 'and a user''s deletion');
select isnt_empty($$ select 1 from api.create_api_key('Reader', '{documents:read}') $$,
  'a key that may not issue keys needs nobody else');
select isnt_empty(format('select 1 from api.update_user(%L, p_email => %L)', :'carol', 'carol2@two.example'),
  'nor does a new e-mail address');
select is_empty($$ select * from api.request_approval('create_api_key', '{"name": "Reader", "permissions": ["documents:read"]}') $$,
  'asked for, a change that needs nobody else is no request');

-- Asked for and approved --------------------------------------------------------------------

select approval ->> 'approval_id' as config_request from api.request_approval('update_tenant_config', '{"settings": {"currency": "USD"}}') \gset
select results_eq(format('select operation, status, requested_by_key_id, requested_by_user_id from api.approvals where approval_id = %L', :'config_request'),
  format($$ values ('update_tenant_config', 'pending', %L::uuid, %L::uuid) $$, :'alice_key_id', :'alice'),
  'the request is pending, naming the key and user that asked');
select throws_ok(format('select * from api.decide_approval(%L, true)', :'config_request'), 'PT403', null,
  'the key that asked cannot approve it');
reset role;

set local role app_user;
select pg_temp.begin_as(pg_temp.hash_of(:'root')) \gset ignored_
select throws_ok(format('select * from api.decide_approval(%L, true)', :'config_request'), 'PT403',
  'a key deciding a request must be bound to a user', 'a key bound to no user cannot decide');
select pg_temp.begin_as(pg_temp.hash_of(:'bob_reader')) \gset ignored_
select throws_ok(format('select * from api.decide_approval(%L, true)', :'config_request'), 'PT403',
  'the API key may not make this change itself', 'another user''s key that may not change the configuration cannot approve it');
select pg_temp.begin_as(pg_temp.hash_of(:'bob_key')) \gset ignored_
select is((select result -> 'settings' ->> 'currency' from api.decide_approval(:'config_request', true)), 'USD',
  'another user''s key that may change the configuration approves it, and the change is made');
select throws_ok(format('select * from api.decide_approval(%L, true)', :'config_request'), 'PT409', null,
  'a second approval is refused: it is made once');
select is((select status from api.approvals where approval_id = :'config_request'), 'approved', 'the request shows approved');
reset role;
select is((select settings ->> 'currency' from core.tenant_configs where tenant_id = :'t'), 'USD', 'the configuration changed');
select results_eq(
  format($$ select action, details -> 'new' ->> 'status', details -> 'new' ->> 'decided_by_key_id' from core.audit_logs
            where tenant_id = %L and resource_type = 'approval_requests' and resource_id = %L
              and details -> 'new' ? 'status' order by seq $$, :'t', :'config_request'),
  format($$ values ('insert', 'pending', null), ('update', 'approved', %L) $$, :'bob_key_id'),
  'the trail has the request and the decision');
select results_eq(
  format($$ select api_key_id from core.audit_logs where tenant_id = %L and resource_type = 'tenant_configs'
            and "timestamp" = now() order by seq desc limit 1 $$, :'t'),
  format('values (%L::uuid)', :'bob_key_id'),
  'the configuration change itself is recorded as the approver''s');
set local role app_user;
select pg_temp.begin_as(pg_temp.hash_of(:'bob_key')) \gset ignored_
select throws_ok($$ select 1 from api.update_tenant_config('{"currency": "JPY"}') $$, 'PT428', null,
  'the next change in the same transaction is held back again: the approval let through its own change alone');
reset role;
select is((select executing_in from core.approval_requests where approval_id = :'config_request'), null,
  'made, the change leaves no mark of its transaction on the request');

-- A key, a role and a deletion --------------------------------------------------------------

set local role app_user;
select pg_temp.begin_as(pg_temp.hash_of(:'alice_key')) \gset ignored_
select approval ->> 'approval_id' as key_request, key as requested_key from api.request_approval('create_api_key',
  '{"name": "Alice issues", "permissions": ["keys:write", "documents:read"]}') \gset
select approval ->> 'approval_id' as role_request from api.request_approval('update_user_role',
  jsonb_build_object('user_id', :'carol', 'role', 'viewer')) \gset
select approval ->> 'approval_id' as delete_request from api.request_approval('delete_user', jsonb_build_object('user_id', :'carol')) \gset
select throws_ok(format($$ select * from api.request_approval('delete_user', '{"user_id": "%s"}') $$, gen_random_uuid()),
  'P0002', null, 'asking to delete a user that does not exist is a 404 now, not a pending request');
select pg_temp.begin_as(pg_temp.hash_of(:'bob_key')) \gset ignored_
select throws_ok(format($$ select 1 from api.begin_request(%L, null, gen_random_uuid()) $$, pg_temp.hash_of(:'requested_key')),
  'PT401', null, 'the key asked for (its secret shown to the requester alone) does not work before approval');
select results_eq(format($$ select result ->> 'user_id', result ->> 'issued_by_key_id', result ? 'key'
                            from api.decide_approval(%L, true) $$, :'key_request'),
  format($$ values (%L, %L, false) $$, :'alice', :'alice_key_id'),
  'an approved key is issued as the asking key would have issued it, bound to its user, with it as the issuer; the approver never sees its secret');
select is(pg_temp.begin_as(pg_temp.hash_of(:'requested_key')), :'t'::uuid,
  'once approved, the secret the requester was given works');
reset role;
select is((select key_hash from core.approval_requests where approval_id = :'key_request'), null,
  'decided, the request keeps no hash of the key');
set local role app_user;
select pg_temp.begin_as(pg_temp.hash_of(:'bob_key')) \gset ignored_
select is((select result ->> 'role' from api.decide_approval(:'role_request', true)), 'viewer', 'an approved role is given');
select is((select status from api.decide_approval(:'delete_request', false) cross join lateral (select approval ->> 'status' as status) s),
  'rejected', 'a deletion is rejected');
reset role;
select is((select count(*)::int from core.users where user_id = :'carol'), 1, '...and the user is still there');
-- A request whose user is gone while it waits is refused as such (a
-- decision of the same request made meanwhile is answered as one instead:
-- tests/approvals_test.ts races two deciders).
insert into core.users (tenant_id, email, role) values (:'t', 'dave@two.example', 'member') returning user_id as dave \gset
set local role app_user;
select pg_temp.begin_as(pg_temp.hash_of(:'alice_key')) \gset ignored_
select approval ->> 'approval_id' as dave_request from api.request_approval('delete_user', jsonb_build_object('user_id', :'dave')) \gset
reset role;
set local app.context = '';
delete from core.users where user_id = :'dave';
set local role app_user;
select pg_temp.begin_as(pg_temp.hash_of(:'bob_key')) \gset ignored_
select throws_ok(format('select * from api.decide_approval(%L, true)', :'dave_request'), 'P0002', 'no user with that id',
  'a request whose user was removed while it waited, still pending, is a 404');
reset role;

-- Nobody approves their own request with a key of their making ------------------------------

set local role app_user;
select pg_temp.begin_as(pg_temp.hash_of(:'root')) \gset ignored_
select approval ->> 'approval_id' as root_request from api.request_approval('update_tenant_config', '{"settings": {"currency": "CHF"}}') \gset
-- The root key issues a key for Bob that may change the configuration
-- (that needs nobody else), and tries to approve its own request with it.
select key as minted from api.create_api_key('Minted for Bob', '{config:write}', :'bob') \gset
select pg_temp.begin_as(pg_temp.hash_of(:'minted')) \gset ignored_
select throws_ok(format('select * from api.decide_approval(%L, true)', :'root_request'), 'PT403',
  'a key cannot decide a request of its own user, or of a key it shares an issuer with',
  'a key issued by the asking key cannot approve its request, whoever it is bound to');
-- Nor one the same key issued beside the asking key: one person holds both.
select pg_temp.begin_as(pg_temp.hash_of(:'root')) \gset ignored_
select key as sibling from api.create_api_key('Sibling', '{config:write}') \gset
select pg_temp.begin_as(pg_temp.hash_of(:'sibling')) \gset ignored_
select approval ->> 'approval_id' as sibling_request from api.request_approval('update_tenant_config',
  '{"settings": {"require_two_person_approval": false}}') \gset
select pg_temp.begin_as(pg_temp.hash_of(:'minted')) \gset ignored_
select throws_ok(format('select * from api.decide_approval(%L, true)', :'sibling_request'), 'PT403', null,
  'a key that shares its issuer with the asking key cannot approve: both secrets passed through one hand');
reset role;

-- Requests the asking key could not carry out itself ----------------------------------------

set local app.context = '';
set local role uber_admin;
select key as carol_key from platform.create_api_key(:'t', 'Carol', '{*}', :'carol') \gset
select key_id as bob2_id, key as bob2_key from platform.create_api_key(:'t', 'Bob again', '{*}', :'bob') \gset
reset role;
set local role app_user;
select pg_temp.begin_as(pg_temp.hash_of(:'carol_key')) \gset ignored_
select throws_ok(format($$ select * from api.request_approval('update_user_role', '{"user_id": "%s", "role": "tenant_admin"}') $$, :'carol'),
  'PT403', null, 'a viewer''s key cannot ask for a role change, its own least of all');
select pg_temp.begin_as(pg_temp.hash_of(:'alice_key')) \gset ignored_
select throws_ok($$ select * from api.request_approval('update_tenant_config', '{"settings": {"audit_retention_days": 1}}') $$,
  'PT422', null, 'settings that fail their checks are refused when asked for, not when approved');
select throws_ok($$ select * from api.request_approval('update_tenant_config', '{"currency": "USD"}') $$,
  'PT422', null, 'a configuration change without settings is refused when asked for');
select throws_ok(format($$ select * from api.request_approval('update_user_role', '{"user_id": "%s", "role": "root"}') $$, :'carol'),
  'PT422', null, 'a role that does not exist is refused when asked for');
select throws_ok($$ select * from api.request_approval('create_api_key', '{"name": "", "permissions": ["keys:write"]}') $$,
  'PT422', null, 'a key without a name is refused when asked for');
select approval ->> 'approval_id' as orphan_request from api.request_approval('update_tenant_config', '{"settings": {"currency": "GBP"}}') \gset
reset role;
update core.tenant_api_keys set revoked_at = now() where key_id = :'alice_key_id';
set local role app_user;
select pg_temp.begin_as(pg_temp.hash_of(:'bob_key')) \gset ignored_
select throws_ok(format('select * from api.decide_approval(%L, true)', :'orphan_request'), 'PT409', null,
  'a request dies with the key that made it: once it is revoked, nobody approves it');
reset role;
set local role app_user;
select pg_temp.begin_as(pg_temp.hash_of(:'bob2_key')) \gset ignored_
reset role;
update core.tenant_api_keys set revoked_at = now() where key_id = :'bob2_id';
set local role app_user;
select throws_ok(format('select * from api.decide_approval(%L, false)', :'orphan_request'), 'PT401', null,
  'a key revoked after its context was signed decides nothing');
reset role;

-- Expiry ------------------------------------------------------------------------------------

update core.approval_requests set expires_at = now() - interval '1 second' where approval_id = :'root_request';
select is((select status from api.approvals where approval_id = :'root_request'), 'expired', 'a request past its time shows expired');
set local role app_user;
select pg_temp.begin_as(pg_temp.hash_of(:'bob_key')) \gset ignored_
select throws_ok(format('select * from api.decide_approval(%L, true)', :'root_request'), 'PT409', null,
  'an expired request can no longer be approved');
reset role;
select is((select settings ->> 'currency' from core.tenant_configs where tenant_id = :'t'), 'USD', '...and changed nothing');

-- Decided once: api.decide_approval reads the request without locking it, so
-- a decision made meanwhile (or the request's expiry) is caught when the
-- request is marked. As the decision's role, past api.decide_approval's checks:
set local role app_user;
select pg_temp.begin_as(pg_temp.hash_of(:'bob_key')) \gset ignored_
set local role tenancy_auth;
select throws_ok(format('select * from core.decide_request(%L, %L, true, %L, %L)', :'t', :'config_request', :'bob_key_id', :'bob'),
  'PT409', 'the request was decided meanwhile, or has expired', 'a request decided meanwhile is not decided again');
select throws_ok(format('select * from core.decide_request(%L, %L, true, %L, %L)', :'t', :'root_request', :'bob_key_id', :'bob'),
  'PT409', 'the request was decided meanwhile, or has expired', 'nor one that expired meanwhile');
reset role;
-- A request that expires while the deciding transaction runs (this one began
-- long before): its expiry is read from the clock.
set local role app_user;
select pg_temp.begin_as(pg_temp.hash_of(:'sibling')) \gset ignored_
select approval ->> 'approval_id' as late_request from api.request_approval('update_tenant_config', '{"settings": {"currency": "SEK"}}') \gset
reset role;
update core.approval_requests set expires_at = clock_timestamp() + interval '100 milliseconds' where approval_id = :'late_request';
select pg_sleep(0.2);
set local role app_user;
select pg_temp.begin_as(pg_temp.hash_of(:'bob_key')) \gset ignored_
select throws_ok(format('select * from api.decide_approval(%L, true)', :'late_request'), 'PT409', 'the request has expired; ask again',
  'a request that expired after the deciding transaction began is not approved');
set local role tenancy_auth;
select throws_ok(format('select * from core.decide_request(%L, %L, true, %L, %L)', :'t', :'late_request', :'bob_key_id', :'bob'),
  'PT409', 'the request was decided meanwhile, or has expired', '...nor marked, past api.decide_approval''s check');
reset role;

-- Operators are not held to the tenant's rule -------------------------------------------------

set local app.context = '';
set local role uber_admin;
select isnt_empty(format($$ select 1 from platform.create_api_key(%L, 'Operator issued', '{*}') $$, :'t'),
  'an operator issues a key that may issue keys at once');
reset role;
set local role app_user;
select throws_ok($$ select * from api.decide_approval(gen_random_uuid(), true) $$, 'PT401', null,
  'without a context nothing is decided');
reset role;

select * from finish();
rollback;
