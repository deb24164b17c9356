-- Audit trail: every insert, update and delete through the api writes exactly
-- one entry naming the action, the resource and the actor (user, API key,
-- request) of the request; details never carry a key hash; and nobody, the
-- superuser owner included, can rewrite or remove an entry.
begin;
select plan(44);

-- The chain's head moves when a transaction commits (a deferred trigger);
-- this suite never commits, so it moves at the end of each statement.
set constraints core.advance_chain_head immediate;

-- pgTAP is installed by the superuser after `alter default privileges revoke
-- execute on functions from public`, so its functions are not executable by
-- the roles the suites switch to. Granted for this transaction only.
grant execute on all functions in schema public to app_user, uber_admin, tenancy_writer;
-- pgTAP's set and result comparisons build temporary tables as the role that
-- runs them, and the runtime roles have no TEMPORARY privilege (checked by
-- 10_rls_invariants and 15_definer_hijack, which do without it): lent to
-- them for this transaction only.
do $$ begin execute format('grant temporary on database %I to app_user, uber_admin, tenancy_writer', current_database()); end $$;

-- Every tenant-scoped table is audited ------------------------------------------

\ir lib/audit_partitions.psql

create temp view tenant_tables as
  select c.oid, c.oid::regclass::text as tab
  from pg_class c join pg_namespace n on n.oid = c.relnamespace
  where c.relkind in ('r', 'p')
    and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname !~ '^pg_(toast|temp)'
    and exists (select from pg_attribute a where a.attrelid = c.oid and a.attname = 'tenant_id' and not a.attisdropped);

-- Exempt: the trail itself, and its partitions; core.idempotency_keys, whose rows are request
-- bookkeeping rather than business data (its migration says so): the write an
-- idempotency key protects is audited itself; and core.api_key_usage, which
-- holds only last_used_at, a column never audited (a use of a key changes
-- nothing; shown below: recording a use writes no entry); and
-- core.audit_chain_heads, the trail's own position, which only the chaining
-- of an audit row moves (pgtap/32_audit_chain.sql shows every head equal to
-- its tenant's last row); and core.tenant_usage, counts that the audited
-- writes of documents, users and keys move and nothing else (shown in
-- pgtap/46_plans_and_quotas.sql: the counts equal the rows); and
-- core.request_windows, how much of a minute's request budget service
-- processes leased, which changes nothing a tenant owns and is written only
-- by api.lease_requests (pgtap/48_rate_limits.sql); and the registries
-- core.tenant_domains and core.api_key_hashes, which repeat what the audited
-- core.tenants and core.tenant_api_keys hold (shown at the end: each claim
-- is of a value its audited row carries). A new table is audited
-- unless it is added here, with its reason.
-- tgtype bits: 1 row, 2 before, 4 insert, 8 delete, 16 update.
select is(
  array(select tab from tenant_tables t
        where t.tab not in ('core.audit_logs', 'core.idempotency_keys', 'core.api_key_usage', 'core.audit_chain_heads',
                            'core.tenant_usage', 'core.request_windows', 'core.tenant_domains', 'core.api_key_hashes')
          and not pg_temp.is_audit_partition(t.oid)
          and not exists (select from pg_trigger g
                          where g.tgrelid = t.oid and g.tgfoid = 'core.record_audit'::regproc
                            and g.tgtype & 1 = 1 and g.tgtype & 2 = 0 and g.tgtype & 28 = 28
                            and g.tgenabled in ('O', 'A'))
        order by 1),
  '{}'::text[],
  'every tenant-scoped table but the exempt ones has an enabled AFTER INSERT OR UPDATE OR DELETE row trigger running core.record_audit');
select is(
  array(select format('%s names %s', t.tab, arg)
        from tenant_tables t
        join pg_trigger g on g.tgrelid = t.oid and g.tgfoid = 'core.record_audit'::regproc
        cross join lateral (select (string_to_array(encode(g.tgargs, 'escape'), '\000'))[1] as arg) a
        join pg_index i on i.indrelid = t.oid and i.indisprimary
        where not exists (select from pg_attribute att
                          where att.attrelid = t.oid and att.attname = a.arg
                            and att.attnum = any (string_to_array(i.indkey::text, ' ')::int2[]))
        order by 1),
  '{}'::text[],
  'every record_audit trigger takes the resource id from a primary-key column of its table');
select is(
  array(select format('%s names %s', g.tgrelid::regclass, encode(g.tgargs, 'escape')) from pg_trigger g
        where g.tgfoid = 'core.record_audit'::regproc
          and (string_to_array(encode(g.tgargs, 'escape'), '\000'))[2] is distinct from (select relname::text from pg_class where oid = g.tgrelid)
        order by 1),
  '{}'::text[],
  'every record_audit trigger names its own table as the resource type (on a Citus shard tg_table_name names the shard)');

-- Fixtures ---------------------------------------------------------------------------

set local role uber_admin;
select tenant_id as tenant_a from platform.create_tenant('Audited', 'audited.example.com', 'enterprise') \gset
reset role;

select bag_eq(
  format($$ select action, resource_type, user_id, api_key_id, client_request_id from core.audit_logs
            where tenant_id = %L and resource_id = %L $$, :'tenant_a', :'tenant_a'),
  $$ values ('insert'::text, 'tenants'::text, null::uuid, null::uuid, null::text),
            ('update', 'tenants', null, null, null), ('insert', 'tenant_configs', null, null, null) $$,
  'provisioning a tenant audits the tenant, the domain it is given (core.set_tenant_domain) and its configuration, with no API key as actor');
select is(
  (select a.details -> 'new' from core.audit_logs a
   where a.tenant_id = :'tenant_a' and a.resource_id = :'tenant_a' and a.action = 'update'),
  '{"domain": "audited.example.com"}'::jsonb,
  'the update records the domain, and nothing else');

-- The tenant's first user, added as an operator would (no key opens the api yet).
insert into core.users (tenant_id, email, role) values (:'tenant_a', 'admin@audited.example.com', 'tenant_admin')
returning user_id as actor \gset
set local role uber_admin;
select key_id as actor_key, key as actor_secret
from platform.create_api_key(:'tenant_a', 'Audit actor', '{*}', :'actor') \gset
reset role;
\ir lib/context.psql
select pg_temp.hash_of(:'actor_secret') as actor_hash \gset
select count(*) as audit_before from core.audit_logs \gset

-- Mutations through the api, each in its own "request" --------------------------------

set local role app_user;
select tenant_id from api.begin_request(:'actor_hash', 'users:write', gen_random_uuid(), 'req-01') \gset ignored_
select user_id as erin from api.create_user('erin@audited.example.com') \gset
select tenant_id from api.begin_request(:'actor_hash', 'users:write', gen_random_uuid(), 'req-02') \gset ignored_
select user_id from api.update_user(:'erin', p_role => 'viewer') \gset ignored_
select tenant_id from api.begin_request(:'actor_hash', 'users:write', gen_random_uuid(), 'req-03') \gset ignored_
select user_id from api.delete_user(:'erin') \gset ignored_
select tenant_id from api.begin_request(:'actor_hash', 'documents:write', gen_random_uuid(), 'req-04') \gset ignored_
select document_id as doc from api.create_document(:'actor', 'Quarterly report', repeat('a', 64)) \gset
select tenant_id from api.begin_request(:'actor_hash', 'documents:write', gen_random_uuid(), 'req-05') \gset ignored_
select document_id from api.update_document(:'doc', p_title => 'Quarterly report (final)') \gset ignored_
select tenant_id from api.begin_request(:'actor_hash', 'documents:write', gen_random_uuid(), 'req-06') \gset ignored_
select document_id from api.delete_document(:'doc') \gset ignored_
select tenant_id from api.begin_request(:'actor_hash', 'config:write', gen_random_uuid(), 'req-07') \gset ignored_
select tenant_id from api.update_tenant_config('{"currency": "CHF"}') \gset ignored_
select tenant_id from api.begin_request(:'actor_hash', 'keys:write', gen_random_uuid(), 'req-08') \gset ignored_
select key_id as issued_key, key as issued_secret from api.create_api_key('Reporting', '{documents:read}') \gset
select tenant_id from api.begin_request(:'actor_hash', 'keys:write', gen_random_uuid(), 'req-09') \gset ignored_
select key_id from api.revoke_api_key(:'issued_key') \gset ignored_
-- Recording key use changes only last_used_at, which is not audited.
select tenant_id from api.begin_request(:'actor_hash', null, gen_random_uuid(), 'req-10') \gset ignored_
select api.touch_api_key(:'actor_hash') \gset ignored_
reset role;

-- One entry per mutation, with the request's actor ----------------------------------------

select is((select count(*) from core.audit_logs) - :audit_before, 9::bigint,
  'nine mutations through the api wrote exactly nine audit entries');
select is(
  array(select distinct tenant_id from core.audit_logs where "timestamp" = now()),
  array[:'tenant_a'::uuid],
  'every audit entry written in this transaction belongs to the tenant whose row changed');
select results_eq(
  format($$ select count(*)::int, count(distinct request_id)::int, count(*) filter (where request_id::uuid is not null)::int
            from core.audit_logs where tenant_id = %L and client_request_id like 'req-%%' $$, :'tenant_a'),
  'values (9, 9, 9)',
  'each entry also carries the request id the service assigned (a UUID, one per request), beside the client''s');

select bag_eq(
  format('select action, resource_type, user_id, api_key_id, client_request_id from core.audit_logs where resource_id = %L',
    :'erin'),
  format($$ values ('insert'::text, 'users'::text, %1$L::uuid, %2$L::uuid, 'req-01'::text),
                   ('update', 'users', %1$L, %2$L, 'req-02'),
                   ('delete', 'users', %1$L, %2$L, 'req-03') $$, :'actor', :'actor_key'),
  'creating, updating and deleting a user each wrote one entry with the acting user, key and request id');
select bag_eq(
  format('select action, resource_type, user_id, api_key_id, client_request_id from core.audit_logs where resource_id = %L',
    :'doc'),
  format($$ values ('insert'::text, 'documents'::text, %1$L::uuid, %2$L::uuid, 'req-04'::text),
                   ('update', 'documents', %1$L, %2$L, 'req-05'),
                   ('delete', 'documents', %1$L, %2$L, 'req-06') $$, :'actor', :'actor_key'),
  'creating, updating and deleting a document each wrote one entry with the acting user, key and request id');
select bag_eq(
  format($$ select action, resource_type, user_id, api_key_id, client_request_id from core.audit_logs
            where resource_id = %L and client_request_id is not null $$, :'tenant_a'),
  format($$ values ('update'::text, 'tenant_configs'::text, %1$L::uuid, %2$L::uuid, 'req-07'::text) $$,
    :'actor', :'actor_key'),
  'updating the tenant configuration wrote one entry, keyed by the tenant id');
select bag_eq(
  format('select action, resource_type, user_id, api_key_id, client_request_id from core.audit_logs where resource_id = %L',
    :'issued_key'),
  format($$ values ('insert'::text, 'tenant_api_keys'::text, %1$L::uuid, %2$L::uuid, 'req-08'::text),
                   ('update', 'tenant_api_keys', %1$L, %2$L, 'req-09') $$, :'actor', :'actor_key'),
  'issuing and revoking an API key each wrote one entry with the acting user, key and request id');
select is_empty(format($$ select 1 from core.audit_logs where client_request_id = 'req-10' $$),
  'recording the use of a key (only last_used_at changes) wrote no entry');
select isnt((select last_used_at from core.api_key_usage where key_id = :'actor_key'), null,
  '...although api.touch_api_key did record the use');

-- What the details say -----------------------------------------------------------------

select results_eq(
  format($$ select details -> 'changed', details #>> '{old,role}', details #>> '{new,role}' from core.audit_logs
            where resource_id = %L and action = 'update' $$, :'erin'),
  $$ values ('["role"]'::jsonb, 'member'::text, 'viewer'::text) $$,
  'an update entry lists the changed columns with their old and new values');
select results_eq(
  format($$ select details #>> '{old,title}', details ? 'new' from core.audit_logs
            where resource_id = %L and action = 'delete' $$, :'doc'),
  $$ values ('Quarterly report (final)'::text, false) $$,
  'a delete entry keeps the old values of the row and has no new ones');
select ok(
  (select details ? 'db_role' from core.audit_logs where resource_id = :'doc' and action = 'insert'),
  'an entry records the database role that made the change');

select is(
  (select count(*)::int from core.audit_logs where resource_id = :'issued_key' and action = 'insert'
     and details #>> '{new,key_prefix}' is not null),
  1,
  'the entry for an issued key records its audited columns (key_prefix among them)');
select is(
  (select count(*)::int from core.audit_logs where resource_id = :'issued_key' and details::text like '%key_hash%'),
  0,
  'no entry for the issued key mentions key_hash');
select is(
  (select count(*)::int from core.audit_logs a
   where exists (select from core.tenant_api_keys k where a.details::text like '%' || k.key_hash || '%')),
  0,
  'no audit entry anywhere contains the hash of any API key');
select is(
  (select count(*)::int from core.audit_logs where details::text like '%' || :'issued_secret' || '%'),
  0,
  'no audit entry contains the plain text of an issued key');

set local role app_user;
select pg_temp.begin_as(:'actor_hash') \gset ignored_
select results_eq(
  $$ select count(*)::int from api.list_audit_logs(p_resource_type => 'documents') $$,
  'values (3)',
  'tenant A''s own audit entries are readable by app_user through api.list_audit_logs');
reset role;

-- Append-only, for everyone --------------------------------------------------------------

select count(*) as audit_sealed from core.audit_logs \gset

select throws_ok('update core.audit_logs set action = ''tampered''', '42501',
  'audit_logs is append-only: UPDATE is not allowed', 'the superuser owner cannot update an audit entry');
select throws_ok(format('delete from core.audit_logs where tenant_id = %L', :'tenant_a'), '42501',
  'audit_logs is append-only: DELETE is not allowed', 'the superuser owner cannot delete an audit entry');
select throws_ok('truncate core.audit_logs', '42501',
  'audit_logs is append-only: TRUNCATE is not allowed', 'the superuser owner cannot truncate the audit trail');
select throws_ok('truncate core.audit_logs cascade', '42501',
  'audit_logs is append-only: TRUNCATE is not allowed', 'TRUNCATE ... CASCADE is refused too');

set local role app_user;
select pg_temp.begin_as(:'actor_hash') \gset ignored_
select throws_ok('update core.audit_logs set action = ''tampered''', '42501',
  'permission denied for table audit_logs', 'app_user cannot update its tenant''s audit entries');
select throws_ok('delete from core.audit_logs', '42501',
  'permission denied for table audit_logs', 'app_user cannot delete its tenant''s audit entries');
select throws_ok('truncate core.audit_logs', '42501',
  'permission denied for table audit_logs', 'app_user cannot truncate the audit trail');
select throws_ok($$ insert into core.audit_logs (tenant_id, action, resource_type, resource_id)
    values (core.current_tenant_id(), 'insert', 'documents', gen_random_uuid()) $$, '42501',
  'permission denied for table audit_logs', 'app_user cannot write an audit entry of its own making');
reset role;

set local role uber_admin;
select throws_ok('update core.audit_logs set action = ''tampered''', '42501',
  'permission denied for table audit_logs', 'uber_admin cannot update audit entries');
select throws_ok('delete from core.audit_logs', '42501',
  'permission denied for table audit_logs', 'uber_admin cannot delete audit entries');
select throws_ok('truncate core.audit_logs', '42501',
  'permission denied for table audit_logs', 'uber_admin cannot truncate the audit trail');
reset role;

-- Rewriting the rows an entry points at does not rewrite the entry.
select lives_ok(format($$ update core.users set email = 'renamed@audited.example.com' where user_id = %L $$, :'actor'),
  'the superuser may still change ordinary tenant rows (the append-only rule is the trail''s alone)');
select is((select count(*) from core.audit_logs), :audit_sealed + 1::bigint,
  'after every refused attempt the trail holds all its entries, plus one for the permitted change');
select is(
  (select count(*)::int from core.audit_logs where action = 'tampered'), 0,
  'no audit entry was altered');

-- The actor comes from the signed context alone -------------------------------------

-- Hand-set actor settings are no context at all: the change is refused.
set local role app_user;
set local app.context = '';
set local app.tenant_id = :'tenant_a';
set local app.user_id = :'actor';
set local app.api_key_id = :'actor_key';
set local app.request_id = 'req-forged';
select throws_ok($$ select * from api.create_user('forged@audited.example.com') $$, '42501', null,
  'with app.tenant_id, app.user_id and app.api_key_id set by hand and no signed context, a change is refused');
-- With a signed context, the same hand-set settings change nothing it records.
select pg_temp.begin_as(:'actor_hash', 'req-11') \gset ignored_
set local app.user_id = '00000000-0000-0000-0000-000000000001';
set local app.api_key_id = '00000000-0000-0000-0000-000000000002';
set local app.request_id = 'req-forged';
select user_id as anon_user from api.create_user('anon@audited.example.com') \gset
reset role;
select results_eq(
  format('select user_id, api_key_id, client_request_id from core.audit_logs where resource_id = %L', :'anon_user'),
  format($$ values (%L::uuid, %L::uuid, 'req-11'::text) $$, :'actor', :'actor_key'),
  'a change is audited with the signed actor and request, whatever app.user_id, app.api_key_id or app.request_id say');
select is_empty($$ select 1 from core.audit_logs where request_id = 'req-forged' or client_request_id = 'req-forged' $$,
  'no entry carries the hand-set request id');

-- The entry belongs to the changed row's tenant ---------------------------------------

-- Only a role that bypasses row-level security can change one tenant's row
-- under another tenant's context; the entry still goes to the row's tenant.
set local role uber_admin;
select tenant_id as tenant_b from platform.create_tenant('Audited too', 'audited-too.example.com') \gset
reset role;
insert into core.users (tenant_id, email) values (:'tenant_b', 'b@audited-too.example.com') returning user_id as user_b \gset
set local role app_user;
select pg_temp.begin_as(:'actor_hash', 'req-12') \gset ignored_
reset role;
update core.users set role = 'viewer' where user_id = :'user_b';
select results_eq(
  format($$ select tenant_id, client_request_id from core.audit_logs where resource_id = %L and action = 'update' $$, :'user_b'),
  format($$ values (%L::uuid, 'req-12'::text) $$, :'tenant_b'),
  'a change to tenant B''s row made under tenant A''s context is audited in tenant B''s trail, not A''s');
set local role app_user;
select pg_temp.begin_as(:'actor_hash') \gset ignored_
select is_empty(format($$ select 1 from api.list_audit_logs(100) where resource_id = %L $$, :'user_b'),
  'and tenant A''s key does not see that entry');
reset role;

-- The registries hold nothing the audited tables do not --------------------------------

select results_eq(
  $$ select (select count(*) from core.tenant_domains)::int,
            (select count(*) from core.tenant_domains d
             where not exists (select from core.tenants t where t.tenant_id = d.tenant_id and t.domain = d.domain))::int $$,
  $$ values ((select count(*) from core.tenants where domain is not null)::int, 0) $$,
  'every claimed domain is the domain its tenant''s audited row carries, and every domain is claimed');
select results_eq(
  $$ select (select count(*) from core.api_key_hashes)::int,
            (select count(*) from core.api_key_hashes h
             where not exists (select from core.tenant_api_keys k
                               where k.tenant_id = h.tenant_id and k.key_id = h.key_id and k.key_hash = h.key_hash))::int $$,
  $$ values ((select count(*) from core.tenant_api_keys)::int, 0) $$,
  'every claimed key hash is the hash its key''s audited row carries, and every key''s hash is claimed');
select cmp_ok((select count(*) from core.tenant_domains)::int + (select count(*) from core.api_key_hashes)::int, '>=', 4,
  'the fixtures claimed domains and key hashes, so the two comparisons above compare something');

select * from finish();
rollback;
