-- Swapping contexts, from the side of someone who holds the app_user
-- password and several real keys: of tenant A a users:write service key, a
-- documents key and an audit-only key; of tenant B a '*' key. Each key signs
-- a genuine context; the attack is to make a statement act under one
-- context and be judged, recorded or redacted under another (or under none)
-- by putting an earlier context back, or signing a new one, in the middle of
-- the statement. Only the latest context a session signed verifies, and only
-- from the statement after the one that signed it; and a change made
-- through app_user without a verified context of its row's tenant is
-- refused. The suite runs with session_user = app_user, as the service
-- does, because the triggers tell the service's role by its login.
begin;
select plan(29);

grant execute on all functions in schema public to app_user, uber_admin, tenancy_writer;
do $$ begin execute format('grant temporary on database %I to app_user, uber_admin, tenancy_writer', current_database()); end $$;

-- Fixtures ---------------------------------------------------------------------------

set local role uber_admin;
select tenant_id as tenant_a from platform.create_tenant('Swap target', null, 'pro', 'Fintech Template') \gset
select tenant_id as tenant_b from platform.create_tenant('Swap attacker', null, 'pro', 'Fintech Template') \gset
reset role;
insert into core.users (tenant_id, email, role) values
  (:'tenant_a', 'admin@swap-a.example', 'tenant_admin'),
  (:'tenant_a', 'member@swap-a.example', 'member'),
  (:'tenant_a', 'viewer@swap-a.example', 'viewer');
select user_id as admin_a from core.users where email = 'admin@swap-a.example' \gset
insert into core.documents (tenant_id, user_id, title, content_hash)
values (:'tenant_a', :'admin_a', 'Ledger', repeat('a', 64)) returning document_id as doc_a \gset
set local role uber_admin;
select key as svc_users from platform.create_api_key(:'tenant_a', 'Users service', '{users:read,users:write}') \gset
select key as docs from platform.create_api_key(:'tenant_a', 'Docs', '{documents:read,documents:write}') \gset
select key as audit_only from platform.create_api_key(:'tenant_a', 'Auditor', '{audit:read}') \gset
select key as audit_users from platform.create_api_key(:'tenant_a', 'People auditor', '{audit:read,users:read}') \gset
select key as star_b, key_id as star_b_id from platform.create_api_key(:'tenant_b', 'B root', '{*}') \gset
select key_id as b_reader from platform.create_api_key(:'tenant_b', 'B reader', '{documents:read}') \gset
reset role;

\ir lib/context.psql
select pg_temp.hash_of(:'svc_users') as hash_svc_users, pg_temp.hash_of(:'docs') as hash_docs,
       pg_temp.hash_of(:'audit_only') as hash_audit_only, pg_temp.hash_of(:'audit_users') as hash_audit_users, pg_temp.hash_of(:'star_b') as hash_star_b \gset

-- Signs a context and reads it back within the same statement.
create function pg_temp.sign_and_count(p_key_hash text) returns bigint
language plpgsql volatile
as $$
begin
  perform pg_temp.begin_as(p_key_hash);
  return (select count(*) from core.request_context);
end
$$;
grant execute on function pg_temp.sign_and_count(text) to app_user;

set local session authorization app_user;

-- Only the latest context, and not in the statement that signed it -------------------

select pg_temp.begin_as(:'hash_star_b') \gset ignored_
select current_setting('app.context') as ctx_b \gset
select pg_temp.begin_as(:'hash_docs') \gset ignored_
select is((select count(*)::int from core.request_context), 1,
  'the context signed last verifies');
select set_config('app.context', :'ctx_b', true) \gset ignored_
select is((select count(*)::int from core.request_context), 0,
  'an earlier context of the same transaction, put back with set_config, verifies as nothing');
select is(pg_temp.sign_and_count(:'hash_docs')::int, 0,
  'a context signed in the middle of a statement does not verify in that statement');
select is((select count(*)::int from core.request_context), 1,
  '...and verifies from the next statement on');

-- A role change judged under one context, guarded under none -------------------------

select pg_temp.begin_as(:'hash_svc_users') \gset ignored_
select throws_ok(
  $$ update core.users set role = (select 'tenant_admin' from (select set_config('app.context', '', true)) s)
     where email = 'viewer@swap-a.example' $$,
  '42501', 'a change to users needs a verified request context',
  'clearing the context in the middle of an update leaves the role guard no context, and it refuses');
select throws_ok(
  format($$ update core.users set role = (select 'tenant_admin' from (select set_config('app.context', %L, true)) s)
            where email = 'viewer@swap-a.example' $$, :'ctx_b'),
  '42501', 'a change to users needs a verified request context',
  'putting another tenant''s earlier context back in the middle of an update verifies as nothing, and the guard refuses');
select throws_ok(
  format($$ update core.users set role = (select 'tenant_admin' from api.begin_request(%L, null, gen_random_uuid()))
            where email = 'viewer@swap-a.example' $$, :'hash_star_b'),
  '42501', 'a change to users needs a verified request context',
  'signing another key''s context in the middle of an update verifies as nothing, and the guard refuses');
-- The policies' checks run once and are reused; the guard runs per row. The
-- first row passes untouched with the context in place; the context is
-- cleared only for the second.
-- (The call above advanced the nonce: the context signed before it is stale.)
select pg_temp.begin_as(:'hash_svc_users') \gset ignored_
select set_config('swap.rows', '0', true) \gset ignored_
select throws_ok(
  $$ update core.users u set role = case
       when set_config('swap.rows', (current_setting('swap.rows')::int + 1)::text, true) = '1' then u.role
       else (select 'tenant_admin' from (select set_config('app.context', '', true)) s) end
     where u.email in ('member@swap-a.example', 'viewer@swap-a.example') $$,
  '42501', 'a change to users needs a verified request context',
  'clearing the context only after the policies have checked a first row still leaves the guard no context for the second');
select pg_temp.begin_as(:'hash_svc_users') \gset ignored_
select is((select role from api.users where email = 'viewer@swap-a.example'), 'viewer',
  'after all three the viewer is still a viewer');

-- A write recorded under no context, or another tenant's ---------------------------------

select pg_temp.begin_as(:'hash_docs') \gset ignored_
select throws_ok(
  format($$ update core.documents set title = 'Tampered' where document_id = %L
            returning set_config('app.context', '', true) $$, :'doc_a'),
  '42501', 'a change through app_user needs the verified request context of the row''s tenant',
  'a write whose context is cleared before its audit entry is written is refused, not recorded without an actor');
select throws_ok(
  format($$ update core.documents set title = 'Tampered' where document_id = %L
            returning set_config('app.context', %L, true) $$, :'doc_a', :'ctx_b'),
  '42501', 'a change through app_user needs the verified request context of the row''s tenant',
  'a write whose context is swapped for another tenant''s before its audit entry is written is refused');
select pg_temp.begin_as(:'hash_docs') \gset ignored_
select lives_ok(
  format($$ update core.documents set title = 'Ledger (checked)' where document_id = %L $$, :'doc_a'),
  'the same update without the swap succeeds, so the refusals above are the swap''s');
select is((select title from api.documents where document_id = :'doc_a'), 'Ledger (checked)',
  'and only that update landed');
reset session authorization;
select results_eq(
  format($$ select details #>> '{new,title}', api_key_id is not null from core.audit_logs
            where resource_id = %L and action = 'update' $$, :'doc_a'),
  $$ values ('Ledger (checked)'::text, true) $$,
  'the trail holds that one update, with its key, and no entry of the refused ones');
set local session authorization app_user;

-- Redaction by another tenant's permissions ------------------------------------------

select pg_temp.begin_as(:'hash_audit_users') \gset ignored_
select ok(
  (select count(*) from api.list_audit_logs(100) where resource_type = 'users' and details ? 'new') > 0,
  'a key that may read the trail and users sees the new values of user entries (the control)');
select pg_temp.begin_as(:'hash_audit_only') \gset ignored_
select is(
  (select count(*)::int from api.list_audit_logs(100) where resource_type = 'users' and details ? 'new'), 0,
  'an audit-only key sees user entries without their values');
select is(
  (select count(*)::int from (select set_config('app.context', :'ctx_b', true) as swapped, a.details
                              from api.list_audit_logs(100) a where a.resource_type = 'users' offset 0) s
   where s.details ? 'new'),
  0,
  'putting a context of another tenant''s ''*'' key back in the middle of the read shows no value either');

-- A cursor is read a few rows at a time, each FETCH a statement of its own:
-- signing another context between two FETCHes must not change how the rest
-- is redacted (a view's redaction was evaluated at the row it first needed).
select throws_ok('declare over_the_view cursor for select * from api.audit_logs', '42501', null,
  'app_user cannot open a cursor over api.audit_logs: it reads the trail only through api.list_audit_logs');
create function pg_temp.values_in_rest_of(p_cursor refcursor) returns integer
language plpgsql volatile
as $$
declare
  v_row record;
  v_values integer := 0;
begin
  loop
    fetch p_cursor into v_row;
    exit when not found;
    if v_row.resource_type = 'users' and v_row.details ? 'new' then
      v_values := v_values + 1;
    end if;
  end loop;
  return v_values;
end
$$;
select pg_temp.begin_as(:'hash_audit_only') \gset ignored_
declare swap_cursor cursor for select * from api.list_audit_logs(100);
fetch 1 from swap_cursor \gset first_
select pg_temp.begin_as(:'hash_audit_users') \gset ignored_
select is(pg_temp.values_in_rest_of('swap_cursor'), 0,
  'a page opened under an audit-only key and read on under a key that may read users still shows no user values');
close swap_cursor;
declare control_cursor cursor for select * from api.list_audit_logs(100);
fetch 1 from control_cursor \gset first_
select cmp_ok(pg_temp.values_in_rest_of('control_cursor'), '>', 0,
  'the same cursor opened under the key that may read users shows them (the control)');
close control_cursor;

-- A key revoked after its request began revokes nothing in it ------------------------

select pg_temp.begin_as(:'hash_star_b') \gset ignored_
savepoint revoked_meanwhile;
reset session authorization;
update core.tenant_api_keys set revoked_at = now() where key_id = :'star_b_id';
set local session authorization app_user;
select throws_ok(format('select * from api.revoke_api_key(%L)', :'b_reader'), 'PT401', null,
  'a key revoked since its context was signed cannot revoke another key in that request');
select throws_ok($$ select * from api.create_api_key('Persistence', '{*}') $$, 'PT401', null,
  '...nor issue one');
rollback to savepoint revoked_meanwhile;
select lives_ok(format('select * from api.revoke_api_key(%L)', :'b_reader'),
  'the same revocation by the key while it is valid works (the control)');

-- A DBA needs no context; uber_admin issues keys only through its function -------------

reset session authorization;
select lives_ok(
  $$ update core.users set email = 'viewer2@swap-a.example' where email = 'viewer@swap-a.example' $$,
  'a superuser (a DBA, a migration) still changes users without a context: the refusal is the service role''s');
set local role uber_admin;
select throws_ok(
  format($$ insert into core.tenant_api_keys (tenant_id, key_hash, key_prefix, name, permissions, issued_by_key_id)
            values (%L, repeat('f', 64), 'tnk_forged', 'Forged', '{*}', null) $$, :'tenant_a'),
  '42501', 'permission denied for table tenant_api_keys',
  'uber_admin cannot insert a key row with a hash and provenance of its choosing');
select throws_ok(
  format($$ select * from core.issue_api_key(%L, 'Forged', '{*}', null, null, null) $$, :'tenant_a'),
  '42501', null,
  'uber_admin cannot call core.issue_api_key, which takes any issued_by_key_id');
select isnt_empty(
  format($$ select * from platform.create_api_key(%L, 'Issued properly', '{documents:read}') $$, :'tenant_a'),
  'uber_admin issues keys through platform.create_api_key');
reset role;

set local session authorization app_user;
-- A read-only request stays read-only ------------------------------------------------

-- Signing numbers the context (nextval), so a GET's transaction begins
-- read-write and api.begin_request turns it read-only. (Last in this file:
-- the rest of the transaction is read-only too.)
select is((select count(*)::int from api.begin_request(:'hash_docs', null, gen_random_uuid(), null, true)), 1,
  'api.begin_request signs a read-only request''s context');
select throws_ok(
  format($$ update core.documents set title = 'Written by a GET' where document_id = %L $$, :'doc_a'),
  '25006', null,
  'after api.begin_request(..., p_read_only => true) the transaction refuses writes');

select * from finish();
rollback;
