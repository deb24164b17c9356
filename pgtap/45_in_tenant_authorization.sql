-- Authorization inside one tenant, as app_user through api.begin_request with
-- keys bound to each role and with narrow unbound keys. For each rule an
-- allowed case and a denied one, the escalations a narrow key once managed
-- among them: revoking the master key, promoting its own user, deleting
-- another user (and with them their keys), authoring as someone else,
-- reading values through the audit trail, outliving a revoked issuer, and
-- replaying another key's Idempotency-Key. Every check is the database's own:
-- these run the SQL a request would, or SQL an attacker holding the app_user
-- password would, never the HTTP layer.
begin;
select plan(63);

grant execute on all functions in schema public to app_user, uber_admin, tenancy_writer;
do $$ begin execute format('grant temporary on database %I to app_user, uber_admin, tenancy_writer', current_database()); end $$;

-- Fixtures: one tenant, a user of each role, keys of every kind -------------------------

set local role uber_admin;
select tenant_id as t from platform.create_tenant('Inside', null, 'pro', 'Fintech Template') \gset
reset role;
-- These suites are about one person's changes; two-person approval has
-- pgtap/47_two_person_approval.sql.
update core.tenant_configs set settings = settings || '{"require_two_person_approval": false}'
  where tenant_id = :'t';
insert into core.users (tenant_id, email, role) values
  (:'t', 'admin@inside.example', 'tenant_admin'), (:'t', 'member@inside.example', 'member'),
  (:'t', 'other@inside.example', 'member'), (:'t', 'viewer@inside.example', 'viewer');
select user_id as admin from core.users where email = 'admin@inside.example' \gset
select user_id as member from core.users where email = 'member@inside.example' \gset
select user_id as other from core.users where email = 'other@inside.example' \gset
select user_id as viewer from core.users where email = 'viewer@inside.example' \gset
insert into core.documents (tenant_id, user_id, title, content_hash, metadata) values
  (:'t', :'admin', 'Board minutes', repeat('a', 64), '{"secret": "merger"}'),
  (:'t', :'member', 'Member notes', repeat('b', 64), '{}');
select document_id as admin_doc from core.documents where title = 'Board minutes' \gset
select document_id as member_doc from core.documents where title = 'Member notes' \gset

set local role uber_admin;
select key_id as k_master, key as s_master from platform.create_api_key(:'t', 'Master', '{*}') \gset
select key as s_admin from platform.create_api_key(:'t', 'Admin', '{*}', :'admin') \gset
select key as s_member from platform.create_api_key(:'t', 'Member', '{*}', :'member') \gset
select key as s_viewer from platform.create_api_key(:'t', 'Viewer', '{*}', :'viewer') \gset
select key as s_viewer_narrow
from platform.create_api_key(:'t', 'Viewer with write permissions', '{keys:write,documents:write,users:write}', :'viewer') \gset
select key_id as k_keys, key as s_keys from platform.create_api_key(:'t', 'Key manager', '{keys:write,users:read}') \gset
select key as s_people from platform.create_api_key(:'t', 'People manager', '{users:write}') \gset
select key as s_docs from platform.create_api_key(:'t', 'Document service', '{documents:write}') \gset
select key as s_audit from platform.create_api_key(:'t', 'Auditor', '{audit:read}') \gset
select key as s_audit_docs from platform.create_api_key(:'t', 'Document auditor', '{audit:read,documents:read}') \gset
select key_id as k_reader from platform.create_api_key(:'t', 'Reader', '{users:read}') \gset
reset role;

\ir lib/context.psql
select pg_temp.hash_of(:'s_master') as h_master, pg_temp.hash_of(:'s_admin') as h_admin,
       pg_temp.hash_of(:'s_member') as h_member, pg_temp.hash_of(:'s_viewer') as h_viewer,
       pg_temp.hash_of(:'s_viewer_narrow') as h_viewer_narrow, pg_temp.hash_of(:'s_keys') as h_keys,
       pg_temp.hash_of(:'s_people') as h_people, pg_temp.hash_of(:'s_docs') as h_docs,
       pg_temp.hash_of(:'s_audit') as h_audit, pg_temp.hash_of(:'s_audit_docs') as h_audit_docs \gset

-- The permissions a key may use -----------------------------------------------------------

select is(core.effective_permissions('{*}', 'viewer'), array['users:read', 'documents:read', 'config:read'],
  'a * key bound to a viewer may read users, documents and configuration, nothing more');
select is(core.effective_permissions('{*}', 'member'), array['users:read', 'documents:read', 'documents:write', 'config:read'],
  'a * key bound to a member may also write documents');
select is(core.effective_permissions('{*}', 'tenant_admin'), core.all_permissions(),
  'a * key bound to a tenant_admin may do everything');
select is(core.effective_permissions('{documents:write,config:write}', null),
  array['documents:read', 'documents:write', 'config:read', 'config:write'],
  'an unbound key may do what its permissions say, each write bringing its read');
select is(core.effective_permissions('{keys:write,documents:write,users:write}', 'viewer'), array['users:read', 'documents:read'],
  'a viewer''s key keeps none of its write permissions');

set local role app_user;
select is((select permissions from api.begin_request(:'h_viewer_narrow', null, gen_random_uuid())),
  array['users:read', 'documents:read'],
  'api.begin_request signs what the viewer''s key may do, not what it holds');
select throws_ok(format($$ select * from api.begin_request(%L, 'keys:write', gen_random_uuid()) $$, :'h_viewer_narrow'),
  'PT403', 'the API key lacks the permission keys:write',
  'a viewer''s key holding keys:write is refused a route that needs it');

-- Reads follow read permissions -------------------------------------------------------------

select pg_temp.begin_as(:'h_docs') \gset ignored_
select is((select count(*)::int from api.documents), 2, 'a documents:write key reads the documents it may change');
select is((select count(*)::int from api.users), 0, 'a documents:write key reads no users');
select is((select count(*)::int from api.current_tenant_config()), 0, 'a documents:write key reads no configuration');
select pg_temp.begin_as(:'h_audit') \gset ignored_
select is((select count(*)::int from api.documents), 0, 'an audit:read key reads no documents');
select isnt((select count(*)::int from api.list_audit_logs(100)), 0, 'an audit:read key reads the audit trail');
select pg_temp.begin_as(:'h_viewer') \gset ignored_
select is((select count(*)::int from api.list_audit_logs(100)), 0, 'a viewer''s * key reads no audit trail');
select is((select count(*)::int from api.documents), 2, 'a viewer''s * key reads the documents');

-- Audit entries show values only of what the key may read -----------------------------------

select pg_temp.begin_as(:'h_audit') \gset ignored_
select is(
  (select count(*)::int from api.list_audit_logs(100) where resource_type in ('documents', 'users', 'tenant_configs', 'tenant_api_keys')
     and (details ? 'old' or details ? 'new')),
  0,
  'an audit:read key sees no old or new values of documents, users, configuration or keys');
select is(
  (select count(*)::int from api.list_audit_logs(100) where resource_type = 'documents' and details ? 'changed'),
  (select count(*)::int from api.list_audit_logs(100) where resource_type = 'documents'),
  '...but sees who changed what, when, and which columns');
select pg_temp.begin_as(:'h_audit_docs') \gset ignored_
select isnt_empty($$ select 1 from api.list_audit_logs(100) where resource_type = 'documents' and details #>> '{new,title}' = 'Board minutes' $$,
  'an audit:read and documents:read key sees the values of document entries');
select is_empty($$ select 1 from api.list_audit_logs(100) where resource_type = 'users' and details ? 'new' $$,
  '...and still none of user entries');
select isnt_empty($$ select 1 from api.list_audit_logs(100) where resource_type = 'tenants' and details ? 'new' $$,
  'entries of the tenant itself, which every key reads, keep their values');
select throws_ok('select details from core.audit_logs', '42501', 'permission denied for table audit_logs',
  'app_user cannot read the unredacted trail in core.audit_logs, whatever its key');

-- Documents: authorship and members --------------------------------------------------------------

select pg_temp.begin_as(:'h_member') \gset ignored_
select is((select user_id from api.create_document(null, 'Mine', repeat('c', 64))), :'member'::uuid,
  'a member''s key authors a document as its user without naming one');
select throws_ok(format($$ select * from api.create_document(%L, 'As the admin', repeat('c', 64)) $$, :'admin'), 'PT403',
  'a key bound to a user authors documents only as that user',
  'a member''s key cannot author a document as the tenant_admin');
select throws_ok(format($$ insert into core.documents (user_id, title, content_hash) values (%L, 'Forged author', repeat('c', 64)) $$,
  :'admin'), '42501', null, 'nor with a direct INSERT: the insert policy binds the author to the key''s user');
select isnt_empty(format($$ select * from api.update_document(%L, p_title => 'Member notes v2') $$, :'member_doc'),
  'a member''s key changes a document its user authors');
select throws_ok(format($$ select * from api.update_document(%L, p_title => 'Defaced') $$, :'admin_doc'), 'PT403',
  'a key of a member changes only the documents its user authors',
  'a member''s key cannot change the tenant_admin''s document');
select is_empty(format($$ update core.documents set title = 'Defaced' where document_id = %L returning 1 $$, :'admin_doc'),
  'nor with a direct UPDATE: the update policy reaches only the member''s own documents');
select throws_ok(format($$ select * from api.delete_document(%L) $$, :'admin_doc'), 'PT403',
  'a key of a member deletes only the documents its user authors',
  'a member''s key cannot delete the tenant_admin''s document');
select pg_temp.begin_as(:'h_viewer_narrow') \gset ignored_
select throws_ok($$ select * from api.create_document(null, 'By a viewer', repeat('c', 64)) $$, '42501', null,
  'a viewer''s key holding documents:write cannot create a document');
select pg_temp.begin_as(:'h_admin') \gset ignored_
select isnt_empty(format($$ select * from api.update_document(%L, p_title => 'Member notes, reviewed') $$, :'member_doc'),
  'a tenant_admin''s key changes anyone''s document');
select pg_temp.begin_as(:'h_docs') \gset ignored_
select throws_ok($$ select * from api.create_document(null, 'Nobody''s', repeat('c', 64)) $$, 'PT422',
  'a key bound to no user must name the author (user_id)', 'an unbound key must name the author');
select is((select user_id from api.create_document(:'other', 'By the service', repeat('c', 64))), :'other'::uuid,
  'an unbound key names the author');

-- Users and roles --------------------------------------------------------------------------------

select pg_temp.begin_as(:'h_viewer_narrow') \gset ignored_
select is_empty(format($$ select * from api.update_user(%L, p_role => 'tenant_admin') $$, :'viewer'),
  'a viewer''s key holding users:write cannot promote its own user');
select is_empty(format($$ update core.users set role = 'tenant_admin' where user_id = %L returning 1 $$, :'viewer'),
  'nor with a direct UPDATE');
select is_empty(format('select * from api.delete_user(%L)', :'other'), 'a viewer''s key cannot delete another user');
select pg_temp.begin_as(:'h_people') \gset ignored_
select isnt_empty($$ select * from api.create_user('new@inside.example') $$,
  'an unbound users:write key adds a member');
select throws_ok($$ select * from api.create_user('boss@inside.example', 'tenant_admin') $$, 'PT403',
  'a key cannot add a user with a role above its own', 'an unbound users:write key cannot add a tenant_admin');
select throws_ok(format($$ select * from api.update_user(%L, p_role => 'viewer') $$, :'other'), 'PT403',
  'a key changes roles only when bound to a tenant_admin or holding every permission',
  'an unbound users:write key cannot change a role, not even downwards');
select isnt_empty(format($$ select * from api.update_user(%L, p_email => 'other2@inside.example') $$, :'other'),
  'an unbound users:write key changes a member''s email');
select throws_ok(format($$ select * from api.update_user(%L, p_email => 'taken@inside.example') $$, :'admin'), 'PT403',
  'a key cannot change or remove a user whose role is above its own',
  'an unbound users:write key cannot change the tenant_admin');
select throws_ok(format('select * from api.delete_user(%L)', :'admin'), 'PT403',
  'a key cannot change or remove a user whose role is above its own',
  'an unbound users:write key cannot delete the tenant_admin (and so revoke their keys)');
select pg_temp.begin_as(:'h_admin') \gset ignored_
select is((select role from api.update_user(:'member', p_role => 'tenant_admin')), 'tenant_admin',
  'a tenant_admin''s key raises a member to tenant_admin');
select is((select role from api.update_user(:'member', p_role => 'member')), 'member', '...and back');
select pg_temp.begin_as(:'h_master') \gset ignored_
select is((select role from api.update_user(:'other', p_role => 'viewer')), 'viewer',
  'an unbound * key changes a role');

-- Keys: within the issuer, and gone with it ----------------------------------------------------

select pg_temp.begin_as(:'h_viewer_narrow') \gset ignored_
select throws_ok(format('select * from api.revoke_api_key(%L)', :'k_master'), 'PT403',
  'the API key lacks the permission keys:write', 'a viewer''s key holding keys:write cannot revoke the master key');
select throws_ok($$ select * from api.create_api_key('Child', '{users:read}') $$, 'PT403',
  'the API key lacks the permission keys:write', 'nor issue a key');
select pg_temp.begin_as(:'h_keys') \gset ignored_
select throws_ok(format('select * from api.revoke_api_key(%L)', :'k_master'), 'PT403',
  'a key can only revoke keys whose permissions it holds itself',
  'a keys:write key cannot revoke a key holding more than it does (the master key)');
select throws_ok($$ select * from api.create_api_key('Wider', '{documents:read}') $$, 'PT403',
  'a key can only grant permissions it holds itself', 'a keys:write key cannot issue a key beyond its own permissions');
select throws_ok(format($$ select * from api.create_api_key('For the admin', '{users:read}', %L) $$, :'admin'), 'PT403',
  'a key cannot issue keys for a user whose role is above its own',
  'a keys:write key bound to no user, without every permission, cannot issue a key for the tenant_admin');
select key_id as k_child, issued_by_key_id as child_issuer from api.create_api_key('Child', '{users:read,keys:write}', :'member') \gset
select is(:'child_issuer'::uuid, :'k_keys'::uuid, 'a key it issues records it as the issuer');
select isnt_empty(format('select * from api.revoke_api_key(%L)', :'k_reader'),
  'a keys:write key revokes a key within its own permissions');
-- A second child issues a grandchild; revoking the first issuer takes them all.
select key as s_child_secret from api.create_api_key('Issuer of grandchild', '{users:read,keys:write}') \gset
select pg_temp.begin_as(pg_temp.hash_of(:'s_child_secret')) \gset ignored_
select key_id as k_grandchild from api.create_api_key('Grandchild', '{users:read}') \gset
select pg_temp.begin_as(:'h_master') \gset ignored_
select isnt_empty(format('select * from api.revoke_api_key(%L)', :'k_keys'), 'the master key revokes the key manager');
reset role;
select is(
  (select count(*)::int from core.tenant_api_keys
   where tenant_id = :'t' and revoked_at is null and key_id in (:'k_keys', :'k_child', :'k_grandchild')),
  0,
  'revoking a key revoked every key it issued, and every key those issued');
select is(
  (select count(*)::int from core.audit_logs
   where resource_id in (:'k_keys', :'k_child', :'k_grandchild') and action = 'update' and details -> 'changed' = '["revoked_at"]'),
  3,
  'each of those revocations is in the trail');
set local role app_user;
select throws_ok(format($$ select * from api.begin_request(%L, null, gen_random_uuid()) $$, pg_temp.hash_of(:'s_child_secret')),
  'PT401', null, 'a key its revoked issuer issued no longer authenticates');
select throws_ok(format($$ update core.tenant_api_keys set revoked_at = null where key_id = %L $$, :'k_keys'), '42501', null,
  'app_user cannot touch a key directly, to undo a revocation or otherwise');
select pg_temp.begin_as(:'h_admin') \gset ignored_
select isnt_empty($$ select * from api.create_api_key('Admin child', '{*}') $$,
  'a tenant_admin''s * key issues a * key (for its own user)');
select throws_ok(format($$ select * from api.create_api_key('For the member', '{users:read}', %L) $$, :'member'), 'PT403',
  'a key bound to a user can only issue keys bound to that user', 'a user-bound key issues keys only for its own user');

-- Deleting a user keeps their keys, revoked ------------------------------------------------------

select pg_temp.begin_as(:'h_master') \gset ignored_
select key_id as k_of_other from api.create_api_key('Other''s', '{users:read}', :'other') \gset
reset role;
delete from core.documents where user_id = :'other';
set local role app_user;
select pg_temp.begin_as(:'h_master') \gset ignored_
select isnt_empty(format('select * from api.delete_user(%L)', :'other'), 'the master key deletes a user');
reset role;
select results_eq(format($$ select revoked_at is not null, user_id from core.tenant_api_keys where key_id = %L $$, :'k_of_other'),
  $$ values (true, null::uuid) $$,
  'the deleted user''s key is kept, revoked and unbound, not deleted');

-- Idempotency-Keys belong to the key that used them ----------------------------------------

set local role app_user;
select pg_temp.begin_as(:'h_docs') \gset ignored_
select results_eq($$ select claimed from api.claim_idempotency_key('shared-header', repeat('1', 64)) $$, 'values (true)',
  'a key claims an Idempotency-Key');
select lives_ok($$ select api.save_idempotent_response('shared-header', 201, '{"secret": "the first key''s"}') $$,
  '...and stores its response');
select pg_temp.begin_as(:'h_audit') \gset ignored_
select results_eq($$ select claimed, response_body from api.claim_idempotency_key('shared-header', repeat('1', 64)) $$,
  $$ values (true, null::jsonb) $$,
  'another key of the same tenant sending the same header value makes a request of its own: nothing is replayed');
select pg_temp.begin_as(:'h_docs') \gset ignored_
select results_eq($$ select claimed, response_body from api.claim_idempotency_key('shared-header', repeat('1', 64)) $$,
  $$ values (false, '{"secret": "the first key''s"}'::jsonb) $$,
  'the first key''s retry is replayed its own response');
reset role;

select * from finish();
rollback;
