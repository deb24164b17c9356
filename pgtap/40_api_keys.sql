-- API keys: api.begin_request turns a key hash into the transaction's tenant
-- context, refusing unknown, revoked and expired keys and deactivated tenants
-- (PT401) and keys without the route's permission (PT403). Keys are stored as
-- SHA-256 hashes app_user cannot read, and a key can hand out no more than it
-- holds.
begin;
select plan(58);

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
select tenant_id as tenant_a from platform.create_tenant('Keyholder', 'keys.example.com', 'pro') \gset
select tenant_id as tenant_d from platform.create_tenant('Leaving', 'leaving.example.com') \gset
reset role;

-- The tenant's first users, added as an operator would (no key opens the api yet).
insert into core.users (tenant_id, email, role) values (:'tenant_a', 'owner@keys.example.com', 'tenant_admin')
returning user_id as owner \gset
insert into core.users (tenant_id, email, role) values (:'tenant_a', 'colleague@keys.example.com', 'member')
returning user_id as colleague \gset

set local role uber_admin;
select key_id as key_all, key as secret_all
from platform.create_api_key(:'tenant_a', 'Everything', '{*}', :'owner') \gset
select key_id as key_read, key as secret_read
from platform.create_api_key(:'tenant_a', 'Reader', '{documents:read}') \gset
select key_id as key_granter, key as secret_granter
from platform.create_api_key(:'tenant_a', 'Granter', '{keys:write,documents:read}') \gset
select key_id as key_revoked, key as secret_revoked
from platform.create_api_key(:'tenant_a', 'To revoke', '{documents:read}') \gset
select key_id as key_expiring, key as secret_expiring
from platform.create_api_key(:'tenant_a', 'To expire', '{documents:read}', null, now() + interval '1 hour') \gset
select key_id as key_leaving, key as secret_leaving
from platform.create_api_key(:'tenant_d', 'Leaving tenant', '{*}') \gset
select encode(sha256(convert_to(key, 'UTF8')), 'hex') as hash_short_lived
from platform.create_api_key(:'tenant_a', 'Short-lived', '{keys:write,documents:read}', null, now() + interval '1 hour') \gset
reset role;

\ir lib/context.psql
select encode(sha256(convert_to(:'secret_all', 'UTF8')), 'hex') as hash_all,
       encode(sha256(convert_to(:'secret_read', 'UTF8')), 'hex') as hash_read,
       encode(sha256(convert_to(:'secret_granter', 'UTF8')), 'hex') as hash_granter,
       encode(sha256(convert_to(:'secret_revoked', 'UTF8')), 'hex') as hash_revoked,
       encode(sha256(convert_to(:'secret_expiring', 'UTF8')), 'hex') as hash_expiring,
       encode(sha256(convert_to(:'secret_leaving', 'UTF8')), 'hex') as hash_leaving \gset

-- A valid key sets the context ----------------------------------------------------------

set local role app_user;

select results_eq(
  format($$ select tenant_id, key_id, user_id, permissions
            from api.begin_request(%L, 'documents:read', '11111111-1111-4111-8111-111111111111', 'req-1') $$,
    :'hash_all'),
  format($$ values (%L::uuid, %L::uuid, %L::uuid, core.all_permissions()) $$, :'tenant_a', :'key_all', :'owner'),
  'api.begin_request with a valid key hash returns the key''s tenant, id, user and what it may do (* spelled out)');
select results_eq(
  'select tenant_id, api_key_id, user_id, user_role, permissions, request_id, client_request_id from core.request_context',
  format($$ values (%L::uuid, %L::uuid, %L::uuid, 'tenant_admin'::text, core.all_permissions(),
                    '11111111-1111-4111-8111-111111111111'::uuid, 'req-1'::text) $$, :'tenant_a', :'key_all', :'owner'),
  'api.begin_request signed a context of the key''s tenant, id, user, role and permissions and both request ids');
select is(current_setting('app.tenant_id', true), null,
  'api.begin_request sets no app.tenant_id: the signed app.context is the only context');
select results_eq('select tenant_id from api.current_tenant()', format('values (%L::uuid)', :'tenant_a'),
  'after api.begin_request the api shows the key''s tenant');

select results_eq(
  format($$ select tenant_id, user_id from api.begin_request(%L, 'documents:read', gen_random_uuid(), 'req-2') $$, :'hash_read'),
  format($$ values (%L::uuid, null::uuid) $$, :'tenant_a'),
  'a key bound to no user authenticates with no user');
select ok((select user_id from core.request_context) is null,
  'after a key bound to no user, the acting user is unset rather than left over from the previous request');

-- Refusals: PT401 ------------------------------------------------------------------------

select throws_ok(format($$ select * from api.begin_request(%L, null, gen_random_uuid(), 'req-x') $$, repeat('0', 64)), 'PT401',
  'unknown, revoked or expired API key', 'an unknown key hash is refused with PT401');
select throws_ok(format($$ select * from api.begin_request(%L, null, gen_random_uuid(), 'req-x') $$, :'secret_all'), 'PT401',
  'unknown, revoked or expired API key', 'the plain key in place of its hash is refused with PT401');
select throws_ok($$ select * from api.begin_request(null, null, gen_random_uuid()) $$, 'PT401',
  'unknown, revoked or expired API key', 'a NULL key hash is refused with PT401');

-- A key row is found through its hash's claim (core.api_key_hashes), and its
-- own hash is compared again: a key a superuser wrote without a claim, and a
-- claim naming a key whose hash differs, authenticate nothing.
reset role;
insert into core.tenant_api_keys (tenant_id, key_hash, key_prefix, name, permissions)
values (:'tenant_a', repeat('e', 64), 'tnk_unclaim', 'Unclaimed', '{*}') returning key_id as key_unclaimed \gset
insert into core.api_key_hashes (key_hash, tenant_id, key_id) values (repeat('f', 64), :'tenant_a', :'key_unclaimed');
set local role app_user;
select throws_ok(format($$ select * from api.begin_request(%L, null, gen_random_uuid(), 'req-x') $$, repeat('e', 64)), 'PT401',
  'unknown, revoked or expired API key', 'a key whose hash is claimed by no row of core.api_key_hashes is refused with PT401');
select throws_ok(format($$ select * from api.begin_request(%L, null, gen_random_uuid(), 'req-x') $$, repeat('f', 64)), 'PT401',
  'unknown, revoked or expired API key', 'a claimed hash whose key has another hash is refused with PT401');

select lives_ok(format($$ select * from api.begin_request(%L, null, gen_random_uuid(), 'req-3') $$, :'hash_revoked'),
  'a key authenticates before it is revoked');
select pg_temp.begin_as(:'hash_all') \gset ignored_
select results_eq(format('select key_id from api.revoke_api_key(%L)', :'key_revoked'),
  format('values (%L::uuid)', :'key_revoked'), 'the tenant revokes its key through api.revoke_api_key');
select throws_ok(format($$ select * from api.begin_request(%L, null, gen_random_uuid(), 'req-4') $$, :'hash_revoked'), 'PT401',
  'unknown, revoked or expired API key', 'a revoked key is refused with PT401');

select lives_ok(format($$ select * from api.begin_request(%L, null, gen_random_uuid(), 'req-5') $$, :'hash_expiring'),
  'a key whose expiry is in the future authenticates');
reset role;
update core.tenant_api_keys set expires_at = now() where key_id = :'key_expiring';
set local role app_user;
select throws_ok(format($$ select * from api.begin_request(%L, null, gen_random_uuid(), 'req-6') $$, :'hash_expiring'), 'PT401',
  'unknown, revoked or expired API key', 'a key that expires at this very moment is refused with PT401');
reset role;
update core.tenant_api_keys set expires_at = now() - interval '1 day' where key_id = :'key_expiring';
set local role app_user;
select throws_ok(format($$ select * from api.begin_request(%L, null, gen_random_uuid(), 'req-7') $$, :'hash_expiring'), 'PT401',
  'unknown, revoked or expired API key', 'an expired key is refused with PT401');

select lives_ok(format($$ select * from api.begin_request(%L, null, gen_random_uuid(), 'req-8') $$, :'hash_leaving'),
  'a key of an active tenant authenticates');
reset role;
set local role uber_admin;
select results_eq(format('select deactivated_at is not null from platform.deactivate_tenant(%L)', :'tenant_d'),
  'values (true)', 'the platform operator deactivates the tenant');
select throws_ok(format($$ select * from platform.create_api_key(%L, 'Late', '{*}') $$, :'tenant_d'), 'P0002', null,
  'no new key can be issued for a deactivated tenant');
reset role;
set local role app_user;
select throws_ok(format($$ select * from api.begin_request(%L, null, gen_random_uuid(), 'req-9') $$, :'hash_leaving'), 'PT401',
  'unknown, revoked or expired API key', 'a key of a deactivated tenant is refused with PT401 at once');

-- Refusals: PT403 ------------------------------------------------------------------------

select lives_ok(format($$ select * from api.begin_request(%L, 'documents:read', gen_random_uuid(), 'req-10') $$, :'hash_read'),
  'a key holding documents:read may read documents');
select throws_ok(format($$ select * from api.begin_request(%L, 'documents:write', gen_random_uuid(), 'req-11') $$, :'hash_read'), 'PT403',
  'the API key lacks the permission documents:write', 'a key without documents:write is refused with PT403');
select lives_ok(format($$ select * from api.begin_request(%L, null, gen_random_uuid(), 'req-12') $$, :'hash_read'),
  'a route needing no permission accepts any valid key');
select lives_ok(
  format($$ select * from unnest(array['users:read', 'users:write', 'documents:read', 'documents:write', 'keys:read',
              'keys:write', 'audit:read', 'config:read', 'config:write']) as p,
            lateral api.begin_request(%L, p, gen_random_uuid(), 'req-13') $$, :'hash_all'),
  'a key holding * passes every permission check');

-- app_user never sees a key hash -----------------------------------------------------------

select throws_ok('select key_hash from core.tenant_api_keys', '42501', 'permission denied for table tenant_api_keys',
  'app_user cannot read key_hash');
select throws_ok(format($$ select key_id from core.tenant_api_keys where key_hash = %L $$, :'hash_all'), '42501',
  'permission denied for table tenant_api_keys', 'app_user cannot even filter on key_hash to probe for a hash');
select throws_ok('select * from core.tenant_api_keys', '42501', 'permission denied for table tenant_api_keys',
  'app_user cannot select every column of core.tenant_api_keys, since key_hash is among them');
select isnt_empty('select key_id, key_prefix, permissions from core.tenant_api_keys',
  'app_user can read the other columns of its tenant''s keys');
select throws_ok($$ update core.tenant_api_keys set key_hash = repeat('0', 64) $$, '42501',
  'permission denied for table tenant_api_keys', 'app_user cannot overwrite a key hash');
select hasnt_column('api', 'api_keys', 'key_hash', 'api.api_keys does not expose key_hash');
reset role;
set local role uber_admin;
select throws_ok('select key_hash from core.tenant_api_keys', '42501', 'permission denied for table tenant_api_keys',
  'uber_admin cannot read key_hash either');
reset role;

-- A key grants no more than it holds ---------------------------------------------------------

set local role app_user;
select lives_ok(format($$ select * from api.begin_request(%L, 'keys:write', gen_random_uuid(), 'req-20') $$, :'hash_granter'),
  'the granting key (keys:write, documents:read) authenticates');
select key as issued_secret, key_id as issued_key, key_prefix as issued_prefix
from api.create_api_key('Issued reader', '{documents:read}') \gset
select results_eq(format('select permissions from api.api_keys where key_id = %L', :'issued_key'),
  $$ values ('{documents:read}'::text[]) $$,
  'a key may issue a key with a subset of its own permissions, and the new key holds just those');
select lives_ok(format($$ select * from api.create_api_key('Issued twin', '{keys:write,documents:read}') $$),
  'a key may issue a key with exactly its own permissions');
select throws_ok(format($$ select * from api.create_api_key('Escalated', '{*}') $$), 'PT403',
  'a key can only grant permissions it holds itself', 'a key cannot issue a key holding *');
select throws_ok(format($$ select * from api.create_api_key('Escalated', '{documents:read,documents:write}') $$), 'PT403',
  'a key can only grant permissions it holds itself', 'a key cannot issue a key with a permission it lacks');
select throws_ok($$ select * from api.create_api_key('Past', '{documents:read}', null, now() - interval '1 minute') $$,
  '23514', 'expires_at must be in the future', 'a key cannot be issued already expired');
select lives_ok(format($$ select * from api.begin_request(%L, 'keys:write', gen_random_uuid(), 'req-21') $$, :'hash_all'),
  'the key holding * authenticates');
select lives_ok($$ select * from api.create_api_key('Admin', '{*}') $$,
  'a key holding * may issue a key holding *');
select throws_ok(format($$ select * from api.create_api_key('Someone else', '{*}', %L) $$, :'colleague'),
  'PT403', 'a key bound to a user can only issue keys bound to that user',
  'a key bound to a user cannot issue a key bound to anyone else');
select results_eq($$ select user_id from api.create_api_key('Inherits user', '{*}') $$,
  format('values (%L::uuid)', :'owner'), 'a key issued by a user-bound key is bound to the same user');
select lives_ok(format($$ select * from api.begin_request(%L, 'documents:read', gen_random_uuid(), 'req-22') $$, :'hash_short_lived'),
  'a key that expires in an hour authenticates');
select throws_ok($$ select * from api.create_api_key('Outlives', '{documents:read}', null, now() + interval '2 hours') $$,
  'PT403', 'a key that expires can only issue keys that expire no later',
  'a key that expires in an hour cannot issue a key that expires in two');
select pg_temp.begin_as(:'hash_all') \gset ignored_
select set_config('app.context', replace(current_setting('app.context'), :'tenant_a', :'tenant_d'), true) \gset ignored_
select throws_ok($$ select * from api.create_api_key('Forged', '{*}') $$,
  'PT401', 'unknown, revoked or expired API key',
  'a signed context whose tenant is changed to another tenant''s is no context: no key is issued there');
select is((select count(*)::int from core.tenant_api_keys where tenant_id = :'tenant_d' and name = 'Forged'), 0,
  '...and the other tenant holds no key of that name');

-- The issued key: shown once, stored as its hash only ----------------------------------------

select matches(:'issued_secret'::text, '^tnk_[A-Za-z0-9_-]{43}$',
  'an issued key is tnk_ followed by 256 random bits in base64url');
select is(:'issued_prefix'::text, left(:'issued_secret', 12), 'the stored prefix is the first 12 characters of the key');
select hasnt_column('api', 'api_keys', 'key', 'api.api_keys has no column holding a key');
select results_eq(
  format($$ select key_id from api.begin_request(encode(sha256(convert_to(%L, 'UTF8')), 'hex'), 'documents:read', gen_random_uuid()) $$,
    :'issued_secret'),
  format('values (%L::uuid)', :'issued_key'),
  'the issued key authenticates by its SHA-256 hash');
reset role;

select is((select key_hash from core.tenant_api_keys where key_id = :'issued_key'),
  encode(sha256(convert_to(:'issued_secret', 'UTF8')), 'hex'),
  'the stored key_hash is the lower-case hex SHA-256 of the key');

-- Every table in core, searched for the plain key.
create function pg_temp.tables_containing(p_needle text) returns text[]
language plpgsql stable
as $$
declare
  v_rel regclass;
  v_found text[] := '{}';
  v_hit boolean;
begin
  for v_rel in
    select c.oid::regclass from pg_class c join pg_namespace n on n.oid = c.relnamespace
    -- A partition's rows are its parent's: the parent's search covers them.
    where n.nspname = 'core' and c.relkind in ('r', 'p') and not c.relispartition
    order by c.oid::regclass::text
  loop
    execute format('select exists (select from %s t where strpos(to_jsonb(t)::text, $1) > 0)', v_rel)
      into v_hit using p_needle;
    if v_hit then
      v_found := v_found || v_rel::text;
    end if;
  end loop;
  return v_found;
end
$$;
select is(pg_temp.tables_containing(:'issued_secret'), '{}'::text[],
  'no column of any table in core contains the plain key');
select is(pg_temp.tables_containing(:'issued_prefix'), array['core.audit_logs', 'core.tenant_api_keys'],
  'the search does find the stored prefix, in the key row and its audit entry, so it would find the key too');

select isnt(:'issued_secret'::text, :'secret_read'::text, 'two issued keys differ');

-- More than the shape: 32 random bytes per key. Twenty keys hold 5,120 bits;
-- random bits count about 2,560 ones (standard deviation 36); the bounds sit
-- six deviations away, so a working generator fails this about once in a
-- billion runs, and a constant, a counter or a low-entropy source far more.
set local role uber_admin;
create temp table sampled_keys as
  select decode(translate(substr(key, 5), '-_', '+/') || '=', 'base64') as secret_bytes
  from generate_series(1, 20) as g, lateral platform.create_api_key(:'tenant_a', 'Sample ' || g, '{documents:read}');
reset role;
select results_eq(
  'select count(*)::int, count(distinct secret_bytes)::int, min(octet_length(secret_bytes)), max(octet_length(secret_bytes)) from sampled_keys',
  'values (20, 20, 32, 32)',
  'twenty issued keys decode to twenty different 32-byte secrets');
select ok((select sum(bit_count(secret_bytes)) from sampled_keys) between 2345 and 2775,
  'the 5,120 bits of twenty issued keys hold about as many ones as zeros, as random bits do');


-- Revocation is final ---------------------------------------------------------------------

reset role;
update core.tenant_api_keys set revoked_at = coalesce(revoked_at, now()) where key_id = :'key_revoked';
select throws_ok(format('update core.tenant_api_keys set revoked_at = null where key_id = %L', :'key_revoked'),
  '42501', 'a revoked API key stays revoked', 'not even the owner can clear revoked_at: a revoked key never works again');
set local role app_user;
select pg_temp.begin_as(:'hash_all') \gset ignored_
select throws_ok(format('update core.tenant_api_keys set name = %L where key_id = %L', 'Renamed', :'key_read'),
  '42501', 'permission denied for table tenant_api_keys', 'app_user may change only revoked_at of a key, not its name');
reset role;

select * from finish();
rollback;
