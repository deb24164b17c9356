-- Named platform operators, from the side of someone holding the uber_admin
-- password: with no operator credential they change nothing; each
-- operator's changes carry its id in the trail; a revoked credential stops
-- at once; the first operator is bootstrapped only while none is active;
-- the last one cannot be revoked; credentials are stored as hashes that
-- uber_admin cannot read. The suite runs with session_user = uber_admin
-- where the rule depends on it, as the service's admin pool does.
begin;
select plan(40);

grant execute on all functions in schema public to app_user, uber_admin, tenancy_writer;
do $$ begin execute format('grant temporary on database %I to app_user, uber_admin, tenancy_writer', current_database()); end $$;

create function pg_temp.hash_of(p_token text) returns text
language sql immutable
as $$ select encode(sha256(convert_to(p_token, 'UTF8')), 'hex') $$;
grant execute on function pg_temp.hash_of(text) to uber_admin;

-- Whatever operators earlier suites left are not this suite's.
delete from core.platform_idempotency_keys;
update core.platform_operators set revoked_at = now() where revoked_at is null;

set local session authorization uber_admin;

-- Bootstrap ---------------------------------------------------------------------------

select is(platform.bootstrap_operator(pg_temp.hash_of('bootstrap-token-0123456789abcdef')), true,
  'while no operator is active, the bootstrap token creates the operator "bootstrap"');
select is(platform.bootstrap_operator(pg_temp.hash_of('another-token-0123456789abcdef')), false,
  'once an operator is active, bootstrapping creates nothing');
select is((select count(*)::int from platform.operators where revoked_at is null), 1,
  'there is exactly one active operator');
select results_eq(
  $$ select o.name, a.operator_id = o.operator_id, a.details ? 'new' and not a.details::text like '%token_hash%'
     from platform.operators o
     join core.audit_logs a on a.resource_id = o.operator_id and a.resource_type = 'platform_operators'
     where o.revoked_at is null $$,
  $$ values ('bootstrap'::text, true, true) $$,
  'the bootstrap operator''s creation is in the trail, attributed to itself, without the token hash');
select is((select tenant_id from core.audit_logs where resource_type = 'platform_operators' limit 1),
  '00000000-0000-0000-0000-000000000000'::uuid,
  'operators'' changes are filed in the Platform tenant''s trail');

-- No operator, no change ----------------------------------------------------------------

select throws_ok($$ select * from platform.create_tenant('No operator', null, 'free', 'Fintech Template') $$,
  'PT401', 'a platform change needs a named, active operator (platform.begin_request)',
  'uber_admin without an operator context cannot create a tenant');
select throws_ok($$ select * from platform.create_operator('Sneaky') $$,
  'PT401', 'a platform change needs a named operator',
  'nor create an operator');
select throws_ok($$ update core.tenants set name = name $$,
  'PT401', 'a platform change needs a named, active operator (platform.begin_request)',
  'nor make an update that changes nothing audited');
select throws_ok($$ select 1 from core.platform_idempotency_keys $$, '42501', null,
  'nor read the platform''s Idempotency-Keys, which it could otherwise plant or delete: only its functions do');
select throws_ok($$ delete from core.platform_idempotency_keys $$, '42501', null,
  '...or delete them');
select throws_ok($$ insert into core.tenant_domains (domain, tenant_id) values ('squat.example', gen_random_uuid()) $$,
  '42501', null, 'nor claim a domain in the registry itself, apart from any tenant''s row');
select throws_ok($$ delete from core.tenant_domains $$, '42501', null, '...or release another tenant''s claim');
select throws_ok($$ update core.tenants set domain = 'squat.example' $$, '42501', null,
  '...or write a tenant''s domain past core.set_tenant_domain');
select throws_ok(format($$ select core.set_tenant_domain(%L, 'squat.example') $$, '00000000-0000-0000-0000-000000000000'),
  'PT401', 'a platform change needs a named, active operator (platform.begin_request)',
  'nor give a tenant a domain without an operator context');
select throws_ok($$ select platform.begin_request(pg_temp.hash_of('wrong-token'), gen_random_uuid()) $$,
  'PT401', 'unknown or revoked operator credential',
  'an unknown operator credential authenticates nothing');
select throws_ok($$ select * from platform.claim_idempotency_key('no-operator', repeat('c', 64)) $$,
  'PT401', 'a platform change needs a named operator',
  'nor claim an Idempotency-Key');
-- Every other function that changes anything asks first whether its operator
-- is still active, on the node it runs on: on Citus the trail's trigger runs
-- on a worker, over a connection that does not see an operator revoked
-- earlier in the transaction through the registry's (migration
-- 20261203000200). begin_request and bootstrap_operator make the operator;
-- the Idempotency-Key pair writes nothing audited, and a response is stored
-- only under a claim, refused above without an operator.
select is(
  array(select p.oid::regprocedure::text from pg_proc p
        where p.pronamespace = 'platform'::regnamespace and p.provolatile = 'v'
          and p.proname not in ('begin_request', 'bootstrap_operator', 'claim_idempotency_key', 'save_idempotent_response')
          and p.prosrc !~ '\mperform core\.require_active_operator\(\);'
        order by 1),
  '{}'::text[],
  'every platform function that changes anything calls core.require_active_operator');

-- Two operators, told apart ----------------------------------------------------------------

select operator_id as bootstrap_id from platform.begin_request(pg_temp.hash_of('bootstrap-token-0123456789abcdef'),
  gen_random_uuid(), 'ops-1') \gset
select throws_ok(format($$ select core.set_tenant_domain(%L, 'platform.example') $$, '00000000-0000-0000-0000-000000000000'),
  '23514', 'the Platform tenant has no domain',
  'not even an operator gives the Platform tenant a domain, which no listing would show');
select operator_id as alice_id, token as alice_token from platform.create_operator('alice@ops.example') \gset
select operator_id as bob_id, token as bob_token from platform.create_operator('bob@ops.example') \gset
select matches(:'alice_token'::text, '^tnop_[A-Za-z0-9_-]{43}$', 'an operator credential is tnop_ and 256 random bits');
select is((select count(*)::int from core.audit_logs where resource_type = 'platform_operators'
           and resource_id in (:'alice_id', :'bob_id') and operator_id = :'bootstrap_id'), 2,
  'creating two operators left two entries naming the bootstrap operator');
select throws_ok($$ select * from platform.create_operator('Alice@ops.example') $$, '23505', null,
  'two active operators cannot share a name, whatever its case');

select operator_id from platform.begin_request(pg_temp.hash_of(:'alice_token'), gen_random_uuid(), 'alice-1')
  \gset ignored_
select tenant_id as tenant_a from platform.create_tenant('Alice''s tenant', null, 'pro', 'Fintech Template') \gset
select operator_id from platform.begin_request(pg_temp.hash_of(:'bob_token'), gen_random_uuid(), 'bob-1')
  \gset ignored_
select tenant_id from platform.update_tenant(:'tenant_a', p_name => 'Renamed by Bob') \gset ignored_
select results_eq(
  format($$ select action, operator_id, client_request_id from core.audit_logs
            where tenant_id = %L and resource_type = 'tenants' order by "timestamp", action $$, :'tenant_a'),
  format($$ values ('insert'::text, %L::uuid, 'alice-1'::text), ('update', %L::uuid, 'bob-1') $$,
    :'alice_id', :'bob_id'),
  'the trail tells Alice''s tenant creation from Bob''s rename: each entry names its operator');
select is((select count(*)::int from core.audit_logs where tenant_id = :'tenant_a' and operator_id is null), 0,
  'no entry of the platform''s changes lacks an operator');

-- Idempotency-Keys are per operator ------------------------------------------------------

select operator_id from platform.begin_request(pg_temp.hash_of(:'alice_token'), gen_random_uuid()) \gset ignored_
select is((select claimed from platform.claim_idempotency_key('same-key', repeat('a', 64))), true,
  'Alice claims an Idempotency-Key');
select platform.save_idempotent_response('same-key', 201, '{"by": "alice"}') \gset ignored_
select operator_id from platform.begin_request(pg_temp.hash_of(:'bob_token'), gen_random_uuid()) \gset ignored_
select is((select claimed from platform.claim_idempotency_key('same-key', repeat('b', 64))), true,
  'Bob claims the same Idempotency-Key for himself: Alice''s stored response is not replayed to him');

-- Revocation ---------------------------------------------------------------------------

-- A context verifies for up to 30 s; a revocation in the meantime binds it.
select operator_id from platform.begin_request(pg_temp.hash_of(:'alice_token'), gen_random_uuid()) \gset ignored_
savepoint revoked_meanwhile;
reset session authorization;
update core.platform_operators set revoked_at = now() where operator_id = :'alice_id';
set local session authorization uber_admin;
select throws_ok($$ select * from platform.create_operator('mallory@ops.example') $$,
  'PT401', 'a platform change needs a named operator',
  'an operator revoked after its request began creates no operator in that request');
select throws_ok(format($$ select * from platform.create_api_key(%L, 'Persistence', '{*}') $$, :'tenant_a'),
  'PT401', null, '...issues no key');
select throws_ok(format($$ update core.tenants set name = 'Taken' where tenant_id = %L $$, :'tenant_a'),
  'PT401', 'a platform change needs a named, active operator (platform.begin_request)',
  '...and changes no row');
rollback to savepoint revoked_meanwhile;

select operator_id from platform.begin_request(pg_temp.hash_of(:'bob_token'), gen_random_uuid()) \gset ignored_
select results_eq(format($$ select operator_id from platform.revoke_operator(%L) $$, :'alice_id'),
  format($$ values (%L::uuid) $$, :'alice_id'),
  'Bob revokes Alice');
select throws_ok(format($$ select platform.begin_request(%L, gen_random_uuid()) $$, pg_temp.hash_of(:'alice_token')),
  'PT401', 'unknown or revoked operator credential',
  'Alice''s credential authenticates nothing from then on');
select is((select revoked_by from platform.operators where operator_id = :'alice_id'), :'bob_id'::uuid,
  'the revocation names who revoked');
select operator_id from platform.begin_request(pg_temp.hash_of('bootstrap-token-0123456789abcdef'), gen_random_uuid())
  \gset ignored_
select operator_id from platform.revoke_operator(:'bootstrap_id') \gset ignored_
select operator_id from platform.begin_request(pg_temp.hash_of(:'bob_token'), gen_random_uuid()) \gset ignored_
select throws_ok(format($$ select * from platform.revoke_operator(%L) $$, :'bob_id'),
  'PT409', 'the last active operator cannot be revoked; create another first',
  'the last active operator cannot be revoked, so the platform is never locked out');
select is(platform.bootstrap_operator(pg_temp.hash_of('bootstrap-token-0123456789abcdef')), false,
  'the revoked bootstrap credential does not come back by bootstrapping');
select is(platform.bootstrap_operator(pg_temp.hash_of('a-fresh-token-while-bob-is-active')), false,
  'nor does a new token bootstrap anyone while a named operator is active');
reset session authorization;
select throws_ok($$ update core.platform_operators set revoked_at = null where name = 'bootstrap' $$,
  '42501', 'a revoked operator stays revoked',
  'not even the owner can clear an operator''s revoked_at');
update core.platform_operators set revoked_at = now() where revoked_at is null;
select is(platform.bootstrap_operator(pg_temp.hash_of('bootstrap-token-0123456789abcdef')), false,
  'with every operator revoked, the old bootstrap credential still creates nothing');
select is(platform.bootstrap_operator(pg_temp.hash_of('new-bootstrap-token-0123456789')), true,
  'with every operator revoked, a new bootstrap credential creates the operator again (recovery)');

-- Credentials are hashes nobody but tenancy_auth reads ----------------------------------

set local role uber_admin;
select throws_ok($$ select token_hash from core.platform_operators $$, '42501', null,
  'uber_admin cannot read operators'' credential hashes');
reset role;
set local role app_user;
select throws_ok($$ select name from core.platform_operators $$, '42501', null,
  'app_user cannot read the operators at all');
reset role;
select is(
  (select count(*)::int from core.platform_operators where token_hash !~ '^[0-9a-f]{64}$' or token_hash like 'tnop_%'),
  0, 'every stored credential is a SHA-256 hash, never the credential itself');

select * from finish();
rollback;
